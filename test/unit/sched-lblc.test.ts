import { describe, expect, it } from 'vitest';
import type { Service } from '../../src/ip-vs';
import { lblc, lblcCached, lblcEntryCount } from '../../src/sched/lblc';
import {
  addDest,
  delDest,
  ipv4,
  makeService,
  nameOf,
  PKT,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

/** Engine time of the first packet: the 60-s GC ticks fall on T0 + 60k. */
const T0 = 1000;
const MIN = 60;
const HOUR = 3600;
const DAY = 24 * HOUR;

/** Schedules a packet to destination address `daddr` at time `now`; the name picked. */
function to(svc: Service, daddr: string | number, now: number): string | null {
  const d = typeof daddr === 'number' ? daddr : ipv4(daddr);
  return nameOf(lblc.schedule(svc, { ...PKT, daddr: d }, now));
}

function cached(svc: Service, daddr: string | number): string | null {
  return nameOf(lblcCached(svc, typeof daddr === 'number' ? daddr : ipv4(daddr)));
}

/** The kernel's lblc bucket, restated: (addr * 2654435761) mod 1024. */
function kernelBucket(addr: number): number {
  return Number((BigInt(addr) * 2654435761n) % 1024n);
}

/**
 * Which of `stale` a trim should drop: whole buckets walked from `first` upwards (mod 1024) until
 * `goal` entries are gone. Returns the dropped addresses and the last bucket walked.
 */
function expectedTrim(stale: number[], first: number, goal: number): { dropped: Set<number>; last: number } {
  const byPos: number[][] = Array.from({ length: 1024 }, () => []);
  for (const a of stale) byPos[(kernelBucket(a) - first + 1024) % 1024].push(a);
  const dropped = new Set<number>();
  let pos = 0;
  for (; pos < 1024; pos++) {
    for (const a of byPos[pos]) dropped.add(a);
    if (dropped.size >= goal) break;
  }
  return { dropped, last: (first + Math.min(pos, 1023)) % 1024 };
}

const BASE = ipv4('100.64.0.0');

describe('lblc', () => {
  it('returns null for a service without dests or without a usable one, and caches nothing', () => {
    const empty = makeService(lblc);
    expect(to(empty, '198.51.100.1', T0)).toBeNull();
    expect(lblcEntryCount(empty)).toBe(0);

    const { svc } = serviceWith(lblc, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBeNull();
    expect(lblcEntryCount(svc)).toBe(0);
  });

  it('gives a new destination IP the WLC dest and remembers it for that IP', () => {
    const { svc } = serviceWith(lblc, [
      { name: 'A', inactive: 10 },
      { name: 'B', inactive: 5 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('B');
    expect(cached(svc, '198.51.100.1')).toBe('B');
    expect(lblcEntryCount(svc)).toBe(1);
  });

  it('keeps sending a destination IP to its dest after WLC has come to prefer another', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A', inactive: 10 }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('B');
    d.B!.inactConns = 500;
    d.B!.activeConns = 1;
    for (let i = 1; i <= 5; i++) expect(to(svc, '198.51.100.1', T0 + i)).toBe('B');
    // A new destination IP goes where WLC says now.
    expect(to(svc, '198.51.100.2', T0 + 6)).toBe('A');
    expect(to(svc, '198.51.100.1', T0 + 7)).toBe('B');
  });

  it('keys on the destination IP only: other sources and ports share the entry', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.inactConns = 50;
    const pkt = { ...PKT, saddr: ipv4('203.0.113.9'), sport: 1234, dport: 8080, daddr: ipv4('198.51.100.1') };
    expect(nameOf(lblc.schedule(svc, pkt, T0 + 1))).toBe('A');
  });

  it('replaces the cached dest when it has more active conns than its weight and some dest is under half its weight', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1, inactive: 3 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.activeConns = 2; // 2 > 1, and B has 0 * 2 < 1
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('B');
    expect(cached(svc, '198.51.100.1')).toBe('B');
    // The entry now holds B, even once A is idle again.
    d.A!.activeConns = 0;
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('B');
  });

  it('keeps the cached dest when its active conns equal its weight (the rule is strictly greater)', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 4 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.activeConns = 3;
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
    d.A!.activeConns = 4;
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('B');
  });

  it('keeps an over-weight cached dest while no dest is strictly under half its weight', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2 },
      { name: 'C', weight: 4 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.activeConns = 5;
    d.B!.activeConns = 1; // 2 < 2 is false
    d.C!.activeConns = 2; // 4 < 4 is false
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
    d.C!.activeConns = 1; // 2 < 4: C is under half its weight
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('C');
  });

  it('counts only active conns in the overload rule: inactive ones never displace the cached dest', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 10 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.inactConns = 10_000;
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
  });

  it('takes any listed dest as the under-half witness, even a flagged one; the new pick is still WLC over usable dests', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1, active: 1 },
      { name: 'C', weight: 4, overloaded: true },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.activeConns = 2; // overhead 512 against B's 256; only flagged C is under half its weight
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('B');
  });

  it('never takes a weight-0 dest as the witness (0 * 2 < 0 is false)', () => {
    const { svc, d } = serviceWith(lblc, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1, active: 1 },
      { name: 'Z', weight: 0 },
    ]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
  });

  it('replaces a cached dest whose weight became 0, and keeps the replacement when the weight returns', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    setWeight(svc, d.A!, 0);
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('B');
    setWeight(svc, d.A!, 1);
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('B');
  });

  it('replaces a cached dest flagged OVERLOAD by its threshold (lvs-ts never picks a flagged dest)', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    setOverloaded(d.A!, true);
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('B');
    setOverloaded(d.A!, false);
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('B');
  });

  it('returns null but keeps the entry when the cached dest is unusable and so is every other dest', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B', weight: 0 }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    setWeight(svc, d.A!, 0);
    expect(to(svc, '198.51.100.1', T0 + 1)).toBeNull();
    expect(cached(svc, '198.51.100.1')).toBe('A');
    setWeight(svc, d.A!, 2);
    expect(to(svc, '198.51.100.1', T0 + 2)).toBe('A');
  });

  it('forgets the entries of a deleted dest, so the lingering dest object is never returned', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B', inactive: 1 }, { name: 'C', inactive: 2 }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    expect(to(svc, '198.51.100.2', T0)).toBe('A');
    d.A!.inactConns = 5;
    expect(to(svc, '198.51.100.3', T0)).toBe('B');
    const gone = d.A!;
    delDest(svc, gone);
    expect(gone.weight).toBe(1); // still looks usable
    expect(lblcEntryCount(svc)).toBe(1);
    expect(cached(svc, '198.51.100.1')).toBeNull();
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('B');
    expect(to(svc, '198.51.100.2', T0 + 1)).toBe('B');
    expect(to(svc, '198.51.100.3', T0 + 1)).toBe('B');
  });

  it('leaves cached entries alone when a new, idle dest is added', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A', inactive: 3 }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    addDest(svc, { name: 'N' });
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
    expect(to(svc, '198.51.100.2', T0 + 1)).toBe('N');
  });

  it('in a small table keeps entries idle far beyond 6 minutes: ENTRY_TIMEOUT only applies above 16384 entries', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    expect(to(svc, '198.51.100.2', T0)).toBe('A');
    d.A!.inactConns = 100; // WLC now says B: a dropped entry would show
    expect(to(svc, '198.51.100.1', T0 + 7 * MIN)).toBe('A');
    expect(to(svc, '198.51.100.2', T0 + 23 * HOUR)).toBe('A');
  });

  it('drops an entry idle for 24 h at the full check, every 30th tick counted from the first packet', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A'); // first packet: ticks at T0 + 60k
    d.A!.inactConns = 100;
    // Full checks run at T0 + 1800k; the one at T0 + 86400 finds 24 h of idleness exactly.
    expect(to(svc, '203.0.113.1', T0 + DAY - 1)).toBe('B');
    expect(cached(svc, '198.51.100.1')).toBe('A');
    expect(to(svc, '203.0.113.2', T0 + DAY)).toBe('B');
    expect(cached(svc, '198.51.100.1')).toBeNull();
    expect(to(svc, '198.51.100.1', T0 + DAY + 1)).toBe('B');
  });

  it('lets an entry outlive its 24 h until the next full check (up to 30 min later)', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '203.0.113.1', T0)).toBe('A'); // anchors the ticks
    expect(to(svc, '198.51.100.1', T0 + MIN)).toBe('A'); // idle 24 h at T0 + 86460
    expect(to(svc, '203.0.113.2', T0 + DAY + 30 * MIN - 1)).toBe('A');
    expect(cached(svc, '198.51.100.1')).toBe('A');
    expect(to(svc, '203.0.113.3', T0 + DAY + 30 * MIN)).toBe('A');
    expect(cached(svc, '198.51.100.1')).toBeNull();
  });

  it('restarts the idle clock on every lookup: an entry used every 12 h never expires', () => {
    const { svc, d } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    d.A!.inactConns = 100;
    for (let k = 1; k <= 10; k++) expect(to(svc, '198.51.100.1', T0 + k * 12 * HOUR)).toBe('A');
  });

  it('catches up on every tick missed during a quiet week and keeps the full checks on their grid', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, '198.51.100.1', T0)).toBe('A');
    const later = T0 + 7 * DAY + 17;
    expect(to(svc, '198.51.100.2', later)).toBe('A');
    expect(cached(svc, '198.51.100.1')).toBeNull();
    // 198.51.100.2 (last used `later`) goes at the first full check (T0 + 1800k) at or after later + 1 day.
    const k = Math.ceil((later + DAY - T0) / 1800);
    expect(to(svc, '203.0.113.1', T0 + 1800 * k - 1)).toBe('A');
    expect(cached(svc, '198.51.100.2')).toBe('A');
    expect(to(svc, '203.0.113.2', T0 + 1800 * k)).toBe('A');
    expect(cached(svc, '198.51.100.2')).toBeNull();
  });

  it('above 16384 entries trims entries idle 6 min, whole hash buckets from the rover, until (n - 16384) * 4/3 are gone', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }]);
    const n = 16384 + 300;
    const addrs = Array.from({ length: n }, (_, i) => BASE + i);
    for (const a of addrs) to(svc, a, T0);
    expect(lblcEntryCount(svc)).toBe(n);

    // Ticks at T0 + 60 .. T0 + 300 find nothing idle for 6 min; the one at T0 + 360 does.
    to(svc, ipv4('203.0.113.1'), T0 + 5 * MIN);
    expect(lblcEntryCount(svc)).toBe(n + 1);
    to(svc, ipv4('203.0.113.2'), T0 + 6 * MIN);
    const { dropped } = expectedTrim(addrs, 1, 400);
    expect(dropped.size).toBeGreaterThanOrEqual(400);
    expect(lblcEntryCount(svc)).toBe(n + 2 - dropped.size);
    for (const a of addrs) expect(lblcCached(svc, a) === null).toBe(dropped.has(a));
    // The two fresh entries were not idle long enough.
    expect(cached(svc, '203.0.113.1')).toBe('A');
  });

  it('keeps trimming from where the last trim stopped while the table stays over the limit', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }]);
    const n = 26000; // the first goal is capped at 8192, leaving more than 16384
    const addrs = Array.from({ length: n }, (_, i) => BASE + i);
    for (const a of addrs) to(svc, a, T0);
    // One entry per bucket (the multiplier is odd), idle 6 min only by the second trim: had the
    // second trim restarted at bucket 1, it would reach its goal on these.
    const late = Array.from({ length: 1024 }, (_, i) => ipv4('100.80.0.0') + i);
    expect(new Set(late.map(kernelBucket)).size).toBe(1024);
    for (const a of late) to(svc, a, T0 + MIN);

    to(svc, ipv4('203.0.113.1'), T0 + 6 * MIN); // fresh: never trimmed below
    const first = expectedTrim(addrs, 1, 8192);
    const afterFirst = n + 1024 + 1 - first.dropped.size;
    expect(lblcEntryCount(svc)).toBe(afterFirst);
    for (const a of late) expect(lblcCached(svc, a)).not.toBeNull();

    to(svc, ipv4('203.0.113.2'), T0 + 7 * MIN);
    const left = [...addrs.filter((a) => !first.dropped.has(a)), ...late];
    const goal = Math.floor(((afterFirst - 16384) * 4) / 3);
    const second = expectedTrim(left, (first.last + 1) % 1024, goal);
    expect(second.dropped.size).toBeLessThan(left.length);
    expect(lblcEntryCount(svc)).toBe(afterFirst + 1 - second.dropped.size);
    for (const a of left) expect(lblcCached(svc, a) === null).toBe(second.dropped.has(a));
    expect(cached(svc, '203.0.113.1')).toBe('A');
  });

  it('spares entries used within the last 6 min when trimming an over-full table', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }]);
    const old = Array.from({ length: 16384 }, (_, i) => BASE + i);
    const fresh = Array.from({ length: 300 }, (_, i) => BASE + 16384 + i);
    for (const a of old) to(svc, a, T0);
    for (const a of fresh) to(svc, a, T0 + 200);
    to(svc, ipv4('203.0.113.1'), T0 + 6 * MIN);
    const { dropped } = expectedTrim(old, 1, 400);
    expect(lblcEntryCount(svc)).toBe(16384 + 300 + 1 - dropped.size);
    for (const a of fresh) expect(lblcCached(svc, a)).not.toBeNull();
  });

  it('starts afresh after doneService and initService', () => {
    const { svc } = serviceWith(lblc, [{ name: 'A' }]);
    to(svc, '198.51.100.1', T0);
    lblc.doneService!(svc);
    expect(svc.schedData).toBeNull();
    lblc.initService!(svc);
    expect(lblcEntryCount(svc)).toBe(0);
    expect(to(svc, '198.51.100.1', T0 + 1)).toBe('A');
  });
});
