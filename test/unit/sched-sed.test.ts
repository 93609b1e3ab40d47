import { describe, expect, it } from 'vitest';
import type { Service } from '../../src/ip-vs';
import { sed } from '../../src/sched/sed';
import { makeService, nameOf, PKT, serviceWith, setOverloaded } from '../helpers/sched-fixtures';

/** Schedules `count` connections, each raising the chosen dest's active count as an ESTABLISHED conn would. */
function stream(svc: Service, count: number): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const d = sed.schedule(svc, PKT, 0);
    out.push(nameOf(d));
    if (d !== null) d.activeConns++;
  }
  return out;
}

describe('sed', () => {
  it('is named sed', () => {
    expect(sed.name).toBe('sed');
  });

  it('ignores inactive conns: 0 active + 1000 inactive (cost 1) beats 1 active (cost 2)', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', active: 1, inactive: 0 },
      { name: 'B', active: 0, inactive: 1000 },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('B');
  });

  it('ignores inactive conns: equal active counts tie whatever the inactive ones, and the first wins', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', active: 2, inactive: 900 },
      { name: 'B', active: 2, inactive: 0 },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('A');
  });

  it('with every dest idle, the heaviest wins (1/w is smallest), not the first', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('B');
  });

  it('counts the incoming conn: idle at weight 1 (1/1) loses to 3 active at weight 5 (4/5)', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', weight: 1, active: 0 },
      { name: 'B', weight: 5, active: 3 },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('B');
  });

  it('picks the smallest (active + 1) / weight among several dests', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', weight: 2, active: 3 }, // 4/2 = 2
      { name: 'B', weight: 5, active: 6 }, // 7/5 = 1.4
      { name: 'C', weight: 4, active: 4 }, // 5/4 = 1.25
      { name: 'D', weight: 1, active: 1 }, // 2/1 = 2
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('C');
  });

  it('on equal costs keeps the earlier dest (2/1 vs 4/2, in both orders)', () => {
    const one = serviceWith(sed, [
      { name: 'A', weight: 1, active: 1 },
      { name: 'B', weight: 2, active: 3 },
    ]).svc;
    expect(nameOf(sed.schedule(one, PKT, 0))).toBe('A');
    const two = serviceWith(sed, [
      { name: 'B', weight: 2, active: 3 },
      { name: 'A', weight: 1, active: 1 },
    ]).svc;
    expect(nameOf(sed.schedule(two, PKT, 0))).toBe('B');
  });

  it('spreads a stream of conns 3:1 over weights 1 and 3, ties going to the earlier dest', () => {
    const { svc, d } = serviceWith(sed, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 3 },
    ]);
    // A: 1, 1, 2, 2, 2, 2, 3 / B: 1/3, 2/3, 3/3 (tie -> A), 3/3, 4/3, 5/3, 6/3 (tie -> A), ...
    expect(stream(svc, 8)).toEqual(['B', 'B', 'A', 'B', 'B', 'B', 'A', 'B']);
    expect(d.A!.activeConns).toBe(2);
    expect(d.B!.activeConns).toBe(6);
  });

  it('skips weight-0 and overloaded dests even when they are idle, heavy, or listed first', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 10, overloaded: true },
      { name: 'C', weight: 1, active: 7 },
      { name: 'D', weight: 0 },
      { name: 'E', weight: 5, overloaded: true },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('C');
  });

  it('takes an overloaded dest back once the flag is cleared', () => {
    const { svc, d } = serviceWith(sed, [
      { name: 'A', weight: 1, active: 4 },
      { name: 'B', weight: 4, overloaded: true },
    ]);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('A');
    setOverloaded(d.B!, false);
    expect(nameOf(sed.schedule(svc, PKT, 0))).toBe('B');
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(sed, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(sed.schedule(svc, PKT, 0)).toBeNull();
    expect(sed.schedule(makeService(sed), PKT, 0)).toBeNull();
  });
});
