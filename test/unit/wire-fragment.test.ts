import { describe, expect, it } from 'vitest';
import { fold, sum16 } from '../../src/wire/checksum';
import { FRAG_UNIT, fragmentCount, laterFragmentHeaderLen, writeFragment } from '../../src/wire/fragment';
import { IPV4 } from '../../src/wire/ipv4';
import { FRAG_COMPLETE, FRAG_HELD, Reassembler } from '../../src/wire/reassembly';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet } from '../helpers/packet-builder';
import { mulberry32 } from '../helpers/prng';

/** Every fragment of `pkt` for `mtu`, each written into its own buffer (pre-filled with 0xee). */
function fragmentsOf(pkt: Buffer, mtu: number): Buffer[] {
  const n = fragmentCount(pkt, 0, mtu);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const slot = Buffer.alloc(Math.max(mtu, pkt.length) + 16, 0xee);
    const len = writeFragment(pkt, 0, mtu, i, slot, 0);
    if (len === 0) throw new Error(`fragment ${i} of ${n}: length 0`);
    for (let k = len; k < slot.length; k++) if (slot[k] !== 0xee) throw new Error(`fragment ${i}: wrote past its end`);
    out.push(slot.subarray(0, len));
  }
  return out;
}

/** A UDP datagram 10.0.0.1:40000 -> 192.168.0.1:53 whose payload is `size` seeded random bytes. */
function udpDatagram(size: number, seed: number, options?: Buffer): Buffer {
  const next = mulberry32(seed);
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = next() & 0xff;
  return packet()
    .ipv4({ src: '10.0.0.1', dst: '192.168.0.1', id: 0x4242, ttl: 61, tos: 0x10, options })
    .udp({ sport: 40000, dport: 53 })
    .payload(body)
    .build();
}

function headerChecksumOk(b: Buffer): boolean {
  return fold(sum16(b, 0, (b[IPV4.VER_IHL] & 0x0f) << 2)) === 0xffff;
}

// Options: Record Route (type 7, not copied, 7 bytes), Loose Source Route (type 0x83, copied,
// 7 bytes), NOP, EOL: 16 bytes, a 36-byte header. Later fragments: LSRR + one pad byte = 28.
const RR = '07 07 04 00 00 00 00';
const LSRR = '83 07 04 0a 00 00 01';
const OPTIONS = fromHex(`${RR} ${LSRR} 01 00`);

describe('fragmentCount / writeFragment: shapes', () => {
  it('a packet that fits the MTU is one fragment, copied unchanged', () => {
    const p = udpDatagram(100, 1);
    expect(fragmentCount(p, 0, p.length)).toBe(1);
    const frags = fragmentsOf(p, 1500);
    expect(frags).toEqual([p]);
  });

  it('splits a 4020-byte UDP datagram for MTU 1500 into 1500 + 1500 + 1060', () => {
    const p = udpDatagram(3992, 2); // 20 + 8 + 3992 = 4020
    expect(fragmentCount(p, 0, 1500)).toBe(3);
    const frags = fragmentsOf(p, 1500);
    expect(frags.map((f) => f.length)).toEqual([1500, 1500, 1060]);
    const d = frags.map((f) => expectValidPacket(f));
    expect(d.map((x) => [x.mf, x.fragOffset])).toEqual([
      [true, 0],
      [true, 1480],
      [false, 2960],
    ]);
    for (const x of d) {
      expect(x).toMatchObject({ src: '10.0.0.1', dst: '192.168.0.1', id: 0x4242, ttl: 61, tos: 0x10, protocol: 17 });
      expect(x.df).toBe(false);
    }
    // The IPv4 payloads, in order, are the original payload.
    const joined = Buffer.concat(frags.map((f) => f.subarray(20)));
    expect(joined).toEqual(p.subarray(20));
  });

  it('rounds non-last payloads down to a multiple of 8 (MTU 1000 -> 976 bytes each)', () => {
    const p = udpDatagram(3000, 3);
    const frags = fragmentsOf(p, 1000);
    const payloads = frags.map((f) => f.length - 20);
    expect(payloads).toEqual([976, 976, 976, 3008 - 3 * 976]);
    expect(frags.map((f) => decodePacket(f).fragOffset)).toEqual([0, 976, 1952, 2928]);
  });

  it('the smallest MTU that works carries 8 bytes per fragment', () => {
    const p = udpDatagram(24, 4); // 32 bytes of IPv4 payload
    expect(fragmentCount(p, 0, 27)).toBe(0);
    expect(fragmentCount(p, 0, 28)).toBe(4);
    const frags = fragmentsOf(p, 28);
    expect(frags.map((f) => f.length)).toEqual([28, 28, 28, 28]);
    expect(frags.map((f) => decodePacket(f).fragOffset)).toEqual([0, 8, 16, 24]);
  });

  it('a payload that divides evenly leaves no empty last fragment', () => {
    const p = udpDatagram(2 * 1480 - 8, 5); // IPv4 payload exactly 2 * 1480
    expect(fragmentCount(p, 0, 1500)).toBe(2);
    expect(fragmentsOf(p, 1500).map((f) => f.length)).toEqual([1500, 1500]);
  });
});

