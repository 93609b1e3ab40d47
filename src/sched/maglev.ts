// The Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, section 3.4), as kernel IPVS builds it for the mh scheduler (ip_vs_mh.c).
// Pure: no IPVS types, no I/O. The mh scheduler (mh.ts) feeds it dests; tests feed it numbers.
//
// Table. M slots, M prime. Backend i owns a permutation of the slots: offset_i, offset_i + skip_i,
// offset_i + 2 skip_i, ... (mod M), with 0 <= offset_i < M and 1 <= skip_i < M, so that, M being
// prime, the walk visits every slot once. Population takes the backends in list order, round after
// round; at its turn a backend claims the next slot of its permutation that is still free, until
// all M slots are claimed. Every slot therefore ends up owned (no holes) as soon as one backend
// takes part, and removing a backend mostly leaves the other backends' slots where they were.
//
// Weights (the kernel's variant of the paper's scheme). The weights are divided by their gcd; if
// the largest quotient needs more than `bits` bits (bits = half the bit length of M: 6 for 4093),
// all quotients are shifted right by the excess so that a round stays short compared with M. The
// result is the backend's number of turns: at its go it claims that many slots in a row before the
// next backend's go. A positive weight that the shift rounds down to 0 still gets one turn; weight
// 0 gets none (the backend takes no slot). Slot counts are therefore proportional to the turns:
// a backend with t turns out of T per round owns within t of M * t / T slots.
//
// Ties. Backends earlier in the list claim first in every round, so the table depends on the
// list order as well as on the (offset, skip, weight) of each backend, exactly as in the kernel
// (where the order is that of svc->destinations, newest dest first).
//
// Hash. The kernel derives a dest's offset and skip, and the slot of a packet, from hsiphash
// with two fixed keys. On 64-bit kernels hsiphash is SipHash-1-3 (one compression round, three
// finalisation rounds, 64-bit lanes) returning the low 32 bits; `hsiphash32` below is that function,
// for the 4-byte messages ip_vs_mh.c hashes, written with 32-bit halves (no BigInt, no
// allocation), and checked against the kernel's self-test vector and CPython's siphash13. 32-bit
// kernels use HalfSipHash-1-3 instead and so build other tables; we follow x86-64. The kernel
// hashes the u32 value `offset + port + addr` in CPU byte order, which on little-endian hosts is
// exactly the little-endian message that SipHash reads.

/** The table sizes the kernel allows, selected by CONFIG_IP_VS_MH_TAB_INDEX 8..17 (primes[index - 8]). */
export const MH_PRIMES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
export const MH_TAB_INDEX_MIN = 8;
export const MH_TAB_INDEX_MAX = 17;
/** CONFIG_IP_VS_MH_TAB_INDEX default. */
export const MH_TAB_INDEX_DEFAULT = 12;
/** The default table size: MH_PRIMES[12 - 8]. */
export const MH_TAB_SIZE_DEFAULT = 4093;

/** The table size for a CONFIG_IP_VS_MH_TAB_INDEX value. */
export function mhTabSize(tabIndex: number): number {
  if (!Number.isInteger(tabIndex) || tabIndex < MH_TAB_INDEX_MIN || tabIndex > MH_TAB_INDEX_MAX) {
    throw new RangeError(`MH table index must be ${MH_TAB_INDEX_MIN}..${MH_TAB_INDEX_MAX}, got ${tabIndex}`);
  }
  return MH_PRIMES[tabIndex - MH_TAB_INDEX_MIN];
}

/** Number of significant bits of a positive integer (the kernel's fls()); 0 for 0. */
function fls(x: number): number {
  return 32 - Math.clz32(x);
}

/**
 * The weight precision for a table of `size` slots: CONFIG_IP_VS_MH_TAB_INDEX / 2 in the kernel,
 * which for every prime of MH_PRIMES is half its bit length (251 -> 4, 4093 -> 6, 131071 -> 8).
 */
export function weightBits(size: number): number {
  return fls(size) >> 1;
}

function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false;
  if (n % 2 === 0) return n === 2;
  for (let f = 3; f * f <= n; f += 2) if (n % f === 0) return false;
  return true;
}

