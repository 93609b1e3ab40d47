// The IPVS rate estimator (ip_vs_est.c). Every expected number below is worked out by hand from
// the kernel's formulas, with R the scaled 2 s rate (delta << 9 for conns/packets, << 4 for bytes):
//   avg' = avg + floor((R - avg) / 4)  = floor((3 * avg + R) / 4)
//   read-out: packets (avg + 511) >> 10, bytes (avg + 15) >> 5
// For a constant R the distance e = R - avg obeys e' = ceil(3 * e / 4), which is handy by hand.

import { describe, expect, it } from 'vitest';
import { EstimatorSet, newRates, RateEstimator } from '../../src/ctl/estimator';
import { newStats, type Stats, zeroStats } from '../../src/ip-vs';

/** Runs `ticks` estimator ticks, adding `inPkts` incoming packets before each. */
function runInPkts(est: RateEstimator, ticks: number, inPkts: number): void {
  for (let i = 0; i < ticks; i++) {
    est.stats.inPkts += inPkts;
    est.tick();
  }
}

function runInBytes(est: RateEstimator, ticks: number, inBytes: number): void {
  for (let i = 0; i < ticks; i++) {
    est.stats.inBytes += inBytes;
    est.tick();
  }
}

describe('RateEstimator: constant traffic', () => {
  it('1000 packets per 2 s reads 125, 219, 289, 342, 381, 411, 433, 450 pkt/s over the first 8 ticks', () => {
    // R = 1000 << 9 = 512000; e0 = 512000, e' = ceil(3e/4):
    // e = 384000, 288000, 216000, 162000, 121500, 91125, 68344 (68343.75), 51258
    // read-out = floor((512000 - e + 511) / 1024) = floor((512511 - e) / 1024):
    //   128511 -> 125, 224511 -> 219, 296511 -> 289, 350511 -> 342,
    //   391011 -> 381, 421386 -> 411, 444167 -> 433, 461253 -> 450
    const est = new RateEstimator(newStats());
    const seen: number[] = [];
    const avgs: number[] = [];
    for (let i = 0; i < 8; i++) {
      runInPkts(est, 1, 1000);
      seen.push(est.rates().inPkts);
      avgs.push(est.inPps);
    }
    expect(avgs).toEqual([128000, 224000, 296000, 350000, 390500, 420875, 443656, 460742]);
    expect(seen).toEqual([125, 219, 289, 342, 381, 411, 433, 450]);
  });

  it('1000 packets per 2 s first reads 500 pkt/s at tick 25 and its average sticks at R - 3', () => {
    // Continuing e' = ceil(3e/4) from e8 = 51258: 38444, 28833, 21625, 16219, 12165, 9124, 6843,
    // 5133, 3850, 2888, 2166, 1625, 1219, 915, 687, e24 = 516, e25 = 387.
    // Read-out floor((512511 - e) / 1024) is 500 once e <= 511: e24 = 516 -> 511995 -> 499,
    // e25 = 387 -> 512124 -> 500.
    // Then 291, 219, 165, 124, 93, 70, 53, 40, 30, 23, 18, 14, 11, 9, 7, 6, 5, e43 = 4, e44 = 3,
    // and ceil(9/4) = 3: the average stays at 512000 - 3 = 511997 for ever.
    const est = new RateEstimator(newStats());
    runInPkts(est, 24, 1000);
    expect(est.inPps).toBe(512000 - 516);
    expect(est.rates().inPkts).toBe(499);
    runInPkts(est, 1, 1000);
    expect(est.inPps).toBe(512000 - 387);
    expect(est.rates().inPkts).toBe(500);
    runInPkts(est, 18, 1000);
    expect(est.inPps).toBe(511996);
    runInPkts(est, 1, 1000);
    expect(est.inPps).toBe(511997);
    runInPkts(est, 56, 1000);
    expect(est.inPps).toBe(511997);
    expect(est.rates().inPkts).toBe(500);
  });

  it('scales each counter on its own: conns and packets by 2^9 per 2 s, bytes by 2^4', () => {
    // One tick from 0: avg = floor(R / 4).
    // conns 10:        R = 5120,    avg 1280,    (1280 + 511) >> 10 = 1791 >> 10 = 1
    // inPkts 1000:     R = 512000,  avg 128000,  128511 >> 10 = 125
    // outPkts 2000:    R = 1024000, avg 256000,  256511 >> 10 = 250
    // inBytes 64000:   R = 1024000, avg 256000,  (256000 + 15) >> 5 = 8000
    // outBytes 1e6:    R = 16e6,    avg 4e6,     (4000000 + 15) >> 5 = 125000
    const s = newStats();
    const est = new RateEstimator(s);
    s.conns += 10;
    s.inPkts += 1000;
    s.outPkts += 2000;
    s.inBytes += 64000;
    s.outBytes += 1_000_000;
    est.tick();
    expect([est.cps, est.inPps, est.outPps, est.inBps, est.outBps]).toEqual([1280, 128000, 256000, 256000, 4000000]);
    expect(est.rates()).toEqual({ conns: 1, inPkts: 125, outPkts: 250, inBytes: 8000, outBytes: 125000 });
  });
});

