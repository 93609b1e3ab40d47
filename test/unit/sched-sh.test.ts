import { describe, expect, it } from 'vitest';
import { type Dest, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, type PktInfo, type Service } from '../../src/ip-vs';
import {
  SH_TAB_SIZE,
  SVC_F_SCHED_SH_FALLBACK,
  SVC_F_SCHED_SH_PORT,
  sh,
  shBuckets,
  shHashKey,
} from '../../src/sched/sh';
import { mulberry32 } from '../helpers/prng';
import {
  addDest,
  boundServiceWith,
  type DestSpec,
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
  return Number(((BigInt(x) * 0x61c88647n) & 0xffffffffn) >> 24n);
}

/** The kernel's ip_vs_sh_hashkey, written out with BigInt: (offset + hash_32(port + addr)) & 255. */
function refHashKey(addr: number, port: number, offset: number): number {
  return (offset + refHash32((addr + port) % 2 ** 32)) & 255;
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

function pktFrom(saddr: number, sport = 40000, protocol = IPPROTO_TCP): PktInfo {
  return { protocol, saddr, daddr: ipv4('10.0.0.1'), sport, dport: 80 };
}

/** Schedules a packet from the source address that hashes (without sh-port) to bucket b. */
function fromBucket(svc: Service, b: number): string | null {
  return nameOf(sh.schedule(svc, pktFrom(addrForBucket(b)), 0));
}

function tableNames(svc: Service): (string | null)[] {
  return shBuckets(svc).map((d) => nameOf(d));
}

/** The expected table: the [name, buckets] runs repeated until 256 buckets are filled. */
function cycle(runs: [string, number][]): string[] {
  const out: string[] = [];
  while (out.length < SH_TAB_SIZE) {
    for (const [n, w] of runs) for (let i = 0; i < w && out.length < SH_TAB_SIZE; i++) out.push(n);
  }
  return out;
}

function counts(names: (string | null)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of names) c[String(n)] = (c[String(n)] ?? 0) + 1;
  return c;
}

/** The kernel's fallback loop, literally: offsets 0..255 around the first hash, first usable wins. */
function refFallback(buckets: readonly (Dest | null)[], addr: number, port: number): Dest | null {
  const usable = (d: Dest) => d.weight > 0 && (d.flags & 0x2) === 0;
  const ihash = refHashKey(addr, port, 0);
  const first = buckets[ihash];
  if (first === null) return null;
  if (usable(first)) return first;
  for (let offset = 0; offset < 256; offset++) {
    const roffset = (offset + ihash) % 256;
    const d = buckets[refHashKey(addr, port, roffset)];
    if (d === null) break;
    if (usable(d)) return d;
  }
  return null;
}

describe('sh hash', () => {
  it('is hash_32(addr + port, 8) on host-order values (known answers)', () => {
    expect(shHashKey(ipv4('10.0.0.1'), 0)).toBe(39);
    expect(shHashKey(ipv4('192.168.0.1'), 0)).toBe(192);
    expect(shHashKey(ipv4('10.0.0.1'), 40000)).toBe(203);
    expect(shHashKey(ipv4('192.168.0.1'), 40000)).toBe(100);
    // Host order: the byte-swapped address 1.0.0.10 is a different key.
    expect(shHashKey(ipv4('1.0.0.10'), 0)).toBe(24);
  });

  it('adds the port to the address in u32 arithmetic: 255.255.255.255 + 1 wraps to 0.0.0.0 + 0', () => {
    expect(shHashKey(0xffffffff, 1)).toBe(shHashKey(0, 0));
    expect(shHashKey(0xffffffff, 1)).toBe(0);
    expect(shHashKey(0xfffffff0, 0x20)).toBe(shHashKey(0x10, 0));
  });

  it('a port shift is an address shift: (a, p) hashes like (a + p, 0)', () => {
    const a = ipv4('198.51.100.20');
    for (const p of [1, 80, 1024, 40000, 65535]) expect(shHashKey(a, p)).toBe(shHashKey(a + p, 0));
  });

  it('adds the offset after hashing, modulo 256', () => {
    const a = ipv4('10.0.0.1'); // bucket 39
    expect(shHashKey(a, 0, 1)).toBe(40);
    expect(shHashKey(a, 0, 217)).toBe(0);
    expect(shHashKey(a, 0, 255)).toBe(38);
  });

  it('matches the BigInt reference for 10000 random (addr, port, offset)', () => {
    const rnd = mulberry32(0x54);
    const bad: number[][] = [];
    for (let i = 0; i < 10000; i++) {
      const a = rnd();
      const p = rnd() & 0xffff;
      const o = rnd() & 0xff;
      if (shHashKey(a, p, o) !== refHashKey(a, p, o)) bad.push([a, p, o]);
    }
    expect(bad).toEqual([]);
  });

  it('addrForBucket (the test helper) really lands in each bucket', () => {
    for (let b = 0; b < SH_TAB_SIZE; b++) expect(shHashKey(addrForBucket(b), 0)).toBe(b);
  });
});

