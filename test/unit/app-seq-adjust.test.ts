import { describe, expect, it } from 'vitest';
import { SEQ_IN, SEQ_OUT, SeqAdjust, type SeqDir, seqAfter, seqBefore } from '../../src/app/seq-adjust';
import { mulberry32 } from '../helpers/prng';

const C = 5;

describe('seqAfter / seqBefore: mod 2^32 comparisons like the kernel', () => {
  it.each([
    [1, 0, true, false],
    [0, 1, false, true],
    [7, 7, false, false],
    [0, 0xffffffff, true, false],
    [0x10, 0xfffffff0, true, false],
    [0xfffffff0, 0x10, false, true],
    [0x7fffffff, 0, true, false],
    // Exactly 2^31 apart, each is "after" the other, as with the kernel's (s32) cast.
    [0x80000000, 0, true, true],
    [0, 0x80000000, true, true],
  ])('after(%i, %i) = %s, before = %s', (a, b, after, before) => {
    expect(seqAfter(a, b)).toBe(after);
    expect(seqBefore(a, b)).toBe(before);
  });
});

describe('SeqAdjust: no adjustment', () => {
  it('leaves seq and ack alone until a segment is resized', () => {
    const s = new SeqAdjust(8);
    expect(s.active(C, SEQ_OUT)).toBe(false);
    expect(s.fixSeq(C, SEQ_OUT, 0xdeadbeef)).toBe(0xdeadbeef);
    expect(s.fixAck(C, SEQ_OUT, 12345)).toBe(12345);
  });

  it('treats connection ids beyond the capacity as unadjusted', () => {
    const s = new SeqAdjust(2);
    expect(s.active(100, SEQ_IN)).toBe(false);
    expect(s.fixSeq(100, SEQ_IN, 77)).toBe(77);
    expect(s.fixAck(100, SEQ_IN, 77)).toBe(77);
    s.clear(100);
  });
});

describe('SeqAdjust: one resized segment', () => {
  // The header's worked example: a 50-byte 227 reply at seq 1000 rewritten to 46 bytes.
  it('shrink: later segments move back, the resized one and ACKs at its ends map exactly', () => {
    const s = new SeqAdjust(8);
    expect(s.fixSeq(C, SEQ_OUT, 1000)).toBe(1000);
    expect(s.update(C, SEQ_OUT, 1000, -4)).toBe(true);
    expect(s.active(C, SEQ_OUT)).toBe(true);
    expect([s.initSeq[C * 2 + SEQ_OUT], s.delta[C * 2 + SEQ_OUT], s.previousDelta[C * 2 + SEQ_OUT]]).toEqual([
      1000, -4, 0,
    ]);
    expect(s.fixSeq(C, SEQ_OUT, 1050)).toBe(1046); // the next segment
    expect(s.fixSeq(C, SEQ_OUT, 1000)).toBe(1000); // the resized segment, retransmitted
    expect(s.fixSeq(C, SEQ_OUT, 900)).toBe(900); // an earlier segment, retransmitted
    expect(s.fixAck(C, SEQ_OUT, 1046)).toBe(1050); // acks the whole reply
    expect(s.fixAck(C, SEQ_OUT, 1000)).toBe(1000); // acks up to the reply
    expect(s.fixAck(C, SEQ_OUT, 950)).toBe(950);
    expect(s.fixAck(C, SEQ_OUT, 1100)).toBe(1104);
  });

  it('grow: later segments move forward, ACKs at both ends of the resized segment map exactly', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_OUT, 1000, +6); // 40 bytes -> 46
    expect(s.fixSeq(C, SEQ_OUT, 1000)).toBe(1000);
    expect(s.fixSeq(C, SEQ_OUT, 1040)).toBe(1046);
    expect(s.fixAck(C, SEQ_OUT, 1000)).toBe(1000);
    expect(s.fixAck(C, SEQ_OUT, 1046)).toBe(1040);
    // An ack ending inside the resized segment has no exact image; it maps to an old ack.
    expect(s.fixAck(C, SEQ_OUT, 1003)).toBe(997);
  });

  it("maps an ack of the bytes before a shrunk segment exactly, where ip_vs_app.c's threshold would not", () => {
    const s = new SeqAdjust(8);
    const initSeq = 5000;
    s.update(C, SEQ_IN, initSeq, -7); // a 30-byte segment became 23 bytes
    const i = C * 2 + SEQ_IN;
    const kernelFixAck = (ack: number) =>
      seqAfter(ack, initSeq + s.delta[i]) ? ack - s.delta[i] : ack - s.previousDelta[i];
    // The receiver acks everything before the resized segment (e.g. a duplicate ACK after it was lost).
    expect(s.fixAck(C, SEQ_IN, 5000)).toBe(5000);
    expect(kernelFixAck(5000)).toBe(5007); // 7 bytes of the lost segment would count as delivered
    // At the segment's end both agree.
    expect(s.fixAck(C, SEQ_IN, 5023)).toBe(5030);
    expect(kernelFixAck(5023)).toBe(5030);
  });
});

