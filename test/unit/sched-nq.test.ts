import { describe, expect, it } from 'vitest';
import type { Service } from '../../src/ip-vs';
import { nq } from '../../src/sched/nq';
import { makeService, nameOf, PKT, serviceWith, setOverloaded } from '../helpers/sched-fixtures';

/** Schedules `count` connections, each raising the chosen dest's active count as an ESTABLISHED conn would. */
function stream(svc: Service, count: number): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const d = nq.schedule(svc, PKT, 0);
    out.push(nameOf(d));
    if (d !== null) d.activeConns++;
  }
  return out;
}

describe('nq', () => {
  it('is named nq', () => {
    expect(nq.name).toBe('nq');
  });

  it('an idle dest wins outright, even a light one against a far cheaper busy one (1/1 vs 2/100)', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 100, active: 1 },
      { name: 'B', weight: 1, active: 0 },
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('among idle dests the first in list order wins, whatever the weights (sed would take the heaviest)', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 1, active: 5 },
      { name: 'B', weight: 1, active: 0 },
      { name: 'C', weight: 10, active: 0 },
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('inactive conns do not make a dest busy: 0 active + 500 inactive is idle', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 10, active: 1 },
      { name: 'B', weight: 1, active: 0, inactive: 500 },
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('without an idle dest, picks the smallest (active + 1) / weight', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 2, active: 3 }, // 4/2 = 2
      { name: 'B', weight: 5, active: 6 }, // 7/5 = 1.4
      { name: 'C', weight: 4, active: 4 }, // 5/4 = 1.25
      { name: 'D', weight: 1, active: 1 }, // 2/1 = 2
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('C');
  });

  it('without an idle dest, counts the incoming conn: 1 active at weight 1 (2) loses to 3 at weight 5 (4/5)', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 1, active: 1 },
      { name: 'B', weight: 5, active: 3 },
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('without an idle dest, equal costs keep the earlier dest (2/1 vs 4/2, in both orders)', () => {
    const one = serviceWith(nq, [
      { name: 'A', weight: 1, active: 1 },
      { name: 'B', weight: 2, active: 3 },
    ]).svc;
    expect(nameOf(nq.schedule(one, PKT, 0))).toBe('A');
    const two = serviceWith(nq, [
      { name: 'B', weight: 2, active: 3 },
      { name: 'A', weight: 1, active: 1 },
    ]).svc;
    expect(nameOf(nq.schedule(two, PKT, 0))).toBe('B');
  });

  it('fills every idle dest once in list order, then shares by (active + 1) / weight', () => {
    const { svc, d } = serviceWith(nq, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 3 },
    ]);
    // A idle, B idle, then A: 2 vs B: 2/3, 3/3, 4/3, 5/3, 6/3 (tie -> A)
    expect(stream(svc, 7)).toEqual(['A', 'B', 'B', 'B', 'B', 'B', 'A']);
    d.B!.activeConns = 0;
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('skips idle dests of weight 0 or overloaded, and takes a later usable idle one', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 10, overloaded: true },
      { name: 'C', weight: 5, active: 1 },
      { name: 'D', weight: 1, active: 0 },
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('D');
  });

  it('skips weight-0 and overloaded dests when choosing by cost', () => {
    const { svc, d } = serviceWith(nq, [
      { name: 'A', weight: 0, active: 1 },
      { name: 'B', weight: 100, active: 1, overloaded: true },
      { name: 'C', weight: 1, active: 3 }, // 4
      { name: 'D', weight: 2, active: 5 }, // 3
    ]);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('D');
    setOverloaded(d.B!, false);
    expect(nameOf(nq.schedule(svc, PKT, 0))).toBe('B');
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(nq, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(nq.schedule(svc, PKT, 0)).toBeNull();
    expect(nq.schedule(makeService(nq), PKT, 0)).toBeNull();
  });
});
