import { describe, expect, it } from 'vitest';
import type { Service } from '../../src/ip-vs';
import { lblcr, lblcrEntryCount, lblcrServerSet } from '../../src/sched/lblcr';
import {
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

const IP = '198.51.100.1';

function to(svc: Service, daddr: string | number, now: number): string | null {
  const d = typeof daddr === 'number' ? daddr : ipv4(daddr);
  return nameOf(lblcr.schedule(svc, { ...PKT, daddr: d }, now));
}

/** The names in the replication set of `daddr`, most recently added first. */
function setOf(svc: Service, daddr: string | number): (string | null)[] {
  return lblcrServerSet(svc, typeof daddr === 'number' ? daddr : ipv4(daddr)).map(nameOf);
}

/** The kernel's lblcr bucket, restated: hash_32(addr, 10) = top 10 bits of addr * 0x61C88647. */
function kernelBucket(addr: number): number {
  return Number(((BigInt(addr) * 0x61c88647n) & 0xffffffffn) >> 22n);
}

describe('lblcr', () => {
  it('returns null for a service without dests or without a usable one, and creates no set', () => {
    const empty = makeService(lblcr);
    expect(to(empty, IP, T0)).toBeNull();
    expect(lblcrEntryCount(empty)).toBe(0);

    const { svc } = serviceWith(lblcr, [
      { name: 'A', weight: 0 },
      { name: 'B', overloaded: true },
    ]);
    expect(to(svc, IP, T0)).toBeNull();
    expect(lblcrEntryCount(svc)).toBe(0);
  });

  it('gives a new destination IP the WLC dest as the only member of its set', () => {
    const { svc } = serviceWith(lblcr, [
      { name: 'A', inactive: 10 },
      { name: 'B', inactive: 5 },
    ]);
    expect(to(svc, IP, T0)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['B']);
  });

  it('keeps using the set while its least loaded member copes, though WLC prefers a dest outside it', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B', inactive: 1 }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 1; // = weight: not over it
    d.A!.inactConns = 300;
    for (let i = 1; i <= 3; i++) expect(to(svc, IP, T0 + i)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['A']);
    expect(to(svc, '198.51.100.2', T0 + 4)).toBe('B');
  });

  it('adds the WLC dest when the least loaded member has more active conns than its weight and some dest is under half its weight', () => {
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 2, inactive: 1 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2; // 2 > 1; B: 0 * 2 < 2
    expect(to(svc, IP, T0 + 1)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    // From now on the set's least loaded member (overhead / weight) is used.
    d.B!.activeConns = 1; // B 257/2 = 128.5 against A 512/1
    expect(to(svc, IP, T0 + 2)).toBe('B');
    d.A!.activeConns = 0; // A 0 against B 128.5
    expect(to(svc, IP, T0 + 3)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
  });

  it('does not grow while no dest is strictly under half its weight, nor when active conns only equal the weight', () => {
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 2 },
      { name: 'C', weight: 4 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2; // = weight
    d.B!.activeConns = 1; // 2 < 2 is false
    d.C!.activeConns = 2; // 4 < 4 is false
    expect(to(svc, IP, T0 + 1)).toBe('A');
    d.A!.activeConns = 9;
    expect(to(svc, IP, T0 + 2)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['A']);
    d.C!.activeConns = 1;
    expect(to(svc, IP, T0 + 3)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'A']);
  });

  it('grows the set again and again while each new least loaded member is overloaded', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D', weight: 10 }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.B!.activeConns = 2;
    expect(to(svc, IP, T0 + 2)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
  });

  it('adds the WLC dest when every member is unusable (weight 0 or flagged OVERLOAD)', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    setWeight(svc, d.A!, 0);
    setOverloaded(d.B!, true);
    expect(to(svc, IP, T0 + 2)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
    setOverloaded(d.C!, true);
    expect(to(svc, IP, T0 + 3)).toBeNull();
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
  });

  it('returns the WLC dest without adding it twice when it is already a member', () => {
    // A is over its weight and W is under half its own, but W's inactive conns keep A the WLC pick.
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 1 },
      { name: 'W', weight: 4, active: 1, inactive: 2000 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2; // overhead 512 against W's 2256 / 4 = 564
    expect(to(svc, IP, T0 + 1)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['A']);
  });

  it('after more than 24 h without a change drops the most loaded member, one per 24 h, never the last', () => {
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1 },
      { name: 'C', weight: 1 },
      { name: 'X', weight: 100, active: 60 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.B!.activeConns = 2;
    const t1 = T0 + 2; // the last change
    expect(to(svc, IP, t1)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
    // Loads now: C least, A most; nobody under half its weight, so nothing grows.
    d.X!.activeConns = 100;
    d.A!.activeConns = 5;
    d.B!.activeConns = 3;

    expect(to(svc, IP, t1 + 12 * HOUR)).toBe('C');
    expect(to(svc, IP, t1 + DAY)).toBe('C'); // exactly 24 h: not yet (the test is strictly after)
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
    expect(to(svc, IP, t1 + DAY + 1)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B']);

    const t2 = t1 + DAY + 1; // the removal counts as a change
    expect(to(svc, IP, t2 + 12 * HOUR)).toBe('C');
    expect(to(svc, IP, t2 + DAY)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B']);
    expect(to(svc, IP, t2 + DAY + 1)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C']);

    expect(to(svc, IP, t2 + 20 * HOUR + DAY)).toBe('C');
    expect(to(svc, IP, t2 + 40 * HOUR + DAY)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C']);
  });

  it('does not count returning a member as a change: only additions and removals move the 24 h clock', () => {
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1 },
      { name: 'W', weight: 4, active: 1, inactive: 2000 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    d.W!.activeConns = 2; // no witness yet
    d.B!.activeConns = 0;
    d.B!.weight = 4; // B: 0 * 2 < 4 is a witness; WLC picks B (overhead 0)
    const t1 = T0 + 1;
    expect(to(svc, IP, t1)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    // Make A the least loaded member but overloaded, and the WLC pick: it is already a member.
    d.B!.activeConns = 3;
    d.B!.inactConns = 2000; // 2768 / 4 = 692 against A's 512
    d.W!.activeConns = 1; // W is now the witness (1 * 2 < 4); its 2256 / 4 = 564 > 512
    expect(to(svc, IP, t1 + 20 * HOUR)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    d.A!.activeConns = 1;
    expect(to(svc, IP, t1 + DAY + 1)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['A']); // B (692) removed on the original clock
  });

  it('picks the member to drop by overhead / weight among weight > 0 members, flagged ones included', () => {
    const { svc, d } = serviceWith(lblcr, [
      { name: 'A', weight: 1 },
      { name: 'B', weight: 1 },
      { name: 'C', weight: 1 },
      { name: 'D', weight: 1 },
      { name: 'X', weight: 100, active: 100 },
    ]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.B!.activeConns = 2;
    expect(to(svc, IP, T0 + 2)).toBe('C');
    d.C!.activeConns = 2;
    expect(to(svc, IP, T0 + 3)).toBe('D');
    expect(setOf(svc, IP)).toEqual(['D', 'C', 'B', 'A']);
    // A is idle but weight 0 (never dropped); C is the most loaded and flagged; D is the least loaded.
    setWeight(svc, d.A!, 0);
    d.A!.activeConns = 0;
    d.B!.activeConns = 1;
    d.B!.weight = 2; // 128
    d.C!.activeConns = 9; // 2304
    setOverloaded(d.C!, true);
    d.D!.activeConns = 0;
    d.D!.inactConns = 10;
    d.X!.activeConns = 60; // nobody under half its weight
    expect(to(svc, IP, T0 + 3 + 12 * HOUR)).toBe('D');
    expect(to(svc, IP, T0 + 4 + DAY)).toBe('D');
    expect(setOf(svc, IP)).toEqual(['D', 'B', 'A']);
  });

  it('may drop the very member it returns, as the kernel does; the next packet adds the WLC dest back', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }, { name: 'X', weight: 10, active: 10 }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    setWeight(svc, d.A!, 0); // B is now both the least and the most loaded member of weight > 0
    expect(to(svc, IP, T0 + 12 * HOUR)).toBe('B');
    expect(to(svc, IP, T0 + 2 + DAY)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['A']);
    expect(to(svc, IP, T0 + 3 + DAY)).toBe('B');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
  });

  it('takes a deleted dest out of every set, so the lingering dest object is never returned', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B', inactive: 1 }, { name: 'C', inactive: 2 }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.A!.activeConns = 0;
    expect(to(svc, '198.51.100.2', T0 + 2)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    const gone = d.A!;
    delDest(svc, gone);
    expect(gone.weight).toBe(1); // still looks usable
    expect(setOf(svc, IP)).toEqual(['B']);
    expect(setOf(svc, '198.51.100.2')).toEqual([]);
    expect(lblcrEntryCount(svc)).toBe(2);
    expect(to(svc, IP, T0 + 3)).toBe('B');
    // The emptied set gets the WLC dest on its next use.
    expect(to(svc, '198.51.100.2', T0 + 3)).toBe('B');
    expect(setOf(svc, '198.51.100.2')).toEqual(['B']);
  });

  it('does not restart the 24 h clock when a member is deleted', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'X', weight: 10 }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.B!.activeConns = 2;
    expect(to(svc, IP, T0 + 2)).toBe('C');
    d.X!.activeConns = 5; // no witness any more
    d.B!.activeConns = 3;
    expect(to(svc, IP, T0 + 12 * HOUR)).toBe('C');
    delDest(svc, d.A!);
    expect(setOf(svc, IP)).toEqual(['C', 'B']);
    expect(to(svc, IP, T0 + 2 + DAY)).toBe('C'); // 24 h after the last addition: not yet
    expect(setOf(svc, IP)).toEqual(['C', 'B']);
    expect(to(svc, IP, T0 + 3 + DAY)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C']);
  });

  it('breaks ties toward the member added last, both when choosing and when dropping', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(to(svc, IP, T0)).toBe('A');
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.B!.activeConns = 2;
    expect(to(svc, IP, T0 + 2)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'B', 'A']);
    d.A!.activeConns = 0;
    d.B!.activeConns = 0;
    d.B!.weight = 3; // every member at overhead 0
    expect(to(svc, IP, T0 + 3)).toBe('C');
    d.C!.inactConns = 5;
    d.B!.inactConns = 30; // 30 / 3 = 10, as A's 10 / 1
    d.A!.inactConns = 10;
    expect(to(svc, IP, T0 + 12 * HOUR)).toBe('C');
    expect(to(svc, IP, T0 + 3 + DAY)).toBe('C');
    expect(setOf(svc, IP)).toEqual(['C', 'A']);
  });

  it('in a small table keeps a set idle for hours, and drops it at the first full check after 24 h idle', () => {
    const { svc, d } = serviceWith(lblcr, [{ name: 'A' }, { name: 'B' }]);
    expect(to(svc, IP, T0)).toBe('A'); // first packet: ticks at T0 + 60k, full checks at T0 + 1800k
    d.A!.activeConns = 2;
    expect(to(svc, IP, T0 + 1)).toBe('B');
    d.A!.activeConns = 0;
    d.B!.inactConns = 100;
    expect(to(svc, IP, T0 + 7 * MIN)).toBe('A'); // 6 min idle changes nothing here
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    // Last use T0 + 420: idle 24 h at T0 + 86820, the next full check is at T0 + 88200.
    expect(to(svc, '203.0.113.1', T0 + DAY + 30 * MIN - 1)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['B', 'A']);
    expect(to(svc, '203.0.113.2', T0 + DAY + 30 * MIN)).toBe('A');
    expect(setOf(svc, IP)).toEqual([]);
    expect(to(svc, IP, T0 + DAY + 30 * MIN + 1)).toBe('A');
    expect(setOf(svc, IP)).toEqual(['A']);
  });

  it('above 16384 entries trims sets idle 6 min by hash_32 bucket order until (n - 16384) * 4/3 are gone', () => {
    const { svc } = serviceWith(lblcr, [{ name: 'A' }]);
    const n = 16384 + 300;
    const base = ipv4('100.64.0.0');
    const addrs = Array.from({ length: n }, (_, i) => base + i);
    for (const a of addrs) to(svc, a, T0);
    to(svc, ipv4('203.0.113.1'), T0 + 5 * MIN); // nothing idle 6 min yet
    expect(lblcrEntryCount(svc)).toBe(n + 1);
    to(svc, ipv4('203.0.113.2'), T0 + 6 * MIN);

    // Walk buckets 1, 2, ... dropping every stale entry of each, until 400 are gone.
    const byBucket: number[][] = Array.from({ length: 1024 }, () => []);
    for (const a of addrs) byBucket[kernelBucket(a)].push(a);
    const dropped = new Set<number>();
    for (let b = 1; dropped.size < 400; b++) for (const a of byBucket[b]) dropped.add(a);
    expect(lblcrEntryCount(svc)).toBe(n + 2 - dropped.size);
    for (const a of addrs) expect(lblcrServerSet(svc, a).length === 0).toBe(dropped.has(a));
    expect(setOf(svc, '203.0.113.1')).toEqual(['A']);
  });

  it('starts afresh after doneService and initService', () => {
    const { svc } = serviceWith(lblcr, [{ name: 'A' }]);
    to(svc, IP, T0);
    lblcr.doneService!(svc);
    expect(svc.schedData).toBeNull();
    lblcr.initService!(svc);
    expect(lblcrEntryCount(svc)).toBe(0);
    expect(to(svc, IP, T0 + 1)).toBe('A');
  });
});