describe('SeqAdjust: retransmissions and several rewrites', () => {
  it('does not add the diff of a retransmitted resized segment twice', () => {
    const s = new SeqAdjust(8);
    expect(s.update(C, SEQ_OUT, 1000, 5)).toBe(true);
    expect(s.update(C, SEQ_OUT, 1000, 5)).toBe(false);
    expect(s.update(C, SEQ_OUT, 990, 5)).toBe(false); // an older segment: also a retransmission
    expect(s.delta[C * 2 + SEQ_OUT]).toBe(5);
    expect(s.fixSeq(C, SEQ_OUT, 1020)).toBe(1025);
  });

  it('accepts the first resize whatever its sequence number', () => {
    for (const seq of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      const s = new SeqAdjust(8);
      expect(s.update(C, SEQ_IN, seq, 1)).toBe(true);
      expect(s.initSeq[C * 2 + SEQ_IN]).toBe(seq);
    }
  });

  it('accumulates deltas and keeps the previous one for segments up to the last resize', () => {
    const s = new SeqAdjust(8);
    // Sender stream: [1000,1020) resized 20->25; [1020,1100) untouched; [1100,1130) resized 30->27;
    // [1130,1300) untouched; [1300,1310) resized 10->20.
    s.update(C, SEQ_OUT, 1000, +5);
    expect(s.fixSeq(C, SEQ_OUT, 1020)).toBe(1025);
    expect(s.fixSeq(C, SEQ_OUT, 1100)).toBe(1105); // the second resized segment goes out after +5
    s.update(C, SEQ_OUT, 1100, -3);
    expect([s.delta[C * 2 + SEQ_OUT], s.previousDelta[C * 2 + SEQ_OUT]]).toEqual([2, 5]);
    expect(s.fixSeq(C, SEQ_OUT, 1130)).toBe(1132);
    expect(s.fixSeq(C, SEQ_OUT, 1100)).toBe(1105); // retransmission of the resized segment
    expect(s.fixSeq(C, SEQ_OUT, 1060)).toBe(1065); // retransmission between the two resizes
    expect(s.fixAck(C, SEQ_OUT, 1105)).toBe(1100);
    expect(s.fixAck(C, SEQ_OUT, 1132)).toBe(1130);
    expect(s.fixAck(C, SEQ_OUT, 1065)).toBe(1060);
    s.update(C, SEQ_OUT, 1300, +10);
    expect([s.delta[C * 2 + SEQ_OUT], s.previousDelta[C * 2 + SEQ_OUT]]).toEqual([12, 2]);
    expect(s.fixSeq(C, SEQ_OUT, 1300)).toBe(1302);
    expect(s.fixSeq(C, SEQ_OUT, 1310)).toBe(1322);
    expect(s.fixSeq(C, SEQ_OUT, 1200)).toBe(1202);
    expect(s.fixAck(C, SEQ_OUT, 1302)).toBe(1300);
    expect(s.fixAck(C, SEQ_OUT, 1322)).toBe(1310);
  });

  it('limitation: only two levels are kept, so a segment before the previous resize gets a wrong shift', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_OUT, 1000, +5);
    s.update(C, SEQ_OUT, 1100, -3);
    // Correct would be 1000 (no resize before it); the first resize's own shift is forgotten.
    expect(s.fixSeq(C, SEQ_OUT, 1000)).toBe(1005);
  });

  it('keeps the two directions and different connections apart', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_IN, 100, 3);
    s.update(C, SEQ_OUT, 200, -2);
    s.update(C + 1, SEQ_OUT, 200, 9);
    expect(s.fixSeq(C, SEQ_IN, 150)).toBe(153);
    expect(s.fixSeq(C, SEQ_OUT, 250)).toBe(248);
    expect(s.fixSeq(C + 1, SEQ_OUT, 250)).toBe(259);
    expect(s.fixAck(C, SEQ_IN, 153)).toBe(150);
    expect(s.fixAck(C, SEQ_OUT, 248)).toBe(250);
    expect(s.active(C + 1, SEQ_IN)).toBe(false);
  });
});