describe('fragmentCount / writeFragment: options (RFC 791 copied flag)', () => {
  it('the first fragment keeps every option; later ones only copied options, padded to 4', () => {
    const p = udpDatagram(1000, 6, OPTIONS);
    expect((p[0] & 0x0f) * 4).toBe(36);
    expect(laterFragmentHeaderLen(p, 0)).toBe(28);
    const frags = fragmentsOf(p, 300);
    // First: (300 - 36) & ~7 = 264 bytes; later: (300 - 28) & ~7 = 272 bytes.
    expect(frags.map((f) => decodePacket(f).headerLen)).toEqual([36, 28, 28, 28]);
    expect(frags.map((f) => f.length - decodePacket(f).headerLen)).toEqual([264, 272, 272, 1008 - 264 - 544]);
    expect(frags[0].subarray(20, 36)).toEqual(OPTIONS);
    for (const f of frags.slice(1)) expect(f.subarray(20, 28)).toEqual(fromHex(`${LSRR} 00`));
    for (const f of frags) expect(headerChecksumOk(f)).toBe(true);
    const joined = Buffer.concat(frags.map((f) => f.subarray(decodePacket(f).headerLen)));
    expect(joined).toEqual(p.subarray(36));
  });

  it('no copied options: later fragments have a plain 20-byte header', () => {
    const p = udpDatagram(600, 7, fromHex(RR));
    expect(laterFragmentHeaderLen(p, 0)).toBe(20);
    expect(fragmentsOf(p, 400).map((f) => decodePacket(f).headerLen)).toEqual([28, 20]);
  });

  it('a malformed option (length 1) ends the walk: only the options before it are copied', () => {
    const p = udpDatagram(600, 8, fromHex('94 04 00 00 88 01 00 00'));
    expect(laterFragmentHeaderLen(p, 0)).toBe(24);
    const later = fragmentsOf(p, 400)[1];
    expect(later.subarray(20, 24)).toEqual(fromHex('94 04 00 00'));
  });
});

