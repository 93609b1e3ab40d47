// Power of two choices (ip_vs_twos.c, Mitzenmacher): draw two dests at random, each with a chance
// proportional to its weight, and keep the one with the smaller overhead / weight.
//
// How the kernel draws, and so how we do:
// - Only usable dests (weight > 0, not overloaded) take part. Their weights are summed to `total`;
//   with none, the pick is null and no random number is used.
// - Two numbers are drawn, each uniform over [0, total] (inclusive: `random() % (total + 1)`).
//   Walking svc.dests in list order, each usable dest's weight is taken off both numbers, and a
//   draw lands on the first dest where its number reaches 0 or below. A draw of 0 therefore lands
//   on the first usable dest, which gets weight + 1 of the total + 1 outcomes; every other usable
//   dest gets exactly its weight. Since a draw is at most `total`, both always land.
// - The two draws are independent, so both may land on the same dest; that dest is then the pick.
// - The second draw wins only when strictly better: overhead1 * weight2 > overhead2 * weight1
//   (cross-multiplied, no division). On equal ratios the first draw is kept.
//
// The kernel multiplies in 32-bit ints; here the products are exact JS numbers while they stay
// below 2^53, which at the maximum weight 65535 means over 2^29 active connections on one dest.
// The kernel first used `prandom_u32() % n` and now `get_random_u32_below(n)`; both cover the same
// range uniformly (up to the modulo's bias of at most n / 2^32), so the simpler modulo is kept.

import { randomBytes } from 'node:crypto';
import { type Dest, destOverhead, destUsable, type Scheduler, type Service } from '../ip-vs';

/** A source of random uint32s (integers in [0, 2^32)). `makeTwos` draws two per pick. */
export type RandomUint32 = () => number;

/**
 * A twos scheduler drawing from `random`, which must return uint32s. Tests inject a seeded or
 * scripted source; the first number returned decides the first choice, the second the second.
 */
export function makeTwos(random: RandomUint32): Scheduler {
  return {
    name: 'twos',

    schedule(svc: Service): Dest | null {
      const dests = svc.dests;
      const n = dests.length;

      let total = 0;
      for (let i = 0; i < n; i++) {
        const d = dests[i];
        if (destUsable(d)) total += d.weight;
      }
      if (total === 0) return null;

      const span = total + 1;
      let left1 = (random() >>> 0) % span;
      let left2 = (random() >>> 0) % span;

      let first: Dest | null = null;
      let second: Dest | null = null;
      for (let i = 0; i < n; i++) {
        const d = dests[i];
        if (!destUsable(d)) continue;
        left1 -= d.weight;
        left2 -= d.weight;
        if (first === null && left1 <= 0) first = d;
        if (second === null && left2 <= 0) second = d;
        if (first !== null && second !== null) break;
      }
      // Both draws are at most `total`, so the walk above always lands both.
      const a = first!;
      const b = second!;
      return destOverhead(a) * b.weight > destOverhead(b) * a.weight ? b : a;
    },
  };
}

/**
 * A fast seeded uint32 generator: a Weyl sequence (step 0x9e3779b9, the golden ratio in 32 bits)
 * passed through an xor-shift/multiply mixer (the "lowbias32" constants from hash-prospector), so
 * the low bits used by the modulo are as well mixed as the high ones. Not cryptographic; a
 * scheduler needs spread, not secrecy.
 */
function weylMix32(seed: number): RandomUint32 {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
}

/** The registered twos scheduler; its generator is seeded once from the OS at module load. */
export const twos: Scheduler = makeTwos(weylMix32(randomBytes(4).readUInt32LE(0)));