describe('sh table', () => {
  it('weights 3,1 fill A A A B A A A B ...: 192 buckets for A, 64 for B', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]);
    const t = tableNames(svc);
    expect(t.slice(0, 8)).toEqual(['A', 'A', 'A', 'B', 'A', 'A', 'A', 'B']);
    expect(t).toEqual(
      cycle([
        ['A', 3],
        ['B', 1],
      ]),
    );
    expect(counts(t)).toEqual({ A: 192, B: 64 });
  });

  it('weights 2,3,1 fill A A B B B C, 42 full rounds and a partial A A B B at the end', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 1 },
    ]);
    const t = tableNames(svc);
    expect(t.slice(0, 12)).toEqual(['A', 'A', 'B', 'B', 'B', 'C', 'A', 'A', 'B', 'B', 'B', 'C']);
    expect(t.slice(252)).toEqual(['A', 'A', 'B', 'B']);
    expect(counts(t)).toEqual({ A: 86, B: 128, C: 42 });
  });

  it('a weight-0 dest still takes one bucket per round', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 0 },
      { name: 'C', weight: 1 },
    ]);
    const t = tableNames(svc);
    expect(t.slice(0, 8)).toEqual(['A', 'A', 'B', 'C', 'A', 'A', 'B', 'C']);
    expect(counts(t)).toEqual({ A: 128, B: 64, C: 64 });
  });

  it('a weight of 256 or more gives the head dest every bucket', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 300 },
      { name: 'B', weight: 1 },
    ]);
    expect(counts(tableNames(svc))).toEqual({ A: 256 });
    const rnd = mulberry32(3);
    for (let i = 0; i < 200; i++) expect(nameOf(sh.schedule(svc, pktFrom(rnd()), 0))).toBe('A');
  });

  it('fills in list order: the most recently added dest comes first', () => {
    const svc = makeService(sh);
    addDest(svc, { name: 'A', weight: 2 });
    addDest(svc, { name: 'B', weight: 1 });
    expect(tableNames(svc).slice(0, 6)).toEqual(['B', 'A', 'A', 'B', 'A', 'A']);
  });

  it('a service without dests has an empty table and schedules null', () => {
    const svc = makeService(sh);
    expect(shBuckets(svc)).toHaveLength(256);
    expect(shBuckets(svc).every((x) => x === null)).toBe(true);
    expect(sh.schedule(svc, pktFrom(ipv4('192.168.0.1')), 0)).toBeNull();
    svc.flags = SVC_F_SCHED_SH_FALLBACK | SVC_F_SCHED_SH_PORT;
    expect(sh.schedule(svc, pktFrom(ipv4('192.168.0.1')), 0)).toBeNull();
  });
});

