// TCP header (RFC 793 / RFC 9293): a zero-copy view for the data path and a Repr for the control
// plane. The checksum covers the IPv4 pseudo-header, so the methods that touch it take addresses.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-------------------------------+-------------------------------+
//  |          Source Port          |       Destination Port        |
//  +-------------------------------+-------------------------------+
//  |                        Sequence Number                        |
//  +---------------------------------------------------------------+
//  |                    Acknowledgment Number                      |
//  +-------+-------+---------------+-------------------------------+
//  |  Data |       |C E U A P R S F|                               |
//  | Offset| Rsrvd |W C R C S S Y I|            Window             |
//  +-------+-------+---------------+-------------------------------+
//  |           Checksum            |         Urgent Pointer        |
//  +-------------------------------+-------------------------------+

import { InvalidError } from '../errors';
import { IPPROTO_TCP } from '../ip-vs';
import { checksum, fold, pseudoHeaderSum, sum16, update32, updatePartial32 } from './checksum';
import { HeaderView } from './header-view';
import { V_BAD_DATA_OFFSET, V_OK, V_TRUNCATED, WIRE_VERDICT_NAMES } from './verdict';

/** Byte offsets of the TCP header fields, and the size of a header without options. */
export const TCP = {
  SRC_PORT: 0,
  DST_PORT: 2,
  SEQ: 4,
  ACK: 8,
  DATA_OFF: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  URGENT: 18,
  MIN_HEADER: 20,
} as const;

/** Bits of the flags byte. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Largest TCP header: data offset 15 words. */
export const TCP_MAX_HEADER = 60;

/**
 * A re-pointable view over a TCP segment in place. `off` is the offset of the TCP header in buf;
 * `len` is the L4 length (header + payload bytes: the IPv4 totalLen - headerLen), which the
 * checksum covers exactly. reset(), then checkLen(); accessors trust it.
 */
export class TcpView extends HeaderView {
  /** V_TRUNCATED if fewer than 20 bytes, V_BAD_DATA_OFFSET if the data offset is < 20 or > len. */
  checkLen(): number {
    if (this.len < TCP.MIN_HEADER || this.off + this.len > this.buf.length) return V_TRUNCATED;
    const headerLen = (this.u8(TCP.DATA_OFF) >> 4) << 2;
    if (headerLen < TCP.MIN_HEADER || headerLen > this.len) return V_BAD_DATA_OFFSET;
    return V_OK;
  }