describe('RateEstimator: changing traffic', () => {
  it('a step up to 1000 packets per 2 s and back to 0 reads 125, 219, 289, then 217, 163, 122', () => {
    // Up: avg 128000, 224000, 296000 (see above).
    // Down, R = 0: avg' = avg + floor(-avg / 4): 296000 - 74000 = 222000, 222000 - 55500 = 166500,
    // 166500 - 41625 = 124875.
    // Read-out: 222511 >> 10 = 217 (217 * 1024 = 222208), 167011 >> 10 = 163 (166912),
    // 125386 >> 10 = 122 (124928).
    const est = new RateEstimator(newStats());
    const seen: number[] = [];
    for (const n of [1000, 1000, 1000, 0, 0, 0]) {
      runInPkts(est, 1, n);
      seen.push(est.rates().inPkts);
    }
    expect(est.inPps).toBe(124875);
    expect(seen).toEqual([125, 219, 289, 217, 163, 122]);
  });

  it('handles more than 2^32 bytes per interval and a fall of more than 2^32 scaled units', () => {
    // 5e9 bytes per 2 s (> 2^32 = 4294967296): R = 5e9 << 4 = 8e10.
    // avg 2e10, floor((6e10 + 8e10) / 4) = 3.5e10, floor((10.5e10 + 8e10) / 4) = 4.625e10.
    // Read-out (avg + 15) >> 5: 2e10 / 32 = 625000000, 3.5e10 / 32 = 1093750000,
    // 4.625e10 / 32 = 1445312500 (all exact, the +15 does not reach the next unit).
    // Then no traffic: 4.625e10 + floor(-4.625e10 / 4) = 4.625e10 - 1.15625e10 = 3.46875e10,
    // read 3.46875e10 / 32 = 1083984375.
    const est = new RateEstimator(newStats());
    const seen: number[] = [];
    for (const n of [5e9, 5e9, 5e9, 0]) {
      runInBytes(est, 1, n);
      seen.push(est.rates().inBytes);
    }
    expect(est.inBps).toBe(34_687_500_000);
    expect(seen).toEqual([625_000_000, 1_093_750_000, 1_445_312_500, 1_083_984_375]);
  });

  it('decays to exactly 0 once the counters stop: 10 conns per 2 s for 2 ticks, then none', () => {
    // R = 10 << 9 = 5120: avg 1280, floor((3840 + 5120) / 4) = 2240.
    // Then avg' = floor(3 * avg / 4): 1680, 1260, 945, 708, 531, 398, 298, 223, 167, 125, 93, 69,
    // 51, 38, 28, 21, 15, 11, 8, 6, 4, 3, 2, 1, 0 (tick 27), and 0 after that.
    // Read-out (avg + 511) >> 10: 1 while avg >= 513, so 2240 -> 2, 1680 -> 2, 1260 -> 1,
    // 945 -> 1, 708 -> 1, 531 -> 1, 398 -> 0.
    const s = newStats();
    const est = new RateEstimator(s);
    const avgs: number[] = [];
    const seen: number[] = [];
    for (let t = 1; t <= 30; t++) {
      if (t <= 2) s.conns += 10;
      est.tick();
      avgs.push(est.cps);
      seen.push(est.rates().conns);
    }
    expect(avgs).toEqual([
      1280, 2240, 1680, 1260, 945, 708, 531, 398, 298, 223, 167, 125, 93, 69, 51, 38, 28, 21, 15, 11, 8, 6, 4, 3, 2, 1,
      0, 0, 0, 0,
    ]);
    expect(seen.slice(0, 9)).toEqual([1, 2, 2, 1, 1, 1, 1, 0, 0]);
    expect(seen.slice(9).every((r) => r === 0)).toBe(true);
  });

  it('1 byte per 2 s sticks at scaled 13 (reads 0), and the arithmetic shift still decays 13 to 0', () => {
    // R = 1 << 4 = 16: avg + floor((16 - avg) / 4): 0 -> 4 -> 7 -> 9 -> 10 -> 11 -> 12 -> 13 -> 13
    // (floor(3/4) = 0: stuck at R - 3). (13 + 15) >> 5 = 0, so 0.5 B/s reads 0.
    // No traffic: 13 + floor(-13/4) = 9, 9 - 3 = 6, 6 - 2 = 4, 4 - 1 = 3, 3 + floor(-3/4) = 2,
    // 2 + floor(-2/4) = 1, 1 + floor(-1/4) = 0. (A division truncating towards 0 would go
    // 13, 10, 8, 6, 5, 4, 3 and stay at 3.)
    const est = new RateEstimator(newStats());
    const up: number[] = [];
    for (let i = 0; i < 9; i++) {
      runInBytes(est, 1, 1);
      up.push(est.inBps);
      expect(est.rates().inBytes).toBe(0);
    }
    expect(up).toEqual([4, 7, 9, 10, 11, 12, 13, 13, 13]);
    const down: number[] = [];
    for (let i = 0; i < 8; i++) {
      est.tick();
      down.push(est.inBps);
    }
    expect(down).toEqual([9, 6, 4, 3, 2, 1, 0, 0]);
  });
});

