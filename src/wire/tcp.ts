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
import { checksum, fold, pseudoHeaderSum, sum16, update16, update32 } from './checksum';
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

const EMPTY = Buffer.alloc(0);

/**
 * A re-pointable view over a TCP segment in place. `len` is the L4 length (the IPv4 payloadLen):
 * the checksum covers exactly that many bytes. reset(), then checkLen(); accessors trust it.
 */
export class TcpView {
  buf: Buffer;
  /** Offset of the TCP header in buf. */
  off: number;
  /** L4 length: header + payload bytes (IPv4 totalLen - headerLen). */
  len: number;

  constructor(buf: Buffer = EMPTY, off = 0, len = buf.length - off) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  reset(buf: Buffer, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /** V_TRUNCATED if fewer than 20 bytes, V_BAD_DATA_OFFSET if the data offset is < 20 or > len. */
  checkLen(): number {
    if (this.len < TCP.MIN_HEADER || this.off + this.len > this.buf.length) return V_TRUNCATED;
    const headerLen = (this.buf[this.off + TCP.DATA_OFF]! >> 4) << 2;
    if (headerLen < TCP.MIN_HEADER || headerLen > this.len) return V_BAD_DATA_OFFSET;
    return V_OK;
  }

  get srcPort(): number {
    return this.buf.readUInt16BE(this.off + TCP.SRC_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set srcPort(p: number) {
    this.buf.writeUInt16BE(p & 0xffff, this.off + TCP.SRC_PORT);
  }

  get dstPort(): number {
    return this.buf.readUInt16BE(this.off + TCP.DST_PORT);
  }

  /** Raw write; the checksum is not updated. */
  set dstPort(p: number) {
    this.buf.writeUInt16BE(p & 0xffff, this.off + TCP.DST_PORT);
  }

  get seq(): number {
    return this.buf.readUInt32BE(this.off + TCP.SEQ);
  }

  /** Raw write; the checksum is not updated. */
  set seq(n: number) {
    this.buf.writeUInt32BE(n >>> 0, this.off + TCP.SEQ);
  }

  get ack(): number {
    return this.buf.readUInt32BE(this.off + TCP.ACK);
  }

  /** Raw write; the checksum is not updated. */
  set ack(n: number) {
    this.buf.writeUInt32BE(n >>> 0, this.off + TCP.ACK);
  }

  /** Header length in bytes, options included (data offset * 4). */
  get headerLen(): number {
    return (this.buf[this.off + TCP.DATA_OFF]! >> 4) << 2;
  }

  /** The flags byte: TCP_FIN | TCP_SYN | ... */
  get flags(): number {
    return this.buf[this.off + TCP.FLAGS]!;
  }

  /** Raw write; the checksum is not updated. */
  set flags(f: number) {
    this.buf[this.off + TCP.FLAGS] = f;
  }

  get window(): number {
    return this.buf.readUInt16BE(this.off + TCP.WINDOW);
  }

  /** Raw write; the checksum is not updated. */
  set window(w: number) {
    this.buf.writeUInt16BE(w & 0xffff, this.off + TCP.WINDOW);
  }

  get checksum(): number {
    return this.buf.readUInt16BE(this.off + TCP.CHECKSUM);
  }

  /** Raw write of the checksum field. */
  set checksum(v: number) {
    this.buf.writeUInt16BE(v & 0xffff, this.off + TCP.CHECKSUM);
  }

  get urgent(): number {
    return this.buf.readUInt16BE(this.off + TCP.URGENT);
  }

  /** Absolute offset in buf of the payload (after the options). */
  get payloadOffset(): number {
    return this.off + ((this.buf[this.off + TCP.DATA_OFF]! >> 4) << 2);
  }

  get payloadLen(): number {
    return this.len - ((this.buf[this.off + TCP.DATA_OFF]! >> 4) << 2);
  }

  /** Absolute offset of the options (right after the fixed header); optionsLen bytes long. */
  get optionsOffset(): number {
    return this.off + TCP.MIN_HEADER;
  }

  get optionsLen(): number {
    return ((this.buf[this.off + TCP.DATA_OFF]! >> 4) << 2) - TCP.MIN_HEADER;
  }

  setSrcPortWithChecksumUpdate(p: number): void {
    const old = this.srcPort;
    this.srcPort = p;
    this.checksum = update16(this.checksum, old, p);
  }

  setDstPortWithChecksumUpdate(p: number): void {
    const old = this.dstPort;
    this.dstPort = p;
    this.checksum = update16(this.checksum, old, p);
  }

  setSeqWithChecksumUpdate(n: number): void {
    const old = this.seq;
    this.seq = n;
    this.checksum = update32(this.checksum, old, n);
  }

  setAckWithChecksumUpdate(n: number): void {
    const old = this.ack;
    this.ack = n;
    this.checksum = update32(this.checksum, old, n);
  }

  /** The IPv4 address in the pseudo-header changed from oldAddr to newAddr: fix the checksum. */
  updateChecksumForAddr(oldAddr: number, newAddr: number): void {
    this.checksum = update32(this.checksum, oldAddr, newAddr);
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