describe('sh scheduling', () => {
  it('picks the dest of the bucket the source address hashes to, for every bucket', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 2 },
      { name: 'C', weight: 1 },
    ]);
    const t = tableNames(svc);
    for (let b = 0; b < SH_TAB_SIZE; b++) expect(fromBucket(svc, b)).toBe(t[b]);
    // 192.168.0.1 is bucket 192 = 32 * 6: the start of a round, A.
    expect(nameOf(sh.schedule(svc, pktFrom(ipv4('192.168.0.1')), 0))).toBe('A');
    // 10.0.0.1 is bucket 39 = 6 * 6 + 3, the fourth of its round A A A B B C: B.
    expect(nameOf(sh.schedule(svc, pktFrom(ipv4('10.0.0.1')), 0))).toBe('B');
  });

  it('is stable: one source address always gets the same dest; without sh-port its ports do not matter', () => {
    const { svc } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    const saddr = ipv4('198.51.100.77');
    const first = sh.schedule(svc, pktFrom(saddr), 0);
    expect(first).not.toBeNull();
    const rnd = mulberry32(11);
    for (let i = 0; i < 1000; i++) {
      const pkt = { ...pktFrom(saddr, rnd() & 0xffff), daddr: rnd(), dport: rnd() & 0xffff };
      expect(sh.schedule(svc, pkt, 0)).toBe(first);
    }
  });

  it('spreads random sources in proportion to the weights (3:1 gives about 75% / 25%)', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 3 },
      { name: 'B', weight: 1 },
    ]);
    const rnd = mulberry32(0xabc);
    const n = 40000;
    const c = { A: 0, B: 0 } as Record<string, number>;
    for (let i = 0; i < n; i++) c[nameOf(sh.schedule(svc, pktFrom(rnd()), 0))!]++;
    expect(c.A! / n).toBeGreaterThan(0.73);
    expect(c.A! / n).toBeLessThan(0.77);
  });

  it('spreads random sources in proportion to the table share of weights 5,3,2', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 5 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 2 },
    ]);
    // 25 rounds of 10, then a partial A A A A A B.
    expect(counts(tableNames(svc))).toEqual({ A: 130, B: 76, C: 50 });
    const rnd = mulberry32(0x532);
    const n = 40000;
    const c = counts(Array.from({ length: n }, () => nameOf(sh.schedule(svc, pktFrom(rnd()), 0))));
    expect(Math.abs(c.A! / n - 130 / 256)).toBeLessThan(0.02);
    expect(Math.abs(c.B! / n - 76 / 256)).toBeLessThan(0.02);
    expect(Math.abs(c.C! / n - 50 / 256)).toBeLessThan(0.02);
  });
});

