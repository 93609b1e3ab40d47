// UDP header (RFC 768): a zero-copy view for the data path and a Repr for the control plane.
//
// Checksum rules (RFC 768): a received checksum of 0 means the sender computed none, so every
// update leaves it 0; a computed checksum of 0 is sent as 0xffff (the other one's-complement zero).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-------------------------------+-------------------------------+
//  |          Source Port          |       Destination Port        |
//  +-------------------------------+-------------------------------+
//  |            Length             |           Checksum            |
//  +-------------------------------+-------------------------------+

import { InvalidError } from '../errors';
import { IPPROTO_UDP } from '../ip-vs';
import { checksum, fold, pseudoHeaderSum, sum16, update16, update32, updatePartial32 } from './checksum';
import { HeaderView } from './header-view';
import { V_OK, V_TRUNCATED, WIRE_VERDICT_NAMES } from './verdict';

/** Byte offsets of the UDP header fields, and the header size. */
export const UDP = {
  SRC_PORT: 0,
  DST_PORT: 2,
  LENGTH: 4,
  CHECKSUM: 6,
  HEADER: 8,
} as const;

/** 0 (no checksum) stays 0; a computed 0 becomes 0xffff. */
function nonZero(csum: number): number {
  return csum === 0 ? 0xffff : csum;
}

/**
 * A re-pointable view over a UDP datagram in place. `len` is the L4 length available (the IPv4
 * payloadLen); the datagram itself is `length` bytes (the header field), which checkLen() ensures
 * fits. reset(), then checkLen(); accessors trust it.
 */
export class UdpView extends HeaderView {
  /** V_TRUNCATED if len < 8, or the length field is < 8 or > len. */
  checkLen(): number {
    if (this.len < UDP.HEADER || this.off + this.len > this.buf.length) return V_TRUNCATED;
    const length = this.u16(UDP.LENGTH);
    if (length < UDP.HEADER || length > this.len) return V_TRUNCATED;
    return V_OK;
  }

  get srcPort(): number {
    return this.u16(UDP.SRC_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set srcPort(p: number) {
    this.setU16(UDP.SRC_PORT, p);
  }

  get dstPort(): number {
    return this.u16(UDP.DST_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set dstPort(p: number) {
    this.setU16(UDP.DST_PORT, p);
  }

  /** The length field: header + payload bytes. */
  get length(): number {
    return this.u16(UDP.LENGTH);
  }

  get checksum(): number {
    return this.u16(UDP.CHECKSUM);
  }

  /** Raw write of the checksum field. */
  set checksum(v: number) {
    this.setU16(UDP.CHECKSUM, v);
  }

  /** Always 8. */
  get headerLen(): number {
    return UDP.HEADER;
  }

  get payloadOffset(): number {
    return this.off + UDP.HEADER;
  }

  /** length - 8 (bytes of `len` beyond the length field are not part of the datagram). */
  get payloadLen(): number {
    return this.u16(UDP.LENGTH) - UDP.HEADER;
  }

  setSrcPortWithChecksumUpdate(p: number): void {
    const old = this.srcPort;
    this.srcPort = p;
    this.updateChecksum16(old, p);
  }

  setDstPortWithChecksumUpdate(p: number): void {
    const old = this.dstPort;
    this.dstPort = p;
    this.updateChecksum16(old, p);
  }

  /** The IPv4 address in the pseudo-header changed from oldAddr to newAddr: fix the checksum. */
  updateChecksumForAddr(oldAddr: number, newAddr: number): void {
    const c = this.checksum;
    if (c !== 0) this.checksum = nonZero(update32(c, oldAddr, newAddr));
  }

  /** updateChecksumForAddr for a partial checksum (offload: the field holds the pseudo-header sum). */
  updatePartialChecksumForAddr(oldAddr: number, newAddr: number): void {
    this.checksum = updatePartial32(this.checksum, oldAddr, newAddr);
  }

  /** Compute the checksum over pseudo-header + `length` bytes and store it (0 sent as 0xffff). */
  fillChecksum(srcAddr: number, dstAddr: number): void {
    const length = this.length;
    this.checksum = 0;
    this.checksum = nonZero(
      checksum(this.buf, this.off, length, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_UDP, length)),
    );
  }

  /** True if the checksum verifies, or is 0 (none computed). */
  verifyChecksum(srcAddr: number, dstAddr: number): boolean {
    if (this.checksum === 0) return true;
    const length = this.length;
    return fold(sum16(this.buf, this.off, length, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_UDP, length))) === 0xffff;
  }

  /** A covered 16-bit word changed from oldVal to newVal: RFC 1624 update, 0 ("none") left alone. */
  private updateChecksum16(oldVal: number, newVal: number): void {
    const c = this.checksum;
    if (c !== 0) this.checksum = nonZero(update16(c, oldVal, newVal));
  }
}

/** A UDP header as plain fields. */
export class UdpRepr {
  srcPort = 0;
  dstPort = 0;
  /** Payload bytes; length field = 8 + payloadLen. parse() fills it; emit() uses payload's if given. */
  payloadLen = 0;
  /** false: emit a 0 checksum ("none"). */
  withChecksum = true;

  /** The fields of a view's header. Throws InvalidError if checkLen() fails. */
  static parse(view: UdpView): UdpRepr {
    const v = view.checkLen();
    if (v !== V_OK) throw new InvalidError(`Malformed UDP header: ${WIRE_VERDICT_NAMES[v]}`);
    const r = new UdpRepr();
    r.srcPort = view.srcPort;
    r.dstPort = view.dstPort;
    r.payloadLen = view.payloadLen;
    r.withChecksum = view.checksum !== 0;
    return r;
  }

  /** Header bytes emit() writes: 8. */
  bufferLen(): number {
    return UDP.HEADER;
  }

  /**
   * Write the header at buf[off] followed by `payload` (if given; else payloadLen bytes already
   * there are covered), then the checksum with the pseudo-header of srcAddr -> dstAddr.
   */
  emit(buf: Buffer, off: number, srcAddr: number, dstAddr: number, payload?: Buffer): void {
    const payloadLen = payload === undefined ? this.payloadLen : payload.copy(buf, off + UDP.HEADER);
    const length = UDP.HEADER + payloadLen;
    buf.writeUInt16BE(this.srcPort & 0xffff, off + UDP.SRC_PORT);
    buf.writeUInt16BE(this.dstPort & 0xffff, off + UDP.DST_PORT);
    buf.writeUInt16BE(length, off + UDP.LENGTH);
    buf.writeUInt16BE(0, off + UDP.CHECKSUM);
    if (this.withChecksum) {
      const c = checksum(buf, off, length, pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_UDP, length));
      buf.writeUInt16BE(nonZero(c), off + UDP.CHECKSUM);
    }
  }
}
