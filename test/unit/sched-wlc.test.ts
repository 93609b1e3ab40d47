import { describe, expect, it } from 'vitest';
import { DEFAULT_SCHEDULER } from '../../src/ip-vs';
import { getScheduler } from '../../src/sched/registry';
import { wlc } from '../../src/sched/wlc';
import { makeService, nameOf, PKT, serviceWith } from '../helpers/sched-fixtures';

describe('wlc', () => {
  it('is the default scheduler', () => {
    expect(getScheduler(DEFAULT_SCHEDULER)).toBe(wlc);
  });

  it('with equal weights, one active conn (overhead 256) loses to 200 inactive ones (overhead 200)', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', active: 1, inactive: 0 },
      { name: 'B', active: 0, inactive: 200 },
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('B');
  });

  it('divides overhead by weight: 250 at weight 3 (83.3) beats 100 at weight 1', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 1, inactive: 100 },
      { name: 'B', weight: 3, inactive: 250 },
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('B');
  });

  it('divides overhead by weight: 310 at weight 3 (103.3) loses to 100 at weight 1', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 1, inactive: 100 },
      { name: 'B', weight: 3, inactive: 310 },
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('A');
  });

  it('picks the smallest ratio among several weighted dests', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 2, active: 2 }, // 256
      { name: 'B', weight: 5, active: 4 }, // 204.8
      { name: 'C', weight: 4, active: 3, inactive: 10 }, // 194.5
      { name: 'D', weight: 1, active: 1 }, // 256
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('C');
  });

  it('on equal ratios keeps the earlier dest (100/1 vs 200/2, in both orders)', () => {
    const one = serviceWith(wlc, [
      { name: 'A', weight: 1, inactive: 100 },
      { name: 'B', weight: 2, inactive: 200 },
    ]).svc;
    expect(nameOf(wlc.schedule(one, PKT, 0))).toBe('A');
    const two = serviceWith(wlc, [
      { name: 'B', weight: 2, inactive: 200 },
      { name: 'A', weight: 1, inactive: 100 },
    ]).svc;
    expect(nameOf(wlc.schedule(two, PKT, 0))).toBe('B');
  });

  it('with every dest idle, picks dests[0] (the most recently added)', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 10 },
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('A');
  });

  it('skips weight-0 and overloaded dests even when they are idle and listed first', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
      { name: 'C', active: 7 },
      { name: 'D', weight: 0 },
      { name: 'E', weight: 5, overloaded: true },
    ]);
    expect(nameOf(wlc.schedule(svc, PKT, 0))).toBe('C');
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(wlc, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(wlc.schedule(svc, PKT, 0)).toBeNull();
    expect(wlc.schedule(makeService(wlc), PKT, 0)).toBeNull();
  });
});
