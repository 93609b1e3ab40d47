import { describe, expect, it } from 'vitest';
import { checksum, finish, fold, pseudoHeaderSum, sum16, update16, update32 } from '../../src/wire/checksum';
import { Ipv4View } from '../../src/wire/ipv4';
import { TcpView } from '../../src/wire/tcp';
import { UdpView } from '../../src/wire/udp';
import { fromHex } from '../helpers/packet-builder';
import { mulberry32 } from '../helpers/prng';

/**
 * The Internet checksum the slow, obviously correct way (RFC 1071 section 4.1): take 16-bit
 * big-endian words (an odd last byte padded with zero), add each with end-around carry, complement.
 */
function referenceChecksum(buf: Buffer, off: number, len: number, initial = 0): number {
  let sum = initial === 0 ? 0 : ((initial - 1) % 0xffff) + 1; // initial folded, keeping 0xffff as 0xffff
  for (let i = 0; i < len; i += 2) {
    const hi = buf[off + i];
    const lo = i + 1 < len ? buf[off + i + 1] : 0;
    sum += hi * 256 + lo;
    if (sum > 0xffff) sum -= 0xffff; // end-around carry: 0x10000 + x == 1 + x
  }
  return 0xffff - sum; // one's complement of a 16-bit value
}

describe('sum16 / fold / finish / checksum', () => {
  it('matches the RFC 1071 section 3 worked example (00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2)', () => {
    const b = fromHex('00 01 f2 03 f4 f5 f6 f7');
    expect(fold(sum16(b, 0, 8))).toBe(0xddf2);
    expect(checksum(b, 0, 8)).toBe(0x220d);
    expect(referenceChecksum(b, 0, 8)).toBe(0x220d);
  });

  it('pads an odd trailing byte with a zero low byte', () => {
    const b = fromHex('ab cd ef');
    expect(sum16(b, 0, 3)).toBe(0xabcd + 0xef00);
    expect(sum16(b, 2, 1)).toBe(0xef00);
    expect(checksum(b, 0, 3)).toBe(referenceChecksum(b, 0, 3));
  });

  it('respects the offset and length, reading nothing outside them', () => {
    const b = fromHex('ff ff 12 34 56 78 ff ff');
    expect(sum16(b, 2, 4)).toBe(0x1234 + 0x5678);
    expect(sum16(b, 0, 0)).toBe(0);
    expect(sum16(b, 0, 0, 77)).toBe(77);
  });

  it('chains: the sum of the parts (split at even offsets) equals the sum of the whole', () => {
    const b = Buffer.from('the quick brown fox jumps over the lazy dog, twice!!');
    const whole = sum16(b, 0, b.length);
    const parts = sum16(b, 10, b.length - 10, sum16(b, 4, 6, sum16(b, 0, 4)));
    expect(fold(parts)).toBe(fold(whole));
  });

  it('stays exact for a 64 KiB buffer of 0xff bytes (the largest sum an IPv4 packet can produce)', () => {
    const b = Buffer.alloc(65535, 0xff);
    const s = sum16(b, 0, b.length);
    expect(Number.isSafeInteger(s)).toBe(true);
    // Unfolded sums may differ in representation (the wide path folds its part): same value mod 0xffff.
    expect(fold(s)).toBe(fold(32767 * 0xffff + 0xff00));
    expect(checksum(b, 0, b.length)).toBe(referenceChecksum(b, 0, b.length));
  });

  it('fold handles sums above 2^32 without losing the high bits', () => {
    expect(fold(0x1_0000)).toBe(1);
    expect(fold(0x1_ffff)).toBe(1);
    expect(fold(0xffff)).toBe(0xffff);
    expect(fold(0)).toBe(0);
    const big = 0x1234_5678_9abc; // 0x1234 + 0x5678 + 0x9abc = 0x10368 -> 0x0369
    expect(fold(big)).toBe(0x0369);
  });

  it('finish complements the folded sum', () => {
    expect(finish(0xddf2)).toBe(0x220d);
    expect(finish(0xffff)).toBe(0);
    expect(finish(0x1_fffe)).toBe(0);
  });

  it('computes the IPv4 header checksum of a real header (0x53cc)', () => {
    const h = fromHex('45 00 00 3c 1c 46 40 00 40 06 00 00 0a 00 00 01 c0 a8 00 01');
    expect(checksum(h, 0, 20)).toBe(0x53cc);
  });
});

