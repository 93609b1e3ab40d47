import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { fold, sum16 } from '../../src/wire/checksum';
import { fragmentCount, writeFragment } from '../../src/wire/fragment';
import { IPV4 } from '../../src/wire/ipv4';
import {
  DEFAULT_FRAG_MAX_BYTES,
  DEFAULT_FRAG_MAX_DATAGRAMS,
  DEFAULT_FRAG_MAX_FRAGMENTS,
  DEFAULT_FRAG_MAX_PER_SOURCE,
  DEFAULT_FRAG_TIMEOUT,
  FRAG_BAD,
  FRAG_COMPLETE,
  FRAG_DUPLICATE,
  FRAG_HELD,
  FRAG_NO_MEMORY,
  FRAG_OVERLAP,
  FRAG_STATUS_COUNT,
  FRAG_STATUS_NAMES,
  FRAG_TOO_BIG,
  Reassembler,
  type ReassemblerOptions,
} from '../../src/wire/reassembly';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet } from '../helpers/packet-builder';
import { mulberry32 } from '../helpers/prng';

const SRC = '10.0.0.1';
const DST = '192.168.0.1';

/** A UDP datagram SRC:40000 -> DST:53 (or as given) with `size` seeded random payload bytes. */
function udpDatagram(
  size: number,
  seed: number,
  o: { id?: number; src?: string; dst?: string; options?: Buffer; tos?: number } = {},
): Buffer {
  const next = mulberry32(seed);
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = next() & 0xff;
  return packet()
    .ipv4({ src: o.src ?? SRC, dst: o.dst ?? DST, id: o.id ?? 0x1234, ttl: 64, tos: o.tos, options: o.options })
    .udp({ sport: 40000, dport: 53 })
    .payload(body)
    .build();
}

/** The fragments of `pkt` for `mtu` (wire/fragment.ts), each in its own buffer. */
function fragmentsOf(pkt: Buffer, mtu: number): Buffer[] {
  const n = fragmentCount(pkt, 0, mtu);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const slot = Buffer.alloc(mtu);
    out.push(slot.subarray(0, writeFragment(pkt, 0, mtu, i, slot, 0)));
  }
  return out;
}

/** One hand-made fragment: IPv4 (protocol 253, experimental, by default) with `data` (or that many 0xab bytes) as payload. */
function frag(o: {
  offset: number;
  mf: boolean;
  data: Buffer | number;
  id?: number;
  src?: string;
  dst?: string;
  protocol?: number;
  tos?: number;
  df?: boolean;
  options?: Buffer;
}): Buffer {
  return packet()
    .ipv4({
      src: o.src ?? SRC,
      dst: o.dst ?? DST,
      id: o.id ?? 7,
      protocol: o.protocol ?? 253,
      fragOffset: o.offset,
      mf: o.mf,
      tos: o.tos,
      df: o.df,
      options: o.options,
    })
    .payload(typeof o.data === 'number' ? Buffer.alloc(o.data, 0xab) : o.data)
    .build();
}