describe('SeqAdjust: wrap-around at 2^32', () => {
  it('resizes a segment just below 2^32 and fixes segments and ACKs after the wrap', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_OUT, 0xfffffff0, +8); // [0xfffffff0, +32) becomes 40 bytes
    expect(s.fixSeq(C, SEQ_OUT, 0xfffffff0)).toBe(0xfffffff0);
    expect(s.fixSeq(C, SEQ_OUT, 0x10)).toBe(0x18);
    expect(s.fixSeq(C, SEQ_OUT, 0xffffffe0)).toBe(0xffffffe0);
    expect(s.fixAck(C, SEQ_OUT, 0x18)).toBe(0x10);
    expect(s.fixAck(C, SEQ_OUT, 0xfffffff0)).toBe(0xfffffff0);
  });

  it('a shrink that moves sequence numbers back across zero', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_IN, 0xffffffe0, -40); // [0xffffffe0, 0x10), 48 bytes, becomes 8 bytes
    expect(s.fixSeq(C, SEQ_IN, 0xffffffe0)).toBe(0xffffffe0);
    expect(s.fixSeq(C, SEQ_IN, 0x10)).toBe(0xffffffe8);
    expect(s.fixAck(C, SEQ_IN, 0xffffffe8)).toBe(0x10);
    expect(s.fixAck(C, SEQ_IN, 0xffffffe0)).toBe(0xffffffe0);
    s.update(C, SEQ_IN, 0x10, -10); // [0x10, 0x30), 32 bytes, becomes 22; 0x10 is after 0xffffffe0
    expect(s.fixSeq(C, SEQ_IN, 0x10)).toBe(0xffffffe8);
    expect(s.fixSeq(C, SEQ_IN, 0x30)).toBe(0xfffffffe);
    expect(s.fixAck(C, SEQ_IN, 0xfffffffe)).toBe(0x30);
    expect(s.fixAck(C, SEQ_IN, 0xffffffe8)).toBe(0x10);
  });

  it('keeps deltas mod 2^32 when they overflow int32', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_IN, 0, 0x7fffffff);
    s.update(C, SEQ_IN, 10, 0x7fffffff);
    s.update(C, SEQ_IN, 20, 4); // total 2^32 + 2, i.e. +2
    expect(s.fixSeq(C, SEQ_IN, 30)).toBe(32);
  });
});

