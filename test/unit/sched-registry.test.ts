import { describe, expect, it } from 'vitest';
import type { Scheduler } from '../../src/ip-vs';
import { lc } from '../../src/sched/lc';
import { getScheduler, schedulerNames } from '../../src/sched/registry';
import { rr } from '../../src/sched/rr';
import { wlc } from '../../src/sched/wlc';
import { wrr } from '../../src/sched/wrr';
import { boundServiceWith, pick, serviceWith } from '../helpers/sched-fixtures';

describe('scheduler registry', () => {
  it('lists rr, wrr, lc, wlc in registration order', () => {
    expect(schedulerNames()).toEqual(['rr', 'wrr', 'lc', 'wlc']);
  });

  it.each([
    ['rr', rr],
    ['wrr', wrr],
    ['lc', lc],
    ['wlc', wlc],
  ] as [string, Scheduler][])('getScheduler(%s) returns the module whose name is that', (name, sched) => {
    expect(getScheduler(name)).toBe(sched);
    expect(sched.name).toBe(name);
  });

  it('returns undefined for unknown names, including a different case', () => {
    expect(getScheduler('nope')).toBeUndefined();
    expect(getScheduler('WLC')).toBeUndefined();
    expect(getScheduler('')).toBeUndefined();
  });
});

describe.each(schedulerNames())('every scheduler (%s)', (name) => {
  const sched = getScheduler(name)!;

  it('never picks a weight-0 or overloaded dest, even idle ones listed first', () => {
    const { svc } = serviceWith(sched, [
      { name: 'Z', weight: 0 },
      { name: 'O', weight: 5, overloaded: true },
      { name: 'U', weight: 1, active: 9 },
    ]);
    expect(pick(svc, 5)).toEqual(['U', 'U', 'U', 'U', 'U']);
  });

  it('returns null when nothing is usable', () => {
    const { svc } = serviceWith(sched, [
      { name: 'Z', weight: 0 },
      { name: 'O', weight: 5, overloaded: true },
    ]);
    expect(pick(svc, 2)).toEqual([null, null]);
  });

  it('keeps per-service state in svc.schedData: a second service does not disturb the first', () => {
    const specs = [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 1 },
    ];
    const alone = boundServiceWith(sched, specs).svc;
    const expected = pick(alone, 6);
    const one = boundServiceWith(sched, specs).svc;
    const two = boundServiceWith(sched, specs).svc;
    const got: (string | null)[] = [];
    for (let i = 0; i < 6; i++) {
      got.push(...pick(one, 1));
      pick(two, 2);
    }
    expect(got).toEqual(expected);
  });
});