function shuffle<T>(items: T[], seed: number): T[] {
  const next = mulberry32(seed);
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function headerChecksumOk(b: Buffer): boolean {
  return fold(sum16(b, 0, (b[IPV4.VER_IHL] & 0x0f) << 2)) === 0xffff;
}

function reassembler(opts: ReassemblerOptions = {}): Reassembler {
  return new Reassembler({ hashSeed: 0x5eed, ...opts });
}

/** Offer each fragment at time `now`; the statuses. */
function feed(r: Reassembler, frags: Buffer[], now = 0): number[] {
  return frags.map((f) => r.add(f, 0, f.length, now));
}

/** The waiting complete datagram, copied out. */
function takeComplete(r: Reassembler): Buffer {
  const out = Buffer.alloc(0x10000);
  const len = r.copyComplete(out, 0);
  expect(len, 'a complete datagram is waiting').toBeGreaterThan(0);
  return out.subarray(0, len);
}

/** HELD for all but the last, COMPLETE for the last. */
function heldThenComplete(n: number): number[] {
  return [...Array<number>(n - 1).fill(FRAG_HELD), FRAG_COMPLETE];
}

describe('Reassembler: whole datagrams', () => {
  it('reassembles in-order fragments into the original datagram, byte for byte', () => {
    const orig = udpDatagram(4000, 1);
    const frags = fragmentsOf(orig, 1500);
    expect(frags.length).toBe(3);
    const r = reassembler();
    expect(feed(r, frags)).toEqual(heldThenComplete(3));
    const out = takeComplete(r);
    expect(out).toEqual(orig);
    expectValidPacket(out); // header and UDP checksums
    expect([r.queues, r.heldBytes]).toEqual([0, 0]);
    expect(r.counts[FRAG_COMPLETE]).toBe(1);
    expect(r.counts[FRAG_HELD]).toBe(2);
  });

  it('reassembles fragments that arrive in reverse order', () => {
    const orig = udpDatagram(9000, 2);
    const frags = fragmentsOf(orig, 1500).reverse();
    const r = reassembler();
    expect(feed(r, frags)).toEqual(heldThenComplete(frags.length));
    expect(takeComplete(r)).toEqual(orig);
  });

  it('random order, sizes, MTUs and options (seeded): every fragment verifies, the result equals the original', () => {
    const next = mulberry32(0xacce55);
    const optionSets = [undefined, fromHex('94 04 00 00'), fromHex('07 07 04 00 00 00 00 83 07 04 0a 00 00 01 01 00')];
    const r = reassembler({ maxFragments: 256 });
    for (let iter = 0; iter < 200; iter++) {
      const orig = udpDatagram(1 + (next() % 20000), next(), {
        id: next() & 0xffff,
        options: optionSets[next() % optionSets.length],
      });
      const mtu = 576 + (next() % 1000);
      const frags = shuffle(fragmentsOf(orig, mtu), next());
      if (frags.length === 1) continue;
      expect(frags.every(headerChecksumOk), `iter ${iter}: fragment header checksums`).toBe(true);
      expect(feed(r, frags, iter), `iter ${iter}`).toEqual(heldThenComplete(frags.length));
      expect(takeComplete(r).equals(orig), `iter ${iter}: reassembled == original`).toBe(true);
    }
    expect([r.queues, r.heldBytes, r.discarded]).toEqual([0, 0, 0]);
  });

  it('the largest datagram, 65535 bytes, reassembles', () => {
    const orig = udpDatagram(0xffff - 28, 3);
    expect(orig.length).toBe(0xffff);
    const frags = shuffle(fragmentsOf(orig, 1500), 4);
    const r = reassembler();
    expect(feed(r, frags)).toEqual(heldThenComplete(frags.length));
    expect(takeComplete(r).equals(orig)).toBe(true);
  });

  it('interleaved fragments of several datagrams and sources complete independently', () => {
    const origs = [1, 2, 3, 4, 5].map((k) => udpDatagram(3000 + 100 * k, k, { id: 100 + k, src: `10.0.0.${k}` }));
    const all = shuffle(
      origs.flatMap((o) => fragmentsOf(o, 1000)),
      99,
    );
    const r = reassembler();
    const done: Buffer[] = [];
    for (const f of all) if (r.add(f, 0, f.length, 0) === FRAG_COMPLETE) done.push(takeComplete(r));
    expect(done.length).toBe(5);
    const byId = (b: Buffer) => b.readUInt16BE(IPV4.ID);
    done.sort((a, b) => byId(a) - byId(b));
    expect(done.map((d, k) => d.equals(origs[k]))).toEqual([true, true, true, true, true]);
  });

  it('the key is <source, destination, protocol, id>: changing any one makes another datagram', () => {
    const r = reassembler();
    const base = { offset: 0, mf: true, data: 8 } as const;
    const variants = [{}, { src: '10.0.0.9' }, { dst: '10.9.9.9' }, { protocol: 6 }, { id: 8 }];
    for (const v of variants) expect(r.add(frag({ ...base, ...v }), 0, 28, 0)).toBe(FRAG_HELD);
    expect(r.queues).toBe(5);
    // The last fragment of the first datagram only completes that one.
    expect(r.add(frag({ offset: 8, mf: false, data: 8 }), 0, 28, 0)).toBe(FRAG_COMPLETE);
    expect(r.queues).toBe(4);
  });

  it('keeps the first fragment header and options; clears MF and offset, fixes the length and checksum', () => {
    const options = fromHex('94 04 00 00');
    const r = reassembler();
    r.add(frag({ offset: 16, mf: false, data: 4 }), 0, 24, 0);
    const first = frag({ offset: 0, mf: true, data: 16, options });
    expect(r.add(first, 0, first.length, 0)).toBe(FRAG_COMPLETE);
    const out = takeComplete(r);
    const d = expectValidPacket(out);
    expect(d).toMatchObject({ headerLen: 24, totalLen: 44, mf: false, df: false, fragOffset: 0, id: 7 });
    expect(out.subarray(20, 24)).toEqual(options);
  });

  it('DF on any fragment is kept on the datagram (Linux does so for path MTU)', () => {
    const r = reassembler();
    r.add(frag({ offset: 0, mf: true, data: 8 }), 0, 28, 0);
    r.add(frag({ offset: 8, mf: false, data: 8, df: true }), 0, 28, 0);
    expect(decodePacket(takeComplete(r)).df).toBe(true);
  });
});

describe('Reassembler: duplicates and overlaps', () => {
  it('drops duplicates one by one, and the datagram still completes', () => {
    const orig = udpDatagram(6000, 5);
    const frags = fragmentsOf(orig, 1500);
    const last = frags.at(-1)!;
    const rest = frags.slice(0, -1);
    const r = reassembler();
    const statuses = feed(r, shuffle([...rest, ...rest], 6));
    expect(statuses.filter((s) => s === FRAG_DUPLICATE).length).toBe(rest.length);
    expect(statuses.filter((s) => s === FRAG_HELD).length).toBe(rest.length);
    expect(r.add(last, 0, last.length, 0)).toBe(FRAG_COMPLETE);
    expect(takeComplete(r)).toEqual(orig);
    expect(r.counts[FRAG_DUPLICATE]).toBe(rest.length);
    expect(r.discarded).toBe(0);
  });

  it('a fragment wholly inside one already held is a duplicate (as Linux), and changes nothing', () => {
    const r = reassembler();
    expect(r.add(frag({ offset: 0, mf: true, data: 64 }), 0, 84, 0)).toBe(FRAG_HELD);
    const held = r.heldBytes;
    expect(r.add(frag({ offset: 16, mf: true, data: Buffer.alloc(16, 0xcd) }), 0, 36, 0)).toBe(FRAG_DUPLICATE);
    expect(r.heldBytes).toBe(held);
    expect(r.add(frag({ offset: 64, mf: false, data: 4 }), 0, 24, 0)).toBe(FRAG_COMPLETE);
    // The held bytes won: nothing of the duplicate was written.
    expect(decodePacket(takeComplete(r)).payload.subarray(16, 32)).toEqual(Buffer.alloc(16, 0xab));
  });

  it('a partly overlapping fragment discards the whole datagram; later fragments start afresh', () => {
    const orig = udpDatagram(4000, 7);
    const [f0, f1, f2] = fragmentsOf(orig, 1500);
    const r = reassembler();
    expect(feed(r, [f0!, f2!])).toEqual([FRAG_HELD, FRAG_HELD]);
    // [1472, 1488) straddles the end of fragment 0 at 1480.
    const straddle = frag({ offset: 1472, mf: true, data: 16, id: 0x1234, protocol: 17 });
    expect(r.add(straddle, 0, straddle.length, 0)).toBe(FRAG_OVERLAP);
    expect([r.queues, r.heldBytes, r.discarded]).toEqual([0, 0, 1]);
    // The missing middle fragment now starts a new datagram that cannot complete on its own.
    expect(r.add(f1!, 0, f1!.length, 0)).toBe(FRAG_HELD);
    expect(r.queues).toBe(1);
  });

  it('a fragment covering more than one held one is an overlap, not a duplicate', () => {
    const r = reassembler();
    r.add(frag({ offset: 8, mf: true, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 0, mf: true, data: 24 }), 0, 44, 0)).toBe(FRAG_OVERLAP);
    expect(r.queues).toBe(0);
  });

  it('a duplicate arriving after completion starts a new datagram, which later expires', () => {
    const orig = udpDatagram(2000, 8);
    const frags = fragmentsOf(orig, 1500);
    const r = reassembler();
    expect(feed(r, frags)).toEqual([FRAG_HELD, FRAG_COMPLETE]);
    expect(r.add(frags[0], 0, frags[0].length, 0)).toBe(FRAG_HELD);
    expect(r.completeLen).toBe(0); // add() handed the completed slot back
    expect(r.expire(DEFAULT_FRAG_TIMEOUT)).toBe(1);
  });
});

