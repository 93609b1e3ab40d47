// The kernel's ICMP error rate limits (core/icmp-rate.ts): the global bucket (icmp_msgs_burst
// then icmp_msgs_per_sec), the per-destination bucket (XRLIM_BURST_FACTOR then one per
// icmp_ratelimit), what the mask exempts, and the bounded destination table.

import { describe, expect, it } from 'vitest';
import {
  ICMP_MSGS_BURST,
  ICMP_MSGS_PER_SEC,
  ICMP_RATELIMIT,
  ICMP_RATEMASK,
  IcmpRateLimit,
  type IcmpRateOptions,
  PEER_PROBE,
  XRLIM_BURST_FACTOR,
} from '../../src/core/icmp-rate';

const PORT_UNREACH = [3, 3] as const;
const BASE = 0x0a000000;

/** A limiter on a fake millisecond clock; each sent message consumes exactly one credit unless told. */
function limiter(opts: IcmpRateOptions = {}) {
  const clock = { ms: 5_000_000 };
  const rate = new IcmpRateLimit(() => clock.ms, { consume: () => 1, ...opts });
  return { clock, rate };
}

/** How many of `n` port unreachables to `dst` (or to n distinct destinations) are allowed now. */
function sent(rate: IcmpRateLimit, n: number, dst?: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (rate.allow(...PORT_UNREACH, dst ?? BASE + i)) ok++;
  return ok;
}

describe('defaults', () => {
  it('are the kernel sysctls', () => {
    expect([ICMP_MSGS_PER_SEC, ICMP_MSGS_BURST, ICMP_RATELIMIT, ICMP_RATEMASK, XRLIM_BURST_FACTOR]).toEqual([
      1000, 50, 1000, 0x1818, 6,
    ]);
    const r = new IcmpRateLimit(() => 0);
    expect([r.icmpMsgsPerSec, r.icmpMsgsBurst, r.icmpRatelimit, r.icmpRatemask]).toEqual([1000, 50, 1000, 0x1818]);
  });
});

describe('global bucket (icmp_msgs_burst, icmp_msgs_per_sec)', () => {
  it('lets a burst of 50 through to distinct destinations, then none in the same millisecond', () => {
    const { rate } = limiter();
    expect(sent(rate, 200)).toBe(50);
    expect(rate.counts.rateLimitGlobal).toBe(150);
    expect(rate.counts.rateLimitHost).toBe(0);
  });

  it('earns nothing in less than 20 ms (HZ/50), then 20 credits for 20 ms', () => {
    const { clock, rate } = limiter();
    sent(rate, 50);
    clock.ms += 19;
    expect(rate.allow(...PORT_UNREACH, 0xc0000001)).toBe(false);
    clock.ms += 1;
    let ok = 0;
    for (let i = 0; i < 100; i++) if (rate.allow(...PORT_UNREACH, 0xc0000100 + i)) ok++;
    expect(ok).toBe(20);
  });

  it('sustains 1000 a second and never holds more than 50', () => {
    const { clock, rate } = limiter();
    let dst = BASE;
    let ok = 0;
    // One second in 1 ms steps, offering 20 messages each millisecond to fresh destinations.
    sent(rate, 50);
    for (let ms = 0; ms < 1000; ms++) {
      clock.ms += 1;
      for (let i = 0; i < 20; i++) if (rate.allow(...PORT_UNREACH, 0x20000000 + dst++)) ok++;
    }
    expect(ok).toBe(1000);
    // A long pause refills at most the burst.
    clock.ms += 60_000;
    expect(sent(rate, 200)).toBe(50);
  });

  it('follows icmp_msgs_per_sec and icmp_msgs_burst when changed', () => {
    const { clock, rate } = limiter();
    rate.icmpMsgsBurst = 10;
    rate.icmpMsgsPerSec = 100;
    expect(sent(rate, 50)).toBe(10);
    clock.ms += 19;
    expect(sent(rate, 50)).toBe(0);
    clock.ms += 81;
    expect(sent(rate, 50)).toBe(10);
  });

  it('consumes 0, 1 or 2 credits per message at random by default: 50 on average for a burst', () => {
    let total = 0;
    const rounds = 200;
    for (let r = 0; r < rounds; r++) {
      const rate = new IcmpRateLimit(() => 1_000_000);
      const n = sent(rate, 500);
      expect(n).toBeGreaterThanOrEqual(25);
      expect(n).toBeLessThanOrEqual(500);
      total += n;
    }
    // The expected burst is about 50 (a credit of one on average); far from 25 or 500.
    expect(total / rounds).toBeGreaterThan(40);
    expect(total / rounds).toBeLessThan(70);
  });

  it('only charges a message the destination limit let through', () => {
    const { rate } = limiter();
    // 6 to one destination pass, the next 994 are refused by its bucket and cost no credit.
    expect(sent(rate, 1000, 0x01020304)).toBe(6);
    expect(rate.counts.rateLimitHost).toBe(994);
    expect(sent(rate, 100)).toBe(44);
  });
});

