// The rate estimator of IPVS (the kernel's ip_vs_est.c), for the global stats and each service
// and dest: every 2 seconds it takes the counter deltas and folds them into a moving average,
//
//   avg += (rate - avg) / 4          (W = 2^-2, so the average covers about the last 8 s)
//
// in fixed point: conns and packets per second scaled by 2^10, bytes per second by 2^5. Both are
// sampled over 2 s, so the 2 s delta is shifted left by 9 (resp. 4), not 10 (resp. 5).
//
// Kernel facts this rests on (net/netfilter/ipvs/ip_vs_est.c, 64-bit estimator of 4.x and later):
// - last counters and averages are u64; the update is `avg += ((s64)rate - (s64)avg) >> 2`, an
//   arithmetic shift, i.e. floor division by 4 also when the difference is negative. So with a
//   constant rate R >= 3 the average climbs to R - 3 and stays there (floor((3 * avg + R) / 4) = avg),
//   and with no traffic it decays by floor(3 * avg / 4) down to exactly 0 (3 -> 2 -> 1 -> 0).
// - the read-out (ip_vs_read_estimator) rounds: (cps + 0x1FF) >> 10, (bps + 0xF) >> 5: exactly
//   half a unit rounds down, anything above rounds up.
// - zeroing (-Z, ip_vs_zero_estimator) sets the 5 averages to 0 and the last counters to the
//   counters' current reading; the kernel keeps its counters running and shows them relative to
//   a saved base, while lvs-ts zeroes its counters in place, so here the base is simply the
//   counters as they are when reset() runs.
//
// Counters are JS numbers (exact integers below 2^53), so the arithmetic is division and
// Math.floor, never `>>` (32-bit). It stays exact while a 2 s delta is below 2^53 / 2^9 packets
// (~1.7e13) or 2^53 / 2^4 bytes (~5.6e14, ~2 Pbit/s).

import type { Stats } from '../ip-vs';

/** The estimator runs every 2 s (the kernel's 2 * HZ). */
export const EST_INTERVAL_MS = 2000;

/** cps / pps are kept scaled by 2^10; a 2 s delta is multiplied by 2^10 / 2 = 2^9. */
const PKT_SCALE = 1024;
const PKT_DELTA_FACTOR = 512;
const PKT_ROUND = 0x1ff;
/** bps is kept scaled by 2^5; a 2 s delta is multiplied by 2^5 / 2 = 2^4. */
const BYTE_SCALE = 32;
const BYTE_DELTA_FACTOR = 16;
const BYTE_ROUND = 0xf;
/** W = 2^-2. */
const WEIGHT_DIVISOR = 4;

/** Per-second rates as the kernel reports them (ipvsadm --rate, /proc/net/ip_vs_stats). */
export interface Rates {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export function newRates(): Rates {
  return { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
}

/** `avg += (s64)(rate - avg) >> 2`: an arithmetic shift rounds towards minus infinity. */
function fold(avg: number, rate: number): number {
  return avg + Math.floor((rate - avg) / WEIGHT_DIVISOR);
}

/**
 * Counter growth since the last sample. A counter below its last sample was zeroed in place
 * (lvs-ts zeroes the Stats themselves on -Z): it counts from 0. The kernel never sees this, as
 * its counters only grow.
 */
function delta(now: number, last: number): number {
  return now >= last ? now - last : now;
}

function readPkts(avg: number): number {
  return Math.floor((avg + PKT_ROUND) / PKT_SCALE);
}

function readBytes(avg: number): number {
  return Math.floor((avg + BYTE_ROUND) / BYTE_SCALE);
}

/** The kernel's struct ip_vs_estimator for one Stats object. */
export class RateEstimator {
  private lastConns: number;
  private lastInPkts: number;
  private lastOutPkts: number;
  private lastInBytes: number;
  private lastOutBytes: number;
  private cpsAvg = 0;
  private inPpsAvg = 0;
  private outPpsAvg = 0;
  private inBpsAvg = 0;
  private outBpsAvg = 0;

  /** Starts from the counters' current values with zero averages. */
  constructor(readonly stats: Stats) {
    this.lastConns = stats.conns;
    this.lastInPkts = stats.inPkts;
    this.lastOutPkts = stats.outPkts;
    this.lastInBytes = stats.inBytes;
    this.lastOutBytes = stats.outBytes;
  }