describe('Reassembler: timeouts', () => {
  it('expires a datagram timeoutSeconds after its first fragment, later fragments do not extend it', () => {
    const orig = udpDatagram(4000, 9);
    const [f0, f1] = fragmentsOf(orig, 1500);
    const seen: Buffer[] = [];
    const r = reassembler({ onExpire: (b, off, len) => seen.push(Buffer.from(b.subarray(off, off + len))) });
    r.add(f1!, 0, f1!.length, 100);
    r.add(f0!, 0, f0!.length, 120);
    expect(r.expire(129)).toBe(0);
    expect(r.expire(130)).toBe(1);
    expect([r.queues, r.heldBytes, r.expired]).toEqual([0, 0, 1]);
    // The callback saw the first fragment exactly as it arrived: what ICMP time exceeded quotes.
    expect(seen).toEqual([f0]);
  });

  it('an expired datagram without its first fragment is dropped without a callback', () => {
    let calls = 0;
    const r = reassembler({ timeoutSeconds: 5, onExpire: () => calls++ });
    r.add(frag({ offset: 8, mf: false, data: 8 }), 0, 28, 0);
    r.add(frag({ offset: 0, mf: true, data: 8, id: 8 }), 0, 28, 3);
    expect(r.expire(5)).toBe(1);
    expect(calls).toBe(0);
    expect(r.queues).toBe(1);
    expect(r.expire(8)).toBe(1);
    expect(calls).toBe(1);
    expect(r.expired).toBe(2);
  });
});