describe('SeqAdjust: storage', () => {
  it('clear() forgets both directions of one connection only', () => {
    const s = new SeqAdjust(8);
    s.update(C, SEQ_IN, 100, 3);
    s.update(C, SEQ_OUT, 100, 3);
    s.update(C + 1, SEQ_IN, 100, 3);
    s.clear(C);
    expect([s.active(C, SEQ_IN), s.active(C, SEQ_OUT), s.active(C + 1, SEQ_IN)]).toEqual([false, false, true]);
    expect(s.fixSeq(C, SEQ_IN, 200)).toBe(200);
    // A fresh resize in the reused slot starts from zero.
    s.update(C, SEQ_IN, 5000, 1);
    expect([s.delta[C * 2 + SEQ_IN], s.previousDelta[C * 2 + SEQ_IN]]).toEqual([1, 0]);
  });

  it('grow() keeps existing records; update() grows for a connection id beyond the capacity', () => {
    const s = new SeqAdjust(4);
    s.update(3, SEQ_OUT, 100, 7);
    s.grow(16);
    expect(s.capacity).toBe(16);
    expect(s.fixSeq(3, SEQ_OUT, 200)).toBe(207);
    s.grow(8); // never shrinks
    expect(s.capacity).toBe(16);
    expect(s.update(5000, SEQ_IN, 100, -1)).toBe(true);
    expect(s.capacity).toBeGreaterThan(5000);
    expect(s.fixSeq(5000, SEQ_IN, 200)).toBe(199);
    expect(s.fixSeq(3, SEQ_OUT, 200)).toBe(207);
  });
});

// Model check: a sender's byte stream crosses a middlebox that resizes some segments. The sender
// transmits segments, retransmits from its oldest unacknowledged byte, loses some; the receiver
// accepts only the next in-order wire byte and acks cumulatively; ACKs are lost, delayed and
// reordered on the way back. Ground truth: each segment's place in the rewritten stream. Checked:
// every transmission (first or retransmitted) lands at its true wire offset, the receiver takes
// the segments in order with no gap or overlap, and every ACK maps back to the sender's own
// sequence number for what it acknowledges (or, if stale, to no more than the sender already knew).
// As documented, the middlebox resizes a segment only once the previous resized one is acknowledged.

interface Segment {
  id: number;
  start: number; // sender's sequence number
  len: number;
  diff: number; // the helper's length change, the same for every transmission
  wireStart: number;
}

class Flow {
  readonly segments: Segment[] = [];
  private readonly byStart = new Map<number, Segment>();
  /** Wire end of each segment -> sender end: what a cumulative ACK of that point means. */
  private readonly wireToSender = new Map<number, number>();
  private senderNext: number;
  private wireNext: number;
  private sndUna: number;
  private lastResizedEnd: number;
  private rcvNxt: number;
  received = 0;
  rewrites = 0;
  retransmissions = 0;
  private readonly acks: number[] = [];

  constructor(
    private readonly s: SeqAdjust,
    private readonly c: number,
    private readonly dir: SeqDir,
    isn: number,
    private readonly total: number,
    private readonly rnd: () => number,
  ) {
    this.senderNext = isn;
    this.wireNext = isn;
    this.sndUna = isn;
    this.lastResizedEnd = isn;
    this.rcvNxt = isn;
    this.wireToSender.set(isn, isn);
  }

  get done(): boolean {
    return this.received === this.total;
  }

  private chance(p: number): boolean {
    return this.rnd() / 4294967296 < p;
  }

  step(): void {
    const r = this.rnd() % 10;
    const outstanding = this.segments.length - this.indexOf(this.sndUna);
    if (r < 4 && this.segments.length < this.total && outstanding < 8) this.sendNew();
    else if (r < 7 && this.acks.length > 0) this.deliverAck();
    else if (outstanding > 0) this.retransmit();
  }

  private indexOf(senderSeq: number): number {
    return this.byStart.get(senderSeq)?.id ?? this.segments.length;
  }

  private sendNew(): void {
    const len = 1 + (this.rnd() % 60);
    let diff = 0;
    // The previous resized segment is acknowledged: the middlebox may resize this one.
    if (!seqBefore(this.sndUna, this.lastResizedEnd) && this.chance(0.3)) {
      do diff = (this.rnd() % (len + 40)) - (len - 1);
      while (diff === 0);
      this.lastResizedEnd = (this.senderNext + len) >>> 0;
      this.rewrites++;
    }
    const seg: Segment = { id: this.segments.length, start: this.senderNext, len, diff, wireStart: this.wireNext };
    this.segments.push(seg);
    this.byStart.set(seg.start, seg);
    this.senderNext = (this.senderNext + len) >>> 0;
    this.wireNext = (this.wireNext + len + diff) >>> 0;
    this.wireToSender.set(this.wireNext, this.senderNext);
    this.transmit(seg, true);
  }

