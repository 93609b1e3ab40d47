import { describe, expect, it } from 'vitest';
import {
  type Dest,
  destUsable,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type PktInfo,
  type Service,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
} from '../../src/ip-vs';
import { backendFromSeed, buildTable, hsiphash32, MH_KEY_OFFSET } from '../../src/sched/maglev';
import { createMh, mh } from '../../src/sched/mh';
import { mulberry32 } from '../helpers/prng';
import {
  addDest,
  boundServiceWith,
  type DestSpec,
  delDest,
  makeService,
  nameOf,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

const FOUR: DestSpec[] = [
  { name: '172.16.0.1' },
  { name: '172.16.0.2' },
  { name: '172.16.0.3' },
  { name: '172.16.0.4' },
];
const FIVE: DestSpec[] = [...FOUR, { name: '172.16.0.5' }];

function pkt(saddr: number, sport = 40000, protocol = IPPROTO_TCP): PktInfo {
  return { protocol, saddr, daddr: 0x0a000001, sport, dport: 80 };
}

/** `count` distinct-ish random client addresses, the same for a given seed. */
function sources(count: number, seed = 1): number[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: count }, () => rnd());
}

function pickFor(svc: Service, saddr: number, sport = 40000): string | null {
  return nameOf(svc.sched.schedule(svc, pkt(saddr, sport), 0));
}

function mapping(svc: Service, addrs: number[]): (string | null)[] {
  return addrs.map((a) => pickFor(svc, a));
}

function shares(picks: (string | null)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) out[String(p)] = (out[String(p)] ?? 0) + 1 / picks.length;
  return out;
}

/**
 * The kernel's choice written out from the spec: the Maglev table over `dests` in list order
 * (placed by addr + port, weighted by `weights`, the dests' last non-zero weights), the first
 * slot hsiphash(K1, saddr + port) mod M, and with fallback the probes at offsets first, first + 1...
 */
function kernelPicker(size: number, dests: Dest[], weights: number[]) {
  const table = buildTable(
    size,
    dests.map((d, i) => backendFromSeed(size, (d.addr + d.port) >>> 0, weights[i])),
  );
  return (saddr: number, port: number, fallback: boolean): Dest | null => {
    const slot = (off: number) => hsiphash32(MH_KEY_OFFSET, (off + port + saddr) >>> 0) % size;
    const first = slot(0);
    if (table[first] < 0) return null;
    const d = dests[table[first]];
    if (destUsable(d)) return d;
    if (!fallback) return null;
    for (let i = 0; i < size; i++) {
      const c = dests[table[slot((first + i) % size)]];
      if (destUsable(c)) return c;
    }
    return null;
  };
}

