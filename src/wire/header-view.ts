// The common part of the header views (Ipv4View, TcpView, UdpView, IcmpView): the buffer, offset
// and length a view points at, re-pointing, and the big-endian field reads and writes at
// `off + at` that their named accessors are written with.
//
// Hot path: these methods run per packet. They allocate nothing, create no closures and build no
// strings; the three fields are set in the constructor, always in the same order, so each view
// class keeps one hidden-class shape. Fields are addressed by the `as const` offsets of each header
// (IPV4.TTL, TCP.SEQ, ...), never by raw numbers at the call site.

import { update16, update32 } from './checksum';

const EMPTY = Buffer.alloc(0);

/**
 * A re-pointable, zero-copy view over one protocol header in place: one instance serves every
 * packet. Call reset(), then checkLen(); only when that returns V_OK are the subclass accessors
 * meaningful (they do not re-check).
 */
export abstract class HeaderView {
  buf: Buffer;
  /** Offset of the header in buf. */
  off: number;
  /** Bytes of buf that belong to this header and what follows it (each view says which). */
  len: number;

  constructor(buf: Buffer = EMPTY, off = 0, len = buf.length - off) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  /** Point the view at the packet in buf[off, off + len). */
  reset(buf: Buffer, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /** Validate the lengths once: V_OK, or the wire verdict (V_TRUNCATED, ...) saying why not. */
  abstract checkLen(): number;

  /** The byte at `off + at`. */
  protected u8(at: number): number {
    return this.buf[this.off + at];
  }

  /** Raw byte write at `off + at` (the buffer keeps the low 8 bits). */
  protected setU8(at: number, v: number): void {
    this.buf[this.off + at] = v;
  }

  // Multi-byte fields are read and written byte by byte: small enough for V8 to inline into
  // every accessor (Buffer's readUInt16BE & co. are not), and, like all accessors here, they
  // trust checkLen() instead of checking bounds again.

  /** The big-endian 16-bit field at `off + at`. */
  protected u16(at: number): number {
    const b = this.buf;
    const o = this.off + at;
    return (b[o] << 8) | b[o + 1];
  }

  /** Raw write of the low 16 bits of v, big-endian, at `off + at`. */
  protected setU16(at: number, v: number): void {
    const b = this.buf;
    const o = this.off + at;
    b[o] = v >>> 8;
    b[o + 1] = v;
  }

  /** The big-endian 32-bit field at `off + at`, as an unsigned number. */
  protected u32(at: number): number {
    const b = this.buf;
    const o = this.off + at;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }

  /** Raw write of v as an unsigned 32-bit big-endian field at `off + at`. */
  protected setU32(at: number, v: number): void {
    const b = this.buf;
    const o = this.off + at;
    b[o] = v >>> 24;
    b[o + 1] = v >>> 16;
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
  }

  /**
   * Write the 16-bit field at `off + at` and update the checksum field at `off + csumAt`
   * incrementally (RFC 1624, checksum.ts update16). For checksums that are always present; UDP's
   * optional one has its own rule.
   */
  protected setU16WithChecksumUpdate(at: number, v: number, csumAt: number): void {
    const old = this.u16(at);
    this.setU16(at, v);
    this.setU16(csumAt, update16(this.u16(csumAt), old, v));
  }

  /** setU16WithChecksumUpdate for a 32-bit field (checksum.ts update32). */
  protected setU32WithChecksumUpdate(at: number, v: number, csumAt: number): void {
    const old = this.u32(at);
    this.setU32(at, v);
    this.setU16(csumAt, update32(this.u16(csumAt), old, v));
  }
}