describe('fragmentCount / writeFragment: fragments as input, refusals', () => {
  it('a fragment with MF set: offsets continue from its own, every output keeps MF', () => {
    const p = packet()
      .ipv4({ src: '1.1.1.1', dst: '2.2.2.2', id: 9, mf: true, fragOffset: 1480 })
      .payload(Buffer.alloc(1200, 0x5a))
      .build();
    const d = fragmentsOf(p, 576).map((f) => expectValidPacket(f));
    expect(d.map((x) => [x.mf, x.fragOffset])).toEqual([
      [true, 1480],
      [true, 1480 + 552],
      [true, 1480 + 1104],
    ]);
  });

  it('a last fragment (MF clear, offset != 0): only its last output has MF clear', () => {
    const p = packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2', fragOffset: 800 }).payload(Buffer.alloc(1200)).build();
    const d = fragmentsOf(p, 576).map((f) => decodePacket(f));
    expect(d.map((x) => [x.mf, x.fragOffset])).toEqual([
      [true, 800],
      [true, 1352],
      [false, 1904],
    ]);
  });

  it('refuses a too-big packet with DF set (the caller sends frag-needed)', () => {
    const p = packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2', df: true }).payload(Buffer.alloc(2000)).build();
    expect(fragmentCount(p, 0, 1500)).toBe(0);
    expect(writeFragment(p, 0, 1500, 0, Buffer.alloc(1500), 0)).toBe(0);
    // It fits: DF does not matter.
    expect(fragmentCount(p, 0, 2020)).toBe(1);
  });

  it('refuses input whose data would end past the largest datagram', () => {
    const p = packet()
      .ipv4({ src: '1.1.1.1', dst: '2.2.2.2', mf: true, fragOffset: 65000 })
      .payload(Buffer.alloc(1000))
      .build();
    expect(fragmentCount(p, 0, 576)).toBe(0);
  });

  it('writeFragment returns 0 for an index out of range', () => {
    const p = udpDatagram(3000, 9);
    const out = Buffer.alloc(1500);
    expect(writeFragment(p, 0, 1500, -1, out, 0)).toBe(0);
    expect(writeFragment(p, 0, 1500, 3, out, 0)).toBe(0);
    expect(writeFragment(p, 0, 1500, 2, out, 0)).toBeGreaterThan(0);
  });

  it('works at offsets in a shared slab, and fragment 0 can be written in place last', () => {
    const p = udpDatagram(3500, 10, OPTIONS);
    const expected = fragmentsOf(p, 1400);
    const slab = Buffer.alloc(64 + p.length + 3 * 1400, 0xee);
    p.copy(slab, 64);
    const slots = [0, 64 + p.length, 64 + p.length + 1400, 64 + p.length + 2800];
    const lens: number[] = [];
    for (let i = expected.length - 1; i >= 1; i--) lens[i] = writeFragment(slab, 64, 1400, i, slab, slots[i]);
    lens[0] = writeFragment(slab, 64, 1400, 0, slab, 64);
    expect(slab.subarray(64, 64 + lens[0])).toEqual(expected[0]);
    for (let i = 1; i < expected.length; i++) expect(slab.subarray(slots[i], slots[i] + lens[i])).toEqual(expected[i]);
  });
});

/** What is wrong with a fragment train for `mtu` (empty when nothing): sizes, offsets, MF, checksums. */
function fragmentProblems(frags: Buffer[], mtu: number): string[] {
  const problems: string[] = [];
  let offset = 0;
  frags.forEach((f, i) => {
    const d = decodePacket(f);
    const payload = f.length - d.headerLen;
    const last = i === frags.length - 1;
    if (f.length > mtu) problems.push(`#${i}: ${f.length} bytes > mtu`);
    if (d.totalLen !== f.length) problems.push(`#${i}: total length ${d.totalLen} != ${f.length}`);
    if (!headerChecksumOk(f)) problems.push(`#${i}: bad header checksum`);
    if (d.fragOffset !== offset) problems.push(`#${i}: offset ${d.fragOffset}, expected ${offset}`);
    if (d.mf === last) problems.push(`#${i}: MF ${d.mf}`);
    if (!last && payload % FRAG_UNIT !== 0) problems.push(`#${i}: payload ${payload} not a multiple of 8`);
    offset += payload;
  });
  return problems;
}

describe('fragmenter property (seeded)', () => {
  it('random sizes, MTUs and options: fragments fit, align, verify and reassemble to the original', () => {
    const next = mulberry32(0xf4a6);
    const optionSets = [undefined, OPTIONS, fromHex(LSRR), fromHex('94 04 00 00'), fromHex(RR)];
    // Small MTUs cut 12000 bytes into up to 250 fragments: raise the per-datagram cap.
    const r = new Reassembler({ hashSeed: 1, maxDatagrams: 1, maxFragments: 256 });
    for (let iter = 0; iter < 200; iter++) {
      const options = optionSets[next() % optionSets.length];
      const size = next() % 12000;
      const p = udpDatagram(size, next(), options);
      const mtu = 68 + (next() % 1500);
      const frags = fragmentsOf(p, mtu);
      expect(frags.length).toBe(fragmentCount(p, 0, mtu));
      if (frags.length > 1) expect(fragmentProblems(frags, mtu), `iter ${iter}, mtu ${mtu}`).toEqual([]);
      if (frags.length === 1) {
        expect(frags[0]).toEqual(p);
        continue;
      }
      const statuses = frags.map((f) => r.add(f, 0, f.length, 0));
      expect(statuses.slice(0, -1).every((s) => s === FRAG_HELD)).toBe(true);
      expect(statuses.at(-1)).toBe(FRAG_COMPLETE);
      const out = Buffer.alloc(p.length);
      expect(r.copyComplete(out, 0)).toBe(p.length);
      expect(out.equals(p), `iter ${iter}: reassembled == original`).toBe(true);
    }
  });
});