describe('pseudoHeaderSum', () => {
  it('adds both address halves, the protocol and the L4 length', () => {
    // 10.0.0.1 -> 192.168.0.1, TCP, 40 bytes
    const s = pseudoHeaderSum(0x0a000001, 0xc0a80001, 6, 40);
    expect(s).toBe(0x0a00 + 0x0001 + 0xc0a8 + 0x0001 + 6 + 40);
    const bytes = fromHex('0a 00 00 01 c0 a8 00 01 00 06 00 28');
    expect(fold(s)).toBe(fold(sum16(bytes, 0, 12)));
  });

  it('treats addresses with the top bit set as unsigned', () => {
    expect(pseudoHeaderSum(0xffffffff, 0x80000000, 17, 8)).toBe(0xffff + 0xffff + 0x8000 + 0 + 17 + 8);
    expect(pseudoHeaderSum(0xffffffff | 0, 0x80000000 | 0, 17, 8)).toBe(0xffff + 0xffff + 0x8000 + 0 + 17 + 8);
  });
});

describe('update16 / update32 (RFC 1624)', () => {
  it('gives 0x0000, not -0 (0xffff), for the RFC 1624 section 4 example', () => {
    // HC = 0xdd2f, m = 0x5555 -> m' = 0x3285: eqn. 3 gives 0x0000 where RFC 1141's gave 0xffff.
    expect(update16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('equals a full recompute when one word of a header changes', () => {
    const h = fromHex('45 00 00 3c 1c 46 40 00 40 06 53 cc 0a 00 00 01 c0 a8 00 01');
    const updated = update16(0x53cc, 0x4006, 0x3f06); // TTL 64 -> 63
    h.writeUInt16BE(0x3f06, 8);
    h.writeUInt16BE(0, 10);
    expect(updated).toBe(checksum(h, 0, 20));
  });

  it('is the identity when the value does not change', () => {
    expect(update16(0x1234, 0xabcd, 0xabcd)).toBe(0x1234);
    expect(update32(0x1234, 0xdeadbeef, 0xdeadbeef)).toBe(0x1234);
  });

  it('update32 equals two update16s on the halves', () => {
    const cases: [number, number, number][] = [
      [0x53cc, 0xc0a80001, 0x0a0a0a0a],
      [0x0000, 0xffffffff, 0x00000000],
      [0xffff, 0x00000000, 0xffffffff],
      [0x8001, 0x7fff8000, 0x80007fff],
    ];
    for (const [c, o, n] of cases) {
      expect(update32(c, o, n)).toBe(update16(update16(c, o >>> 16, n >>> 16), o & 0xffff, n & 0xffff));
    }
  });

  it('equals a full recompute when an address in the header changes', () => {
    const h = fromHex('45 00 00 3c 1c 46 40 00 40 06 53 cc 0a 00 00 01 c0 a8 00 01');
    const updated = update32(0x53cc, 0xc0a80001, 0xac100005); // dst 192.168.0.1 -> 172.16.0.5
    h.writeUInt32BE(0xac100005, 16);
    h.writeUInt16BE(0, 10);
    expect(updated).toBe(checksum(h, 0, 20));
  });
});

describe('referenceChecksum', () => {
  it('agrees with the RFC 1071 example and with the empty buffer', () => {
    expect(referenceChecksum(Buffer.alloc(0), 0, 0)).toBe(0xffff);
    expect(checksum(Buffer.alloc(0), 0, 0)).toBe(0xffff);
  });
});

// ---------------------------------------------------------------------------------------------
// Seeded property tests: the fast checksum equals the reference one, and every incremental
// "set with checksum update" leaves exactly the checksum a full recompute would.

const ITERATIONS = 5000;

function randomBytes(rand: () => number, buf: Buffer, off: number, len: number): void {
  for (let i = 0; i < len; i++) buf[off + i] = rand() & 0xff;
}

const scratch = Buffer.alloc(2048);

/**
 * Full recompute of a checksum whose field sits at buf[fieldOff]: zero it on a copy, sum again
 * (with the reference implementation too when `withReference`).
 */
function recompute(
  buf: Buffer,
  off: number,
  len: number,
  fieldOff: number,
  initial = 0,
  withReference = false,
): number {
  buf.copy(scratch, 0, off, off + len);
  scratch.writeUInt16BE(0, fieldOff - off);
  const fast = checksum(scratch, 0, len, initial);
  if (withReference) {
    const slow = referenceChecksum(scratch, 0, len, initial);
    if (fast !== slow) throw new Error(`checksum ${fast} != referenceChecksum ${slow}`);
  }
  return fast;
}

describe('property: checksum == referenceChecksum', () => {
  it(`agrees on ${ITERATIONS} random buffers (odd and even lengths, offsets, initial sums)`, () => {
    const rand = mulberry32(0x5eed0001);
    const buf = Buffer.alloc(1600);
    let failures = 0;
    let first = '';
    for (let n = 0; n < ITERATIONS; n++) {
      const off = rand() % 8;
      const len = n < 16 ? n : rand() % (n % 10 === 0 ? buf.length - off : 200);
      randomBytes(rand, buf, off, len);
      const initial = rand() % 4 === 0 ? 0 : rand() % 0x100000;
      const fast = checksum(buf, off, len, initial);
      const slow = referenceChecksum(buf, off, len, initial);
      if (fast !== slow && failures++ === 0) first = `off=${off} len=${len} initial=${initial}: ${fast} != ${slow}`;
    }
    expect(first).toBe('');
    expect(failures).toBe(0);
  });
});

describe('property: the wide (32-bit load) path == referenceChecksum', () => {
  it('agrees at every alignment of the backing store, for long runs and all-0xff data', () => {
    const rand = mulberry32(0x5eed0002);
    const store = Buffer.alloc(70000);
    let failures = '';
    for (let n = 0; n < 2000; n++) {
      // A view starting at any byte of the store: byteOffset 0..7, like subarrays of a slab.
      const view = store.subarray(n % 8);
      const off = rand() % 16;
      const len = n % 50 === 0 ? 65535 - off : 64 + (rand() % 3000);
      if (n % 7 === 0) view.fill(0xff, off, off + len);
      else randomBytes(rand, view, off, len);
      const initial = rand() % 3 === 0 ? 0 : rand() % 0x100000;
      const fast = checksum(view, off, len, initial);
      const slow = referenceChecksum(view, off, len, initial);
      if (fast !== slow && failures === '') failures = `byteOffset=${n % 8} off=${off} len=${len}: ${fast} != ${slow}`;
    }
    expect(failures).toBe('');
  });
});

describe('property: incremental update == full recompute', () => {
  it(`IPv4 header: src/dst address, TTL, total length and TOS over ${ITERATIONS} random headers`, () => {
    const rand = mulberry32(0x5eed0002);
    const buf = Buffer.alloc(128);
    const view = new Ipv4View();
    let checked = 0;
    for (let n = 0; n < ITERATIONS; n++) {
      const off = rand() % 16;
      const ihl = 5 + (rand() % 11);
      const headerLen = ihl * 4;
      randomBytes(rand, buf, off, headerLen);
      buf[off] = 0x40 | ihl;
      view.reset(buf, off, headerLen);
      view.totalLen = headerLen + (rand() % (0x10000 - headerLen));
      view.fillChecksum();
      const ops = 1 + (rand() % 4);
      for (let k = 0; k < ops; k++) {
        switch (rand() % 5) {
          case 0:
            view.setSrcAddrWithChecksumUpdate(rand());
            break;
          case 1:
            view.setDstAddrWithChecksumUpdate(rand());
            break;
          case 2:
            view.decTtlWithChecksumUpdate();
            break;
          case 3:
            view.setTotalLenWithChecksumUpdate(headerLen + (rand() % (0x10000 - headerLen)));
            break;
          default:
            view.setTosWithChecksumUpdate(rand() & 0xff);
        }
        const full = recompute(buf, off, headerLen, off + 10, 0, k === ops - 1);
        if (view.checksum !== full) {
          throw new Error(`IPv4 case ${n} op ${k}: incremental ${view.checksum} != full ${full}`);
        }
        checked++;
      }
      if (!view.verifyChecksum()) throw new Error(`IPv4 case ${n}: verifyChecksum() false`);
    }
    expect(checked).toBeGreaterThanOrEqual(ITERATIONS);
  });

  it(`TCP: ports, seq, ack and pseudo-header addresses over ${ITERATIONS} random segments`, () => {
    const rand = mulberry32(0x5eed0003);
    const buf = Buffer.alloc(400);
    const view = new TcpView();
    let checked = 0;
    for (let n = 0; n < ITERATIONS; n++) {
      const off = rand() % 16;
      const headerLen = (5 + (rand() % 11)) * 4;
      const len = headerLen + (rand() % 301); // odd and even payload lengths
      randomBytes(rand, buf, off, len);
      buf[off + 12] = (headerLen / 4) << 4;
      let src = rand();
      let dst = rand();
      view.reset(buf, off, len);
      if (view.checkLen() !== 0) throw new Error(`case ${n}: checkLen() ${view.checkLen()}`);
      view.fillChecksum(src, dst);
      const ops = 1 + (rand() % 4);
      for (let k = 0; k < ops; k++) {
        switch (rand() % 6) {
          case 0:
            view.setSrcPortWithChecksumUpdate(rand() & 0xffff);
            break;
          case 1:
            view.setDstPortWithChecksumUpdate(rand() & 0xffff);
            break;
          case 2:
            view.setSeqWithChecksumUpdate(rand());
            break;
          case 3:
            view.setAckWithChecksumUpdate(rand());
            break;
          case 4: {
            const a = rand();
            view.updateChecksumForAddr(src, a);
            src = a;
            break;
          }
          default: {
            const a = rand();
            view.updateChecksumForAddr(dst, a);
            dst = a;
          }
        }
        const full = recompute(buf, off, len, off + 16, pseudoHeaderSum(src, dst, 6, len), k === ops - 1);
        if (view.checksum !== full) {
          throw new Error(`TCP case ${n} op ${k}: incremental ${view.checksum} != full ${full}`);
        }
        checked++;
      }
      if (!view.verifyChecksum(src, dst)) throw new Error(`case ${n}: verifyChecksum() false`);
    }
    expect(checked).toBeGreaterThanOrEqual(ITERATIONS);
  });

  it(`UDP: ports and addresses over ${ITERATIONS} random datagrams; a zero checksum stays zero`, () => {
    const rand = mulberry32(0x5eed0004);
    const buf = Buffer.alloc(400);
    const view = new UdpView();
    let checked = 0;
    let zeros = 0;
    for (let n = 0; n < ITERATIONS; n++) {
      const off = rand() % 16;
      const len = 8 + (rand() % 301); // odd and even lengths
      randomBytes(rand, buf, off, len);
      buf.writeUInt16BE(len, off + 4);
      let src = rand();
      let dst = rand();
      view.reset(buf, off, len);
      if (view.checkLen() !== 0) throw new Error(`case ${n}: checkLen() ${view.checkLen()}`);
      const noChecksum = rand() % 8 === 0;
      if (noChecksum) view.checksum = 0;
      else view.fillChecksum(src, dst);
      const ops = 1 + (rand() % 4);
      for (let k = 0; k < ops; k++) {
        switch (rand() % 4) {
          case 0:
            view.setSrcPortWithChecksumUpdate(rand() & 0xffff);
            break;
          case 1:
            view.setDstPortWithChecksumUpdate(rand() & 0xffff);
            break;
          case 2: {
            const a = rand();
            view.updateChecksumForAddr(src, a);
            src = a;
            break;
          }
          default: {
            const a = rand();
            view.updateChecksumForAddr(dst, a);
            dst = a;
          }
        }
        let expected = 0;
        if (!noChecksum) {
          expected = recompute(buf, off, len, off + 6, pseudoHeaderSum(src, dst, 17, len), k === ops - 1);
          if (expected === 0) expected = 0xffff;
        } else {
          zeros++;
        }
        if (view.checksum !== expected) {
          throw new Error(`UDP case ${n} op ${k}: incremental ${view.checksum} != expected ${expected}`);
        }
        checked++;
      }
      if (!view.verifyChecksum(src, dst)) throw new Error(`case ${n}: verifyChecksum() false`);
    }
    expect(checked).toBeGreaterThanOrEqual(ITERATIONS);
    expect(zeros).toBeGreaterThan(0);
  });
});
