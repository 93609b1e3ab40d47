// IPv6 header (RFC 8200) and the extension headers before the upper-layer one: a zero-copy view
// for the data path and a Repr for the control plane and tests.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-------+---------------+---------------------------------------+
//  |Version| Traffic Class |              Flow Label               |
//  +-------+---------------+-------+---------------+---------------+
//  |         Payload Length        |  Next Header  |   Hop Limit   |
//  +-------------------------------+---------------+---------------+
//  |                 Source Address (128 bits)                     |
//  +---------------------------------------------------------------+
//  |              Destination Address (128 bits)                   |
//  +---------------------------------------------------------------+
//
// Extension headers are walked as the kernel's ipv6_skip_exthdr walks them, with IPVS's reading
// of what ends the chain: hop-by-hop options (0), routing (43) and destination options (60) are
// (len + 1) * 8 bytes, AH (51) (len + 2) * 4; a fragment header (44) is 8 bytes, and in a
// fragment after the first the upper-layer header is not there (the engine reassembles first, as
// nf_defrag_ipv6 does before IPVS); ESP (50) and "no next header" (59) end the walk with nothing
// readable after them. Anything else is the upper-layer protocol.

import { InvalidError } from '../errors';
import { sum16 } from './checksum';
import { HeaderView } from './header-view';
import { V_BAD_TOTAL_LEN, V_BAD_VERSION, V_OK, V_TRUNCATED, V_UNSUPPORTED, WIRE_VERDICT_NAMES } from './verdict';

/** Byte offsets of the fixed IPv6 header's fields, and its size. */
export const IPV6 = {
  VER_TC_FL: 0,
  PAYLOAD_LEN: 4,
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: 8,
  DST: 24,
  HEADER: 40,
} as const;

/** Next-header values of the extension headers (ICMPv6's, 58, is ip-vs.ts's IPPROTO_ICMPV6). */
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

/** Bytes of a fragment header; the M flag of its offset word. */
export const IPV6_FRAG_HEADER = 8;
export const IPV6_FRAG_MF = 0x0001;

/**
 * Extension headers walked before a packet is refused as V_UNSUPPORTED. The payload length bounds
 * the walk anyway (each header is at least 8 bytes); this bounds the work a crafted chain costs.
 */
export const IPV6_MAX_EXT_HEADERS = 16;

/**
 * A re-pointable view over an IPv6 packet in place: one instance serves every packet. Call
 * reset() then checkLen(); only when that returns V_OK are the accessors and the walk's results
 * (protocol, l4Offset, fragOffset) meaningful. Nothing here allocates. `len` is the bytes of buf
 * available from `off` (may exceed 40 + payload length: link padding).
 */
export class Ipv6View extends HeaderView {
  /** The upper-layer protocol after the extension headers (or 44/50/59, see the file comment). */
  protocol = 0;
  /** Offset from `off` of the upper-layer header (of the fragment's data in a later fragment). */
  l4Offset: number = IPV6.HEADER;
  /** Offset from `off` of the fragment header, or -1 when there is none. */
  fragOffset = -1;

  /**
   * Validate the fixed header and walk the extension headers: V_TRUNCATED (fewer than 40 bytes,
   * or a header running past the payload), V_BAD_VERSION, V_BAD_TOTAL_LEN (payload length beyond
   * `len`), V_UNSUPPORTED (payload length 0, which is a jumbogram's, or more than
   * IPV6_MAX_EXT_HEADERS extension headers), else V_OK with protocol, l4Offset and fragOffset set.
   */
  checkLen(): number {
    if (this.len < IPV6.HEADER) return V_TRUNCATED;
    if (this.u8(IPV6.VER_TC_FL) >>> 4 !== 6) return V_BAD_VERSION;
    const payloadLen = this.u16(IPV6.PAYLOAD_LEN);
    if (payloadLen === 0) return V_UNSUPPORTED;
    const end = IPV6.HEADER + payloadLen;
    if (end > this.len) return V_BAD_TOTAL_LEN;
    return this.walk(end);
  }

  /**
   * checkLen for a packet an ICMPv6 error quotes: cut short, so its payload length may exceed
   * what is there; the extension headers are walked within the bytes there are.
   */
  checkQuoted(): number {
    if (this.len < IPV6.HEADER) return V_TRUNCATED;
    if (this.u8(IPV6.VER_TC_FL) >>> 4 !== 6) return V_BAD_VERSION;
    return this.walk(Math.min(this.len, IPV6.HEADER + this.u16(IPV6.PAYLOAD_LEN)));
  }

  /** The extension header walk of checkLen, within the first `end` bytes. */
  private walk(end: number): number {
    let next = this.u8(IPV6.NEXT_HEADER);
    let at: number = IPV6.HEADER;
    this.fragOffset = -1;
    for (let n = 0; ; n++) {
      if (
        next !== IPPROTO_HOPOPTS &&
        next !== IPPROTO_ROUTING &&
        next !== IPPROTO_DSTOPTS &&
        next !== IPPROTO_AH &&
        next !== IPPROTO_FRAGMENT
      )
        break;
      if (n === IPV6_MAX_EXT_HEADERS) return V_UNSUPPORTED;
      if (at + 8 > end) return V_TRUNCATED;
      const following = this.u8(at);
      if (next === IPPROTO_FRAGMENT) {
        this.fragOffset = at;
        at += IPV6_FRAG_HEADER;
        next = following;
        // A later fragment carries data only: no header of the chain follows in it.
        if (this.fragOffsetBytes !== 0) break;
        continue;
      }
      at += next === IPPROTO_AH ? (this.u8(at + 1) + 2) * 4 : (this.u8(at + 1) + 1) * 8;
      if (at > end) return V_TRUNCATED;
      next = following;
    }
    this.protocol = next;
    this.l4Offset = at;
    return V_OK;
  }

