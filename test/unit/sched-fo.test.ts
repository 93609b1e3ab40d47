import { describe, expect, it } from 'vitest';
import { fo } from '../../src/sched/fo';
import {
  addDest,
  delDest,
  makeService,
  nameOf,
  PKT,
  pick,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

describe('fo', () => {
  it('is named fo', () => {
    expect(fo.name).toBe('fo');
  });

  it('picks the highest weight, whatever the connection counts', () => {
    const { svc } = serviceWith(fo, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 5, active: 1000, inactive: 1000 },
      { name: 'C', weight: 3 },
    ]);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('B');
  });

  it('sends every new conn to the same dest while it stays usable', () => {
    const { svc, d } = serviceWith(fo, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2 },
    ]);
    expect(pick(svc, 3)).toEqual(['B', 'B', 'B']);
    d.B!.activeConns = 500;
    expect(pick(svc, 2)).toEqual(['B', 'B']);
  });

  it('on equal top weights the first in list order wins (in both orders)', () => {
    const one = serviceWith(fo, [
      { name: 'A', weight: 5 },
      { name: 'B', weight: 5 },
      { name: 'C', weight: 1 },
    ]).svc;
    expect(nameOf(fo.schedule(one, PKT, 0))).toBe('A');
    const two = serviceWith(fo, [
      { name: 'C', weight: 1 },
      { name: 'B', weight: 5 },
      { name: 'A', weight: 5 },
    ]).svc;
    expect(nameOf(fo.schedule(two, PKT, 0))).toBe('B');
  });

  it('on equal top weights the most recently added dest wins', () => {
    const svc = makeService(fo);
    addDest(svc, { name: 'X', weight: 5 });
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('X');
    addDest(svc, { name: 'Y', weight: 5 });
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('Y');
    addDest(svc, { name: 'Z', weight: 4 });
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('Y');
  });

  it('fails over down the weights as the top dest goes away, and back as it returns', () => {
    const { svc, d } = serviceWith(fo, [
      { name: 'A', weight: 10 },
      { name: 'B', weight: 5 },
      { name: 'C', weight: 5 },
      { name: 'D', weight: 1 },
    ]);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('A');
    delDest(svc, d.A!);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('B');
    setOverloaded(d.B!, true);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('C');
    setWeight(svc, d.C!, 0);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('D');
    setOverloaded(d.B!, false);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('B');
    setWeight(svc, d.C!, 20);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('C');
    addDest(svc, { name: 'E', weight: 20 });
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('E');
  });

  it('skips weight-0 and overloaded dests even when they are heavier or listed first', () => {
    const { svc } = serviceWith(fo, [
      { name: 'A', weight: 100, overloaded: true },
      { name: 'B', weight: 0 },
      { name: 'C', weight: 1 },
      { name: 'D', weight: 50, overloaded: true },
    ]);
    expect(nameOf(fo.schedule(svc, PKT, 0))).toBe('C');
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(fo, [
      { name: 'A', weight: 0 },
      { name: 'B', weight: 3, overloaded: true },
    ]);
    expect(fo.schedule(svc, PKT, 0)).toBeNull();
    expect(fo.schedule(makeService(fo), PKT, 0)).toBeNull();
  });
});
