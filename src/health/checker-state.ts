// When to check a real server and what a result means, as keepalived's checkers decide it
// (REFERENCE.md §3.1), with no I/O and an injected clock, so the timing is unit-testable:
//
// - CheckerState: one checker (TCP_CHECK, HTTP_GET, ...). Starts up, or down with `alpha`; the
//   first check comes after a random delay in [0, warmup]. A success after a failure is "up"
//   at once; a failure of an up checker is retried `retry` times, `delay_before_retry` apart,
//   before it is "down". Up or down, the next regular check is `delay_loop` later, plus a random
//   jitter of up to a tenth of it (at most 1 s), so checkers started together drift apart.
// - RealServerHealth: a real server is up while every one of its checkers is up.
// - QuorumState: a virtual server has quorum while the weights of its live real servers add up
//   to at least `quorum`; with `hysteresis` it is lost below quorum - hysteresis and regained at
//   quorum + hysteresis (keepalived's thresholds).
//
// Times are seconds on the caller's clock. Nothing here allocates per check.

/** A checker's timing knobs, keepalived's names (defaults: keepalived-conf.ts). */
export interface CheckerTiming {
  /** Seconds between regular checks (delay_loop, default 60). */
  delayLoop: number;
  /** Failures retried before the checker is down (retry, default 1). */
  retry: number;
  /** Seconds between those retries (delay_before_retry). */
  delayBeforeRetry: number;
  /** The first check comes after a random delay of up to this (warmup; default: delay_loop). */
  warmup: number;
  /** Start down, until a check succeeds (alpha). */
  alpha: boolean;
}

/** A transition a result caused, for the caller to log and act on. */
export type Transition = 'up' | 'down' | null;

export class CheckerState {
  up: boolean;
  /** When the next check is due. */
  next: number;
  /** Consecutive failures while up (the retries used). */
  private failures = 0;

  /** `random` in [0, 1) spreads the first checks (jitter, so checks do not align). */
  constructor(
    readonly timing: CheckerTiming,
    now: number,
    private readonly random: () => number = Math.random,
  ) {
    this.up = !timing.alpha;
    this.next = now + random() * timing.warmup;
  }

  /** The next regular check after `now`: delay_loop later, plus the jitter. */
  private regular(now: number): number {
    return now + this.timing.delayLoop + this.random() * CheckerState.jitter(this.timing);
  }

  /** The most a regular check is delayed beyond delay_loop. */
  static jitter(t: CheckerTiming): number {
    return Math.min(t.delayLoop * 0.1, 1);
  }

  /** Record the result of the check that was due; returns the transition it caused, if any. */
  result(ok: boolean, now: number): Transition {
    const t = this.timing;
    if (ok) {
      this.failures = 0;
      this.next = this.regular(now);
      if (this.up) return null;
      this.up = true;
      return 'up';
    }
    if (!this.up) {
      this.next = this.regular(now);
      return null;
    }
    this.failures++;
    if (this.failures <= t.retry) {
      this.next = now + t.delayBeforeRetry;
      return null;
    }
    this.failures = 0;
    this.up = false;
    this.next = this.regular(now);
    return 'down';
  }

  /** Worst case from a failure's start to "down": what tests and operators wait for. */
  static detectionTime(t: CheckerTiming, connectTimeout: number): number {
    return t.delayLoop + CheckerState.jitter(t) + t.retry * t.delayBeforeRetry + (t.retry + 1) * connectTimeout;
  }
}

/** A real server with its checkers: up while all of them are (no checker: always up). */
export class RealServerHealth {
  constructor(readonly checkers: CheckerState[]) {}

  get up(): boolean {
    for (const c of this.checkers) if (!c.up) return false;
    return true;
  }

  /**
   * Record checker `i`'s result: the real server's own transition (it goes down with its first
   * failing checker and comes back up with its last recovering one).
   */
  result(i: number, ok: boolean, now: number): Transition {
    const before = this.up;
    this.checkers[i].result(ok, now);
    const after = this.up;
    return before === after ? null : after ? 'up' : 'down';
  }
}

/** A virtual server's quorum over its live real servers' weights. */
export class QuorumState {
  has = true;

  constructor(
    readonly quorum = 1,
    readonly hysteresis = 0,
  ) {}

  /** Re-decide for the live weight total; returns 'up' (regained), 'down' (lost) or null. */
  update(liveWeight: number): Transition {
    if (this.has && liveWeight < this.quorum - this.hysteresis) {
      this.has = false;
      return 'down';
    }
    if (!this.has && liveWeight >= this.quorum + this.hysteresis) {
      this.has = true;
      return 'up';
    }
    return null;
  }
}
