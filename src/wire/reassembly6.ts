// IPv6 fragment reassembly for the data path, after Linux's net/ipv6/reassembly.c (and
// nf_conntrack_reasm.c, which a kernel director's conntrack runs before IPVS sees a packet).
//
// A datagram being reassembled is keyed by <source, destination, identification> (RFC 8200
// section 4.5). Datagrams live in fixed slots (struct-of-arrays, numbers only), found by a scan
// of the active ones (at most maxDatagrams: a bound, not a hash, keeps this small). Each slot
// owns one buffer, allocated the first time the slot is used and kept:
//
//   0                UNFRAG_ROOM - unfragLen    UNFRAG_ROOM                 UNFRAG_ROOM + dataLen
//   |   (unused)     |  unfragmentable part    |  fragmentable byte k at UNFRAG_ROOM + k  |
//                    |<--- the reassembled datagram, without the fragment header -------->|
//
// The unfragmentable part (the IPv6 header and the extension headers before the fragment header)
// is the first fragment's; the reassembled datagram has the fragment header taken out (its next
// header moved into the header before it) and the payload length set. As for IPv4
// (reassembly.ts): duplicates are dropped alone, overlaps discard the datagram (RFC 5722), the
// limits are bytes held, datagrams in total and per source, fragments per datagram and age
// (ip6frag_time: 60 s). The largest fragment seen is kept (fragSize), so that a datagram sent
// on can be cut into fragments no larger (what the kernel's netfilter defragmentation does).
// An atomic fragment (offset 0, no more fragments; RFC 6946) completes at once.
//
// Outcomes are reassembly.ts's FRAG_* numbers; the complete datagram is read with copyComplete().

import { ipv6FoldWords } from '../ip-vs';
import { IPPROTO_AH, IPV6, IPV6_FRAG_HEADER } from './ipv6';
import {
  DEFAULT_FRAG_MAX_BYTES,
  DEFAULT_FRAG_MAX_DATAGRAMS,
  DEFAULT_FRAG_MAX_FRAGMENTS,
  DEFAULT_FRAG_MAX_PER_SOURCE,
  FRAG_BAD,
  FRAG_COMPLETE,
  FRAG_DUPLICATE,
  FRAG_HELD,
  FRAG_NO_MEMORY,
  FRAG_OVERLAP,
  FRAG_STATUS_COUNT,
  FRAG_TOO_BIG,
  type FragStatus,
  positiveInt,
} from './reassembly';

/** Linux's ip6frag_time. */
export const DEFAULT_FRAG6_TIMEOUT = 60;
/** Room for the unfragmentable part (the IPv6 header and extension headers before the fragment header). */
const UNFRAG_ROOM = 1024;
/** The most fragmentable bytes a datagram may have (its payload length is 16 bits). */
const MAX_PAYLOAD = 0xffff;
/** What a time exceeded may quote of the first fragment (an ICMPv6 error fits 1280 bytes). */
const QUOTE_MAX = 1232;

const FIRST_IN = 1;
const LAST_IN = 2;

export interface Reassembler6Options {
  maxBytes?: number;
  timeoutSeconds?: number;
  maxPerSource?: number;
  maxDatagrams?: number;
  maxFragments?: number;
  /**
   * Called by expire() for each expired datagram whose first fragment had arrived, with (the
   * start of) that fragment at bufShared[off, off + len): what an ICMPv6 time exceeded (code 1)
   * quotes. Valid only during the call.
   */
  onExpire?: (bufShared: Buffer, off: number, len: number) => void;
}

export class Reassembler6 {
  readonly maxBytes: number;
  readonly timeout: number;
  readonly maxPerSource: number;
  readonly maxDatagrams: number;
  readonly maxFragments: number;
  /** Outcomes counted by FragStatus. */
  readonly counts = new Float64Array(FRAG_STATUS_COUNT);
  /** Datagrams that expired incomplete. */
  expired = 0;
  /** Bytes held in incomplete datagrams. */
  heldBytes = 0;

