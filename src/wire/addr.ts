// IPv4 addresses. On the hot path an address is a host-order uint32 (always `>>> 0`, so never
// negative); dotted-quad strings exist only at the edges (CLI, config, logs, tests). The one place
// they are converted: strictly (isValidIpv4, ipToU32, u32ToIp), or as glibc's inet_aton reads
// them (inetAton: lvsadm's command line, where ipvsadm accepts "10.1", "0x0a000001", ...).

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
  const a = octet(m[1]);
  const b = octet(m[2]);
  const c = octet(m[3]);
  const d = octet(m[4]);
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

/** C isspace() (the "C" locale). */
function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The value of `c` as a digit of `base` (8, 10 or 16), or -1. */
function digitValue(c: number, base: number): number {
  const d = isDigit(c) ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
  return d < base ? d : -1;
}

/**
 * glibc's inet_aton, the looser syntax ipvsadm accepts for addresses on its command line:
 * "a.b.c.d", "a.b.c" (c 16 bits), "a.b" (b 24 bits) or "a" (32 bits); each part decimal, octal
 * (leading 0) or hex (0x), as strtoul(..., 0) reads it; whitespace ends the address and whatever
 * follows it is ignored. The host-order uint32, or null when glibc would return 0. Anything that
 * is not such user input goes through ipToU32, which takes strict dotted quads only.
 */
export function inetAton(s: string): number | null {
  const parts: number[] = [];
  let i = 0;
  let val = 0;
  for (;;) {
    if (!isDigit(s.charCodeAt(i))) return null;
    // strtoul(s + i, &end, 0)
    let base = 10;
    if (s.charCodeAt(i) === 0x30) {
      const x = s.charCodeAt(i + 1);
      if ((x === 0x78 || x === 0x58) && digitValue(s.charCodeAt(i + 2), 16) >= 0) {
        base = 16;
        i += 2;
      } else {
        base = 8;
      }
    }
    val = 0;
    for (let d = digitValue(s.charCodeAt(i), base); d >= 0; d = digitValue(s.charCodeAt(++i), base)) {
      val = val * base + d;
    }
    if (val > 0xffffffff) return null;
    if (s.charCodeAt(i) !== 0x2e) break;
    // A '.': one more part, at most four in all, each but the last one byte.
    if (parts.length > 2 || val > 0xff) return null;
    parts.push(val);
    i++;
  }
  if (i < s.length && !isCSpace(s.charCodeAt(i))) return null;
  // The last part fills the bytes the earlier ones left.
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][parts.length];
  if (val > lastMax) return null;
  let addr = 0;
  for (let k = 0; k < parts.length; k++) addr += parts[k] * 2 ** (24 - 8 * k);
  return addr + val;
}

/** 0x01020304 -> '1.2.3.4'. */
export function u32ToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
