// IPv4 header (RFC 791): a zero-copy view for the data path and a Repr for the control plane.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-------+-------+---------------+-------------------------------+
//  |Version|  IHL  |      TOS      |          Total Length         |
//  +-------+-------+---------------+-----+-------------------------+
//  |        Identification         |Flags|     Fragment Offset     |
//  +---------------+---------------+-----+-------------------------+
//  |      TTL      |   Protocol    |        Header Checksum        |
//  +---------------+---------------+-------------------------------+
//  |                        Source Address                         |
//  +---------------------------------------------------------------+
//  |                      Destination Address                      |
//  +---------------------------------------------------------------+

import { InvalidError } from '../errors';
import { checksum, fold, sum16 } from './checksum';
import { HeaderView } from './header-view';
import { V_BAD_IHL, V_BAD_TOTAL_LEN, V_BAD_VERSION, V_OK, V_TRUNCATED, WIRE_VERDICT_NAMES } from './verdict';

/** Byte offsets of the IPv4 header fields, and the size of a header without options. */
export const IPV4 = {
  VER_IHL: 0,
  TOS: 1,
  TOTAL_LEN: 2,
  ID: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  MIN_HEADER: 20,
} as const;

/** Bits of the 16-bit flags/fragment-offset word. */
export const IPV4_DF = 0x4000;
export const IPV4_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

/**
 * A re-pointable view over an IPv4 header in place: one instance serves every packet. Call
 * reset() then checkLen(); only when that returns V_OK are the accessors meaningful (they do not
 * re-check). Nothing here allocates. `off` is the offset of the IPv4 header in buf; `len` the bytes
 * of buf available to this packet from `off` (may exceed totalLen: link padding).
 */
export class Ipv4View extends HeaderView {
  /**
   * Validate the lengths and fixed fields once. V_TRUNCATED (fewer than 20 bytes, or fewer than
   * the IHL says), V_BAD_VERSION, V_BAD_IHL, V_BAD_TOTAL_LEN (below the header length or beyond
   * `len`), else V_OK. Does not check the header checksum (verifyChecksum) or fragmentation.
   */
  checkLen(): number {
    const v = this.checkHeaderLen();
    if (v !== V_OK) return v;
    const totalLen = this.u16(IPV4.TOTAL_LEN);
    if (totalLen < this.headerLen || totalLen > this.len) return V_BAD_TOTAL_LEN;
    return V_OK;
  }

  /**
   * checkLen() without the total-length test, for the IPv4 header quoted in an ICMP error, which
   * carries only the header and 8 payload bytes while its totalLen still describes the original
   * packet: V_TRUNCATED, V_BAD_VERSION, V_BAD_IHL, else V_OK. After it, payloadOffset is valid but
   * payloadLen describes the original packet; the bytes present are len - headerLen.
   */
  checkHeaderLen(): number {
    const len = this.len;
    if (len < IPV4.MIN_HEADER || this.off + len > this.buf.length) return V_TRUNCATED;
    const verIhl = this.u8(IPV4.VER_IHL);
    if (verIhl >> 4 !== 4) return V_BAD_VERSION;
    const headerLen = (verIhl & 0x0f) << 2;
    if (headerLen < IPV4.MIN_HEADER) return V_BAD_IHL;
    if (headerLen > len) return V_TRUNCATED;
    return V_OK;
  }

  get version(): number {
    return this.u8(IPV4.VER_IHL) >> 4;
  }

  /** Header length in 32-bit words. */
  get ihl(): number {
    return this.u8(IPV4.VER_IHL) & 0x0f;
  }

  /** Header length in bytes (20 without options). */
  get headerLen(): number {
    return (this.u8(IPV4.VER_IHL) & 0x0f) << 2;
  }

  get tos(): number {
    return this.u8(IPV4.TOS);
  }

  /** Raw write; the header checksum is not updated. */
  set tos(v: number) {
    this.setU8(IPV4.TOS, v);
  }

  get totalLen(): number {
    return this.u16(IPV4.TOTAL_LEN);
  }

  /** Raw write; the header checksum is not updated. */
  set totalLen(v: number) {
    this.setU16(IPV4.TOTAL_LEN, v);
  }

  get id(): number {
    return this.u16(IPV4.ID);
  }

