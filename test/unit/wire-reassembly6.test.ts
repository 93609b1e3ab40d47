// IPv6 fragment reassembly (wire/reassembly6.ts): datagrams whole in any order, the fragment
// header taken out with its next header moved into the header before it, and each way a set of
// fragments can be wrong.

import { describe, expect, it } from 'vitest';
import {
  FRAG_BAD,
  FRAG_COMPLETE,
  FRAG_DUPLICATE,
  FRAG_HELD,
  FRAG_NO_MEMORY,
  FRAG_OVERLAP,
  FRAG_TOO_BIG,
} from '../../src/wire/reassembly';
import { Reassembler6 } from '../../src/wire/reassembly6';
import { decode6, fragment6, udp6 } from '../helpers/packet6';

const SRC = '2001:db8::2';
const DST = '2001:db8:1::1';

function datagram(bytes: number, sport = 5000): Buffer {
  return udp6({ src: SRC, dst: DST, sport, dport: 53, payload: Buffer.alloc(bytes, 0x5a) });
}

/** Offer `f` (fragment header right after the fixed one). */
function add(r: Reassembler6, f: Buffer, now = 0): number {
  return r.add(f, 0, f.length, 40, now);
}

function whole(r: Reassembler6): Buffer {
  const out = Buffer.alloc(r.completeLen);
  r.copyComplete(out, 0);
  return out;
}

describe('Reassembler6', () => {
  it('rebuilds a datagram from fragments in any order, as it was before it was cut', () => {
    const d = datagram(4000);
    const frags = fragment6(d, 1280, 7);
    const r = new Reassembler6();
    for (const i of [3, 1, 0]) expect(add(r, frags[i]!)).toBe(FRAG_HELD);
    expect(add(r, frags[2]!)).toBe(FRAG_COMPLETE);
    expect(r.completeFragSize).toBe(1280);
    expect(whole(r)).toEqual(d);
    expect(r.queues).toBe(0);
    expect(r.heldBytes).toBe(0);
  });

  it('keeps the extension headers before the fragment header and points the last at the payload', () => {
    // A hop-by-hop header (8 bytes of PadN) before the fragment header.
    const d = datagram(2000);
    const [a, b] = fragment6(d, 1280, 9).map((f) => {
      const g = Buffer.concat([f.subarray(0, 40), Buffer.from([44, 0, 1, 4, 0, 0, 0, 0]), f.subarray(40)]);
      g[6] = 0;
      g.writeUInt16BE(g.length - 40, 4);
      return g;
    });
    const r = new Reassembler6();
    expect(r.add(a!, 0, a!.length, 48, 0)).toBe(FRAG_HELD);
    expect(r.add(b!, 0, b!.length, 48, 0)).toBe(FRAG_COMPLETE);
    const w = whole(r);
    expect(w[6]).toBe(0);
    expect(w[40]).toBe(17);
    expect(w.subarray(48)).toEqual(d.subarray(40));
    expect(decode6(w)).toMatchObject({ nextHeader: 17, checksumOk: true });
  });

  it('takes an atomic fragment as the whole datagram', () => {
    const [only] = fragment6(datagram(100), 1280, 1);
    const r = new Reassembler6();
    expect(add(r, only!)).toBe(FRAG_COMPLETE);
    expect(whole(r)).toEqual(datagram(100));
  });

  it('drops a resend alone, and discards the datagram on an overlap, a bad length or size', () => {
    const frags = fragment6(datagram(3000), 1280, 2);
    const r = new Reassembler6();
    expect(add(r, frags[0]!)).toBe(FRAG_HELD);
    expect(add(r, frags[0]!)).toBe(FRAG_DUPLICATE);
    expect(r.queues).toBe(1);
    const shifted = Buffer.from(frags[1]!);
    shifted.writeUInt16BE(shifted.readUInt16BE(42) - 8, 42);
    expect(add(r, shifted)).toBe(FRAG_OVERLAP);
    expect(r.queues).toBe(0);
    // A fragment that is not the last must carry a multiple of 8 bytes.
    const odd = Buffer.from(frags[0]!.subarray(0, frags[0]!.length - 3));
    odd.writeUInt16BE(odd.length - 40, 4);
    expect(add(r, odd)).toBe(FRAG_BAD);
    // Beyond the 65535 bytes a payload length can say.
    const far = Buffer.from(frags[2]!);
    far.writeUInt16BE(0xfff8, 42);
    expect(add(r, far)).toBe(FRAG_TOO_BIG);
    expect(r.counts[FRAG_TOO_BIG]).toBe(1);
  });

  it('holds at most maxPerSource datagrams of one source, and expires with the first fragment quoted', () => {
    const quotes: Buffer[] = [];
    const r = new Reassembler6({
      maxPerSource: 2,
      onExpire: (b, off, len) => quotes.push(Buffer.from(b.subarray(off, off + len))),
    });
    const firsts = [1, 2, 3].map((id) => fragment6(datagram(2000, 6000 + id), 1280, id)[0]!);
    expect(add(r, firsts[0]!, 0)).toBe(FRAG_HELD);
    expect(add(r, firsts[1]!, 0)).toBe(FRAG_HELD);
    expect(add(r, firsts[2]!, 0)).toBe(FRAG_NO_MEMORY);
    expect(r.expire(59)).toBe(0);
    expect(r.expire(60)).toBe(2);
    expect(quotes.map((q) => q.length)).toEqual([1232, 1232]);
    expect(quotes[0]!.subarray(0, 40)).toEqual(firsts[1]!.subarray(0, 40));
    expect(r.expired).toBe(2);
    expect(r.heldBytes).toBe(0);
  });
});