describe('sh-port (SVC_F_SCHED2)', () => {
  const specs: DestSpec[] = [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D' }];

  it('is the ipvsadm alias of flag-2, and sh-fallback of flag-1', () => {
    expect(SVC_F_SCHED_SH_PORT).toBe(0x10);
    expect(SVC_F_SCHED_SH_FALLBACK).toBe(0x8);
  });

  it('spreads one source address over every dest by source port, evenly for equal weights', () => {
    const { svc } = serviceWith(sh, specs);
    svc.flags = SVC_F_SCHED_SH_PORT;
    const saddr = ipv4('192.168.0.1');
    const c = counts(Array.from({ length: 4096 }, (_, i) => nameOf(sh.schedule(svc, pktFrom(saddr, 1024 + i), 0))));
    expect(Object.keys(c).sort()).toEqual(['A', 'B', 'C', 'D']);
    for (const k of ['A', 'B', 'C', 'D']) expect(Math.abs(c[k] / 4096 - 0.25)).toBeLessThan(0.03);
  });

  it('picks the bucket of hash_32(addr + sport): the same (address, port) always gets the same dest', () => {
    const { svc } = serviceWith(sh, specs);
    svc.flags = SVC_F_SCHED_SH_PORT;
    const t = shBuckets(svc);
    const rnd = mulberry32(0x707);
    for (let i = 0; i < 2000; i++) {
      const saddr = rnd();
      const sport = rnd() & 0xffff;
      const d = sh.schedule(svc, pktFrom(saddr, sport), 0);
      expect(d).toBe(t[refHashKey(saddr, sport, 0)]);
      expect(sh.schedule(svc, pktFrom(saddr, sport), 0)).toBe(d);
    }
    // 192.168.0.1 port 40000 is bucket 100: 100 mod 4 = 0, A; port 0 would be bucket 192.
    expect(nameOf(sh.schedule(svc, pktFrom(ipv4('192.168.0.1'), 40000), 0))).toBe('A');
  });

  it('uses the source port for UDP too, but port 0 for a protocol without ports (ICMP)', () => {
    const { svc } = serviceWith(sh, specs);
    svc.flags = SVC_F_SCHED_SH_PORT;
    const saddr = addrForBucket(5); // B with port 0
    expect(sh.schedule(svc, pktFrom((saddr - 2) >>> 0, 2, IPPROTO_UDP), 0)).toBe(shBuckets(svc)[5]);
    for (const sport of [1, 2, 3, 1000, 65535]) {
      expect(nameOf(sh.schedule(svc, pktFrom(saddr, sport, IPPROTO_ICMP), 0))).toBe('B');
    }
  });

  it('without sh-port the source port is ignored: every port of one address gets the same dest', () => {
    const { svc } = serviceWith(sh, specs);
    const saddr = ipv4('192.168.0.1');
    const first = sh.schedule(svc, pktFrom(saddr, 1), 0);
    for (let p = 2; p < 2000; p++) expect(sh.schedule(svc, pktFrom(saddr, p), 0)).toBe(first);
  });
});

describe('sh unusable dests', () => {
  it('without sh-fallback an overloaded bucket dest gives null; other buckets are unaffected', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    setOverloaded(d.B!, true);
    expect(fromBucket(svc, 1)).toBeNull();
    expect(fromBucket(svc, 4)).toBeNull();
    expect(fromBucket(svc, 0)).toBe('A');
    expect(fromBucket(svc, 2)).toBe('C');
    setOverloaded(d.B!, false);
    expect(fromBucket(svc, 1)).toBe('B');
  });

  it('without sh-fallback a weight-0 bucket dest gives null', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    setWeight(svc, d.C!, 0);
    expect(tableNames(svc)[2]).toBe('C');
    expect(fromBucket(svc, 2)).toBeNull();
    expect(fromBucket(svc, 0)).toBe('A');
  });

  it('with sh-fallback the scan starts at bucket 2h, not h + 1 (as the kernel re-hashes with offset h + k)', () => {
    // A B C repeated: bucket k holds the (k mod 3)th dest.
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    setOverloaded(d.C!, true);
    // h = 2 (C): the scan starts at bucket 4 (B), where h + 1 = 3 would have given A.
    expect(fromBucket(svc, 2)).toBe('B');
    // With B unusable too: bucket 4 (B) and 5 (C) are skipped, bucket 6 is A.
    setWeight(svc, d.B!, 0);
    expect(fromBucket(svc, 2)).toBe('A');
  });

  it('with sh-fallback the scan wraps modulo 256: h = 130 starts at bucket 4', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D' }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    setOverloaded(d.C!, true); // bucket 130 = 4 * 32 + 2: C
    expect(fromBucket(svc, 130)).toBe('A'); // bucket 4; h + 1 = 131 would be D
  });

  it('with sh-fallback h = 0 re-checks bucket 0 first and moves on to bucket 1', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    setWeight(svc, d.A!, 0);
    expect(fromBucket(svc, 0)).toBe('B');
  });

  it('with sh-fallback a weight-0 dest redirects its sources, a usable bucket dest is kept', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A', weight: 3 }, { name: 'B' }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    expect(fromBucket(svc, 3)).toBe('B');
    setWeight(svc, d.B!, 0); // rebuild: A A A B still (a weight-0 dest keeps one bucket per round)
    expect(tableNames(svc).slice(0, 4)).toEqual(['A', 'A', 'A', 'B']);
    expect(fromBucket(svc, 3)).toBe('A');
    expect(fromBucket(svc, 0)).toBe('A');
  });

  it('with sh-fallback and no usable dest at all, null', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B', weight: 0 }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    setOverloaded(d.A!, true);
    for (let b = 0; b < SH_TAB_SIZE; b++) expect(fromBucket(svc, b)).toBeNull();
  });

  it('with sh-fallback equals the kernel loop written out, over random tables, flags and sources', () => {
    const rnd = mulberry32(0xfa11);
    for (let round = 0; round < 50; round++) {
      const n = 1 + (rnd() % 6);
      const specs: DestSpec[] = [];
      for (let i = 0; i < n; i++) {
        specs.push({ name: `D${i}`, weight: rnd() % 5, overloaded: rnd() % 3 === 0 });
      }
      const { svc } = serviceWith(sh, specs);
      const port = (round & 1) === 1;
      svc.flags = SVC_F_SCHED_SH_FALLBACK | (port ? SVC_F_SCHED_SH_PORT : 0);
      for (let i = 0; i < 200; i++) {
        const saddr = rnd();
        const sport = rnd() & 0xffff;
        const want = refFallback(shBuckets(svc), saddr, port ? sport : 0);
        expect(sh.schedule(svc, pktFrom(saddr, sport), 0)).toBe(want);
      }
    }
  });
});

