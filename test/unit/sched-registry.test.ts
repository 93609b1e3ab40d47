import { describe, expect, it } from 'vitest';
import type { Scheduler } from '../../src/ip-vs';
import { dh } from '../../src/sched/dh';
import { fo } from '../../src/sched/fo';
import { lblc } from '../../src/sched/lblc';
import { lblcr } from '../../src/sched/lblcr';
import { lc } from '../../src/sched/lc';
import { mh } from '../../src/sched/mh';
import { nq } from '../../src/sched/nq';
import { ovf } from '../../src/sched/ovf';
import { getScheduler, schedulerNames } from '../../src/sched/registry';
import { rr } from '../../src/sched/rr';
import { sed } from '../../src/sched/sed';
import { sh } from '../../src/sched/sh';
import { twos } from '../../src/sched/twos';
import { wlc } from '../../src/sched/wlc';
import { wrr } from '../../src/sched/wrr';
import { boundServiceWith, pick, serviceWith } from '../helpers/sched-fixtures';

describe('scheduler registry', () => {
  it("lists all fourteen: ipvsadm's order, then twos", () => {
    expect(schedulerNames()).toEqual([
      'rr',
      'wrr',
      'lc',
      'wlc',
      'lblc',
      'lblcr',
      'dh',
      'sh',
      'sed',
      'nq',
      'fo',
      'ovf',
      'mh',
      'twos',
    ]);
  });

  it.each([
    ['rr', rr],
    ['wrr', wrr],
    ['lc', lc],
    ['wlc', wlc],
    ['lblc', lblc],
    ['lblcr', lblcr],
    ['dh', dh],
    ['sh', sh],
    ['sed', sed],
    ['nq', nq],
    ['fo', fo],
    ['ovf', ovf],
    ['mh', mh],
    ['twos', twos],
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

/**
 * Schedulers that may answer "none" although a usable dest exists: the hashing ones when the
 * hashed dest is unusable (no fallback flag), and ovf when every dest is past its weight.
 */
const MAY_REFUSE = new Set(['dh', 'sh', 'mh', 'ovf']);
/** Randomised: repeated runs give different sequences. */
const RANDOM = new Set(['twos']);

describe.each(schedulerNames())('every scheduler (%s)', (name) => {
  const sched = getScheduler(name)!;

  it('never picks a weight-0 or overloaded dest, even idle ones listed first', () => {
    const { svc } = serviceWith(sched, [
      { name: 'Z', weight: 0 },
      { name: 'O', weight: 5, overloaded: true },
      { name: 'U', weight: 1, active: 9 },
    ]);
    const picks = pick(svc, 5);
    if (MAY_REFUSE.has(name)) for (const p of picks) expect(['U', null]).toContain(p);
    else expect(picks).toEqual(['U', 'U', 'U', 'U', 'U']);
  });

  it('returns null when nothing is usable', () => {
    const { svc } = serviceWith(sched, [
      { name: 'Z', weight: 0 },
      { name: 'O', weight: 5, overloaded: true },
    ]);
    expect(pick(svc, 2)).toEqual([null, null]);
  });

  if (RANDOM.has(name)) {
    it('keeps no per-service state: its choices come from the random source alone', () => {
      const { svc } = boundServiceWith(sched, [{ name: 'A', weight: 2 }]);
      expect(svc.schedData).toBeUndefined();
    });
  } else {
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
  }
});
