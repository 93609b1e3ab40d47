// IPv6 test packets: a fixed header (no extension headers) and TCP, UDP or ICMPv6 with their
// checksums computed here over the pseudo-header (RFC 8200 8.1), and a decoder that checks the
// checksum of what the engine sent by recomputing it in full.

import { IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../../src/ip-vs';
import { formatIpv6, ipv6ToBytes } from '../../src/wire/addr6';
import { checksum, sum16 } from '../../src/wire/checksum';
import { tcpFlags } from './packet-builder';

export interface Packet6Options {
  src: string;
  dst: string;
  hopLimit?: number;
  /** Bytes of data after the L4 header. */
  payload?: Buffer;
}

function pseudoSum(src: Uint8Array, dst: Uint8Array, protocol: number, len: number): number {
  const b = Buffer.alloc(40);
  b.set(src, 0);
  b.set(dst, 16);
  b.writeUInt32BE(len, 32);
  b[39] = protocol;
  return sum16(b, 0, 40);
}

function ipv6(o: Packet6Options, protocol: number, l4: Buffer, csumAt: number): Buffer {
  const src = ipv6ToBytes(o.src);
  const dst = ipv6ToBytes(o.dst);
  l4.writeUInt16BE(0, csumAt);
  let c = checksum(l4, 0, l4.length, pseudoSum(src, dst, protocol, l4.length));
  if (c === 0 && protocol === IPPROTO_UDP) c = 0xffff;
  l4.writeUInt16BE(c, csumAt);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(l4.length, 4);
  h[6] = protocol;
  h[7] = o.hopLimit ?? 64;
  h.set(src, 8);
  h.set(dst, 24);
  return Buffer.concat([h, l4]);
}

export function tcp6(
  o: Packet6Options & { sport: number; dport: number; flags?: string; seq?: number; ack?: number },
): Buffer {
  const data = o.payload ?? Buffer.alloc(0);
  const t = Buffer.alloc(20 + data.length);
  t.writeUInt16BE(o.sport, 0);
  t.writeUInt16BE(o.dport, 2);
  t.writeUInt32BE(o.seq ?? 1000, 4);
  t.writeUInt32BE(o.ack ?? 0, 8);
  t[12] = 5 << 4;
  t[13] = tcpFlags(o.flags ?? 'S');
  t.writeUInt16BE(65535, 14);
  data.copy(t, 20);
  return ipv6(o, IPPROTO_TCP, t, 16);
}

export function udp6(o: Packet6Options & { sport: number; dport: number }): Buffer {
  const data = o.payload ?? Buffer.alloc(0);
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(o.sport, 0);
  u.writeUInt16BE(o.dport, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8);
  return ipv6(o, IPPROTO_UDP, u, 6);
}

export function icmp6(o: Packet6Options & { type: number; code?: number; rest?: number }): Buffer {
  const data = o.payload ?? Buffer.alloc(0);
  const m = Buffer.alloc(8 + data.length);
  m[0] = o.type;
  m[1] = o.code ?? 0;
  m.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
  data.copy(m, 8);
  return ipv6(o, IPPROTO_ICMPV6, m, 2);
}

export interface Decoded6 {
  src: string;
  dst: string;
  hopLimit: number;
  nextHeader: number;
  /** Bytes after the fixed header. */
  payload: Buffer;
  /** The upper-layer checksum recomputed over the pseudo-header: true when it verifies. */
  checksumOk: boolean;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  rest?: number;
}

/**
 * Decode an IPv6 packet whose upper-layer header directly follows the fixed one, or follows
 * hop-by-hop / routing / destination-options headers (`l4At` skips them).
 */
export function decode6(b: Buffer): Decoded6 {
  if (b[0] >>> 4 !== 6) throw new Error(`decode6: version ${b[0] >>> 4}`);
  const len = b.readUInt16BE(4);
  let next = b[6];
  let at = 40;
  while (next === 0 || next === 43 || next === 60) {
    next = b[at];
    at += (b[at + 1] + 1) * 8;
  }
  const l4 = b.subarray(at, 40 + len);
  const src = b.subarray(8, 24);
  const dst = b.subarray(24, 40);
  const d: Decoded6 = {
    src: formatIpv6(src),
    dst: formatIpv6(dst),
    hopLimit: b[7],
    nextHeader: next,
    payload: Buffer.from(b.subarray(40, 40 + len)),
    checksumOk: checksum(l4, 0, l4.length, pseudoSum(src, dst, next, l4.length)) === 0,
  };
  if (next === IPPROTO_TCP || next === IPPROTO_UDP) {
    d.sport = l4.readUInt16BE(0);
    d.dport = l4.readUInt16BE(2);
  } else if (next === IPPROTO_ICMPV6) {
    d.type = l4[0];
    d.code = l4[1];
    d.rest = l4.readUInt32BE(4);
  }
  return d;
}

/**
 * Cut IPv6 packet `p` (no extension headers) into fragments of at most `size` bytes each, as a
 * sender would: each repeats the 40-byte header, with a fragment header (identification `id`).
 */
export function fragment6(p: Buffer, size: number, id: number): Buffer[] {
  const next = p[6];
  const data = p.subarray(40);
  const chunk = (size - 48) & ~7;
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunk) {
    const part = data.subarray(at, Math.min(at + chunk, data.length));
    const f = Buffer.alloc(48 + part.length);
    p.copy(f, 0, 0, 40);
    f[6] = 44;
    f.writeUInt16BE(8 + part.length, 4);
    f[40] = next;
    f.writeUInt16BE(at | (at + chunk < data.length ? 1 : 0), 42);
    f.writeUInt32BE(id, 44);
    part.copy(f, 48);
    out.push(f);
  }
  return out;
}

/** Reassemble fragments made as fragment6 makes them (no other extension headers), in any order. */
export function reassemble6(frags: Buffer[]): Buffer {
  const parts = frags.map((f) => ({ at: f.readUInt16BE(42) & 0xfff8, data: f.subarray(48, 40 + f.readUInt16BE(4)) }));
  parts.sort((a, b) => a.at - b.at);
  const data = Buffer.concat(parts.map((p) => p.data));
  const h = Buffer.from(frags[0]!.subarray(0, 40));
  h[6] = frags[0]![40]!;
  h.writeUInt16BE(data.length, 4);
  return Buffer.concat([h, data]);
}