describe('RateEstimator: read-out rounding', () => {
  it('rounds exactly half a unit down and anything above it up, for packets and bytes', () => {
    // One tick of d from 0: pps avg = floor(d * 512 / 4) = 128d, bps avg = floor(d * 16 / 4) = 4d;
    // both read d / 8 per second:
    //   packets floor((128d + 511) / 1024): d=4 -> 1023 -> 0; d=5 -> 1151 -> 1; d=12 -> 2047 -> 1; d=13 -> 2175 -> 2
    //   bytes   floor((4d + 15) / 32):      d=4 -> 31 -> 0;   d=5 -> 35 -> 1;   d=12 -> 63 -> 1;   d=13 -> 67 -> 2
    const cases: [number, number][] = [
      [4, 0],
      [5, 1],
      [12, 1],
      [13, 2],
    ];
    for (const [d, want] of cases) {
      const s = newStats();
      const est = new RateEstimator(s);
      s.outPkts += d;
      s.outBytes += d;
      est.tick();
      expect(est.outPps).toBe(128 * d);
      expect(est.outBps).toBe(4 * d);
      expect(est.rates()).toMatchObject({ outPkts: want, outBytes: want });
    }
  });

  it('writes into a caller-supplied Rates object', () => {
    const s = newStats();
    const est = new RateEstimator(s);
    s.inPkts += 1000;
    est.tick();
    const out = newRates();
    expect(est.rates(out)).toBe(out);
    expect(out.inPkts).toBe(125);
  });
});

