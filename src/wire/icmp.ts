// ICMP header (RFC 792): a zero-copy view for the data path and a Repr for the control plane.
// The checksum covers the whole ICMP message (no pseudo-header). Error messages (destination
// unreachable, time exceeded, ...) carry the offending IPv4 header + 8 bytes after `HEADER`.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +---------------+---------------+-------------------------------+
//  |     Type      |     Code      |           Checksum            |
//  +---------------+---------------+-------------------------------+
//  |  rest of header: id + seq (echo), unused + next-hop MTU (4/3) |
//  +---------------------------------------------------------------+

import { InvalidError } from '../errors';
import { checksum, fold, sum16, update16, update32 } from './checksum';
import { HeaderView } from './header-view';
import { V_OK, V_TRUNCATED, WIRE_VERDICT_NAMES } from './verdict';

/** Byte offsets of the ICMP header fields, and the header size. */
export const ICMP = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  REST: 4,
  HEADER: 8,
} as const;

/** Offsets inside REST for echo (ID, SEQ) and fragmentation-needed (NEXT_HOP_MTU, RFC 1191). */
export const ICMP_ECHO_ID = 4;
export const ICMP_ECHO_SEQ = 6;
export const ICMP_NEXT_HOP_MTU = 6;

/**
 * Bytes of the offending datagram's payload after its IPv4 header that an ICMP error quotes
 * (RFC 792): enough for the TCP/UDP ports (and the TCP sequence number), nothing more is promised.
 */
export const ICMP_QUOTED_L4_LEN = 8;

/** Message types. */
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;

/** Codes of ICMP_DEST_UNREACH. */
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROT_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_SR_FAILED = 5;
export const ICMP_NET_UNKNOWN = 6;
export const ICMP_HOST_UNKNOWN = 7;
export const ICMP_NET_ANO = 9;
export const ICMP_HOST_ANO = 10;
export const ICMP_PKT_FILTERED = 13;

/** Codes of ICMP_TIME_EXCEEDED. */
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

/** The same constants grouped, for `ICMP_TYPE.DEST_UNREACH` style. */
export const ICMP_TYPE = {
  ECHO_REPLY: ICMP_ECHO_REPLY,
  DEST_UNREACH: ICMP_DEST_UNREACH,
  SOURCE_QUENCH: ICMP_SOURCE_QUENCH,
  REDIRECT: ICMP_REDIRECT,
  ECHO_REQUEST: ICMP_ECHO_REQUEST,
  TIME_EXCEEDED: ICMP_TIME_EXCEEDED,
  PARAM_PROBLEM: ICMP_PARAM_PROBLEM,
} as const;

export const ICMP_CODE = {
  NET_UNREACH: ICMP_NET_UNREACH,
  HOST_UNREACH: ICMP_HOST_UNREACH,
  PROT_UNREACH: ICMP_PROT_UNREACH,
  PORT_UNREACH: ICMP_PORT_UNREACH,
  FRAG_NEEDED: ICMP_FRAG_NEEDED,
  SR_FAILED: ICMP_SR_FAILED,
  NET_UNKNOWN: ICMP_NET_UNKNOWN,
  HOST_UNKNOWN: ICMP_HOST_UNKNOWN,
  NET_ANO: ICMP_NET_ANO,
  HOST_ANO: ICMP_HOST_ANO,
  PKT_FILTERED: ICMP_PKT_FILTERED,
  EXC_TTL: ICMP_EXC_TTL,
  EXC_FRAGTIME: ICMP_EXC_FRAGTIME,
} as const;

/** True for the error types that quote an offending packet (3, 4, 5, 11, 12). */
export function icmpTypeIsError(type: number): boolean {
  return (
    type === ICMP_DEST_UNREACH ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAM_PROBLEM
  );
}

/**
 * A re-pointable view over an ICMP message in place. `len` is the message length (the IPv4
 * payloadLen): the checksum covers exactly that. reset(), then checkLen(); accessors trust it.
 */
export class IcmpView extends HeaderView {
  /** V_TRUNCATED if fewer than 8 bytes. */
  checkLen(): number {
    if (this.len < ICMP.HEADER || this.off + this.len > this.buf.length) return V_TRUNCATED;
    return V_OK;
  }

  get type(): number {
    return this.u8(ICMP.TYPE);
  }

  /** Raw write; the checksum is not updated. */
  set type(t: number) {
    this.setU8(ICMP.TYPE, t);
  }

  get code(): number {
    return this.u8(ICMP.CODE);
  }

  /** Raw write; the checksum is not updated. */
  set code(c: number) {
    this.setU8(ICMP.CODE, c);
  }

  get checksum(): number {
    return this.u16(ICMP.CHECKSUM);
  }

  /** Raw write of the checksum field. */
  set checksum(v: number) {
    this.setU16(ICMP.CHECKSUM, v);
  }