describe('mh', () => {
  it('returns null for a service without dests, with or without mh-fallback', () => {
    const svc = makeService(mh);
    expect(pickFor(svc, 0xc0a80001)).toBeNull();
    svc.flags |= SVC_F_SCHED1 | SVC_F_SCHED2;
    expect(pickFor(svc, 0xc0a80001)).toBeNull();
  });

  it('returns null when every dest was added with weight 0, even with mh-fallback', () => {
    const { svc } = serviceWith(mh, [
      { name: '172.16.0.1', weight: 0 },
      { name: '172.16.0.2', weight: 0 },
    ]);
    svc.flags |= SVC_F_SCHED1;
    expect(mapping(svc, sources(50)).every((p) => p === null)).toBe(true);
  });

  it('sends a source address to the same dest every time, whatever its source port (no mh-port)', () => {
    const { svc } = serviceWith(mh, FOUR);
    for (const a of sources(300)) {
      const first = pickFor(svc, a, 1024);
      expect(first).not.toBeNull();
      for (const port of [1025, 40000, 65535]) expect(pickFor(svc, a, port)).toBe(first);
    }
  });

  it('follows the kernel table: first choice is slot hsiphash(K1, saddr) mod 4093 of the list-order Maglev table', () => {
    const { svc } = serviceWith(mh, [
      { name: '172.16.0.1', weight: 3 },
      { name: '172.16.0.2', weight: 1 },
      { name: '10.9.8.7', weight: 2 },
    ]);
    const kernel = kernelPicker(4093, svc.dests, [3, 1, 2]);
    for (const a of sources(500, 2)) {
      expect(svc.sched.schedule(svc, pkt(a), 0)).toBe(kernel(a, 0, false));
    }
  });

  it('honours the table size of its CONFIG_IP_VS_MH_TAB_INDEX (8 -> 251 slots)', () => {
    const { svc } = serviceWith(createMh(8), FOUR);
    const kernel = kernelPicker(251, svc.dests, [1, 1, 1, 1]);
    for (const a of sources(300, 3)) {
      expect(svc.sched.schedule(svc, pkt(a), 0)).toBe(kernel(a, 0, false));
    }
  });

  it('spreads many sources over the dests in proportion to their weights', () => {
    const { svc } = serviceWith(mh, [
      { name: '172.16.0.1', weight: 1 },
      { name: '172.16.0.2', weight: 2 },
      { name: '172.16.0.3', weight: 3 },
    ]);
    const s = shares(mapping(svc, sources(20000, 4)));
    expect(Math.abs(s['172.16.0.1'] - 1 / 6)).toBeLessThan(0.02);
    expect(Math.abs(s['172.16.0.2'] - 2 / 6)).toBeLessThan(0.02);
    expect(Math.abs(s['172.16.0.3'] - 3 / 6)).toBeLessThan(0.02);
  });

  it('with mh-port, spreads one client address over every dest by source port (TCP and UDP)', () => {
    const { svc } = serviceWith(mh, FOUR);
    const client = 0xc0a80101;
    const ports = Array.from({ length: 400 }, (_, i) => 20000 + i);
    expect(new Set(ports.map((p) => pickFor(svc, client, p))).size).toBe(1);
    svc.flags |= SVC_F_SCHED2;
    for (const proto of [IPPROTO_TCP, IPPROTO_UDP]) {
      const picks = ports.map((p) => nameOf(svc.sched.schedule(svc, pkt(client, p, proto), 0)));
      const s = shares(picks);
      expect(Object.keys(s).sort()).toEqual(FOUR.map((d) => d.name).sort());
      for (const v of Object.values(s)) expect(v).toBeGreaterThan(0.15);
      // The same (address, port) still always lands on the same dest.
      expect(ports.map((p) => nameOf(svc.sched.schedule(svc, pkt(client, p, proto), 0)))).toEqual(picks);
    }
    const kernel = kernelPicker(4093, svc.dests, [1, 1, 1, 1]);
    for (const a of sources(100, 5)) {
      expect(svc.sched.schedule(svc, pkt(a, 4242), 0)).toBe(kernel(a, 4242, false));
    }
  });

  it('with mh-port, hashes a packet of a portless protocol (ICMP) with port 0', () => {
    const { svc } = serviceWith(mh, FOUR);
    svc.flags |= SVC_F_SCHED2;
    for (const a of sources(50, 6)) {
      const expected = svc.sched.schedule(svc, pkt(a, 0), 0);
      for (const port of [1, 999, 54321]) expect(svc.sched.schedule(svc, pkt(a, port, IPPROTO_ICMP), 0)).toBe(expected);
    }
  });

  it('maps sources the same when bound to a service that already holds the dests (ipvsadm -E -s mh)', () => {
    const built = serviceWith(mh, FIVE).svc;
    const bound = boundServiceWith(mh, FIVE).svc;
    const addrs = sources(1000, 7);
    expect(mapping(bound, addrs)).toEqual(mapping(built, addrs));
  });

  it('quiescing a dest (weight 0) moves nobody else; its sources get null; restoring the weight restores all', () => {
    const { svc, d } = serviceWith(mh, FOUR);
    const addrs = sources(2000, 8);
    const before = mapping(svc, addrs);
    setWeight(svc, d['172.16.0.2'], 0);
    const during = mapping(svc, addrs);
    let nulls = 0;
    during.forEach((p, i) => {
      if (before[i] === '172.16.0.2') {
        expect(p).toBeNull();
        nulls++;
      } else expect(p).toBe(before[i]);
    });
    expect(nulls).toBeGreaterThan(300);
    setWeight(svc, d['172.16.0.2'], 1);
    expect(mapping(svc, addrs)).toEqual(before);
  });

  it('with mh-fallback, sources of a quiesced dest move to the next usable candidate, the others stay', () => {
    const { svc, d } = serviceWith(mh, FOUR);
    svc.flags |= SVC_F_SCHED1;
    const addrs = sources(2000, 9);
    const before = mapping(svc, addrs);
    setWeight(svc, d['172.16.0.3'], 0);
    const after = mapping(svc, addrs);
    // The quiesced dest keeps its slots (built from its last weight, 1); only the probing differs.
    const kernel = kernelPicker(4093, svc.dests, [1, 1, 1, 1]);
    after.forEach((p, i) => {
      if (before[i] === '172.16.0.3') {
        expect(p).not.toBeNull();
        expect(p).not.toBe('172.16.0.3');
        expect(svc.sched.schedule(svc, pkt(addrs[i]), 0)).toBe(kernel(addrs[i], 0, true));
      } else expect(p).toBe(before[i]);
    });
    // The moved sources do not all pile onto one dest.
    const moved = after.filter((_, i) => before[i] === '172.16.0.3');
    expect(new Set(moved).size).toBe(3);
  });

  it('treats an overloaded dest like a quiesced one: null, or the next candidate with mh-fallback', () => {
    const { svc, d } = serviceWith(mh, FOUR);
    const addrs = sources(1000, 10);
    const before = mapping(svc, addrs);
    setOverloaded(d['172.16.0.4'], true);
    const without = mapping(svc, addrs);
    svc.flags |= SVC_F_SCHED1;
    const withFallback = mapping(svc, addrs);
    before.forEach((p, i) => {
      if (p === '172.16.0.4') {
        expect(without[i]).toBeNull();
        expect(withFallback[i]).not.toBeNull();
        expect(withFallback[i]).not.toBe('172.16.0.4');
      } else {
        expect(without[i]).toBe(p);
        expect(withFallback[i]).toBe(p);
      }
    });
    setOverloaded(d['172.16.0.4'], false);
    expect(mapping(svc, addrs)).toEqual(before);
  });

  it('with mh-fallback and no usable dest at all, returns null', () => {
    const { svc, d } = serviceWith(mh, [{ name: '172.16.0.1' }, { name: '172.16.0.2' }]);
    svc.flags |= SVC_F_SCHED1;
    setWeight(svc, d['172.16.0.1'], 0);
    setOverloaded(d['172.16.0.2'], true);
    expect(mapping(svc, sources(20, 11)).every((p) => p === null)).toBe(true);
  });

  it('deleting one of five dests moves its own sources and under 5% of the others', () => {
    const { svc, d } = serviceWith(mh, FIVE);
    const addrs = sources(4000, 12);
    const before = mapping(svc, addrs);
    delDest(svc, d['172.16.0.2']);
    const after = mapping(svc, addrs);
    let others = 0;
    let moved = 0;
    after.forEach((p, i) => {
      expect(p).not.toBeNull();
      expect(p).not.toBe('172.16.0.2');
      if (before[i] !== '172.16.0.2') {
        others++;
        if (p !== before[i]) moved++;
      }
    });
    expect(moved / others).toBeLessThan(0.05);
  });

  it('adding a sixth dest takes about 1/6 of the sources and moves under 5% of the rest between the others', () => {
    const { svc } = serviceWith(mh, FIVE);
    const addrs = sources(6000, 13);
    const before = mapping(svc, addrs);
    addDest(svc, { name: '172.16.0.6' });
    const after = mapping(svc, addrs);
    const toNew = after.filter((p) => p === '172.16.0.6').length / addrs.length;
    expect(Math.abs(toNew - 1 / 6)).toBeLessThan(0.03);
    const between = after.filter((p, i) => p !== '172.16.0.6' && p !== before[i]).length;
    expect(between / addrs.length).toBeLessThan(0.05);
  });

  it('rebuilds on a weight change: raising one of three dests from 1 to 2 takes its share from 1/3 to 1/2', () => {
    const { svc, d } = serviceWith(mh, FOUR.slice(0, 3));
    const addrs = sources(12000, 14);
    expect(Math.abs(shares(mapping(svc, addrs))['172.16.0.1'] - 1 / 3)).toBeLessThan(0.02);
    setWeight(svc, d['172.16.0.1'], 2);
    expect(Math.abs(shares(mapping(svc, addrs))['172.16.0.1'] - 1 / 2)).toBeLessThan(0.02);
  });

  it('a dest added with weight 0 gets no sources and displaces nobody; a weight brings it in', () => {
    const { svc } = serviceWith(mh, FOUR);
    const addrs = sources(3000, 15);
    const before = mapping(svc, addrs);
    const idle = addDest(svc, { name: '172.16.0.9', weight: 0 });
    expect(mapping(svc, addrs)).toEqual(before);
    setWeight(svc, idle, 1);
    const after = mapping(svc, addrs);
    expect(after.filter((p) => p === '172.16.0.9').length).toBeGreaterThan(400);
  });

  it('two services using mh keep separate tables', () => {
    const one = serviceWith(mh, FOUR).svc;
    const two = serviceWith(mh, [{ name: '10.1.1.1' }, { name: '10.1.1.2' }]).svc;
    expect(one.schedData).not.toBe(two.schedData);
    const addrs = sources(200, 16);
    expect(mapping(two, addrs).every((p) => p === '10.1.1.1' || p === '10.1.1.2')).toBe(true);
    expect(mapping(one, addrs).every((p) => p?.startsWith('172.16.0.'))).toBe(true);
  });
});
