import { describe, expect, it } from 'vitest';
import type { Service } from '../../src/ip-vs';
import { ovf } from '../../src/sched/ovf';
import {
  addDest,
  delDest,
  makeService,
  nameOf,
  PKT,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

/** Schedules `count` connections, each raising the chosen dest's active count as an ESTABLISHED conn would. */
function stream(svc: Service, count: number): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const d = ovf.schedule(svc, PKT, 0);
    out.push(nameOf(d));
    if (d !== null) d.activeConns++;
  }
  return out;
}

describe('ovf', () => {
  it('is named ovf', () => {
    expect(ovf.name).toBe('ovf');
  });

  it('picks the highest weight while its active conns stay within the weight', () => {
    const { svc } = serviceWith(ovf, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 5, active: 2 },
      { name: 'C', weight: 3 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
  });

  it('still picks a dest whose active conns equal its weight, and overflows only above it', () => {
    const { svc, d } = serviceWith(ovf, [
      { name: 'A', weight: 5, active: 5 },
      { name: 'B', weight: 3 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
    d.A!.activeConns = 6;
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
  });

  it('ignores inactive conns', () => {
    const { svc } = serviceWith(ovf, [
      { name: 'A', weight: 5, active: 0, inactive: 10000 },
      { name: 'B', weight: 3 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
  });

  it('on equal weights the first in list order wins, and the next one takes the overflow', () => {
    const { svc, d } = serviceWith(ovf, [
      { name: 'A', weight: 4, active: 1 },
      { name: 'B', weight: 4 },
      { name: 'C', weight: 1 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
    d.A!.activeConns = 5;
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
  });

  it('fills each dest to weight + 1 active conns in weight order, then refuses', () => {
    const { svc, d } = serviceWith(ovf, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2 },
    ]);
    expect(stream(svc, 6)).toEqual(['B', 'B', 'B', 'A', 'A', null]);
    expect(d.A!.activeConns).toBe(2);
    expect(d.B!.activeConns).toBe(3);
    d.B!.activeConns = 2; // one of B's conns ended: B is back within its weight
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
  });

  it('moves down the weights as the top dest goes away, and back as it returns', () => {
    const { svc, d } = serviceWith(ovf, [
      { name: 'A', weight: 10 },
      { name: 'B', weight: 5 },
      { name: 'C', weight: 3, active: 3 },
      { name: 'D', weight: 1 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
    setOverloaded(d.A!, true);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
    setWeight(svc, d.B!, 0);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('C');
    delDest(svc, d.C!);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('D');
    setOverloaded(d.A!, false);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
    addDest(svc, { name: 'E', weight: 10 });
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('E');
  });

  it('lowering the top weight below its active conns overflows to the next dest', () => {
    const { svc, d } = serviceWith(ovf, [
      { name: 'A', weight: 10, active: 4 },
      { name: 'B', weight: 2 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('A');
    setWeight(svc, d.A!, 3);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('B');
  });

  it('skips weight-0 and overloaded dests even when they are idle, heavier, or listed first', () => {
    const { svc } = serviceWith(ovf, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 9, overloaded: true },
      { name: 'C', weight: 1, active: 1 },
      { name: 'D', weight: 0 },
    ]);
    expect(nameOf(ovf.schedule(svc, PKT, 0))).toBe('C');
  });

  it('returns null when every usable dest is above its weight, with no fallback', () => {
    const { svc } = serviceWith(ovf, [
      { name: 'A', weight: 1, active: 2 },
      { name: 'B', weight: 3, active: 4 },
    ]);
    expect(ovf.schedule(svc, PKT, 0)).toBeNull();
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(ovf, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(ovf.schedule(svc, PKT, 0)).toBeNull();
    expect(ovf.schedule(makeService(ovf), PKT, 0)).toBeNull();
  });
});
