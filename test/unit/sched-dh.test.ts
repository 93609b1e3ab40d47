import { describe, expect, it } from 'vitest';
import { IPPROTO_TCP, type PktInfo, type Service } from '../../src/ip-vs';
import { DH_TAB_SIZE, dh, dhBuckets, dhHashKey } from '../../src/sched/dh';
import { mulberry32 } from '../helpers/prng';
import {
  addDest,
  boundServiceWith,
  delDest,
  ipv4,
  makeService,
  nameOf,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

// A slow, independent hash_32(x, 8): exact BigInt product with GOLDEN_RATIO_32, top 8 of 32 bits.
function refHash32(x: number): number {
  return Number(((BigInt(x >>> 0) * 0x61c88647n) & 0xffffffffn) >> 24n);
}

// The address that hash_32 sends to bucket b: (b << 24) times the inverse of GOLDEN_RATIO_32.
function modInverse32(a: bigint): bigint {
  let x = 1n;
  for (let i = 0; i < 5; i++) x = (x * (2n - a * x)) & 0xffffffffn; // Newton: doubles the good bits
  return x;
}
const GR_INV = modInverse32(0x61c88647n);
function addrForBucket(b: number): number {
  return Number((BigInt((b << 24) >>> 0) * GR_INV) & 0xffffffffn);
}

function pktTo(daddr: number, saddr = ipv4('192.168.0.1'), sport = 40000): PktInfo {
  return { protocol: IPPROTO_TCP, saddr, daddr, sport, dport: 80 };
}

function tableNames(svc: Service): (string | null)[] {
  return dhBuckets(svc).map((d) => nameOf(d));
}

/** Bucket k holds names[k mod names.length]. */
function roundRobin(names: string[]): string[] {
  return Array.from({ length: DH_TAB_SIZE }, (_, k) => names[k % names.length]);
}

describe('dh hash', () => {
  it('is hash_32(addr, 8): the host-order address times 0x61c88647, top 8 bits (known answers)', () => {
    expect(dhHashKey(ipv4('10.0.0.1'))).toBe(39);
    expect(dhHashKey(ipv4('10.0.0.2'))).toBe(137);
    expect(dhHashKey(ipv4('192.168.0.1'))).toBe(192);
    expect(dhHashKey(ipv4('192.168.1.1'))).toBe(136);
    expect(dhHashKey(ipv4('0.0.0.0'))).toBe(0);
    expect(dhHashKey(ipv4('255.255.255.255'))).toBe(158);
  });

  it('hashes the host-order value (the kernel ntohl()s first): 10.0.0.1 and its byte swap 1.0.0.10 differ', () => {
    expect(dhHashKey(ipv4('1.0.0.10'))).toBe(24);
    expect(dhHashKey(ipv4('10.0.0.1'))).not.toBe(dhHashKey(ipv4('1.0.0.10')));
  });

  it('depends on every octet, not only the last (unlike the pre-hash_32 low-bits formula)', () => {
    // The old (addr * 2654435761) & 0xff put all three of these in bucket 177.
    const keys = ['10.0.0.1', '192.168.0.1', '192.168.1.1'].map((a) => dhHashKey(ipv4(a)));
    expect(new Set(keys).size).toBe(3);
  });

  it('matches a BigInt reference for 10000 random addresses, all within 0..255', () => {
    const rnd = mulberry32(0xd4);
    const bad: number[] = [];
    for (let i = 0; i < 10000; i++) {
      const a = rnd();
      const k = dhHashKey(a);
      if (k !== refHash32(a) || !Number.isInteger(k) || k < 0 || k > 255) bad.push(a);
    }
    expect(bad).toEqual([]);
  });

  it('addrForBucket (the test helper) really lands in each bucket', () => {
    for (let b = 0; b < DH_TAB_SIZE; b++) expect(dhHashKey(addrForBucket(b))).toBe(b);
  });
});

describe('dh', () => {
  it('fills the 256 buckets round robin in list order, one per dest, ignoring weights', () => {
    const { svc } = serviceWith(dh, [
      { name: 'A', weight: 5 },
      { name: 'B', weight: 1 },
      { name: 'C', weight: 100 },
    ]);
    const t = tableNames(svc);
    expect(t).toHaveLength(256);
    expect(t.slice(0, 7)).toEqual(['A', 'B', 'C', 'A', 'B', 'C', 'A']);
    expect(t[255]).toBe('A');
    expect(t).toEqual(roundRobin(['A', 'B', 'C']));
    const count = (n: string) => t.filter((x) => x === n).length;
    expect([count('A'), count('B'), count('C')]).toEqual([86, 85, 85]);
  });

  it('picks the dest of the bucket the destination address hashes to, for every bucket', () => {
    const { svc } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D' }]);
    const t = tableNames(svc);
    for (let b = 0; b < DH_TAB_SIZE; b++) {
      expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(b)), 0))).toBe(t[b]);
    }
    // 10.0.0.1 is bucket 39: 39 mod 4 = 3, D. 10.0.0.2 is bucket 137: 137 mod 4 = 1, B.
    expect(nameOf(dh.schedule(svc, pktTo(ipv4('10.0.0.1')), 0))).toBe('D');
    expect(nameOf(dh.schedule(svc, pktTo(ipv4('10.0.0.2')), 0))).toBe('B');
  });

  it('is stable: one destination address always gets the same dest, whatever the source and ports', () => {
    const { svc } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    const daddr = ipv4('203.0.113.7');
    const first = dh.schedule(svc, pktTo(daddr), 0);
    expect(first).not.toBeNull();
    const rnd = mulberry32(7);
    for (let i = 0; i < 1000; i++) {
      expect(dh.schedule(svc, pktTo(daddr, rnd(), rnd() & 0xffff), 0)).toBe(first);
    }
  });

  it('spreads many destination addresses evenly over equal dests', () => {
    const { svc } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    const rnd = mulberry32(99);
    const c: Record<string, number> = { A: 0, B: 0, C: 0 };
    const n = 30000;
    for (let i = 0; i < n; i++) c[nameOf(dh.schedule(svc, pktTo(rnd()), 0))!]++;
    for (const k of ['A', 'B', 'C']) expect(c[k] / n).toBeGreaterThan(0.31);
    for (const k of ['A', 'B', 'C']) expect(c[k] / n).toBeLessThan(0.36);
  });

  it('returns null for a bucket whose dest has weight 0, with no fallback, and serves it again at weight > 0', () => {
    const { svc, d } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    setWeight(svc, d.B!, 0);
    expect(tableNames(svc)).toEqual(roundRobin(['A', 'B', 'C'])); // still in its buckets
    expect(dh.schedule(svc, pktTo(addrForBucket(1)), 0)).toBeNull();
    expect(dh.schedule(svc, pktTo(addrForBucket(4)), 0)).toBeNull();
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(0)), 0))).toBe('A');
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(2)), 0))).toBe('C');
    setWeight(svc, d.B!, 1);
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(1)), 0))).toBe('B');
  });

  it('returns null for a bucket whose dest is overloaded, and serves it again once the flag clears', () => {
    const { svc, d } = serviceWith(dh, [{ name: 'A' }, { name: 'B', overloaded: true }]);
    expect(dh.schedule(svc, pktTo(addrForBucket(3)), 0)).toBeNull();
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(2)), 0))).toBe('A');
    setOverloaded(d.B!, false);
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(3)), 0))).toBe('B');
  });

  it('has no updDest (as in the kernel): a weight change leaves the table as it was', () => {
    expect(dh.updDest).toBeUndefined();
    const { svc, d } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }]);
    const before = [...dhBuckets(svc)];
    setWeight(svc, d.A!, 50);
    expect(dhBuckets(svc)).toEqual(before);
  });

  it('returns null for a service without dests; every bucket is empty', () => {
    const svc = makeService(dh);
    expect(dhBuckets(svc).every((x) => x === null)).toBe(true);
    expect(dh.schedule(svc, pktTo(ipv4('10.0.0.1')), 0)).toBeNull();
  });

  it('rebuilds the table when a dest is added (at the list head, so it takes bucket 0)', () => {
    const { svc } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }]);
    expect(tableNames(svc)).toEqual(roundRobin(['A', 'B']));
    addDest(svc, { name: 'C' });
    expect(tableNames(svc)).toEqual(roundRobin(['C', 'A', 'B']));
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(0)), 0))).toBe('C');
    expect(nameOf(dh.schedule(svc, pktTo(addrForBucket(1)), 0))).toBe('A');
  });

  it('rebuilds the table without a deleted dest (delDest runs before it leaves the list)', () => {
    const { svc, d } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    delDest(svc, d.B!);
    expect(tableNames(svc)).toEqual(roundRobin(['A', 'C']));
    expect(dhBuckets(svc)).not.toContain(d.B);
  });

  it('deleting the head dest rebuilds from the new head', () => {
    const { svc, d } = serviceWith(dh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    delDest(svc, d.A!);
    expect(tableNames(svc)).toEqual(roundRobin(['B', 'C']));
  });

  it('deleting the last dest empties the table and scheduling returns null', () => {
    const { svc, d } = serviceWith(dh, [{ name: 'A' }]);
    expect(nameOf(dh.schedule(svc, pktTo(ipv4('10.0.0.1')), 0))).toBe('A');
    delDest(svc, d.A!);
    expect(dhBuckets(svc).every((x) => x === null)).toBe(true);
    expect(dh.schedule(svc, pktTo(ipv4('10.0.0.1')), 0)).toBeNull();
  });

  it('initService on a service that already holds dests builds the same table as adding them one by one', () => {
    const specs = [{ name: 'A' }, { name: 'B' }, { name: 'C' }];
    const bound = boundServiceWith(dh, specs).svc;
    const built = serviceWith(dh, specs).svc;
    expect(tableNames(bound)).toEqual(roundRobin(['A', 'B', 'C']));
    expect(tableNames(bound)).toEqual(tableNames(built));
  });

  it('doneService drops the table; two services keep separate tables', () => {
    const one = serviceWith(dh, [{ name: 'A' }, { name: 'B' }]).svc;
    const two = serviceWith(dh, [{ name: 'X' }]).svc;
    expect(one.schedData).not.toBe(two.schedData);
    expect(nameOf(dh.schedule(two, pktTo(addrForBucket(1)), 0))).toBe('X');
    expect(nameOf(dh.schedule(one, pktTo(addrForBucket(1)), 0))).toBe('B');
    dh.doneService!(one);
    expect(one.schedData).toBeNull();
  });
});