function checkSize(size: number): void {
  if (!isPrime(size) || size < 3 || size > 0x7fffffff)
    throw new RangeError(`Maglev table size must be an odd prime, got ${size}`);
}

// --- SipHash-1-3 over one 32-bit word, 64-bit lanes kept as (hi, lo) int32 pairs ---------------

/** A 128-bit SipHash key as two 64-bit words k0, k1, each split in 32-bit halves. */
export interface SipKey {
  readonly k0Hi: number;
  readonly k0Lo: number;
  readonly k1Hi: number;
  readonly k1Lo: number;
}

export function sipKey(k0Hi: number, k0Lo: number, k1Hi: number, k1Lo: number): SipKey {
  return Object.freeze({ k0Hi: k0Hi | 0, k0Lo: k0Lo | 0, k1Hi: k1Hi | 0, k1Lo: k1Lo | 0 });
}

/** The key of the kernel's offset and packet hash: both words 2654435761 (0x9e3779b1). */
export const MH_KEY_OFFSET: SipKey = sipKey(0, 0x9e3779b1, 0, 0x9e3779b1);
/** The key of the kernel's skip hash: both words 2654446892 (0x9e37a52c). */
export const MH_KEY_SKIP: SipKey = sipKey(0, 0x9e37a52c, 0, 0x9e37a52c);

/**
 * SipHash-1-3 of the 4-byte little-endian message `m` under `key`, low 32 bits of the result
 * (the kernel's hsiphash() on 64-bit hosts). A 4-byte message has no full 8-byte block: it goes,
 * with the length byte 4 in the top byte, into the final block only.
 */
