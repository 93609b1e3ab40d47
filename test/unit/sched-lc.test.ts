import { describe, expect, it } from 'vitest';
import { lc } from '../../src/sched/lc';
import { makeService, nameOf, PKT, serviceWith } from '../helpers/sched-fixtures';

describe('lc', () => {
  it('one active conn (overhead 256) loses to 200 inactive ones (overhead 200)', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', active: 1, inactive: 0 },
      { name: 'B', active: 0, inactive: 200 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('B');
  });

  it('257 inactive conns (overhead 257) lose to one active conn (overhead 256)', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', active: 0, inactive: 257 },
      { name: 'B', active: 1, inactive: 0 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('B');
  });

  it('picks the minimum overhead among several dests', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', active: 3, inactive: 1 },
      { name: 'B', active: 2, inactive: 10 },
      { name: 'C', active: 2, inactive: 9 },
      { name: 'D', active: 4, inactive: 0 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('C');
  });

  it('ignores weights other than 0 (a heavy dest with one more conn still loses)', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', weight: 1, inactive: 10 },
      { name: 'B', weight: 100, inactive: 11 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('A');
  });

  it('on a tie the first dest in list order wins', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', active: 1, inactive: 4 },
      { name: 'B', active: 1, inactive: 4 },
      { name: 'C', active: 1, inactive: 4 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('A');
  });

  it('skips weight-0 and overloaded dests even when they are idle', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
      { name: 'C', active: 50 },
    ]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('C');
  });

  it('returns null when no dest is usable or there are none', () => {
    const { svc } = serviceWith(lc, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(lc.schedule(svc, PKT, 0)).toBeNull();
    expect(lc.schedule(makeService(lc), PKT, 0)).toBeNull();
  });

  it('follows the counts as they change between calls', () => {
    const { svc, d } = serviceWith(lc, [{ name: 'A' }, { name: 'B' }]);
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('A');
    d.A!.activeConns = 1;
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('B');
    d.B!.activeConns = 1;
    d.B!.inactConns = 1;
    expect(nameOf(lc.schedule(svc, PKT, 0))).toBe('A');
  });
});