  /** Raw write; the header checksum is not updated. */
  set id(v: number) {
    this.setU16(IPV4.ID, v);
  }

  /** The raw flags/fragment-offset word (IPV4_DF, IPV4_MF, IPV4_FRAG_OFFSET_MASK). */
  get flagsFrag(): number {
    return this.u16(IPV4.FLAGS_FRAG);
  }

  get dontFrag(): boolean {
    return (this.u8(IPV4.FLAGS_FRAG) & (IPV4_DF >> 8)) !== 0;
  }

  get moreFrags(): boolean {
    return (this.u8(IPV4.FLAGS_FRAG) & (IPV4_MF >> 8)) !== 0;
  }

  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragOffset(): number {
    return (this.u16(IPV4.FLAGS_FRAG) & IPV4_FRAG_OFFSET_MASK) << 3;
  }

  /** True for any fragment, first (MF) or later (offset != 0). */
  get isFragment(): boolean {
    return (this.u16(IPV4.FLAGS_FRAG) & (IPV4_MF | IPV4_FRAG_OFFSET_MASK)) !== 0;
  }

  get ttl(): number {
    return this.u8(IPV4.TTL);
  }

  /** Raw write; the header checksum is not updated (see decTtlWithChecksumUpdate). */
  set ttl(v: number) {
    this.setU8(IPV4.TTL, v);
  }

  get protocol(): number {
    return this.u8(IPV4.PROTOCOL);
  }

  /** Raw write; the header checksum is not updated. */
  set protocol(v: number) {
    this.setU8(IPV4.PROTOCOL, v);
  }

  get checksum(): number {
    return this.u16(IPV4.CHECKSUM);
  }

  /** Raw write of the checksum field. */
  set checksum(v: number) {
    this.setU16(IPV4.CHECKSUM, v);
  }

  /** Source address, host-order uint32. */
  get srcAddr(): number {
    return this.u32(IPV4.SRC);
  }

  /** Raw write; the header checksum is not updated. */
  set srcAddr(a: number) {
    this.setU32(IPV4.SRC, a);
  }

  /** Destination address, host-order uint32. */
  get dstAddr(): number {
    return this.u32(IPV4.DST);
  }

  /** Raw write; the header checksum is not updated. */
  set dstAddr(a: number) {
    this.setU32(IPV4.DST, a);
  }

  /** Absolute offset in buf of the payload (the L4 header). */
  get payloadOffset(): number {
    return this.off + ((this.u8(IPV4.VER_IHL) & 0x0f) << 2);
  }

  /** Payload bytes: totalLen - headerLen (link padding beyond totalLen excluded). */
  get payloadLen(): number {
    return this.u16(IPV4.TOTAL_LEN) - ((this.u8(IPV4.VER_IHL) & 0x0f) << 2);
  }

  /**
   * TTL - 1 with the header checksum updated (RFC 1624). The caller checks ttl > 1 first (and
   * answers ICMP time exceeded otherwise). TTL and protocol share one 16-bit word.
   */
  decTtlWithChecksumUpdate(): void {
    this.setU16WithChecksumUpdate(IPV4.TTL, (this.u16(IPV4.TTL) - 0x100) & 0xffff, IPV4.CHECKSUM);
  }

  /** TTL + 1 with the header checksum updated (RFC 1624). The caller checks ttl < 255 first. */
  incTtlWithChecksumUpdate(): void {
    this.setU16WithChecksumUpdate(IPV4.TTL, (this.u16(IPV4.TTL) + 0x100) & 0xffff, IPV4.CHECKSUM);
  }

  /** Rewrite the source address, updating the header checksum incrementally. */
  setSrcAddrWithChecksumUpdate(a: number): void {
    this.setU32WithChecksumUpdate(IPV4.SRC, a, IPV4.CHECKSUM);
  }

  /** Rewrite the destination address, updating the header checksum incrementally. */
  setDstAddrWithChecksumUpdate(a: number): void {
    this.setU32WithChecksumUpdate(IPV4.DST, a, IPV4.CHECKSUM);
  }

  /** Rewrite the total length, updating the header checksum incrementally. */
  setTotalLenWithChecksumUpdate(v: number): void {
    this.setU16WithChecksumUpdate(IPV4.TOTAL_LEN, v, IPV4.CHECKSUM);
  }