  private readonly onExpire: Reassembler6Options['onExpire'];
  /** Per slot: source and destination (8 words), identification, and the source's fold. */
  private readonly addrs: Uint32Array;
  private readonly ids: Uint32Array;
  private readonly srcFold: Uint32Array;
  private readonly started: Float64Array;
  private readonly flags: Uint8Array;
  private readonly dataLen: Int32Array;
  private readonly received: Int32Array;
  private readonly charged: Int32Array;
  private readonly nFrags: Int32Array;
  private readonly unfragLen: Int32Array;
  /** Where, in the unfragmentable part, the next-header field the fragment header's replaces sits. */
  private readonly nextField: Int32Array;
  private readonly nextHeader: Uint8Array;
  private readonly fragSizes: Int32Array;
  private readonly quoteLen: Int32Array;
  /** [start, end) of each fragment held, maxFragments pairs per slot. */
  private readonly ranges: Int32Array;
  private readonly bufs: (Buffer | undefined)[];
  private readonly quotes: (Buffer | undefined)[];
  /** Active slots, densely; and free slots, as a stack. */
  private readonly active: Int32Array;
  private nActive = 0;
  private readonly free: Int32Array;
  private nFree: number;
  /** The slot whose datagram completed, until the next add() or copyComplete(). */
  private ready = -1;

  constructor(opts: Reassembler6Options = {}) {
    this.maxBytes = positiveInt('maxBytes', opts.maxBytes, DEFAULT_FRAG_MAX_BYTES);
    this.timeout = positiveInt('timeoutSeconds', opts.timeoutSeconds, DEFAULT_FRAG6_TIMEOUT);
    this.maxPerSource = positiveInt('maxPerSource', opts.maxPerSource, DEFAULT_FRAG_MAX_PER_SOURCE);
    this.maxDatagrams = positiveInt('maxDatagrams', opts.maxDatagrams, DEFAULT_FRAG_MAX_DATAGRAMS);
    this.maxFragments = positiveInt('maxFragments', opts.maxFragments, DEFAULT_FRAG_MAX_FRAGMENTS);
    this.onExpire = opts.onExpire;
    const n = this.maxDatagrams;
    this.addrs = new Uint32Array(n * 8);
    this.ids = new Uint32Array(n);
    this.srcFold = new Uint32Array(n);
    this.started = new Float64Array(n);
    this.flags = new Uint8Array(n);
    this.dataLen = new Int32Array(n);
    this.received = new Int32Array(n);
    this.charged = new Int32Array(n);
    this.nFrags = new Int32Array(n);
    this.unfragLen = new Int32Array(n);
    this.nextField = new Int32Array(n);
    this.nextHeader = new Uint8Array(n);
    this.fragSizes = new Int32Array(n);
    this.quoteLen = new Int32Array(n);
    this.ranges = new Int32Array(n * this.maxFragments * 2);
    this.bufs = new Array(n).fill(undefined);
    this.quotes = new Array(n).fill(undefined);
    this.active = new Int32Array(n);
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.nFree = n;
  }

  /** Incomplete datagrams held. */
  get queues(): number {
    return this.nActive;
  }

  /**
   * Offer the IPv6 fragment at buf[off, off + len) whose fragment header is at `fragOffset` from
   * off (Ipv6View.checkLen passed; its length is the packet's, without link padding). Returns a
   * FragStatus and counts it.
   */
  add(buf: Buffer, off: number, len: number, fragOffset: number, now: number): FragStatus {
    const s = this.addFragment(buf, off, len, fragOffset, now);
    this.counts[s]++;
    return s;
  }

