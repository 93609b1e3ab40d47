// Decode and validate test packets. Deliberately independent of src/wire: it reads bytes with
// plain Buffer calls and has its own slow checksum, so a bug in the wire views cannot hide itself.
// expectValidPacket() is what every forwarding test calls first on each output packet.

import { expect } from 'vitest';

export interface Decoded {
  src: string;
  dst: string;
  ttl: number;
  id: number;
  tos: number;
  protocol: number;
  totalLen: number;
  /** Header length in bytes (IHL * 4). */
  headerLen: number;
  df: boolean;
  mf: boolean;
  /** Fragment offset in bytes. */
  fragOffset: number;
  sport?: number;
  dport?: number;
  /** TCP flags as letters in the order F S R P A U E C: 'S', 'SA', 'PA', 'FA', 'RA'. */
  flags?: string;
  seq?: number;
  ack?: number;
  window?: number;
  /** UDP length field. */
  udpLen?: number;
  /** The L4 checksum field as received (TCP, UDP or ICMP). */
  l4Checksum?: number;
  /** Bytes after the L4 header (after the IPv4 header for other protocols); a copy. */
  payload: Buffer;
  icmp?: { type: number; code: number; rest: number };
}

const FLAG_LETTERS = 'FSRPAUEC';

/** TCP flags byte -> letters, in bit order: 0x12 -> 'SA'. */
export function flagLetters(flags: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) s += FLAG_LETTERS[i];
  return s;
}

function dotted(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** One's-complement sum of the concatenated chunks, folded after every word: the slow, obvious way. */
function onesComplementSum(chunks: Buffer[]): number {
  const all = Buffer.concat(chunks);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += all[i] * 256 + (i + 1 < all.length ? all[i + 1] : 0);
    sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  }
  return sum;
}

function pseudo(buf: Buffer, protocol: number, l4len: number): Buffer {
  const p = Buffer.alloc(12);
  buf.copy(p, 0, 12, 20);
  p[9] = protocol;
  p.writeUInt16BE(l4len, 10);
  return p;
}

/** Decode an IPv4 packet (TCP, UDP and ICMP headers too) without validating checksums. */
export function decodePacket(buf: Buffer): Decoded {
  if (buf.length < 20) throw new Error(`decodePacket: ${buf.length} bytes is shorter than an IPv4 header`);
  const headerLen = (buf[0] & 0x0f) * 4;
  const totalLen = buf.readUInt16BE(2);
  const ff = buf.readUInt16BE(6);
  const protocol = buf[9];
  const end = Math.min(totalLen, buf.length);
  const d: Decoded = {
    src: dotted(buf, 12),
    dst: dotted(buf, 16),
    ttl: buf[8],
    id: buf.readUInt16BE(4),
    tos: buf[1],
    protocol,
    totalLen,
    headerLen,
    df: (ff & 0x4000) !== 0,
    mf: (ff & 0x2000) !== 0,
    fragOffset: (ff & 0x1fff) * 8,
    payload: Buffer.from(buf.subarray(Math.min(headerLen, end), end)),
  };
  const l4 = headerLen;
  const isFirstFragment = (ff & 0x1fff) === 0;
  if (protocol === 6 && isFirstFragment && end - l4 >= 20) {
    const dataOff = (buf[l4 + 12] >> 4) * 4;
    d.sport = buf.readUInt16BE(l4);
    d.dport = buf.readUInt16BE(l4 + 2);
    d.seq = buf.readUInt32BE(l4 + 4);
    d.ack = buf.readUInt32BE(l4 + 8);
    d.flags = flagLetters(buf[l4 + 13]);
    d.window = buf.readUInt16BE(l4 + 14);
    d.l4Checksum = buf.readUInt16BE(l4 + 16);
    d.payload = Buffer.from(buf.subarray(Math.min(l4 + dataOff, end), end));
  } else if (protocol === 17 && isFirstFragment && end - l4 >= 8) {
    d.sport = buf.readUInt16BE(l4);
    d.dport = buf.readUInt16BE(l4 + 2);
    d.udpLen = buf.readUInt16BE(l4 + 4);
    d.l4Checksum = buf.readUInt16BE(l4 + 6);
    d.payload = Buffer.from(buf.subarray(l4 + 8, end));
  } else if (protocol === 1 && isFirstFragment && end - l4 >= 8) {
    d.icmp = { type: buf[l4], code: buf[l4 + 1], rest: buf.readUInt32BE(l4 + 4) };
    d.l4Checksum = buf.readUInt16BE(l4 + 2);
    d.payload = Buffer.from(buf.subarray(l4 + 8, end));
  }
  return d;
}

