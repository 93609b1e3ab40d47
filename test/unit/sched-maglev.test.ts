import { describe, expect, it } from 'vitest';
import {
  backendFromSeed,
  buildTable,
  hsiphash32,
  type MaglevBackend,
  MH_KEY_OFFSET,
  MH_KEY_SKIP,
  MH_PRIMES,
  MH_TAB_INDEX_DEFAULT,
  MH_TAB_SIZE_DEFAULT,
  mhTabSize,
  offsetFor,
  populateTable,
  sipKey,
  skipFor,
  weightBits,
  weightTurns,
} from '../../src/sched/maglev';
import { mulberry32 } from '../helpers/prng';

// --- A slow SipHash-1-3 on BigInt, to check the 32-bit-halves one -------------------------------

const MASK64 = (1n << 64n) - 1n;

function rotl64(x: bigint, n: bigint): bigint {
  return ((x << n) | (x >> (64n - n))) & MASK64;
}

/** SipHash-1-3 of a 4-byte little-endian message, full 64-bit result. */
function slowSipHash13(k0: bigint, k1: bigint, m: number): bigint {
  let v0 = 0x736f6d6570736575n ^ k0;
  let v1 = 0x646f72616e646f6dn ^ k1;
  let v2 = 0x6c7967656e657261n ^ k0;
  let v3 = 0x7465646279746573n ^ k1;
  const round = (): void => {
    v0 = (v0 + v1) & MASK64;
    v1 = rotl64(v1, 13n) ^ v0;
    v0 = rotl64(v0, 32n);
    v2 = (v2 + v3) & MASK64;
    v3 = rotl64(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK64;
    v3 = rotl64(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK64;
    v1 = rotl64(v1, 17n) ^ v2;
    v2 = rotl64(v2, 32n);
  };
  const b = (4n << 56n) | BigInt(m >>> 0);
  v3 ^= b;
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

function keyOf(k0: bigint, k1: bigint) {
  return sipKey(Number(k0 >> 32n), Number(k0 & 0xffffffffn), Number(k1 >> 32n), Number(k1 & 0xffffffffn));
}

// --- Helpers -------------------------------------------------------------------------------------

function counts(table: Int32Array, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of table) if (i >= 0) c[i]++;
  return c;
}

function randomBackends(rnd: () => number, size: number, n: number, weight: () => number): MaglevBackend[] {
  return Array.from({ length: n }, () => backendFromSeed(size, rnd(), weight()));
}

/**
 * Slots whose owner changed between `before` (over `all` backends) and `after` (over `all`
 * without index `gone`), not counting the slots `gone` owned before.
 */
function extraMoves(before: Int32Array, after: Int32Array, gone: number): number {
  let moved = 0;
  for (let s = 0; s < before.length; s++) {
    if (before[s] === gone) continue;
    const a = after[s];
    if (before[s] !== (a >= gone ? a + 1 : a)) moved++;
  }
  return moved;
}

describe('hsiphash32 (the kernel hsiphash on 64-bit hosts: SipHash-1-3, low 32 bits)', () => {
  it("matches the kernel's hsiphash self-test vector (key 00..0f, message 00 01 02 03)", () => {
    const key = sipKey(0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908);
    expect(hsiphash32(key, 0x03020100)).toBe(0x88d38328);
  });

  it("matches CPython's siphash13 with the all-zero key (PYTHONHASHSEED=0)", () => {
    const zero = sipKey(0, 0, 0, 0);
    const vectors: [number, number][] = [
      [0x00000000, 0x9ac48af0],
      [0x00000001, 0xc37b7090],
      [0x03020100, 0x813e4dbd],
      [0xdeadbeef, 0x84fb8253],
      [0xffffffff, 0x74cad6e2],
      [0xc0a80001, 0xcc81e467],
    ];
    for (const [m, h] of vectors) expect(hsiphash32(zero, m)).toBe(h);
  });

  it('agrees with a slow BigInt SipHash-1-3 on 500 random keys and messages', () => {
    const rnd = mulberry32(0x5eed);
    const u64 = () => (BigInt(rnd()) << 32n) | BigInt(rnd());
    for (let i = 0; i < 500; i++) {
      const k0 = u64();
      const k1 = u64();
      const m = rnd();
      expect(hsiphash32(keyOf(k0, k1), m)).toBe(Number(slowSipHash13(k0, k1, m) & 0xffffffffn));
    }
  });

  it("the mh keys are the kernel's: both words 2654435761 (offset, packets) and 2654446892 (skip)", () => {
    expect(MH_KEY_OFFSET).toEqual(keyOf(2654435761n, 2654435761n));
    expect(MH_KEY_SKIP).toEqual(keyOf(2654446892n, 2654446892n));
    const rnd = mulberry32(7);
    for (let i = 0; i < 50; i++) {
      const m = rnd();
      expect(hsiphash32(MH_KEY_OFFSET, m)).toBe(Number(slowSipHash13(2654435761n, 2654435761n, m) & 0xffffffffn));
      expect(hsiphash32(MH_KEY_SKIP, m)).toBe(Number(slowSipHash13(2654446892n, 2654446892n, m) & 0xffffffffn));
    }
  });
});

describe('table sizes', () => {
  it('offers the kernel primes for CONFIG_IP_VS_MH_TAB_INDEX 8..17, default 12 -> 4093', () => {
    expect(MH_PRIMES).toEqual([251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]);
    expect(MH_TAB_INDEX_DEFAULT).toBe(12);
    expect(MH_TAB_SIZE_DEFAULT).toBe(4093);
    expect(mhTabSize(MH_TAB_INDEX_DEFAULT)).toBe(4093);
    for (let idx = 8; idx <= 17; idx++) expect(mhTabSize(idx)).toBe(MH_PRIMES[idx - 8]);
    expect(() => mhTabSize(7)).toThrow(RangeError);
    expect(() => mhTabSize(18)).toThrow(RangeError);
  });

  it('every size is prime, and the weight precision is tab index / 2 as in the kernel', () => {
    MH_PRIMES.forEach((p, i) => {
      for (let f = 2; f * f <= p; f++) expect(p % f).not.toBe(0);
      expect(weightBits(p)).toBe((i + 8) >> 1);
    });
  });

  it('rejects a table size that is not a prime, and offsets or skips outside the table', () => {
    expect(() => populateTable(4096, [0], [1], [1])).toThrow(RangeError);
    expect(() => populateTable(251, [251], [1], [1])).toThrow(RangeError);
    expect(() => populateTable(251, [0], [0], [1])).toThrow(RangeError);
    expect(() => populateTable(251, [0], [251], [1])).toThrow(RangeError);
  });
});

describe('backend placement from a hash seed', () => {
  it('gives every seed an offset in 0..M-1 and a skip in 1..M-1, the same each time', () => {
    const rnd = mulberry32(11);
    for (const size of [251, 4093, 131071]) {
      for (let i = 0; i < 300; i++) {
        const seed = rnd();
        const b = backendFromSeed(size, seed, 1);
        expect(b.offset).toBeGreaterThanOrEqual(0);
        expect(b.offset).toBeLessThan(size);
        expect(b.skip).toBeGreaterThanOrEqual(1);
        expect(b.skip).toBeLessThan(size);
        expect(b).toEqual({ offset: offsetFor(size, seed), skip: skipFor(size, seed), weight: 1 });
        expect(backendFromSeed(size, seed, 1)).toEqual(b);
      }
    }
  });
});

describe('weight turns', () => {
  it('divides the weights by their gcd; weight 0 gets no turn', () => {
    expect([...weightTurns(4093, [10, 20, 30, 0])]).toEqual([1, 2, 3, 0]);
    expect([...weightTurns(4093, [7])]).toEqual([1]);
  });

  it('shifts the quotients down once the largest needs more than weightBits(M) bits, keeping 1 turn at least', () => {
    // 4093: 6 bits. 1000 has 10 bits, so everything is shifted right by 4: 1000 -> 62, 1 -> 0 -> 1.
    expect([...weightTurns(4093, [1000, 1])]).toEqual([62, 1]);
    // 63 fits in 6 bits: no shift. 64 needs 7: shift by 1.
    expect([...weightTurns(4093, [63, 1])]).toEqual([63, 1]);
    expect([...weightTurns(4093, [64, 3])]).toEqual([32, 1]);
    // 131071: 8 bits, so 255 is not shifted.
    expect([...weightTurns(131071, [255, 1])]).toEqual([255, 1]);
  });

  it('is all zero when no weight is positive', () => {
    expect([...weightTurns(4093, [0, 0])]).toEqual([0, 0]);
    expect([...weightTurns(4093, [])]).toEqual([]);
  });
});

describe('the Maglev table', () => {
  it('has no holes: every slot names a backend of positive weight (random sets, three sizes)', () => {
    const rnd = mulberry32(1);
    for (const size of [251, 1021, 4093]) {
      for (let trial = 0; trial < 20; trial++) {
        const n = 1 + (rnd() % 30);
        const backends = randomBackends(rnd, size, n, () => rnd() % 6);
        if (backends.every((b) => b.weight === 0)) backends[rnd() % n].weight = 1;
        const table = buildTable(size, backends);
        expect(table.length).toBe(size);
        let bad = 0;
        for (const i of table) if (!(i >= 0 && i < n && backends[i].weight > 0)) bad++;
        expect(bad).toBe(0);
      }
    }
  });

  it('is all -1 without backends, or when every weight is 0', () => {
    expect(buildTable(251, []).every((i) => i === -1)).toBe(true);
    const rnd = mulberry32(2);
    expect(
      buildTable(
        251,
        randomBackends(rnd, 251, 5, () => 0),
      ).every((i) => i === -1),
    ).toBe(true);
  });

  it('is deterministic: the same backends in the same order give the same table, also into a reused buffer', () => {
    const rnd = mulberry32(3);
    const backends = randomBackends(rnd, 4093, 12, () => 1 + (rnd() % 5));
    const a = buildTable(4093, backends);
    const b = buildTable(
      4093,
      backends.map((x) => ({ ...x })),
    );
    expect(b).toEqual(a);
    const reused = new Int32Array(4093).fill(7);
    expect(buildTable(4093, backends, reused)).toBe(reused);
    expect(reused).toEqual(a);
  });

  it('depends on list order as the kernel does: the earlier of two identical backends takes the contested slots', () => {
    const b = backendFromSeed(251, 12345, 1);
    const table = buildTable(251, [b, { ...b }]);
    expect(table[b.offset]).toBe(0);
    const [first, second] = counts(table, 2);
    expect(first).toBe(126);
    expect(second).toBe(125);
  });

  it('gives each backend within t of M*t/T slots (t its turns, T their sum)', () => {
    const rnd = mulberry32(4);
    for (const size of [251, 1021, 4093]) {
      for (let trial = 0; trial < 20; trial++) {
        const n = 1 + (rnd() % 12);
        const backends = randomBackends(rnd, size, n, () => rnd() % 9);
        if (backends.every((b) => b.weight === 0)) backends[0].weight = 3;
        const turns = weightTurns(
          size,
          backends.map((b) => b.weight),
        );
        const total = turns.reduce((a, t) => a + t, 0);
        const c = counts(buildTable(size, backends), n);
        c.forEach((count, i) => {
          const t = turns[i];
          expect(Math.abs(count - (size * t) / total)).toBeLessThanOrEqual(t);
        });
      }
    }
  });

  it('shares the default table 1:2:3 for weights 1, 2, 3, and the same for weights 10, 20, 30', () => {
    const rnd = mulberry32(5);
    const backends = randomBackends(rnd, 4093, 3, () => 0);
    backends.forEach((b, i) => {
      b.weight = i + 1;
    });
    const table = buildTable(4093, backends);
    const c = counts(table, 3);
    for (let i = 0; i < 3; i++) expect(Math.abs(c[i] - (4093 * (i + 1)) / 6)).toBeLessThanOrEqual(3);
    expect(
      buildTable(
        4093,
        backends.map((b) => ({ ...b, weight: b.weight * 10 })),
      ),
    ).toEqual(table);
  });

  it('a backend of weight 0 takes no slot and changes nothing for the others', () => {
    const rnd = mulberry32(6);
    const backends = randomBackends(rnd, 1021, 6, () => 1 + (rnd() % 3));
    const without = buildTable(1021, backends);
    const withZero = buildTable(1021, [...backends.slice(0, 3), { ...backends[0], weight: 0 }, ...backends.slice(3)]);
    for (let s = 0; s < 1021; s++) {
      const i = withZero[s];
      expect(i).not.toBe(3);
      expect(i > 3 ? i - 1 : i).toBe(without[s]);
    }
  });

  it('removing one of N equal backends moves at most M/N slots besides its own (M >= 200 N)', () => {
    const rnd = mulberry32(8);
    const size = 4093;
    let sum = 0;
    let trials = 0;
    for (const n of [3, 5, 8, 13, 20]) {
      for (let trial = 0; trial < 8; trial++) {
        const backends = randomBackends(rnd, size, n, () => 1);
        const gone = rnd() % n;
        const before = buildTable(size, backends);
        const after = buildTable(
          size,
          backends.filter((_, i) => i !== gone),
        );
        const moved = extraMoves(before, after, gone);
        expect(moved).toBeLessThanOrEqual(size / n);
        sum += moved / (size / n);
        trials++;
      }
    }
    // On average far less: a few tenths of one backend's share.
    expect(sum / trials).toBeLessThan(0.5);
  });

  it('adding a backend moves about its own share to it and at most M/N slots between the others', () => {
    const rnd = mulberry32(9);
    const size = 4093;
    for (const n of [4, 10, 19]) {
      for (let trial = 0; trial < 5; trial++) {
        const backends = randomBackends(rnd, size, n + 1, () => 1);
        const before = buildTable(size, backends.slice(1));
        const after = buildTable(size, backends); // the new backend at the list head, as IPVS adds it
        let toNew = 0;
        let between = 0;
        for (let s = 0; s < size; s++) {
          if (after[s] === 0) toNew++;
          else if (after[s] - 1 !== before[s]) between++;
        }
        expect(Math.abs(toNew - size / (n + 1))).toBeLessThanOrEqual(1);
        expect(between).toBeLessThanOrEqual(size / (n + 1));
      }
    }
  });

  it('removing a heavy backend keeps the disruption near its share', () => {
    const rnd = mulberry32(10);
    const size = 4093;
    const backends = randomBackends(rnd, size, 8, () => 1 + (rnd() % 4));
    for (let gone = 0; gone < backends.length; gone++) {
      const before = buildTable(size, backends);
      const share = counts(before, backends.length)[gone];
      const after = buildTable(
        size,
        backends.filter((_, i) => i !== gone),
      );
      expect(extraMoves(before, after, gone)).toBeLessThanOrEqual(share);
    }
  });
});