  private addFragment(buf: Buffer, off: number, len: number, fh: number, now: number): FragStatus {
    if (this.ready >= 0) this.release(this.ready);
    const fo = buf.readUInt16BE(off + fh + 2);
    const start = fo & 0xfff8;
    const more = (fo & 1) !== 0;
    const payload = len - fh - IPV6_FRAG_HEADER;
    const end = start + payload;
    const id = buf.readUInt32BE(off + fh + 4);
    let q = this.find(buf, off, id);
    let status: FragStatus = FRAG_HELD;
    if (payload <= 0 || (more && (payload & 7) !== 0)) status = FRAG_BAD;
    else if (end > MAX_PAYLOAD) status = FRAG_TOO_BIG;
    else if (start === 0 && fh > UNFRAG_ROOM) status = FRAG_TOO_BIG;
    if (status !== FRAG_HELD) {
      if (q >= 0) this.release(q);
      return status;
    }
    const charge = payload + (start === 0 ? fh : 0);
    if (q < 0) {
      const src = ipv6FoldWords(this.keyOf(buf, off), 0);
      if (this.nFree === 0 || this.heldBytes + charge > this.maxBytes || this.countFrom(src) >= this.maxPerSource) {
        return FRAG_NO_MEMORY;
      }
      q = this.start(buf, off, id, src, now);
    } else {
      const qf = this.flags[q];
      const dataLen = this.dataLen[q];
      if (!more) {
        if (end < dataLen || ((qf & LAST_IN) !== 0 && end !== dataLen)) status = FRAG_BAD;
      } else if (end > dataLen && (qf & LAST_IN) !== 0) status = FRAG_BAD;
      if (status === FRAG_HELD) status = this.checkRanges(q, start, end);
      if (status === FRAG_DUPLICATE) return status;
      if (status === FRAG_HELD && (this.nFrags[q] >= this.maxFragments || this.heldBytes + charge > this.maxBytes)) {
        status = FRAG_NO_MEMORY;
      }
      if (status !== FRAG_HELD) {
        this.release(q);
        return status;
      }
    }
    this.store(q, buf, off, len, fh, start, end, more, charge);
    const whole = (this.flags[q] & (FIRST_IN | LAST_IN)) === (FIRST_IN | LAST_IN);
    if (!whole || this.received[q] !== this.dataLen[q]) return FRAG_HELD;
    this.complete(q);
    return FRAG_COMPLETE;
  }

  /** The packet's source and destination as 8 words, in a reused array. */
  private readonly key = new Uint32Array(8);

  private keyOf(buf: Buffer, off: number): Uint32Array {
    for (let i = 0; i < 8; i++) this.key[i] = buf.readUInt32BE(off + IPV6.SRC + 4 * i);
    return this.key;
  }

  private find(buf: Buffer, off: number, id: number): number {
    const k = this.keyOf(buf, off);
    const a = this.addrs;
    for (let i = 0; i < this.nActive; i++) {
      const q = this.active[i];
      if (this.ids[q] !== id) continue;
      let same = true;
      for (let w = 0; w < 8 && same; w++) same = a[q * 8 + w] === k[w];
      if (same) return q;
    }
    return -1;
  }

  private countFrom(srcFold: number): number {
    let n = 0;
    for (let i = 0; i < this.nActive; i++) if (this.srcFold[this.active[i]] === srcFold) n++;
    return n;
  }

  private start(buf: Buffer, off: number, id: number, srcFold: number, now: number): number {
    const q = this.free[--this.nFree];
    this.active[this.nActive++] = q;
    this.addrs.set(this.keyOf(buf, off), q * 8);
    this.ids[q] = id;
    this.srcFold[q] = srcFold;
    this.started[q] = now;
    this.flags[q] = 0;
    this.dataLen[q] = 0;
    this.received[q] = 0;
    this.charged[q] = 0;
    this.nFrags[q] = 0;
    this.fragSizes[q] = 0;
    this.quoteLen[q] = 0;
    this.bufs[q] ??= Buffer.alloc(UNFRAG_ROOM + MAX_PAYLOAD);
    return q;
  }

  /** [start, end) against the ranges held: FRAG_HELD (disjoint), FRAG_DUPLICATE or FRAG_OVERLAP. */
  private checkRanges(q: number, start: number, end: number): FragStatus {
    const r = this.ranges;
    const base = q * this.maxFragments * 2;
    for (let i = 0; i < this.nFrags[q]; i++) {
      const s = r[base + 2 * i];
      const e = r[base + 2 * i + 1];
      if (end <= s || start >= e) continue;
      return start >= s && end <= e ? FRAG_DUPLICATE : FRAG_OVERLAP;
    }
    return FRAG_HELD;
  }