describe('Reassembler: limits', () => {
  it('memory cap: a new datagram over it is refused, one that would grow over it is discarded', () => {
    const r = reassembler({ maxBytes: 3000 });
    const a = frag({ offset: 0, mf: true, data: 1480, id: 1 });
    const b = frag({ offset: 0, mf: true, data: 1480, id: 2 });
    const c = frag({ offset: 0, mf: true, data: 8, id: 3 });
    expect(feed(r, [a, b])).toEqual([FRAG_HELD, FRAG_HELD]);
    expect(r.heldBytes).toBe(3000); // payload + first-fragment header, twice
    expect(r.add(c, 0, c.length, 0)).toBe(FRAG_NO_MEMORY);
    expect(r.queues).toBe(2);
    const a2 = frag({ offset: 1480, mf: false, data: 8, id: 1 });
    expect(r.add(a2, 0, a2.length, 0)).toBe(FRAG_NO_MEMORY);
    expect([r.queues, r.heldBytes, r.discarded]).toEqual([1, 1500, 1]);
    expect(r.counts[FRAG_NO_MEMORY]).toBe(2);
  });

  it('heldBytes never exceeds maxBytes under a random flood (seeded)', () => {
    const next = mulberry32(77);
    const r = reassembler({ maxBytes: 20000, maxDatagrams: 64, maxPerSource: 64 });
    const payload = Buffer.alloc(1600, 0xab);
    let most = 0;
    for (let i = 0; i < 3000; i++) {
      const data = payload.subarray(0, 8 * (1 + (next() % 200)));
      const f = frag({ offset: (next() % 64) * 8, mf: true, data, id: next() % 40 });
      r.add(f, 0, f.length, 0);
      most = Math.max(most, r.heldBytes);
    }
    expect(most).toBeGreaterThan(15000);
    expect(most).toBeLessThanOrEqual(20000);
    expect(r.counts[FRAG_NO_MEMORY]).toBeGreaterThan(0);
  });

  it('per-source cap: a source at maxPerSource datagrams may start no more; others may', () => {
    const r = reassembler({ maxPerSource: 2 });
    expect(
      feed(
        r,
        [1, 2, 3].map((id) => frag({ offset: 0, mf: true, data: 8, id })),
      ),
    ).toEqual([FRAG_HELD, FRAG_HELD, FRAG_NO_MEMORY]);
    expect(r.add(frag({ offset: 0, mf: true, data: 8, id: 3, src: '10.0.0.2' }), 0, 28, 0)).toBe(FRAG_HELD);
    // Growing an existing datagram of the capped source is fine.
    expect(r.add(frag({ offset: 8, mf: false, data: 8, id: 1 }), 0, 28, 0)).toBe(FRAG_COMPLETE);
    expect(r.add(frag({ offset: 0, mf: true, data: 8, id: 4 }), 0, 28, 0)).toBe(FRAG_HELD);
  });

  it('count cap: at maxDatagrams no datagram starts until one completes or expires', () => {
    const r = reassembler({ maxDatagrams: 3 });
    const starts = [1, 2, 3, 4].map((id) => frag({ offset: 0, mf: true, data: 8, id, src: `10.0.1.${id}` }));
    expect(feed(r, starts, 0)).toEqual([FRAG_HELD, FRAG_HELD, FRAG_HELD, FRAG_NO_MEMORY]);
    expect(r.add(frag({ offset: 8, mf: false, data: 8, id: 2, src: '10.0.1.2' }), 0, 28, 0)).toBe(FRAG_COMPLETE);
    expect(r.add(starts[3], 0, 28, 10)).toBe(FRAG_HELD);
    expect(r.add(frag({ offset: 0, mf: true, data: 8, id: 5 }), 0, 28, 10)).toBe(FRAG_NO_MEMORY);
    expect(r.expire(DEFAULT_FRAG_TIMEOUT)).toBe(2);
    expect(r.add(frag({ offset: 0, mf: true, data: 8, id: 5 }), 0, 28, 10)).toBe(FRAG_HELD);
  });

  it('fragment cap: a datagram needing more than maxFragments fragments is discarded', () => {
    const orig = udpDatagram(4000, 10);
    const frags = fragmentsOf(orig, 1000);
    expect(frags.length).toBe(5);
    const r = reassembler({ maxFragments: 4 });
    expect(feed(r, frags)).toEqual([FRAG_HELD, FRAG_HELD, FRAG_HELD, FRAG_HELD, FRAG_NO_MEMORY]);
    expect([r.queues, r.heldBytes, r.discarded]).toEqual([0, 0, 1]);
  });

  it('slot buffers are pooled: one after another needs one buffer, three at once need three', () => {
    const r = reassembler();
    for (let k = 0; k < 50; k++) {
      const frags = fragmentsOf(udpDatagram(3000, k, { id: k }), 1500);
      expect(feed(r, frags)).toEqual(heldThenComplete(frags.length));
    }
    expect(r.buffersAllocated).toBe(1);
    const three = [1, 2, 3].flatMap((k) => fragmentsOf(udpDatagram(3000, k, { id: k }), 1500));
    for (let round = 0; round < 5; round++)
      expect(feed(r, shuffle(three, round)).filter((s) => s === FRAG_COMPLETE).length).toBe(3);
    expect(r.buffersAllocated).toBe(3);
  });

  it('survives churn in a crowded hash table (seeded): every datagram still completes intact', () => {
    const next = mulberry32(2024);
    const r = reassembler({ maxDatagrams: 16, maxPerSource: 16, hashSeed: 3 });
    for (let round = 0; round < 40; round++) {
      const origs = Array.from({ length: 16 }, (_, k) =>
        udpDatagram(17 + (next() % 24), next(), { id: next() & 0xffff, src: `10.1.${round}.${k}` }),
      );
      const firsts: Buffer[] = [];
      const lasts: Buffer[] = [];
      for (const o of origs) {
        const [first, last] = fragmentsOf(o, 44);
        firsts.push(first!);
        lasts.push(last!);
      }
      expect(feed(r, firsts).every((s) => s === FRAG_HELD)).toBe(true);
      const order = shuffle(
        origs.map((_, k) => k),
        next(),
      );
      for (const k of order) {
        const f = lasts[k];
        // MTU 44: 24 payload bytes a fragment, and 25..48 bytes of IPv4 payload: two fragments.
        expect(r.add(f, 0, f.length, 0)).toBe(FRAG_COMPLETE);
        expect(takeComplete(r).equals(origs[k])).toBe(true);
      }
      expect([r.queues, r.heldBytes]).toEqual([0, 0]);
    }
  });

  it('agrees with a simple model over random starts, completions, duplicates and expiry (seeded)', () => {
    const next = mulberry32(31337);
    const r = reassembler({ maxDatagrams: 16, maxPerSource: 16, timeoutSeconds: 10, hashSeed: 11 });
    // Model: key -> which half has arrived ('first' | 'last') and when the datagram started.
    const model = new Map<string, { part: string; born: number }>();
    for (let now = 0; now < 4000; now++) {
      const src = `10.2.0.${next() % 4}`;
      const id = next() % 12;
      const isFirst = (next() & 1) === 0;
      const f = frag({ offset: isFirst ? 0 : 8, mf: isFirst, data: 8, id, src });
      const key = `${src}/${id}`;
      const part = isFirst ? 'first' : 'last';
      const m = model.get(key);
      let expected: number;
      if (m === undefined) {
        expected = model.size < 16 ? FRAG_HELD : FRAG_NO_MEMORY;
        if (expected === FRAG_HELD) model.set(key, { part, born: now });
      } else if (m.part === part) expected = FRAG_DUPLICATE;
      else {
        expected = FRAG_COMPLETE;
        model.delete(key);
      }
      expect(r.add(f, 0, f.length, now), `step ${now}`).toBe(expected);
      if (now % 7 === 0) {
        let gone = 0;
        for (const [k, v] of model)
          if (v.born <= now - 10) {
            model.delete(k);
            gone++;
          }
        expect(r.expire(now)).toBe(gone);
      }
      expect(r.queues).toBe(model.size);
    }
  });

  it('clear() drops every datagram and keeps the buffers', () => {
    const r = reassembler();
    feed(
      r,
      [1, 2, 3].map((id) => frag({ offset: 0, mf: true, data: 8, id })),
    );
    r.clear();
    expect([r.queues, r.heldBytes, r.buffersAllocated]).toEqual([0, 0, 3]);
    expect(r.add(frag({ offset: 8, mf: false, data: 8, id: 1 }), 0, 28, 0)).toBe(FRAG_HELD);
  });
});

