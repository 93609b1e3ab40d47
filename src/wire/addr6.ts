// IPv6 addresses at the edges (CLI, config, /proc, logs) and the few operations the balancing
// does on whole addresses. On the data path an IPv6 address is 16 bytes in place (or four
// host-order uint32 words); text exists only here:
//   parseIpv6        inet_pton(AF_INET6): hex groups, one "::", an optional dotted quad in the
//                    last 32 bits; no zone, no prefix
//   formatIpv6       inet_ntop(AF_INET6) as glibc writes it (what ipvsadm prints): lower-case
//                    groups without leading zeros, the longest run of two or more zero groups
//                    (the first of equal runs) as "::", and the last 32 bits as a dotted quad
//                    for IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses
//   formatIpv6Full   the kernel's %pI6 (what /proc/net/ip_vs* print): eight groups of four
//                    lower-case hex digits, nothing compressed
//   ipv6Fold         the schedulers' hash input for an IPv6 address (sh, dh, lblc, lblcr, mh):
//                    the four 32-bit words XORed, in host order
//   ipv6Prefix       the address cut to a prefix length (persistence with -M as a prefix)

import { InvalidError } from '../errors';

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The 16 bytes of an IPv6 address in text, or null if `s` is not one (as inet_pton refuses). */
export function parseIpv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45) return null;
  const out = new Uint8Array(16);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1].split(':')) : [];
  // The dotted quad, if any, is the last piece of the address.
  const last = halves.length === 2 ? tail : head;
  let v4: number[] | null = null;
  if (last.length > 0 && last[last.length - 1].includes('.')) {
    const m = DOTTED_QUAD.exec(last.pop()!);
    if (m === null) return null;
    v4 = [];
    for (let i = 1; i <= 4; i++) {
      // inet_pton's dotted quad: no leading zeros, each octet at most 255.
      if (m[i].length > 1 && m[i][0] === '0') return null;
      const n = Number(m[i]);
      if (n > 255) return null;
      v4.push(n);
    }
  }
  const groups = head.length + tail.length + (v4 === null ? 0 : 2);
  if (halves.length === 1 ? groups !== 8 : groups > 7) return null;
  const put = (pieces: string[], at: number): boolean => {
    for (const p of pieces) {
      if (!HEX_GROUP.test(p)) return false;
      const n = Number.parseInt(p, 16);
      out[at] = n >>> 8;
      out[at + 1] = n & 0xff;
      at += 2;
    }
    return true;
  };
  if (!put(head, 0)) return null;
  const tailAt = 16 - 2 * tail.length - (v4 === null ? 0 : 4);
  if (!put(tail, tailAt)) return null;
  if (v4 !== null) out.set(v4, 12);
  return out;
}

/**
 * Whether an address as the control socket carries it (dotted quad or IPv6 text) is IPv6: only
 * IPv6 text has a colon. For addresses known to be one or the other, not for validation.
 */
export function isIpv6Text(addr: string): boolean {
  return addr.includes(':');
}

/** True if `s` is IPv6 text that parseIpv6 accepts. */
export function isValidIpv6(s: string): boolean {
  return parseIpv6(s) !== null;
}

/** The 16 bytes of `s`; throws InvalidError if it is not IPv6 text. */
export function ipv6ToBytes(s: string): Uint8Array {
  const b = parseIpv6(s);
  if (b === null) throw new InvalidError(`Invalid IPv6 address: ${JSON.stringify(s)}`);
  return b;
}

function group(b: Uint8Array, off: number, i: number): number {
  return (b[off + 2 * i] << 8) | b[off + 2 * i + 1];
}

/** glibc's inet_ntop(AF_INET6) text of the 16 bytes at b[off]. */
export function formatIpv6(b: Uint8Array, off = 0): string {
  // The longest run of zero groups; the first one wins a tie; a lone zero group stays "0".
  let bestAt = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (group(b, off, i) !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && group(b, off, j) === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestAt = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestAt >= 0 && i >= bestAt && i < bestAt + bestLen) {
      if (i === bestAt) s += ':';
      continue;
    }
    if (i > 0) s += ':';
    // IPv4-compatible (96 zero bits) and IPv4-mapped (80 zero bits, then ffff) end as a quad.
    if (i === 6 && bestAt === 0 && (bestLen === 6 || (bestLen === 5 && group(b, off, 5) === 0xffff))) {
      s += `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
      return s;
    }
    s += group(b, off, i).toString(16);
  }
  if (bestAt >= 0 && bestAt + bestLen === 8) s += ':';
  return s;
}

/** The kernel's %pI6 text of the 16 bytes at b[off]: 8 groups of 4 hex digits, 39 characters. */
export function formatIpv6Full(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i > 0) s += ':';
    s += group(b, off, i).toString(16).padStart(4, '0');
  }
  return s;
}

/** Word `i` (0..3, most significant first) of the address at b[off], host order. */
export function ipv6Word(b: Uint8Array, off: number, i: number): number {
  const o = off + 4 * i;
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/**
 * The schedulers' fold of an IPv6 address (ip_vs_sh, _dh, _lblc, _lblcr, _mh): the four 32-bit
 * words XORed in network order and read in host order, which is the XOR of the host-order words.
 */
export function ipv6Fold(b: Uint8Array, off = 0): number {
  return (ipv6Word(b, off, 0) ^ ipv6Word(b, off, 1) ^ ipv6Word(b, off, 2) ^ ipv6Word(b, off, 3)) >>> 0;
}

/** Write into `out` (16 bytes at outOff) the address at b[off] with all but its first `plen` bits cleared. */
export function ipv6Prefix(b: Uint8Array, off: number, plen: number, out: Uint8Array, outOff = 0): void {
  for (let i = 0; i < 16; i++) {
    const keep = plen - 8 * i;
    out[outOff + i] = keep >= 8 ? b[off + i] : keep <= 0 ? 0 : b[off + i] & ((0xff00 >>> keep) & 0xff);
  }
}

const wordBytes = new Uint8Array(16);

/** The 16 bytes of the four host-order words at w[off]. */
function wordsToBytes(w: Uint32Array, off: number): Uint8Array {
  for (let i = 0; i < 4; i++) {
    const v = w[off + i];
    wordBytes[4 * i] = v >>> 24;
    wordBytes[4 * i + 1] = (v >>> 16) & 0xff;
    wordBytes[4 * i + 2] = (v >>> 8) & 0xff;
    wordBytes[4 * i + 3] = v & 0xff;
  }
  return wordBytes;
}

/** formatIpv6 of the address held as four host-order words at w[off] (the tables' form). */
export function formatIpv6Words(w: Uint32Array, off = 0): string {
  return formatIpv6(wordsToBytes(w, off));
}

/** The four host-order words of IPv6 text (the tables' form); null when it is not IPv6. */
export function ipv6Words(s: string): Uint32Array | null {
  const b = parseIpv6(s);
  if (b === null) return null;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) w[i] = ipv6Word(b, 0, i);
  return w;
}