describe('sh table rebuilds', () => {
  it('adding a dest rebuilds the table with the new dest at the head', () => {
    const { svc } = serviceWith(sh, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 1 },
    ]);
    expect(tableNames(svc)).toEqual(
      cycle([
        ['A', 2],
        ['B', 1],
      ]),
    );
    addDest(svc, { name: 'C', weight: 3 });
    expect(tableNames(svc)).toEqual(
      cycle([
        ['C', 3],
        ['A', 2],
        ['B', 1],
      ]),
    );
    expect(fromBucket(svc, 0)).toBe('C');
    expect(fromBucket(svc, 3)).toBe('A');
  });

  it('deleting a dest rebuilds the table without it (delDest runs before it leaves the list)', () => {
    const { svc, d } = serviceWith(sh, [
      { name: 'A', weight: 2 },
      { name: 'B', weight: 3 },
      { name: 'C', weight: 1 },
    ]);
    delDest(svc, d.B!);
    expect(tableNames(svc)).toEqual(
      cycle([
        ['A', 2],
        ['C', 1],
      ]),
    );
    expect(shBuckets(svc)).not.toContain(d.B);
  });

  it('deleting the head or the tail dest rebuilds from the remaining list', () => {
    const head = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C', weight: 2 }]);
    delDest(head.svc, head.d.A!);
    expect(tableNames(head.svc)).toEqual(
      cycle([
        ['B', 1],
        ['C', 2],
      ]),
    );
    const tail = serviceWith(sh, [{ name: 'A' }, { name: 'B' }, { name: 'C', weight: 2 }]);
    delDest(tail.svc, tail.d.C!);
    expect(tableNames(tail.svc)).toEqual(
      cycle([
        ['A', 1],
        ['B', 1],
      ]),
    );
  });

  it('deleting the last dest empties the table, even with sh-fallback', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }]);
    svc.flags = SVC_F_SCHED_SH_FALLBACK;
    expect(fromBucket(svc, 9)).toBe('A');
    delDest(svc, d.A!);
    expect(shBuckets(svc).every((x) => x === null)).toBe(true);
    expect(fromBucket(svc, 9)).toBeNull();
  });

  it('a weight change (updDest) rebuilds the table with the new weights', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }]);
    expect(counts(tableNames(svc))).toEqual({ A: 128, B: 128 });
    setWeight(svc, d.A!, 3);
    expect(tableNames(svc)).toEqual(
      cycle([
        ['A', 3],
        ['B', 1],
      ]),
    );
    expect(counts(tableNames(svc))).toEqual({ A: 192, B: 64 });
    setWeight(svc, d.A!, 1);
    expect(counts(tableNames(svc))).toEqual({ A: 128, B: 128 });
  });

  it('overload changes are read at schedule time, without a rebuild', () => {
    const { svc, d } = serviceWith(sh, [{ name: 'A' }, { name: 'B' }]);
    const before = [...shBuckets(svc)];
    setOverloaded(d.A!, true);
    expect(shBuckets(svc)).toEqual(before);
    expect(fromBucket(svc, 0)).toBeNull();
  });

  it('initService on a service that already holds dests builds the same table as adding them one by one', () => {
    const specs: DestSpec[] = [
      { name: 'A', weight: 4 },
      { name: 'B', weight: 0 },
      { name: 'C', weight: 7 },
    ];
    const bound = boundServiceWith(sh, specs).svc;
    const built = serviceWith(sh, specs).svc;
    expect(tableNames(bound)).toEqual(
      cycle([
        ['A', 4],
        ['B', 1],
        ['C', 7],
      ]),
    );
    expect(tableNames(bound)).toEqual(tableNames(built));
  });

  it('doneService drops the table; two services keep separate tables', () => {
    const one = serviceWith(sh, [{ name: 'A' }, { name: 'B' }]).svc;
    const two = serviceWith(sh, [{ name: 'X' }]).svc;
    expect(one.schedData).not.toBe(two.schedData);
    expect(fromBucket(one, 1)).toBe('B');
    expect(fromBucket(two, 1)).toBe('X');
    sh.doneService!(one);
    expect(one.schedData).toBeNull();
  });
});