export function hsiphash32(key: SipKey, m: number): number {
  // Initial state: "somepseudorandomlygeneratedbytes" xor the key.
  let v0h = 0x736f6d65 ^ key.k0Hi;
  let v0l = 0x70736575 ^ key.k0Lo;
  let v1h = 0x646f7261 ^ key.k1Hi;
  let v1l = 0x6e646f6d ^ key.k1Lo;
  let v2h = 0x6c796765 ^ key.k0Hi;
  let v2l = 0x6e657261 ^ key.k0Lo;
  let v3h = 0x74656462 ^ key.k1Hi;
  let v3l = 0x79746573 ^ key.k1Lo;
  const bh = 0x04000000; // message length 4 in the most significant byte
  const bl = m | 0;
  v3h ^= bh;
  v3l ^= bl;
  let lo = 0;
  let t = 0;
  // One compression round for the final block, then (after the xor step) three finalisation rounds.
  for (let round = 0; round < 4; round++) {
    // v0 += v1
    lo = (v0l + v1l) | 0;
    v0h = (v0h + v1h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
    v0l = lo;
    // v1 = rotl(v1, 13) ^ v0
    t = (v1h << 13) | (v1l >>> 19);
    v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
    v1h = t ^ v0h;
    // v0 = rotl(v0, 32)
    t = v0h;
    v0h = v0l;
    v0l = t;
    // v2 += v3
    lo = (v2l + v3l) | 0;
    v2h = (v2h + v3h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
    v2l = lo;
    // v3 = rotl(v3, 16) ^ v2
    t = (v3h << 16) | (v3l >>> 16);
    v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
    v3h = t ^ v2h;
    // v0 += v3
    lo = (v0l + v3l) | 0;
    v0h = (v0h + v3h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
    v0l = lo;
    // v3 = rotl(v3, 21) ^ v0
    t = (v3h << 21) | (v3l >>> 11);
    v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
    v3h = t ^ v0h;
    // v2 += v1
    lo = (v2l + v1l) | 0;
    v2h = (v2h + v1h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
    v2l = lo;
    // v1 = rotl(v1, 17) ^ v2
    t = (v1h << 17) | (v1l >>> 15);
    v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
    v1h = t ^ v2h;
    // v2 = rotl(v2, 32)
    t = v2h;
    v2h = v2l;
    v2l = t;
    if (round === 0) {
      v0h ^= bh;
      v0l ^= bl;
      v2l ^= 0xff;
    }
  }
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

// --- Backends -----------------------------------------------------------------------------------

/** One backend's place in the table: the start and stride of its permutation, and its weight. */
export interface MaglevBackend {
  offset: number;
  skip: number;
  weight: number;
}

/** The permutation start the kernel gives a backend whose hash seed is `seed` (for a dest: addr + port). */
export function offsetFor(size: number, seed: number): number {
  return hsiphash32(MH_KEY_OFFSET, seed) % size;
}

/** The permutation stride the kernel gives a backend whose hash seed is `seed`: 1..size-1. */
export function skipFor(size: number, seed: number): number {
  return (hsiphash32(MH_KEY_SKIP, seed) % (size - 1)) + 1;
}

/** A backend placed by its 32-bit hash seed, as ip_vs_mh.c places a dest (seed = addr + port, mod 2^32). */
export function backendFromSeed(size: number, seed: number, weight: number): MaglevBackend {
  return { offset: offsetFor(size, seed), skip: skipFor(size, seed), weight };
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

/**
 * The turns per round of each backend for a table of `size` slots: weights divided by the gcd of
 * the positive ones, shifted right when the largest quotient has more than weightBits(size) bits;
 * at least 1 for a positive weight, 0 for weight 0 (or below). All 0 when no weight is positive.
 */
export function weightTurns(size: number, weights: ArrayLike<number>, out?: Int32Array): Int32Array {
  const n = weights.length;
  const turns = out !== undefined && out.length >= n ? out : new Int32Array(n);
  let g = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > max) max = w;
  }
  if (g < 1) {
    turns.fill(0, 0, n);
    return turns;
  }
  const shift = Math.max(0, fls(Math.floor(max / g)) - weightBits(size));
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (w <= 0) turns[i] = 0;
    else turns[i] = Math.floor(w / g) >> shift || 1;
  }
  return turns;
}

/**
 * Fills `table` (size slots) with backend indexes by the Maglev population, each backend taking
 * `turns[i]` slots per round. Returns the table: every slot a backend index when some turns[i] > 0,
 * every slot -1 otherwise. `out` is reused when it has `size` entries.
 */
export function populateTable(
  size: number,
  offsets: ArrayLike<number>,
  skips: ArrayLike<number>,
  turns: ArrayLike<number>,
  out?: Int32Array,
): Int32Array {
  checkSize(size);
  const n = turns.length;
  if (offsets.length < n || skips.length < n)
    throw new RangeError('offsets, skips and turns must have one entry per backend');
  const table = out !== undefined && out.length === size ? out : new Int32Array(size);
  table.fill(-1);
  let active = 0;
  for (let i = 0; i < n; i++) {
    const off = offsets[i];
    const skip = skips[i];
    if (!Number.isInteger(off) || off < 0 || off >= size)
      throw new RangeError(`backend ${i}: offset ${off} not in 0..${size - 1}`);
    if (!Number.isInteger(skip) || skip < 1 || skip >= size)
      throw new RangeError(`backend ${i}: skip ${skip} not in 1..${size - 1}`);
    if (turns[i] > 0) active++;
  }
  if (active === 0) return table;

  // next[i]: where backend i's permutation walk resumes; a slot is free while table[slot] === -1.
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) next[i] = offsets[i];
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const t = turns[i];
      const skip = skips[i];
      for (let k = 0; k < t; k++) {
        let c = next[i];
        while (table[c] !== -1) {
          c += skip;
          if (c >= size) c -= size;
        }
        table[c] = i;
        next[i] = c;
        if (++filled === size) return table;
      }
    }
  }
}

/** The Maglev table for `backends` in list order: weightTurns, then populateTable. */
export function buildTable(size: number, backends: readonly MaglevBackend[], out?: Int32Array): Int32Array {
  const n = backends.length;
  const offsets = new Int32Array(n);
  const skips = new Int32Array(n);
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const b = backends[i];
    offsets[i] = b.offset;
    skips[i] = b.skip;
    weights[i] = b.weight;
  }
  return populateTable(size, offsets, skips, weightTurns(size, weights), out);
}