  /** Connections per second, scaled by 2^10 (the kernel's e->cps). */
  get cps(): number {
    return this.cpsAvg;
  }
  /** Incoming packets per second, scaled by 2^10. */
  get inPps(): number {
    return this.inPpsAvg;
  }
  /** Outgoing packets per second, scaled by 2^10. */
  get outPps(): number {
    return this.outPpsAvg;
  }
  /** Incoming bytes per second, scaled by 2^5. */
  get inBps(): number {
    return this.inBpsAvg;
  }
  /** Outgoing bytes per second, scaled by 2^5. */
  get outBps(): number {
    return this.outBpsAvg;
  }

  /** One estimation run; call every EST_INTERVAL_MS. Allocates nothing. */
  tick(): void {
    const s = this.stats;
    this.cpsAvg = fold(this.cpsAvg, delta(s.conns, this.lastConns) * PKT_DELTA_FACTOR);
    this.lastConns = s.conns;
    this.inPpsAvg = fold(this.inPpsAvg, delta(s.inPkts, this.lastInPkts) * PKT_DELTA_FACTOR);
    this.lastInPkts = s.inPkts;
    this.outPpsAvg = fold(this.outPpsAvg, delta(s.outPkts, this.lastOutPkts) * PKT_DELTA_FACTOR);
    this.lastOutPkts = s.outPkts;
    this.inBpsAvg = fold(this.inBpsAvg, delta(s.inBytes, this.lastInBytes) * BYTE_DELTA_FACTOR);
    this.lastInBytes = s.inBytes;
    this.outBpsAvg = fold(this.outBpsAvg, delta(s.outBytes, this.lastOutBytes) * BYTE_DELTA_FACTOR);
    this.lastOutBytes = s.outBytes;
  }

  /** The rounded per-second rates (ip_vs_read_estimator), written into `out` when given. */
  rates(out: Rates = newRates()): Rates {
    out.conns = readPkts(this.cpsAvg);
    out.inPkts = readPkts(this.inPpsAvg);
    out.outPkts = readPkts(this.outPpsAvg);
    out.inBytes = readBytes(this.inBpsAvg);
    out.outBytes = readBytes(this.outBpsAvg);
    return out;
  }

  /** -Z: zero the averages and measure from the counters' current values on. */
  reset(): void {
    const s = this.stats;
    this.lastConns = s.conns;
    this.lastInPkts = s.inPkts;
    this.lastOutPkts = s.outPkts;
    this.lastInBytes = s.inBytes;
    this.lastOutBytes = s.outBytes;
    this.cpsAvg = 0;
    this.inPpsAvg = 0;
    this.outPpsAvg = 0;
    this.inBpsAvg = 0;
    this.outBpsAvg = 0;
  }
}

/**
 * The estimators of one director (the kernel's per-netns estimator list): the global stats plus
 * every service and dest. add/remove allocate or free; tickAll() walks a dense array.
 */
export class EstimatorSet {
  private readonly list: RateEstimator[] = [];
  private readonly slot = new Map<Stats, number>();

  get size(): number {
    return this.list.length;
  }

  /** Starts estimating `stats` (from its current counters); adding it again returns the same one. */
  add(stats: Stats): RateEstimator {
    const i = this.slot.get(stats);
    if (i !== undefined) return this.list[i];
    const est = new RateEstimator(stats);
    this.slot.set(stats, this.list.length);
    this.list.push(est);
    return est;
  }

  /** Stops estimating `stats`; false when it was not tracked. */
  remove(stats: Stats): boolean {
    const i = this.slot.get(stats);
    if (i === undefined) return false;
    this.slot.delete(stats);
    const last = this.list.pop()!;
    if (i < this.list.length) {
      this.list[i] = last;
      this.slot.set(last.stats, i);
    }
    return true;
  }

  get(stats: Stats): RateEstimator | undefined {
    const i = this.slot.get(stats);
    return i === undefined ? undefined : this.list[i];
  }

  /** One estimation run over every tracked Stats; call every EST_INTERVAL_MS. */
  tickAll(): void {
    const list = this.list;
    for (let i = 0; i < list.length; i++) list[i].tick();
  }

  /** -Z of everything: each estimator restarts from its counters' current values. */
  resetAll(): void {
    const list = this.list;
    for (let i = 0; i < list.length; i++) list[i].reset();
  }
}