  get version(): number {
    return this.u8(IPV6.VER_TC_FL) >>> 4;
  }

  get trafficClass(): number {
    return (this.u16(IPV6.VER_TC_FL) >>> 4) & 0xff;
  }

  /** Set the traffic class (DSCP and ECN); IPv6 has no header checksum to update. */
  set trafficClass(v: number) {
    const w = this.u16(IPV6.VER_TC_FL);
    this.setU16(IPV6.VER_TC_FL, (w & 0xf00f) | ((v & 0xff) << 4));
  }

  get flowLabel(): number {
    return this.u32(IPV6.VER_TC_FL) & 0xfffff;
  }

  get payloadLen(): number {
    return this.u16(IPV6.PAYLOAD_LEN);
  }

  set payloadLen(v: number) {
    this.setU16(IPV6.PAYLOAD_LEN, v);
  }

  /** The fixed header's next-header field (the first extension header's type, if any). */
  get nextHeader(): number {
    return this.u8(IPV6.NEXT_HEADER);
  }

  get hopLimit(): number {
    return this.u8(IPV6.HOP_LIMIT);
  }

  set hopLimit(v: number) {
    this.setU8(IPV6.HOP_LIMIT, v);
  }

  /** 40 + payload length: the packet's bytes without link padding. */
  get totalLen(): number {
    return IPV6.HEADER + this.u16(IPV6.PAYLOAD_LEN);
  }

  /** Bytes of the upper-layer header and what follows it. */
  get l4Len(): number {
    return this.totalLen - this.l4Offset;
  }

  /** Word `i` (0..3, most significant first) of the source address. */
  srcWord(i: number): number {
    return this.u32(IPV6.SRC + 4 * i);
  }

  /** Word `i` (0..3, most significant first) of the destination address. */
  dstWord(i: number): number {
    return this.u32(IPV6.DST + 4 * i);
  }

  setSrcWord(i: number, v: number): void {
    this.setU32(IPV6.SRC + 4 * i, v);
  }

  setDstWord(i: number, v: number): void {
    this.setU32(IPV6.DST + 4 * i, v);
  }

  /** This packet has a fragment header (checkLen found one). */
  get isFragment(): boolean {
    return this.fragOffset >= 0;
  }

  /** The fragment's offset in bytes (a multiple of 8); 0 without a fragment header. */
  get fragOffsetBytes(): number {
    return this.fragOffset < 0 ? 0 : this.u16(this.fragOffset + 2) & 0xfff8;
  }

  /** More fragments follow. */
  get moreFrags(): boolean {
    return this.fragOffset >= 0 && (this.u16(this.fragOffset + 2) & IPV6_FRAG_MF) !== 0;
  }

  /** The fragment header's identification. */
  get fragId(): number {
    return this.fragOffset < 0 ? 0 : this.u32(this.fragOffset + 4);
  }

  /**
   * The unfolded sum of the upper-layer pseudo-header (RFC 8200 section 8.1: source, destination,
   * upper-layer length, next header) for `protocol` over `l4Len` bytes: add the upper-layer
   * header and data to it and finish(). The addresses are this packet's.
   */
  pseudoHeaderSum(protocol: number, l4Len: number): number {
    return sum16(this.buf, this.off + IPV6.SRC, 32, 0) + (l4Len >>> 16) + (l4Len & 0xffff) + protocol;
  }
}

/** The fields of an IPv6 header with no extension headers; emit() writes it. */
export class Ipv6Repr {
  /** 16 bytes each. */
  srcAddr: Uint8Array = new Uint8Array(16);
  dstAddr: Uint8Array = new Uint8Array(16);
  nextHeader = 0;
  hopLimit = 64;
  trafficClass = 0;
  flowLabel = 0;
  /** Bytes after the fixed header. */
  payloadLen = 0;

  /** The fixed header's fields of a view. Throws InvalidError if the view does not pass checkLen(). */
  static parse(view: Ipv6View): Ipv6Repr {
    const v = view.checkLen();
    if (v !== V_OK) throw new InvalidError(`Malformed IPv6 header: ${WIRE_VERDICT_NAMES[v]}`);
    const r = new Ipv6Repr();
    r.srcAddr = Uint8Array.from(view.buf.subarray(view.off + IPV6.SRC, view.off + IPV6.SRC + 16));
    r.dstAddr = Uint8Array.from(view.buf.subarray(view.off + IPV6.DST, view.off + IPV6.DST + 16));
    r.nextHeader = view.nextHeader;
    r.hopLimit = view.hopLimit;
    r.trafficClass = view.trafficClass;
    r.flowLabel = view.flowLabel;
    r.payloadLen = view.payloadLen;
    return r;
  }

  /** Header bytes emit() writes. */
  bufferLen(): number {
    return IPV6.HEADER;
  }

  /** Write the 40-byte fixed header at buf[off]. */
  emit(buf: Buffer, off: number): void {
    const w0 = ((6 << 28) | ((this.trafficClass & 0xff) << 20) | (this.flowLabel & 0xfffff)) >>> 0;
    buf.writeUInt32BE(w0, off + IPV6.VER_TC_FL);
    buf.writeUInt16BE(this.payloadLen & 0xffff, off + IPV6.PAYLOAD_LEN);
    buf[off + IPV6.NEXT_HEADER] = this.nextHeader;
    buf[off + IPV6.HOP_LIMIT] = this.hopLimit;
    buf.set(this.srcAddr.subarray(0, 16), off + IPV6.SRC);
    buf.set(this.dstAddr.subarray(0, 16), off + IPV6.DST);
  }
}