  /** The 4 type-specific header bytes as one uint32. */
  get rest32(): number {
    return this.u32(ICMP.REST);
  }

  /** Raw write; the checksum is not updated. */
  set rest32(v: number) {
    this.setU32(ICMP.REST, v);
  }

  /** Echo identifier. */
  get id(): number {
    return this.u16(ICMP_ECHO_ID);
  }

  /** Raw write; the checksum is not updated. */
  set id(v: number) {
    this.setU16(ICMP_ECHO_ID, v);
  }

  /** Echo sequence number. */
  get seq(): number {
    return this.u16(ICMP_ECHO_SEQ);
  }

  /** Raw write; the checksum is not updated. */
  set seq(v: number) {
    this.setU16(ICMP_ECHO_SEQ, v);
  }

  /** Next-hop MTU of a fragmentation-needed message (RFC 1191). */
  get nextHopMtu(): number {
    return this.u16(ICMP_NEXT_HOP_MTU);
  }

  /** Raw write; the checksum is not updated. */
  set nextHopMtu(v: number) {
    this.setU16(ICMP_NEXT_HOP_MTU, v);
  }

  /** Absolute offset of the data after the 8-byte header (the quoted packet, for errors). */
  get payloadOffset(): number {
    return this.off + ICMP.HEADER;
  }

  get payloadLen(): number {
    return this.len - ICMP.HEADER;
  }

  /** True for error messages, which quote an offending IPv4 header + 8 bytes. */
  isError(): boolean {
    return icmpTypeIsError(this.u8(ICMP.TYPE));
  }

  /** A 16-bit word somewhere in the message changed from oldVal to newVal (RFC 1624). */
  updateChecksum16(oldVal: number, newVal: number): void {
    this.checksum = update16(this.checksum, oldVal, newVal);
  }

  /** A 32-bit word somewhere in the message changed from oldVal to newVal (RFC 1624). */
  updateChecksum32(oldVal: number, newVal: number): void {
    this.checksum = update32(this.checksum, oldVal, newVal);
  }

  /** Compute the checksum over `len` bytes and store it. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.buf, this.off, this.len);
  }

  verifyChecksum(): boolean {
    return fold(sum16(this.buf, this.off, this.len)) === 0xffff;
  }
}

/** An ICMP header as plain fields; the payload (echo data, quoted packet) is passed to emit(). */
export class IcmpRepr {
  type = 0;
  code = 0;
  /** The 4 type-specific bytes (id << 16 | seq for echo, next-hop MTU for frag-needed). */
  rest = 0;
  /** Bytes after the header: parse() fills it; emit() uses payload's length if given. */
  payloadLen = 0;

  /** The fields of a view's header. Throws InvalidError if checkLen() fails. */
  static parse(view: IcmpView): IcmpRepr {
    const v = view.checkLen();
    if (v !== V_OK) throw new InvalidError(`Malformed ICMP header: ${WIRE_VERDICT_NAMES[v]}`);
    const r = new IcmpRepr();
    r.type = view.type;
    r.code = view.code;
    r.rest = view.rest32;
    r.payloadLen = view.payloadLen;
    return r;
  }

  /** Header bytes emit() writes: 8. */
  bufferLen(): number {
    return ICMP.HEADER;
  }

  /**
   * Write the header at buf[off] followed by `payload` (if given; else payloadLen bytes already
   * there are covered), then the checksum over the whole message.
   */
  emit(buf: Buffer, off: number, payload?: Buffer): void {
    const payloadLen = payload === undefined ? this.payloadLen : payload.copy(buf, off + ICMP.HEADER);
    buf[off + ICMP.TYPE] = this.type;
    buf[off + ICMP.CODE] = this.code;
    buf.writeUInt16BE(0, off + ICMP.CHECKSUM);
    buf.writeUInt32BE(this.rest >>> 0, off + ICMP.REST);
    buf.writeUInt16BE(checksum(buf, off, ICMP.HEADER + payloadLen), off + ICMP.CHECKSUM);
  }
}

/** ICMPv6 (RFC 4443): types below 128 are errors, the rest informational. */
export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PKT_TOOBIG = 2;
export const ICMPV6_TIME_EXCEED = 3;
export const ICMPV6_PARAMPROB = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
/** Code of ICMPV6_TIME_EXCEED: fragment reassembly time exceeded. */
export const ICMPV6_EXC_FRAGTIME = 1;
/** Codes of ICMPV6_DEST_UNREACH. */
export const ICMPV6_NOROUTE = 0;
export const ICMPV6_ADM_PROHIBITED = 1;
export const ICMPV6_PORT_UNREACH = 4;
/** The smallest MTU an IPv6 link has (RFC 8200): an ICMPv6 error fits in it whole. */
export const IPV6_MIN_MTU = 1280;