  private retransmit(): void {
    const first = this.byStart.get(this.sndUna)!;
    // Go-back-N from the oldest unacknowledged segment, a random number of segments.
    const n = 1 + (this.rnd() % 3);
    for (let i = first.id; i < Math.min(first.id + n, this.segments.length); i++) {
      this.retransmissions++;
      this.transmit(this.segments[i], false);
    }
  }

  private transmit(seg: Segment, first: boolean): void {
    const wireSeq = this.s.fixSeq(this.c, this.dir, seg.start);
    expect(wireSeq).toBe(seg.wireStart);
    if (seg.diff !== 0) expect(this.s.update(this.c, this.dir, seg.start, seg.diff)).toBe(first);
    if (this.chance(0.15)) return; // lost
    if (wireSeq === this.rcvNxt) {
      expect(seg.id).toBe(this.received);
      this.received++;
      this.rcvNxt = (this.rcvNxt + seg.len + seg.diff) >>> 0;
    } else if (!seqBefore(wireSeq, this.rcvNxt)) {
      expect(seg.id).toBeGreaterThan(this.received); // out of order: dropped
    } else {
      expect(seg.id).toBeLessThan(this.received); // a duplicate
    }
    if (!this.chance(0.1)) this.acks.push(this.rcvNxt);
  }

  private deliverAck(): void {
    // Reordering: any queued ACK may arrive next.
    const k = this.rnd() % this.acks.length;
    const ack = this.acks[k];
    this.acks[k] = this.acks[this.acks.length - 1];
    this.acks.pop();
    const exact = this.wireToSender.get(ack);
    expect(exact).toBeDefined();
    const mapped = this.s.fixAck(this.c, this.dir, ack);
    if (!seqBefore(exact!, this.sndUna)) {
      expect(mapped).toBe(exact);
      this.sndUna = exact!;
    } else {
      expect(seqAfter(mapped, this.sndUna)).toBe(false);
    }
  }
}

describe('SeqAdjust: model check of a resized byte stream', () => {
  it.each([
    ['an ordinary ISN', 1, 1_000_000],
    ['an ISN just below 2^32', 2, 0xffffff00],
    ['an ISN just below 2^31', 3, 0x7fffff00],
    ['a random ISN', 4, 0x9e3779b9],
    ['another random ISN', 5, 0x0badf00d],
  ])('%s: both directions at once, seed %i', (_name, seed, isn) => {
    const s = new SeqAdjust(4);
    const rnd = mulberry32(seed);
    const c = 2;
    const flows = [new Flow(s, c, SEQ_IN, isn, 400, rnd), new Flow(s, c, SEQ_OUT, (isn ^ 0x5a5a5a5a) >>> 0, 400, rnd)];
    let steps = 0;
    while (!flows.every((f) => f.done)) {
      const f = flows[rnd() % 2];
      if (!f.done) f.step();
      expect(++steps).toBeLessThan(200_000);
    }
    for (const f of flows) {
      expect(f.rewrites).toBeGreaterThan(20);
      expect(f.retransmissions).toBeGreaterThan(100);
    }
  });

  it('many short runs over random seeds and ISNs', () => {
    const seeds = mulberry32(99);
    for (let run = 0; run < 40; run++) {
      const seed = seeds();
      const rnd = mulberry32(seed);
      const s = new SeqAdjust(4);
      const f = new Flow(s, run % 7, run % 2 === 0 ? SEQ_IN : SEQ_OUT, seeds(), 60, rnd);
      let steps = 0;
      while (!f.done) {
        f.step();
        expect(++steps).toBeLessThan(50_000);
      }
    }
  });
});
