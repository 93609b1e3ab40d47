import { describe, expect, it } from 'vitest';
import type { Scheduler } from '../../src/ip-vs';
import { makeTwos, twos } from '../../src/sched/twos';
import { mulberry32 } from '../helpers/prng';
import { type DestSpec, makeService, nameOf, PKT, pick, serviceWith, setOverloaded } from '../helpers/sched-fixtures';

/** A random source returning `values` in order, counting the calls; it throws when they run out. */
function scripted(values: number[]): { random: () => number; calls: () => number } {
  let i = 0;
  return {
    random: () => {
      if (i >= values.length) throw new Error('scripted random source exhausted');
      return values[i++];
    },
    calls: () => i,
  };
}

/** Schedules `count` times and counts how often each name was picked. */
function tally(sched: Scheduler, specs: DestSpec[], count: number): Record<string, number> {
  const { svc } = serviceWith(sched, specs);
  const counts: Record<string, number> = {};
  for (const s of specs) counts[s.name] = 0;
  for (const name of pick(svc, count)) counts[name!] = (counts[name!] ?? 0) + 1;
  return counts;
}

// Weights 1, 2, 3, 4: total 10, so each draw is taken modulo 11 and lands on
// A for 0..1 (weight + 1, being first), B for 2..3, C for 4..6, D for 7..10.
const WEIGHTED: DestSpec[] = [
  { name: 'A', weight: 1, inactive: 150 }, // overhead/weight 150
  { name: 'B', weight: 2, active: 1 }, // 128
  { name: 'C', weight: 3, inactive: 300 }, // 100
  { name: 'D', weight: 4, active: 2 }, // 128
];