  /** Rewrite the TOS byte, updating the header checksum incrementally. TOS shares a word with VER_IHL. */
  setTosWithChecksumUpdate(v: number): void {
    this.setU16WithChecksumUpdate(IPV4.VER_IHL, (this.u8(IPV4.VER_IHL) << 8) | (v & 0xff), IPV4.CHECKSUM);
  }

  /** Compute the header checksum (over headerLen bytes) and store it. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.buf, this.off, this.headerLen);
  }

  /** True if the header checksum verifies (the sum over the header, field included, is 0xffff). */
  verifyChecksum(): boolean {
    return fold(sum16(this.buf, this.off, this.headerLen)) === 0xffff;
  }
}

/**
 * Write a 20-byte IPv4 header (no options) at buf[off] and fill its checksum. `flagsFrag` is the
 * 16-bit flags + fragment-offset field (offset in 8-byte units).
 */
export function writeIpv4Header(
  buf: Buffer,
  off: number,
  tos: number,
  totalLen: number,
  id: number,
  flagsFrag: number,
  ttl: number,
  protocol: number,
  src: number,
  dst: number,
): void {
  buf[off + IPV4.VER_IHL] = 0x45;
  buf[off + IPV4.TOS] = tos;
  buf.writeUInt16BE(totalLen, off + IPV4.TOTAL_LEN);
  buf.writeUInt16BE(id & 0xffff, off + IPV4.ID);
  buf.writeUInt16BE(flagsFrag, off + IPV4.FLAGS_FRAG);
  buf[off + IPV4.TTL] = ttl;
  buf[off + IPV4.PROTOCOL] = protocol;
  buf.writeUInt16BE(0, off + IPV4.CHECKSUM);
  buf.writeUInt32BE(src >>> 0, off + IPV4.SRC);
  buf.writeUInt32BE(dst >>> 0, off + IPV4.DST);
  buf.writeUInt16BE(checksum(buf, off, IPV4.MIN_HEADER), off + IPV4.CHECKSUM);
}

/**
 * A parsed IPv4 header as plain fields: for the control plane, tests and packets the engine
 * builds itself (ICMP errors, IPIP outer headers). Options are not kept: emit writes 20 bytes.
 */
export class Ipv4Repr {
  srcAddr = 0;
  dstAddr = 0;
  protocol = 0;
  ttl = 64;
  tos = 0;
  id = 0;
  dontFrag = false;
  /** Added to the brief: kept so parse/emit round-trips fragments too. */
  moreFrags = false;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset = 0;
  /** Bytes after the header; totalLen = 20 + payloadLen. */
  payloadLen = 0;

  /** The fields of a view's header. Throws InvalidError if the view does not pass checkLen(). */
  static parse(view: Ipv4View): Ipv4Repr {
    const v = view.checkLen();
    if (v !== V_OK) throw new InvalidError(`Malformed IPv4 header: ${WIRE_VERDICT_NAMES[v]}`);
    const r = new Ipv4Repr();
    r.srcAddr = view.srcAddr;
    r.dstAddr = view.dstAddr;
    r.protocol = view.protocol;
    r.ttl = view.ttl;
    r.tos = view.tos;
    r.id = view.id;
    r.dontFrag = view.dontFrag;
    r.moreFrags = view.moreFrags;
    r.fragOffset = view.fragOffset;
    r.payloadLen = view.payloadLen;
    return r;
  }

  /** Header bytes emit() writes. */
  bufferLen(): number {
    return IPV4.MIN_HEADER;
  }

  /** Write a 20-byte header (no options) at buf[off], checksum included. */
  emit(buf: Buffer, off: number): void {
    const flags = (this.dontFrag ? IPV4_DF : 0) | (this.moreFrags ? IPV4_MF : 0);
    writeIpv4Header(
      buf,
      off,
      this.tos,
      IPV4.MIN_HEADER + this.payloadLen,
      this.id,
      flags | ((this.fragOffset >>> 3) & IPV4_FRAG_OFFSET_MASK),
      this.ttl,
      this.protocol,
      this.srcAddr,
      this.dstAddr,
    );
  }
}
