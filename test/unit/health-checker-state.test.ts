// keepalived's checker timing with an injected clock (src/health/checker-state.ts): warmup jitter,
// alpha, retries before "down", immediate "up", a real server needing all its checkers, and
// quorum with hysteresis.

import { describe, expect, it } from 'vitest';
import { CheckerState, type CheckerTiming, QuorumState, RealServerHealth } from '../../src/health/checker-state';

const T: CheckerTiming = { delayLoop: 6, retry: 2, delayBeforeRetry: 1, warmup: 4, alpha: false };

describe('CheckerState', () => {
  it('spreads the first check over [0, warmup] and starts up, or down with alpha', () => {
    expect(new CheckerState(T, 100, () => 0).next).toBe(100);
    expect(new CheckerState(T, 100, () => 0.5).next).toBe(102);
    expect(new CheckerState(T, 100, () => 0).up).toBe(true);
    expect(new CheckerState({ ...T, alpha: true }, 100, () => 0).up).toBe(false);
  });

  it('retries `retry` times, delay_before_retry apart, before going down; then checks every delay_loop', () => {
    const c = new CheckerState(T, 0, () => 0);
    const log: string[] = [];
    const step = (ok: boolean) => {
      const now = c.next;
      log.push(`${now}:${c.result(ok, now) ?? '-'}:${c.up ? 'up' : 'down'}`);
    };
    step(true); // t=0
    step(false); // t=6: first failure, retry at 7
    step(false); // t=7: second, retry at 8
    step(false); // t=8: third > retry 2: down, next at 14
    step(false); // t=14: still down, next 20
    step(true); // t=20: up at once
    expect(log).toEqual(['0:-:up', '6:-:up', '7:-:up', '8:down:down', '14:-:down', '20:up:up']);
    expect(c.next).toBe(26);
  });

  it('forgets earlier failures after a success', () => {
    const c = new CheckerState(T, 0, () => 0);
    expect([c.result(false, 0), c.result(false, 1), c.result(true, 2)]).toEqual([null, null, null]);
    expect([c.result(false, 8), c.result(false, 9), c.result(false, 10)]).toEqual([null, null, 'down']);
  });

  it('with alpha, comes up on the first success', () => {
    const c = new CheckerState({ ...T, alpha: true }, 0, () => 0);
    expect(c.result(true, 0)).toBe('up');
  });

  it('bounds the time to notice a dead server: delay_loop + retries + connect timeouts', () => {
    expect(CheckerState.detectionTime(T, 5)).toBe(6 + 0.6 + 2 * 1 + 3 * 5);
  });
});

describe('RealServerHealth', () => {
  it('is up while every checker is; goes down with the first failing one, up with the last recovering', () => {
    const t1: CheckerTiming = { ...T, retry: 0 };
    const rs = new RealServerHealth([new CheckerState(t1, 0, () => 0), new CheckerState(t1, 0, () => 0)]);
    expect(rs.up).toBe(true);
    expect(rs.result(0, false, 0)).toBe('down');
    expect(rs.result(1, false, 0)).toBe(null);
    expect(rs.result(0, true, 6)).toBe(null);
    expect(rs.result(1, true, 6)).toBe('up');
    expect(new RealServerHealth([]).up).toBe(true);
  });
});

describe('QuorumState', () => {
  it('is lost below quorum - hysteresis and regained at quorum + hysteresis', () => {
    const q = new QuorumState(4, 1);
    expect([q.update(4), q.update(3), q.update(2)]).toEqual([null, null, 'down']);
    expect([q.update(4), q.update(5)]).toEqual([null, 'up']);
    const plain = new QuorumState();
    expect([plain.update(0), plain.update(1)]).toEqual(['down', 'up']);
  });
});