  private store(
    q: number,
    buf: Buffer,
    off: number,
    len: number,
    fh: number,
    start: number,
    end: number,
    more: boolean,
    charge: number,
  ): void {
    const b = this.bufs[q]!;
    buf.copy(b, UNFRAG_ROOM + start, off + fh + IPV6_FRAG_HEADER, off + len);
    if (start === 0) {
      this.flags[q] |= FIRST_IN;
      buf.copy(b, UNFRAG_ROOM - fh, off, off + fh);
      this.unfragLen[q] = fh;
      this.nextHeader[q] = buf[off + fh];
      this.nextField[q] = nextHeaderField(buf, off, fh);
      const ql = Math.min(len, QUOTE_MAX);
      this.quotes[q] ??= Buffer.alloc(QUOTE_MAX);
      buf.copy(this.quotes[q]!, 0, off, off + ql);
      this.quoteLen[q] = ql;
    }
    if (!more) {
      this.flags[q] |= LAST_IN;
      this.dataLen[q] = end;
    } else if (end > this.dataLen[q]) {
      this.dataLen[q] = end;
    }
    const base = q * this.maxFragments * 2 + 2 * this.nFrags[q];
    this.ranges[base] = start;
    this.ranges[base + 1] = end;
    this.nFrags[q]++;
    this.received[q] += end - start;
    this.charged[q] += charge;
    this.heldBytes += charge;
    if (len > this.fragSizes[q]) this.fragSizes[q] = len;
  }

  /** The datagram of slot q is whole: its headers made those of an unfragmented packet. */
  private complete(q: number): void {
    const b = this.bufs[q]!;
    const head = UNFRAG_ROOM - this.unfragLen[q];
    b[head + this.nextField[q]] = this.nextHeader[q];
    b.writeUInt16BE(this.unfragLen[q] - IPV6.HEADER + this.dataLen[q], head + IPV6.PAYLOAD_LEN);
    this.ready = q;
  }

  /** Length of the datagram that just completed. */
  get completeLen(): number {
    const q = this.ready;
    return q < 0 ? 0 : this.unfragLen[q] + this.dataLen[q];
  }

  /** The largest fragment the completed datagram came in (bytes, IPv6 header included). */
  get completeFragSize(): number {
    return this.ready < 0 ? 0 : this.fragSizes[this.ready];
  }

  /** Copy the completed datagram to out[outOff] and free its slot; returns its length. */
  copyComplete(out: Buffer, outOff: number): number {
    const q = this.ready;
    if (q < 0) return 0;
    const n = this.completeLen;
    const head = UNFRAG_ROOM - this.unfragLen[q];
    this.bufs[q]!.copy(out, outOff, head, head + n);
    this.release(q);
    return n;
  }

  /** Expire datagrams older than the timeout; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (let i = this.nActive - 1; i >= 0; i--) {
      const q = this.active[i];
      if (now - this.started[q] < this.timeout) continue;
      if ((this.flags[q] & FIRST_IN) !== 0) this.onExpire?.(this.quotes[q]!, 0, this.quoteLen[q]);
      this.release(q);
      this.expired++;
      n++;
    }
    return n;
  }

  private release(q: number): void {
    if (this.ready === q) this.ready = -1;
    for (let i = 0; i < this.nActive; i++) {
      if (this.active[i] !== q) continue;
      this.active[i] = this.active[--this.nActive];
      this.heldBytes -= this.charged[q];
      this.free[this.nFree++] = q;
      return;
    }
  }
}

/**
 * Offset from the packet's start of the next-header field that names the fragment header at
 * `fh`: the IPv6 header's, or that of the last extension header before it.
 */
function nextHeaderField(buf: Buffer, off: number, fh: number): number {
  let field: number = IPV6.NEXT_HEADER;
  let type = buf[off + IPV6.NEXT_HEADER];
  let at: number = IPV6.HEADER;
  while (at < fh) {
    field = at;
    const next = buf[off + at];
    at += type === IPPROTO_AH ? (buf[off + at + 1] + 2) * 4 : (buf[off + at + 1] + 1) * 8;
    type = next;
  }
  return field;
}
