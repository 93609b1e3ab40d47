// IPv4 addresses. On the hot path an address is a host-order uint32 (always `>>> 0`, so never
// negative); dotted-quad strings exist only at the edges (CLI, config, logs, tests).

import { InvalidError } from '../errors';

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parse one octet: decimal 0..255 with no leading zero (so "010" is not silently octal or ten). */
function octet(s: string): number {
  if (s.length > 1 && s.charCodeAt(0) === 0x30) return -1;
  const n = Number(s);
  return n <= 255 ? n : -1;
}

/** The uint32 of a dotted quad, or -1 if `s` is not one. */
function parse(s: string): number {
  const m = DOTTED_QUAD.exec(s);
  if (m === null) return -1;
  const a = octet(m[1]!);
  const b = octet(m[2]!);
  const c = octet(m[3]!);
  const d = octet(m[4]!);
  if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** True if `s` is a strict dotted-quad IPv4 address ("1.2.3.4"; no leading zeros, no spaces). */
export function isValidIpv4(s: string): boolean {
  return parse(s) >= 0;
}

/** '1.2.3.4' -> 0x01020304. Throws InvalidError if `s` is not a dotted-quad IPv4 address. */
export function ipToU32(s: string): number {
  const n = parse(s);
  if (n < 0) throw new InvalidError(`Invalid IPv4 address: ${JSON.stringify(s)}`);
  return n;
}

/** 0x01020304 -> '1.2.3.4'. */
export function u32ToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