describe('Reassembler: too big and malformed', () => {
  it('a fragment ending past 65535 bytes is too big (ping of death)', () => {
    const r = reassembler();
    expect(r.add(frag({ offset: 65528, mf: false, data: 16 }), 0, 36, 0)).toBe(FRAG_TOO_BIG);
    expect(r.queues).toBe(0);
  });

  it('the first fragment header counts: 60 + payload over 65535 discards the datagram', () => {
    const r = reassembler();
    expect(r.add(frag({ offset: 65480, mf: false, data: 16 }), 0, 36, 0)).toBe(FRAG_HELD); // 20 + 65496 fits
    const longHeader = frag({ offset: 0, mf: true, data: 8, options: Buffer.alloc(40, 1) }); // 40 NOPs, IHL 15
    expect(r.add(longHeader, 0, longHeader.length, 0)).toBe(FRAG_TOO_BIG);
    expect([r.queues, r.heldBytes, r.discarded]).toEqual([0, 0, 1]);
  });

  it('a packet that is not a fragment is bad and touches no datagram', () => {
    const r = reassembler();
    r.add(frag({ offset: 0, mf: true, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 0, mf: false, data: 8 }), 0, 28, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(1);
  });

  it('an empty fragment is bad', () => {
    const r = reassembler();
    expect(r.add(frag({ offset: 8, mf: true, data: 0 }), 0, 20, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(0);
  });

  it('a non-last fragment whose payload is not a multiple of 8 is bad and discards its datagram', () => {
    const r = reassembler();
    r.add(frag({ offset: 0, mf: true, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 8, mf: true, data: 12 }), 0, 32, 0)).toBe(FRAG_BAD);
    expect([r.queues, r.discarded]).toEqual([0, 1]);
  });

  it('data beyond the end a last fragment set is bad', () => {
    const r = reassembler();
    r.add(frag({ offset: 16, mf: false, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 24, mf: true, data: 8 }), 0, 28, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(0);
  });

  it('a second last fragment with another end is bad', () => {
    const r = reassembler();
    r.add(frag({ offset: 16, mf: false, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 8, mf: false, data: 8 }), 0, 28, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(0);
  });

  it('a last fragment ending before data already held is bad', () => {
    const r = reassembler();
    r.add(frag({ offset: 32, mf: true, data: 8 }), 0, 28, 0);
    expect(r.add(frag({ offset: 8, mf: false, data: 8 }), 0, 28, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(0);
  });

  it('the same last fragment twice is a duplicate, not a conflict', () => {
    const r = reassembler();
    const last = frag({ offset: 16, mf: false, data: 8 });
    expect(feed(r, [last, last])).toEqual([FRAG_HELD, FRAG_DUPLICATE]);
  });
});

describe('Reassembler: ECN (RFC 3168 section 5.3)', () => {
  it('CE on one fragment, ECT(0) on the other: the datagram is CE', () => {
    const r = reassembler();
    r.add(frag({ offset: 0, mf: true, data: 8, tos: 0x02 }), 0, 28, 0);
    expect(r.add(frag({ offset: 8, mf: false, data: 8, tos: 0x03 }), 0, 28, 0)).toBe(FRAG_COMPLETE);
    const d = expectValidPacket(takeComplete(r));
    expect(d.tos).toBe(0x03);
  });

  it('not-ECT mixed with ECT discards the datagram', () => {
    const r = reassembler();
    r.add(frag({ offset: 0, mf: true, data: 8, tos: 0x00 }), 0, 28, 0);
    expect(r.add(frag({ offset: 8, mf: false, data: 8, tos: 0x01 }), 0, 28, 0)).toBe(FRAG_BAD);
    expect(r.queues).toBe(0);
  });
});

describe('Reassembler: taking the datagram', () => {
  it('completeBufShared exposes the datagram in place until the next call', () => {
    const orig = udpDatagram(2000, 11);
    const r = reassembler();
    expect(feed(r, fragmentsOf(orig, 1500))).toEqual([FRAG_HELD, FRAG_COMPLETE]);
    expect(r.completeLen).toBe(orig.length);
    expect(r.completeBufShared.subarray(r.completeOff, r.completeOff + r.completeLen)).toEqual(orig);
    r.releaseComplete();
    expect(r.completeLen).toBe(0);
    expect(r.copyComplete(Buffer.alloc(4096), 0)).toBe(0);
  });

  it('copyComplete writes at an offset, refuses a buffer without room, and frees the slot', () => {
    const orig = udpDatagram(2000, 12);
    const r = reassembler({ maxDatagrams: 1 });
    feed(r, fragmentsOf(orig, 1500));
    expect(r.copyComplete(Buffer.alloc(orig.length + 9), 10)).toBe(0); // one byte short
    const out = Buffer.alloc(orig.length + 10, 0xee);
    expect(r.copyComplete(out, 10)).toBe(orig.length);
    expect(out.subarray(10)).toEqual(orig);
    expect(out.subarray(0, 10)).toEqual(Buffer.alloc(10, 0xee));
    // The only slot is free again.
    expect(feed(r, fragmentsOf(orig, 1500))).toEqual([FRAG_HELD, FRAG_COMPLETE]);
  });
});

describe('Reassembler: configuration and names', () => {
  it('defaults are the named constants (Linux ipfrag_high_thresh and ipfrag_time)', () => {
    const r = new Reassembler();
    expect(r.maxBytes).toBe(DEFAULT_FRAG_MAX_BYTES);
    expect(DEFAULT_FRAG_MAX_BYTES).toBe(4 * 1024 * 1024);
    expect(r.timeoutSeconds).toBe(DEFAULT_FRAG_TIMEOUT);
    expect(DEFAULT_FRAG_TIMEOUT).toBe(30);
    expect(r.maxPerSource).toBe(DEFAULT_FRAG_MAX_PER_SOURCE);
    expect(r.maxDatagrams).toBe(DEFAULT_FRAG_MAX_DATAGRAMS);
    expect(r.maxFragments).toBe(DEFAULT_FRAG_MAX_FRAGMENTS);
  });

  it('rejects a limit that is not a positive integer with InvalidError', () => {
    expect(() => new Reassembler({ maxBytes: 0 })).toThrow(InvalidError);
    expect(() => new Reassembler({ timeoutSeconds: 1.5 })).toThrow(InvalidError);
    expect(() => new Reassembler({ maxDatagrams: -1 })).toThrow(/maxDatagrams/);
  });

  it('has one name per status', () => {
    expect(FRAG_STATUS_NAMES.length).toBe(FRAG_STATUS_COUNT);
    expect(FRAG_STATUS_NAMES[FRAG_OVERLAP]).toBe('overlap');
    expect(FRAG_STATUS_NAMES[FRAG_NO_MEMORY]).toBe('no_memory');
  });
});