  get srcPort(): number {
    return this.u16(TCP.SRC_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set srcPort(p: number) {
    this.setU16(TCP.SRC_PORT, p);
  }

  get dstPort(): number {
    return this.u16(TCP.DST_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set dstPort(p: number) {
    this.setU16(TCP.DST_PORT, p);
  }

  get seq(): number {
    return this.u32(TCP.SEQ);
  }

  /** Raw write; the checksum is not updated. */
  set seq(n: number) {
    this.setU32(TCP.SEQ, n);
  }

  get ack(): number {
    return this.u32(TCP.ACK);
  }

  /** Raw write; the checksum is not updated. */
  set ack(n: number) {
    this.setU32(TCP.ACK, n);
  }

  /** Header length in bytes, options included (data offset * 4). */
  get headerLen(): number {
    return (this.u8(TCP.DATA_OFF) >> 4) << 2;
  }

  /** The flags byte: TCP_FIN | TCP_SYN | ... */
  get flags(): number {
    return this.u8(TCP.FLAGS);
  }

  /** Raw write; the checksum is not updated. */
  set flags(f: number) {
    this.setU8(TCP.FLAGS, f);
  }

  get window(): number {
    return this.u16(TCP.WINDOW);
  }

  /** Raw write; the checksum is not updated. */
  set window(w: number) {
    this.setU16(TCP.WINDOW, w);
  }

  get checksum(): number {
    return this.u16(TCP.CHECKSUM);
  }

  /** Raw write of the checksum field. */
  set checksum(v: number) {
    this.setU16(TCP.CHECKSUM, v);
  }

  get urgent(): number {
    return this.u16(TCP.URGENT);
  }

  /** Absolute offset in buf of the payload (after the options). */
  get payloadOffset(): number {
    return this.off + ((this.u8(TCP.DATA_OFF) >> 4) << 2);
  }

  get payloadLen(): number {
    return this.len - ((this.u8(TCP.DATA_OFF) >> 4) << 2);
  }

  /** Absolute offset of the options (right after the fixed header); optionsLen bytes long. */
  get optionsOffset(): number {
    return this.off + TCP.MIN_HEADER;
  }

  get optionsLen(): number {
    return ((this.u8(TCP.DATA_OFF) >> 4) << 2) - TCP.MIN_HEADER;
  }

  setSrcPortWithChecksumUpdate(p: number): void {
    this.setU16WithChecksumUpdate(TCP.SRC_PORT, p, TCP.CHECKSUM);
  }

  setDstPortWithChecksumUpdate(p: number): void {
    this.setU16WithChecksumUpdate(TCP.DST_PORT, p, TCP.CHECKSUM);
  }

  setSeqWithChecksumUpdate(n: number): void {
    this.setU32WithChecksumUpdate(TCP.SEQ, n, TCP.CHECKSUM);
  }

  setAckWithChecksumUpdate(n: number): void {
    this.setU32WithChecksumUpdate(TCP.ACK, n, TCP.CHECKSUM);
  }

  /** The IPv4 address in the pseudo-header changed from oldAddr to newAddr: fix the checksum. */
  updateChecksumForAddr(oldAddr: number, newAddr: number): void {
    this.checksum = update32(this.checksum, oldAddr, newAddr);
  }

  /** updateChecksumForAddr for a partial checksum (offload: the field holds the pseudo-header sum). */
  updatePartialChecksumForAddr(oldAddr: number, newAddr: number): void {
    this.checksum = updatePartial32(this.checksum, oldAddr, newAddr);
  }

  /** Compute the checksum over pseudo-header + `len` bytes and store it. */
  fillChecksum(srcAddr: number, dstAddr: number): void {
    this.checksum = 0;
    this.checksum = checksum(this.buf, this.off, this.len, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_TCP, this.len));
  }

  verifyChecksum(srcAddr: number, dstAddr: number): boolean {
    return (
      fold(sum16(this.buf, this.off, this.len, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_TCP, this.len))) === 0xffff
    );
  }
}

/** A TCP header as plain fields (control plane, tests, RSTs the engine might build). */
export class TcpRepr {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  window = 65535;
  urgent = 0;
  /** Raw option bytes; emit pads them with zeros (EOL) to a multiple of 4. */
  options?: Buffer;

  /** The fields of a view's header (options copied). Throws InvalidError if checkLen() fails. */
  static parse(view: TcpView): TcpRepr {
    const v = view.checkLen();
    if (v !== V_OK) throw new InvalidError(`Malformed TCP header: ${WIRE_VERDICT_NAMES[v]}`);
    const r = new TcpRepr();
    r.srcPort = view.srcPort;
    r.dstPort = view.dstPort;
    r.seq = view.seq;
    r.ack = view.ack;
    r.flags = view.flags;
    r.window = view.window;
    r.urgent = view.urgent;
    const optLen = view.optionsLen;
    if (optLen > 0) r.options = Buffer.from(view.buf.subarray(view.optionsOffset, view.optionsOffset + optLen));
    return r;
  }

  /** Header bytes emit() writes: 20 + options rounded up to 4. */
  bufferLen(): number {
    const optLen = this.options === undefined ? 0 : this.options.length;
    const len = TCP.MIN_HEADER + ((optLen + 3) & ~3);
    if (len > TCP_MAX_HEADER) throw new InvalidError(`TCP options too long: ${optLen} bytes`);
    return len;
  }

  /**
   * Write the header at buf[off] followed by `payload` (if given), then the checksum over both
   * with the pseudo-header of srcAddr -> dstAddr.
   */
  emit(buf: Buffer, off: number, srcAddr: number, dstAddr: number, payload?: Buffer): void {
    const headerLen = this.bufferLen();
    buf.writeUInt16BE(this.srcPort & 0xffff, off + TCP.SRC_PORT);
    buf.writeUInt16BE(this.dstPort & 0xffff, off + TCP.DST_PORT);
    buf.writeUInt32BE(this.seq >>> 0, off + TCP.SEQ);
    buf.writeUInt32BE(this.ack >>> 0, off + TCP.ACK);
    buf[off + TCP.DATA_OFF] = (headerLen >> 2) << 4;
    buf[off + TCP.FLAGS] = this.flags;
    buf.writeUInt16BE(this.window & 0xffff, off + TCP.WINDOW);
    buf.writeUInt16BE(0, off + TCP.CHECKSUM);
    buf.writeUInt16BE(this.urgent & 0xffff, off + TCP.URGENT);
    const optStart = off + TCP.MIN_HEADER;
    const optLen = this.options === undefined ? 0 : this.options.copy(buf, optStart);
    buf.fill(0, optStart + optLen, off + headerLen);
    const payloadLen = payload === undefined ? 0 : payload.copy(buf, off + headerLen);
    const len = headerLen + payloadLen;
    buf.writeUInt16BE(checksum(buf, off, len, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_TCP, len)), off + TCP.CHECKSUM);
  }
}