describe('RateEstimator: baseline and reset (-Z)', () => {
  it('measures only the traffic after it starts, not the counters it finds', () => {
    // Counters at 1e6 when added, +1000 in the first interval: one tick of R = 512000 -> 125.
    const s: Stats = { conns: 1e6, inPkts: 1e6, outPkts: 1e6, inBytes: 1e9, outBytes: 1e9 };
    const est = new RateEstimator(s);
    s.inPkts += 1000;
    est.tick();
    expect(est.rates()).toEqual({ conns: 0, inPkts: 125, outPkts: 0, inBytes: 0, outBytes: 0 });
  });

  it('reset() zeroes the averages and re-bases on the current counters', () => {
    // Three ticks of 1000 packets: avg 296000 (reads 289). Another 700 packets arrive, then reset:
    // averages 0, base = current counter, so the next tick sees only the following 1000:
    // avg 128000, reads 125 (the 700 before the reset are not counted).
    const est = new RateEstimator(newStats());
    runInPkts(est, 3, 1000);
    expect(est.rates().inPkts).toBe(289);
    est.stats.inPkts += 700;
    est.reset();
    expect([est.cps, est.inPps, est.outPps, est.inBps, est.outBps]).toEqual([0, 0, 0, 0, 0]);
    expect(est.rates()).toEqual(newRates());
    runInPkts(est, 1, 1000);
    expect(est.inPps).toBe(128000);
    expect(est.rates().inPkts).toBe(125);
  });

  it('after the Stats are zeroed in place, the next tick counts from 0 whether reset() ran before or after', () => {
    // zeroStats then reset(): base 0, +1000 -> avg 128000 -> 125.
    // reset() then zeroStats: the counter falls below its base, so it counts from 0: same 125.
    // zeroStats without reset(): the average is not zeroed (296000), the delta is the 1000 since
    // zeroing: 296000 + floor((512000 - 296000) / 4) = 350000 -> 342 (no negative rate).
    const a = new RateEstimator(newStats());
    runInPkts(a, 3, 1000);
    zeroStats(a.stats);
    a.reset();
    runInPkts(a, 1, 1000);
    expect(a.inPps).toBe(128000);

    const b = new RateEstimator(newStats());
    runInPkts(b, 3, 1000);
    b.reset();
    zeroStats(b.stats);
    runInPkts(b, 1, 1000);
    expect(b.inPps).toBe(128000);

    const c = new RateEstimator(newStats());
    runInPkts(c, 3, 1000);
    zeroStats(c.stats);
    runInPkts(c, 1, 1000);
    expect(c.inPps).toBe(350000);
    expect(c.rates().inPkts).toBe(342);
  });
});

describe('EstimatorSet', () => {
  it('ticks every tracked Stats on its own', () => {
    // Each gets one tick of its own traffic: 1000 pkts -> 125, 2000 -> 250, 4000 -> 500
    // (avg 128000d / 1000, read (avg + 511) >> 10).
    const set = new EstimatorSet();
    const all = [newStats(), newStats(), newStats()];
    for (const s of all) set.add(s);
    all[0].inPkts += 1000;
    all[1].inPkts += 2000;
    all[2].inPkts += 4000;
    set.tickAll();
    expect(all.map((s) => set.get(s)!.rates().inPkts)).toEqual([125, 250, 500]);
  });

  it('adding the same Stats twice keeps one estimator, so it is not ticked twice', () => {
    // Ticked once: avg 128000 (reads 125). A second tick with no new traffic would give
    // 128000 + floor(-128000 / 4) = 96000 (reads 94).
    const set = new EstimatorSet();
    const s = newStats();
    const est = set.add(s);
    expect(set.add(s)).toBe(est);
    expect(set.size).toBe(1);
    s.inPkts += 1000;
    set.tickAll();
    expect(est.inPps).toBe(128000);
  });

  it('removing one, first, middle or last, stops only that one', () => {
    // After removal, the other two still tick: one more tick of 1000 gives avg 224000 (reads 219),
    // while the removed one stays at 128000 (125).
    for (const gone of [0, 1, 2]) {
      const set = new EstimatorSet();
      const all = [newStats(), newStats(), newStats()];
      const ests = all.map((s) => set.add(s));
      for (const s of all) s.inPkts += 1000;
      set.tickAll();
      expect(set.remove(all[gone])).toBe(true);
      expect(set.remove(all[gone])).toBe(false);
      expect(set.get(all[gone])).toBeUndefined();
      expect(set.size).toBe(2);
      for (const s of all) s.inPkts += 1000;
      set.tickAll();
      expect(ests.map((e) => e.inPps)).toEqual([0, 1, 2].map((i) => (i === gone ? 128000 : 224000)));
      for (let i = 0; i < 3; i++) if (i !== gone) expect(set.get(all[i])).toBe(ests[i]);
    }
  });

  it('resetAll() zeroes every average and re-bases every counter', () => {
    const set = new EstimatorSet();
    const a = newStats();
    const b = newStats();
    set.add(a);
    set.add(b);
    a.conns += 10;
    b.outBytes += 1000;
    set.tickAll();
    set.resetAll();
    expect(set.get(a)!.rates()).toEqual(newRates());
    expect(set.get(b)!.rates()).toEqual(newRates());
    set.tickAll();
    expect(set.get(a)!.cps).toBe(0);
    expect(set.get(b)!.outBps).toBe(0);
  });
});