describe('twos', () => {
  it('is named twos, and the default instance picks only usable dests', () => {
    expect(twos.name).toBe('twos');
    const { svc } = serviceWith(twos, [{ name: 'A' }, { name: 'Z', weight: 0 }, { name: 'B' }]);
    const picked = new Set(pick(svc, 200));
    expect(picked).toEqual(new Set(['A', 'B']));
  });

  it('maps each draw onto the dests by cumulative weight, the first usable dest also taking 0', () => {
    // Every dest idle, so the first draw always wins and the pick shows where it landed.
    const specs: DestSpec[] = [
      { name: 'Z', weight: 0 },
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2 },
      { name: 'X', weight: 5, overloaded: true },
      { name: 'C', weight: 3 },
    ];
    // Usable weights 1 + 2 + 3 = 6, so draws are taken modulo 7: 7 wraps to 0, 13 to 6.
    const draws = [0, 1, 2, 3, 4, 5, 6, 7, 13];
    const expected = ['A', 'A', 'B', 'B', 'C', 'C', 'C', 'A', 'C'];
    const script = scripted(draws.flatMap((r) => [r, 0]));
    const sched = makeTwos(script.random);
    const { svc } = serviceWith(sched, specs);
    expect(pick(svc, draws.length)).toEqual(expected);
  });

  it('takes the draw modulo total weight + 1, so the largest uint32 also lands', () => {
    // Total 3, span 4: 0xffffffff % 4 = 3 -> the last unit of weight, dest B.
    const script = scripted([0xffffffff, 0xffffffff]);
    const { svc } = serviceWith(makeTwos(script.random), [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2 },
    ]);
    expect(nameOf(svc.sched.schedule(svc, PKT, 0))).toBe('B');
  });

  it('draws two numbers per pick and keeps the second choice only when its overhead/weight is smaller', () => {
    const script = scripted([
      ...[3, 1], // B (128) vs A (150): B stays
      ...[3, 3], // both draws on B: B
      ...[0, 8], // A (150) vs D (128): D is better
      ...[5, 1], // C (100) vs A (150): C stays
      ...[1, 6], // A (150) vs C (100): C is better
      ...[2, 10], // B (128) vs D (128): equal ratios keep the first, B
    ]);
    const { svc } = serviceWith(makeTwos(script.random), WEIGHTED);
    expect(pick(svc, 6)).toEqual(['B', 'B', 'D', 'C', 'C', 'B']);
    expect(script.calls()).toBe(12);
  });

  it('gives the exact picks for mulberry32(7)', () => {
    // The seed's first uint32s modulo 11 are 3 1 | 3 3 | 0 8 | 5 1 | 1 6 | 2 10: the pairs above.
    const { svc } = serviceWith(makeTwos(mulberry32(7)), WEIGHTED);
    expect(pick(svc, 6)).toEqual(['B', 'B', 'D', 'C', 'C', 'B']);
  });

  it('compares overhead/weight by cross-multiplication: 250 at weight 3 beats 100 at weight 1', () => {
    // A is dests[0] (weight 1: draws 0..1), B has weight 3 (draws 2..4).
    const specs: DestSpec[] = [
      { name: 'A', weight: 1, inactive: 100 },
      { name: 'B', weight: 3, inactive: 250 },
    ];
    const { svc } = serviceWith(makeTwos(scripted([0, 2, 2, 0]).random), specs);
    expect(pick(svc, 2)).toEqual(['B', 'B']);
    const worse = serviceWith(makeTwos(scripted([0, 2, 2, 0]).random), [
      specs[0],
      { name: 'B', weight: 3, inactive: 310 },
    ]).svc;
    expect(pick(worse, 2)).toEqual(['A', 'A']);
  });

  it('with equal load per weight, picks in proportion to weight (dests[0] gets one extra share)', () => {
    // Overhead proportional to weight ties every comparison, so the first draw decides:
    // P(A) = (1 + 1) / 11, P(B) = 2 / 11, P(C) = 3 / 11, P(D) = 4 / 11.
    const n = 110_000;
    const counts = tally(
      makeTwos(mulberry32(12345)),
      [
        { name: 'A', weight: 1, inactive: 10 },
        { name: 'B', weight: 2, inactive: 20 },
        { name: 'C', weight: 3, inactive: 30 },
        { name: 'D', weight: 4, inactive: 40 },
      ],
      n,
    );
    const expected: Record<string, number> = { A: 2 / 11, B: 2 / 11, C: 3 / 11, D: 4 / 11 };
    for (const name of Object.keys(expected)) expect(Math.abs(counts[name] / n - expected[name])).toBeLessThan(0.01);
  });

  it('with every dest idle, still picks in proportion to weight', () => {
    const n = 100_000;
    const counts = tally(
      makeTwos(mulberry32(99)),
      [
        { name: 'A', weight: 50 },
        { name: 'B', weight: 100 },
        { name: 'C', weight: 350 },
      ],
      n,
    );
    // Span 501: A takes 51 outcomes, B 100, C 350.
    expect(Math.abs(counts.A! / n - 51 / 501)).toBeLessThan(0.01);
    expect(Math.abs(counts.B! / n - 100 / 501)).toBeLessThan(0.01);
    expect(Math.abs(counts.C! / n - 350 / 501)).toBeLessThan(0.01);
  });

  it('picks a heavily loaded dest only when both draws land on it', () => {
    // Equal weights, span 5: a draw lands on A (first, two outcomes) with probability 2/5 and on
    // each other dest with 1/5. L loses to anything else, so it is picked only for the draw pair
    // (L, L): 1/25, against 1/4 for an even spread. The idle dests keep the first draw, or take
    // over when it fell on L: A 2/5 + 2/25, B and C 1/5 + 1/25 each.
    const n = 50_000;
    const counts = tally(
      makeTwos(mulberry32(2024)),
      [{ name: 'A' }, { name: 'L', active: 100 }, { name: 'B' }, { name: 'C' }],
      n,
    );
    const expected: Record<string, number> = { A: 12 / 25, L: 1 / 25, B: 6 / 25, C: 6 / 25 };
    for (const name of Object.keys(expected)) expect(Math.abs(counts[name] / n - expected[name])).toBeLessThan(0.01);
  });

  it('never picks a weight-0 or overloaded dest, even when it is idle and the others are loaded', () => {
    const counts = tally(
      makeTwos(mulberry32(5)),
      [
        { name: 'Z', weight: 0 },
        { name: 'O', weight: 100, overloaded: true },
        { name: 'A', active: 50 },
        { name: 'Z2', weight: 0 },
        { name: 'B', weight: 3, active: 90 },
      ],
      20_000,
    );
    expect(counts.Z).toBe(0);
    expect(counts.O).toBe(0);
    expect(counts.Z2).toBe(0);
    expect(counts.A! + counts.B!).toBe(20_000);
  });

  it('stops picking a dest once it is marked overloaded, and picks it again once cleared', () => {
    const { svc, d } = serviceWith(makeTwos(mulberry32(11)), [{ name: 'A' }, { name: 'B' }]);
    setOverloaded(d.A!, true);
    expect(new Set(pick(svc, 500))).toEqual(new Set(['B']));
    setOverloaded(d.A!, false);
    expect(new Set(pick(svc, 500))).toEqual(new Set(['A', 'B']));
  });

  it('always picks the single usable dest, whatever the draws', () => {
    const script = scripted([0, 0, 0xffffffff, 0xffffffff, 1, 0x80000000, 7, 3]);
    const { svc } = serviceWith(makeTwos(script.random), [
      { name: 'Z', weight: 0 },
      { name: 'A', weight: 7, active: 1000 },
      { name: 'O', overloaded: true },
    ]);
    expect(pick(svc, 4)).toEqual(['A', 'A', 'A', 'A']);
  });

  it('returns null for an empty service or one with no usable dest, without drawing', () => {
    const script = scripted([]);
    const sched = makeTwos(script.random);
    expect(sched.schedule(makeService(sched), PKT, 0)).toBeNull();
    const { svc } = serviceWith(sched, [
      { name: 'Z', weight: 0 },
      { name: 'O', overloaded: true },
    ]);
    expect(sched.schedule(svc, PKT, 0)).toBeNull();
    expect(script.calls()).toBe(0);
  });
});