describe('per-destination bucket (icmp_ratelimit, XRLIM_BURST_FACTOR)', () => {
  it('gives a destination 6 at once, then one a second', () => {
    const { clock, rate } = limiter();
    const dst = 0xc0a80002;
    expect(sent(rate, 20, dst)).toBe(6);
    clock.ms += 999;
    expect(rate.allow(...PORT_UNREACH, dst)).toBe(false);
    clock.ms += 1;
    expect(rate.allow(...PORT_UNREACH, dst)).toBe(true);
    expect(rate.allow(...PORT_UNREACH, dst)).toBe(false);
    for (let s = 0; s < 5; s++) {
      clock.ms += 1000;
      expect(sent(rate, 3, dst)).toBe(1);
    }
  });

  it('refills over time up to 6, not beyond', () => {
    const { clock, rate } = limiter();
    const dst = 0xc0a80002;
    sent(rate, 6, dst);
    clock.ms += 3000;
    expect(sent(rate, 10, dst)).toBe(3);
    clock.ms += 3_600_000;
    expect(sent(rate, 10, dst)).toBe(6);
  });

  it('keeps destinations apart', () => {
    const { rate } = limiter();
    expect(sent(rate, 10, 0xc0a80002)).toBe(6);
    expect(sent(rate, 10, 0xc0a80003)).toBe(6);
    expect(sent(rate, 10, 0xc0a80002)).toBe(0);
  });

  it('follows icmp_ratelimit', () => {
    const { clock, rate } = limiter();
    rate.icmpRatelimit = 100;
    const dst = 0xc0a80002;
    expect(sent(rate, 10, dst)).toBe(6);
    clock.ms += 100;
    expect(sent(rate, 10, dst)).toBe(1);
  });

  it('icmp_ratelimit 0 leaves only the global bucket', () => {
    const { rate } = limiter();
    rate.icmpRatelimit = 0;
    expect(sent(rate, 100, 0xc0a80002)).toBe(50);
    expect(rate.counts.rateLimitHost).toBe(0);
  });
});

