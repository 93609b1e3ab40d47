import { describe, expect, it } from 'vitest';
import { wrr } from '../../src/sched/wrr';
import {
  addDest,
  boundServiceWith,
  delDest,
  makeService,
  pick,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

function counts(picks: (string | null)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const p of picks) c[String(p)] = (c[String(p)] ?? 0) + 1;
  return c;
}

const CYCLE_432 = ['A', 'A', 'B', 'A', 'B', 'C', 'A', 'B', 'C'];

// Most cases bind wrr to a service that already holds its dests, so the walk starts at cw = mw and
// the sequences begin at a cycle boundary. Services built dest by dest are covered separately.
describe('wrr', () => {
  it('weights 4,3,2 interleave as A A B A B C A B C, cycle after cycle', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    expect(pick(svc, 27)).toEqual([...CYCLE_432, ...CYCLE_432, ...CYCLE_432]);
  });

  it('a service built dest by dest starts at the cw the last addition left, then settles into the cycle', () => {
    // Added C (2), B (3), A (4). Alone, C gives gcd 2 and mw = 2 - (2 - 1) = 1, so cw starts at 1;
    // the later additions keep it. One pass at cw 1 (everybody), then the normal cycle.
    const { svc } = serviceWith(wrr, [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    expect(pick(svc, 21)).toEqual(['A', 'B', 'C', ...CYCLE_432, ...CYCLE_432]);
  });

  it('weights 3,1 give A A A B', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]);
    expect(pick(svc, 8)).toEqual(['A', 'A', 'A', 'B', 'A', 'A', 'A', 'B']);
  });

  it('weights 3,1 split 400 picks exactly 300/100, however the service was built', () => {
    const bound = boundServiceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]).svc;
    const built = serviceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]).svc;
    expect(counts(pick(bound, 400))).toEqual({ A: 300, B: 100 });
    expect(counts(pick(built, 400))).toEqual({ A: 300, B: 100 });
  });

  it('weights with a common divisor (4,2) schedule like their reduced ratio 2:1', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 2 },
    ]);
    expect(pick(svc, 6)).toEqual(['A', 'A', 'B', 'A', 'A', 'B']);
  });

  it('equal weights behave as round robin in list order', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 7 },
      { name: 'B', weight: 7 },
      { name: 'C', weight: 7 },
    ]);
    expect(pick(svc, 6)).toEqual(['A', 'B', 'C', 'A', 'B', 'C']);
  });

  it('never picks a weight-0 dest', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 2 },
      { name: 'C', weight: 1 },
    ]);
    expect(pick(svc, 6)).toEqual(['B', 'B', 'C', 'B', 'B', 'C']);
  });

  it('returns null when every weight is 0, and for a service without dests', () => {
    const { svc } = serviceWith(wrr, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 0 },
    ]);
    expect(pick(svc, 2)).toEqual([null, null]);
    expect(pick(makeService(wrr), 1)).toEqual([null]);
  });

  it('schedules again once a weight goes from 0 to positive through updDest', () => {
    const { svc, d } = serviceWith(wrr, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 0 },
    ]);
    expect(pick(svc, 1)).toEqual([null]);
    setWeight(svc, d.B!, 2);
    expect(pick(svc, 2)).toEqual(['B', 'B']);
  });

  it('skips an overloaded dest; the others keep their own interleaving (4,3,2 with A overloaded)', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 4, overloaded: true },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    // cw 4: nobody; cw 3: B; cw 2: B C; cw 1: B C; then again.
    expect(pick(svc, 10)).toEqual(['B', 'B', 'C', 'B', 'C', 'B', 'B', 'C', 'B', 'C']);
  });

  it('returns null (and terminates) when every dest is overloaded, then recovers', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 4, overloaded: true },
      { name: 'B', weight: 1, overloaded: true },
    ]);
    expect(pick(svc, 3)).toEqual([null, null, null]);
    setOverloaded(d.B!, false);
    expect(pick(svc, 2)).toEqual(['B', 'B']);
  });

  it('terminates with null even if a weight no current weight can match slips in without updDest', () => {
    const { svc, d } = boundServiceWith(wrr, [{ name: 'A', weight: 2 }]);
    d.A!.weight = 0.5; // impossible through the control plane; proves the walk is bounded
    expect(pick(svc, 1)).toEqual([null]);
  });

  it('a weight change mid-stream restarts from the list head with the new ratio (3,1 -> 3,3)', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]);
    expect(pick(svc, 2)).toEqual(['A', 'A']);
    setWeight(svc, d.B!, 3);
    expect(pick(svc, 4)).toEqual(['A', 'B', 'A', 'B']);
  });

  it('a weight change keeps cw on the "multiple of gcd, plus one" grid (4,1 -> 4,2 after A A A)', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 1 },
    ]);
    expect(pick(svc, 3)).toEqual(['A', 'A', 'A']); // cw is now 2
    // gcd 2, mw 3: cw 2 is rounded up to 3, so B (weight 2) waits for the cw = 1 pass.
    setWeight(svc, d.B!, 2);
    expect(pick(svc, 6)).toEqual(['A', 'A', 'B', 'A', 'A', 'B']);
  });

  it('lowering the max weight below the current weight restarts at the new max (5,2 -> 1,2)', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 5 },
      { name: 'B', weight: 2 },
    ]);
    expect(pick(svc, 1)).toEqual(['A']); // cw 5
    setWeight(svc, d.A!, 1);
    expect(pick(svc, 6)).toEqual(['B', 'A', 'B', 'B', 'A', 'B']);
  });

  it('a dest added mid-stream restarts the walk from the head, where the new dest is', () => {
    const { svc } = boundServiceWith(wrr, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1 },
    ]);
    expect(pick(svc, 1)).toEqual(['A']);
    addDest(svc, { name: 'C', weight: 1 });
    expect(pick(svc, 6)).toEqual(['C', 'A', 'B', 'C', 'A', 'B']);
  });

  it('a deleted dest leaves the interleaving and the others carry on (delete the 4 of 4,3,2)', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    expect(pick(svc, 2)).toEqual(['A', 'A']); // cw 3
    delDest(svc, d.A!);
    // mw 3, cw 3 kept, walk restarts at the head: cw 3: B; 2: B C; 1: B C; and again.
    expect(pick(svc, 10)).toEqual(['B', 'B', 'C', 'B', 'C', 'B', 'B', 'C', 'B', 'C']);
  });

  it('deleting the dest with the odd weight lets the gcd grow (3,2,4 minus 3 -> 2,4 behaves as 1:2)', () => {
    const { svc, d } = boundServiceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 2 },
      { name: 'C', weight: 4 },
    ]);
    delDest(svc, d.A!);
    // di 2, mw 3: cw 3: C; cw 1: B C.
    expect(pick(svc, 6)).toEqual(['C', 'B', 'C', 'C', 'B', 'C']);
  });

  it('two services using wrr keep separate state', () => {
    const one = boundServiceWith(wrr, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]).svc;
    const two = boundServiceWith(wrr, [
      { name: 'X', weight: 1 },
      { name: 'Y', weight: 2 },
    ]).svc;
    const seqOne: (string | null)[] = [];
    const seqTwo: (string | null)[] = [];
    for (let i = 0; i < 6; i++) {
      seqOne.push(...pick(one, 1));
      seqTwo.push(...pick(two, 1));
    }
    expect(seqOne).toEqual(['A', 'A', 'A', 'B', 'A', 'A']);
    expect(seqTwo).toEqual(['Y', 'X', 'Y', 'Y', 'X', 'Y']);
  });
});