/**
 * Assert that `buf` is one well-formed IPv4 packet: version 4, IHL >= 5, total length equal to
 * the buffer length, a valid header checksum, and (unfragmented TCP/UDP/ICMP) a sane L4 header
 * with a valid checksum (a UDP checksum of 0 means "none" and is accepted). With `partialL4`, a
 * TCP/UDP checksum may instead be exactly the offload's partial value, the folded pseudo-header
 * sum (a capture on veth sees CHECKSUM_PARTIAL packets before anyone completes them). Returns
 * the decoded packet for further assertions.
 */
export function expectValidPacket(buf: Buffer, opts: { partialL4?: boolean } = {}): Decoded {
  expect(buf.length, 'packet shorter than an IPv4 header').toBeGreaterThanOrEqual(20);
  expect(buf[0] >> 4, 'IPv4 version').toBe(4);
  const headerLen = (buf[0] & 0x0f) * 4;
  expect(headerLen, 'IPv4 IHL * 4').toBeGreaterThanOrEqual(20);
  expect(buf.readUInt16BE(2), 'IPv4 total length vs buffer length').toBe(buf.length);
  expect(onesComplementSum([buf.subarray(0, headerLen)]), 'IPv4 header checksum').toBe(0xffff);

  const d = decodePacket(buf);
  if (d.mf || d.fragOffset !== 0) return d;
  const l4 = buf.subarray(headerLen);
  if (d.protocol === 6) {
    expect(l4.length, 'TCP segment shorter than 20 bytes').toBeGreaterThanOrEqual(20);
    const dataOff = (l4[12] >> 4) * 4;
    expect(dataOff, 'TCP data offset').toBeGreaterThanOrEqual(20);
    expect(dataOff, 'TCP data offset vs segment length').toBeLessThanOrEqual(l4.length);
    if (!(opts.partialL4 && isPartial(buf, 6, l4.length, d.l4Checksum!))) {
      expect(onesComplementSum([pseudo(buf, 6, l4.length), l4]), 'TCP checksum').toBe(0xffff);
    }
  } else if (d.protocol === 17) {
    expect(l4.length, 'UDP datagram shorter than 8 bytes').toBeGreaterThanOrEqual(8);
    expect(d.udpLen, 'UDP length field vs IPv4 payload length').toBe(l4.length);
    if (d.l4Checksum !== 0 && !(opts.partialL4 && isPartial(buf, 17, l4.length, d.l4Checksum!))) {
      expect(onesComplementSum([pseudo(buf, 17, l4.length), l4]), 'UDP checksum').toBe(0xffff);
    }
  } else if (d.protocol === 1) {
    expect(l4.length, 'ICMP message shorter than 8 bytes').toBeGreaterThanOrEqual(8);
    expect(onesComplementSum([l4]), 'ICMP checksum').toBe(0xffff);
  }
  return d;
}

/** Is `field` the partial checksum of an offloaded packet: its folded pseudo-header sum? */
function isPartial(buf: Buffer, protocol: number, l4len: number, field: number): boolean {
  return onesComplementSum([pseudo(buf, protocol, l4len)]) === field;
}