describe('what is never limited (icmpv4_mask_allow)', () => {
  it('fragmentation needed (3/4), however many, without touching either bucket', () => {
    const { rate } = limiter();
    const dst = 0xc0a80002;
    for (let i = 0; i < 10_000; i++) expect(rate.allow(3, 4, dst)).toBe(true);
    expect(sent(rate, 10, dst)).toBe(6);
    expect(sent(rate, 100)).toBe(44);
  });

  it('types outside icmp_ratemask: echo reply, redirect, and types above NR_ICMP_TYPES', () => {
    const { rate } = limiter();
    for (const type of [0, 5, 8, 13, 14, 19, 42, 255]) {
      for (let i = 0; i < 1000; i++) expect(rate.allow(type, 0, 0xc0a80002)).toBe(true);
    }
    expect(rate.counts).toEqual({ rateLimitGlobal: 0, rateLimitHost: 0, peerEvictions: 0 });
  });

  it('every type in the mask is limited: dest unreachable, source quench, time exceeded, parameter problem', () => {
    for (const [type, code] of [
      [3, 3],
      [3, 1],
      [4, 0],
      [11, 0],
      [11, 1],
      [12, 0],
    ] as const) {
      const { rate } = limiter();
      let ok = 0;
      for (let i = 0; i < 20; i++) if (rate.allow(type, code, 0xc0a80002)) ok++;
      expect(ok, `type ${type} code ${code}`).toBe(6);
    }
  });

  it('follows icmp_ratemask when changed', () => {
    const { rate } = limiter();
    rate.icmpRatemask = 1 << 0; // echo reply only
    for (let i = 0; i < 20; i++) expect(rate.allow(3, 3, 0xc0a80002)).toBe(true);
    expect(sent(rate, 20, 0xc0a80002)).toBe(20);
    let ok = 0;
    for (let i = 0; i < 20; i++) if (rate.allow(0, 0, 0xc0a80002)) ok++;
    expect(ok).toBe(6);
  });
});

describe('the bounded destination table', () => {
  it('rejects a size that is not a power of two of at least PEER_PROBE', () => {
    expect(() => new IcmpRateLimit(() => 0, { peerSlots: 12 })).toThrow(RangeError);
    expect(() => new IcmpRateLimit(() => 0, { peerSlots: PEER_PROBE / 2 })).toThrow(RangeError);
    expect(() => new IcmpRateLimit(() => 0, { peerSlots: PEER_PROBE })).not.toThrow();
  });

  it('when full, evicts the least recently used destination, which then starts over with a full bucket', () => {
    // One window: PEER_PROBE slots, every address shares it.
    const { clock, rate } = limiter({ peerSlots: PEER_PROBE });
    rate.icmpMsgsBurst = 1000;
    const dsts = Array.from({ length: PEER_PROBE }, (_, i) => 0xc0a80100 + i);
    for (const dst of dsts) {
      clock.ms += 1;
      expect(sent(rate, 10, dst)).toBe(6);
    }
    expect(rate.counts.peerEvictions).toBe(0);
    // Everyone is limited; asked again in turn (a use each), dsts[0] stays the least recently used.
    for (const dst of dsts.slice(1)) {
      clock.ms += 1;
      expect(rate.allow(...PORT_UNREACH, dst)).toBe(false);
    }
    clock.ms += 1;
    const newcomer = 0xc0a80200;
    expect(sent(rate, 10, newcomer)).toBe(6);
    expect(rate.counts.peerEvictions).toBe(1);
    // dsts[0] lost its entry: back, it evicts the next least recently used (dsts[1]) and gets a fresh burst.
    expect(sent(rate, 10, dsts[0])).toBe(6);
    expect(rate.counts.peerEvictions).toBe(2);
    // The others kept theirs and stay limited.
    for (const dst of dsts.slice(2)) expect(rate.allow(...PORT_UNREACH, dst)).toBe(false);
    expect(rate.allow(...PORT_UNREACH, newcomer)).toBe(false);
    expect(rate.counts.peerEvictions).toBe(2);
  });

  it('holds the default table of 4096 slots steady under 100,000 destinations', () => {
    const { clock, rate } = limiter();
    rate.icmpMsgsBurst = 1 << 30;
    rate.icmpMsgsPerSec = 1 << 30;
    let ok = 0;
    for (let i = 0; i < 100_000; i++) {
      if (i % 1000 === 0) clock.ms += 20;
      if (rate.allow(...PORT_UNREACH, 0x0b000000 + i)) ok++;
    }
    expect(ok).toBe(100_000);
    expect(rate.counts.peerEvictions).toBeGreaterThan(100_000 - 4096 - 1);
    // A destination seen last is still tracked: its bucket is down by one.
    expect(sent(rate, 10, 0x0b000000 + 99_999)).toBe(5);
  });
});
