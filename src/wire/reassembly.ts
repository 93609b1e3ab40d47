// IPv4 fragment reassembly for the data path, after Linux's net/ipv4/ip_fragment.c.
//
// A datagram being reassembled is a *queue*, keyed by <source, destination, protocol, id>
// (RFC 791). Queues live in fixed slots (struct-of-arrays, numbers only): a small open-addressing
// hash (linear probing, backward-shift deletion, per-instance random seed) maps the key to a
// slot, a dense list of the active slots serves expiry and the per-source count, and a stack
// holds the free slots. Each slot owns one reassembly buffer, allocated the first time the slot
// is used and kept for the slot's next datagrams, so after warm-up nothing allocates:
//
//   0            HEADER_ROOM - headerLen    HEADER_ROOM                   HEADER_ROOM + dataLen
//   |  (unused)  |  first fragment header  |  payload byte k at HEADER_ROOM + k  |
//                |<---- the reassembled datagram: one contiguous run ----------->|
//
// Each fragment's payload is copied to its place as it arrives, and its [start, end) range is
// kept (at most maxFragments per datagram). Against the held ranges a new fragment is
//   - a duplicate if it lies wholly inside one of them (a resend): only it is dropped;
//   - an overlap if it intersects any other way: the whole datagram is discarded (RFC 5722
//     style, as Linux does for IPv4 since 4.19), so no byte is ever overwritten.
// Since held ranges never overlap, the datagram is whole once the last fragment (MF clear) has
// fixed its length and the bytes held equal it. The reassembled header is the first fragment's
// (options kept) with total length set, MF and offset cleared, DF set if any fragment had it,
// ECN merged per RFC 3168 section 5.3 (CE on some fragment marks the datagram CE; not-ECT mixed
// with ECT or CE discards it), and the header checksum recomputed.
//
// Limits, all named defaults below: bytes held (ipfrag_high_thresh), queue age (ipfrag_time;
// like Linux, the timer starts with the first fragment seen and is never pushed back),
// incomplete datagrams in total and per source address, fragments per datagram. "Bytes held"
// counts what is copied into the slot buffers (every payload byte plus the first fragment's
// header); the buffers themselves are bounded by maxDatagrams, about 64 KiB each.
//
// Outcomes are FRAG_* numbers (a counter index, like wire verdicts), never throws. The complete
// datagram is left in its slot buffer and exposed as completeBufShared / completeOff /
// completeLen until the next call to add(), expire(), copyComplete() or releaseComplete(), which
// hands the slot back.

import { InvalidError } from '../errors';
import { IPV4, IPV4_DF, IPV4_FRAG_OFFSET_MASK, IPV4_MF, Ipv4View } from './ipv4';

/** The fragment is kept; the datagram is still incomplete. */
export const FRAG_HELD = 0;
/** The fragment completed its datagram: read it with copyComplete() or completeBufShared. */
export const FRAG_COMPLETE = 1;
/** Wholly inside a fragment already held (a resend): this fragment alone is dropped. */
export const FRAG_DUPLICATE = 2;
/** Partly overlaps a fragment already held: the whole datagram is discarded. */
export const FRAG_OVERLAP = 3;
/** The datagram would exceed 65535 bytes: the whole datagram is discarded. */
export const FRAG_TOO_BIG = 4;
/**
 * Malformed: no payload, a non-last fragment whose payload is not a multiple of 8, data beyond
 * the end a last fragment set, two last fragments that disagree, or ECN codepoints that may not
 * be mixed; the whole datagram is discarded. Also a packet that is not a fragment at all (MF
 * clear, offset 0), which leaves every datagram alone.
 */
export const FRAG_BAD = 5;
/**
 * A limit was reached (bytes held, datagrams in total or from this source, fragments in this
 * datagram). A fragment that would start a datagram is dropped; one that would grow a datagram
 * discards it, since the datagram can no longer complete.
 */
export const FRAG_NO_MEMORY = 6;

/** Any of the FRAG_* outcomes; FRAG_DUPLICATE and above are drops. */
export type FragStatus = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** Counter and log names, indexed by FragStatus. */
export const FRAG_STATUS_NAMES: readonly string[] = [
  'held',
  'complete',
  'duplicate',
  'overlap',
  'too_big',
  'bad',
  'no_memory',
];

/** How many outcomes there are: the size of a per-status counter array. */
export const FRAG_STATUS_COUNT = 7;

/** Default cap on bytes held in incomplete datagrams: 4 MiB, Linux's ipfrag_high_thresh. */
export const DEFAULT_FRAG_MAX_BYTES = 4 * 1024 * 1024;
/** Default seconds an incomplete datagram is kept: 30, Linux's ipfrag_time. */
export const DEFAULT_FRAG_TIMEOUT = 30;
/** Default cap on incomplete datagrams from one source address. */
export const DEFAULT_FRAG_MAX_PER_SOURCE = 64;
/** Default cap on incomplete datagrams in total (also the number of slot buffers). */
export const DEFAULT_FRAG_MAX_DATAGRAMS = 256;
/** Default cap on fragments held for one datagram (45 carry 64 KiB over a 1500-byte MTU). */
export const DEFAULT_FRAG_MAX_FRAGMENTS = 64;

/** The largest IPv4 datagram, and the most payload one can carry (with a 20-byte header). */
const IP_MAX_LEN = 0xffff;
const IP_MAX_PAYLOAD = IP_MAX_LEN - IPV4.MIN_HEADER;
/** Room in front of payload byte 0 for the largest header (IHL 15). */
const HEADER_ROOM = 60;
/** Size of one slot buffer: header room and the largest payload. */
const SLOT_BUF_SIZE = HEADER_ROOM + IP_MAX_PAYLOAD;

/** Slot flags: the fragment at offset 0 / the fragment with MF clear has been seen; some had DF. */
const FIRST_IN = 1;
const LAST_IN = 2;
const DF_SEEN = 4;

/** ECN codepoints (low 2 bits of TOS), and the bit each sets in a slot's seen-mask. */
const ECN_MASK = 3;
const ECN_CE = 3;
const ECN_SEEN_NOT_ECT = 1 << 0;
const ECN_SEEN_CE = 1 << ECN_CE;

export interface ReassemblerOptions {
  /** Cap on bytes held in incomplete datagrams. Default DEFAULT_FRAG_MAX_BYTES (4 MiB). */
  maxBytes?: number;
  /** Seconds from a datagram's first fragment until it expires. Default DEFAULT_FRAG_TIMEOUT (30). */
  timeoutSeconds?: number;
  /** Cap on incomplete datagrams per source address. Default DEFAULT_FRAG_MAX_PER_SOURCE (64). */
  maxPerSource?: number;
  /** Cap on incomplete datagrams in total. Default DEFAULT_FRAG_MAX_DATAGRAMS (256). */
  maxDatagrams?: number;
  /** Cap on fragments held per datagram. Default DEFAULT_FRAG_MAX_FRAGMENTS (64). */
  maxFragments?: number;
  /**
   * Called by expire() for each expired datagram whose first fragment had arrived, with that
   * fragment as received at bufShared[off, off + len): what an ICMP time exceeded (code 1,
   * fragment reassembly time exceeded) quotes. The bytes are valid only during the call.
   */
  onExpire?: (bufShared: Buffer, off: number, len: number) => void;
  /** Seed of the key hash; default random, so that peers cannot aim at one hash chain. */
  hashSeed?: number;
}

/** A positive integer option, or `dflt` when it is not given. */
export function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v <= 0) throw new InvalidError(`invalid reassembly ${name}: ${v}`);
  return v;
}

/** A 32-bit hash of a queue key (multiply-xorshift rounds, seeded). */
function hashKey(src: number, dst: number, protoId: number, seed: number): number {
  let h = Math.imul(src ^ seed, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ dst, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13) ^ protoId, 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Reassembles IPv4 fragments. Offer each fragment with add(); when it says FRAG_COMPLETE, take
 * the datagram; call expire() now and then. Counters are public fields.
 */
export class Reassembler {
  readonly maxBytes: number;
  readonly timeoutSeconds: number;
  readonly maxPerSource: number;
  readonly maxDatagrams: number;
  readonly maxFragments: number;

  /** Bytes held in incomplete datagrams (never above maxBytes). */
  heldBytes = 0;
  /** Incomplete datagrams. */
  queues = 0;
  /** Outcomes of add(), indexed by FragStatus. */
  readonly counts = new Float64Array(FRAG_STATUS_COUNT);
  /** Datagrams discarded by a bad, overlapping, too big or over-limit fragment. */
  discarded = 0;
  /** Datagrams dropped by expire(). */
  expired = 0;
  /** Slot buffers allocated so far (at most maxDatagrams; reused after that). */
  buffersAllocated = 0;

  /** The last completed datagram: completeBufShared[completeOff, completeOff + completeLen). */
  completeBufShared: Buffer = Buffer.alloc(0);
  completeOff = 0;
  /** Length of the completed datagram; 0 when none is waiting. */
  completeLen = 0;

  private readonly onExpire: ((bufShared: Buffer, off: number, len: number) => void) | undefined;
  private readonly seed: number;

  // Per-slot state.
  private readonly bufs: (Buffer | undefined)[];
  private readonly keySrc: Uint32Array;
  private readonly keyDst: Uint32Array;
  /** protocol << 16 | id. */
  private readonly keyProtoId: Uint32Array;
  private readonly keyHash: Uint32Array;
  private readonly created: Float64Array;
  private readonly flags: Uint8Array;
  private readonly ecnSeen: Uint8Array;
  /** Header length of the first fragment (once FIRST_IN). */
  private readonly headerLen: Uint8Array;
  /** Payload end of the first fragment (once FIRST_IN). */
  private readonly firstEnd: Int32Array;
  /** Payload length: fixed by the last fragment, else the highest end seen. */
  private readonly dataLen: Int32Array;
  /** Payload bytes held. */
  private readonly received: Int32Array;
  /** Bytes charged to heldBytes. */
  private readonly charged: Int32Array;
  private readonly nFrags: Int32Array;
  /** Fragment ranges [start, end), maxFragments per slot from slot * maxFragments. */
  private readonly rangeStart: Int32Array;
  private readonly rangeEnd: Int32Array;
  /** Index of the slot in `active`. */
  private readonly activePos: Int32Array;

  private readonly active: Int32Array;
  private readonly free: Int32Array;
  private freeCount: number;
  /** Hash cells: slot + 1, 0 = empty. Twice (at least) maxDatagrams cells, a power of two. */
  private readonly table: Int32Array;
  private readonly mask: number;
  /** The slot holding the completed datagram, or -1. */
  private ready = -1;

  private readonly view = new Ipv4View();
  private readonly out = new Ipv4View();

  constructor(opts: ReassemblerOptions = {}) {
    this.maxBytes = positiveInt('maxBytes', opts.maxBytes, DEFAULT_FRAG_MAX_BYTES);
    this.timeoutSeconds = positiveInt('timeoutSeconds', opts.timeoutSeconds, DEFAULT_FRAG_TIMEOUT);
    this.maxPerSource = positiveInt('maxPerSource', opts.maxPerSource, DEFAULT_FRAG_MAX_PER_SOURCE);
    this.maxDatagrams = positiveInt('maxDatagrams', opts.maxDatagrams, DEFAULT_FRAG_MAX_DATAGRAMS);
    this.maxFragments = positiveInt('maxFragments', opts.maxFragments, DEFAULT_FRAG_MAX_FRAGMENTS);
    this.onExpire = opts.onExpire;
    this.seed = (opts.hashSeed ?? Math.floor(Math.random() * 0x100000000)) >>> 0;

    const n = this.maxDatagrams;
    this.bufs = new Array<Buffer | undefined>(n).fill(undefined);
    this.keySrc = new Uint32Array(n);
    this.keyDst = new Uint32Array(n);
    this.keyProtoId = new Uint32Array(n);
    this.keyHash = new Uint32Array(n);
    this.created = new Float64Array(n);
    this.flags = new Uint8Array(n);
    this.ecnSeen = new Uint8Array(n);
    this.headerLen = new Uint8Array(n);
    this.firstEnd = new Int32Array(n);
    this.dataLen = new Int32Array(n);
    this.received = new Int32Array(n);
    this.charged = new Int32Array(n);
    this.nFrags = new Int32Array(n);
    this.rangeStart = new Int32Array(n * this.maxFragments);
    this.rangeEnd = new Int32Array(n * this.maxFragments);
    this.activePos = new Int32Array(n);
    this.active = new Int32Array(n);
    // LIFO free list, slot 0 on top: recently used slots (whose buffers exist) are taken first.
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.freeCount = n;
    let cells = 1;
    while (cells < 2 * n) cells <<= 1;
    this.table = new Int32Array(cells);
    this.mask = cells - 1;
  }

  /**
   * Offer one IPv4 fragment at buf[off, off + len). It must have passed Ipv4View.checkLen()
   * (header and total lengths sane); one that is not a fragment (MF clear and offset 0) is
   * FRAG_BAD. `now` is in seconds on the clock expire() is given. The payload is copied: buf is
   * free again on return. Returns a FragStatus and counts it in `counts`.
   */
  add(buf: Buffer, off: number, len: number, now: number): FragStatus {
    const status = this.addFragment(buf, off, len, now);
    this.counts[status]!++;
    return status;
  }

  private addFragment(buf: Buffer, off: number, len: number, now: number): FragStatus {
    if (this.ready >= 0) this.releaseComplete();
    const v = this.view.reset(buf, off, len);
    const flagsFrag = v.flagsFrag;
    const hl = v.headerLen;
    const payload = v.totalLen - hl;
    const start = (flagsFrag & IPV4_FRAG_OFFSET_MASK) << 3;
    const end = start + payload;
    const isLast = (flagsFrag & IPV4_MF) === 0;
    if (isLast && start === 0) return FRAG_BAD; // not a fragment: no datagram is touched
    const src = v.srcAddr;
    const dst = v.dstAddr;
    const protoId = ((v.protocol << 16) | v.id) >>> 0;
    const hash = hashKey(src, dst, protoId, this.seed);
    let q = this.find(src, dst, protoId, hash);

    // Checks on the fragment alone.
    let status: FragStatus = FRAG_HELD;
    if (payload === 0 || (!isLast && (payload & 7) !== 0)) status = FRAG_BAD;
    else if (end + (start === 0 ? hl : IPV4.MIN_HEADER) > IP_MAX_LEN) status = FRAG_TOO_BIG;
    if (status !== FRAG_HELD) {
      if (q >= 0) this.discard(q);
      return status;
    }
    const charge = payload + (start === 0 ? hl : 0);
    const ecnBit = 1 << (v.tos & ECN_MASK);

    if (q < 0) {
      // The first fragment seen of this datagram: take a slot if the limits allow. Alone it
      // cannot be the whole datagram (that needs offset 0 and MF clear).
      if (this.freeCount === 0 || this.heldBytes + charge > this.maxBytes || this.countFrom(src) >= this.maxPerSource)
        return FRAG_NO_MEMORY;
      q = this.startQueue(src, dst, protoId, hash, now);
      this.store(q, buf, off, start, end, hl, isLast, flagsFrag, charge, ecnBit);
      return FRAG_HELD;
    }

    // Checks against the datagram so far (in the order Linux makes them).
    const qFlags = this.flags[q]!;
    const dataLen = this.dataLen[q]!;
    if (isLast) {
      if (end < dataLen || ((qFlags & LAST_IN) !== 0 && end !== dataLen)) status = FRAG_BAD;
    } else if (end > dataLen && (qFlags & LAST_IN) !== 0) status = FRAG_BAD;
    if (status === FRAG_HELD) status = this.checkRanges(q, start, end);
    if (status === FRAG_DUPLICATE) return status;
    if (status === FRAG_HELD) {
      const newLen = Math.max(end, dataLen);
      const firstHl = start === 0 ? hl : (qFlags & FIRST_IN) !== 0 ? this.headerLen[q]! : IPV4.MIN_HEADER;
      const ecn = this.ecnSeen[q]! | ecnBit;
      if (firstHl + newLen > IP_MAX_LEN) status = FRAG_TOO_BIG;
      else if ((ecn & ECN_SEEN_NOT_ECT) !== 0 && ecn !== ECN_SEEN_NOT_ECT) status = FRAG_BAD;
      else if (this.nFrags[q]! >= this.maxFragments || this.heldBytes + charge > this.maxBytes) status = FRAG_NO_MEMORY;
    }
    if (status !== FRAG_HELD) {
      this.discard(q);
      return status;
    }
    this.store(q, buf, off, start, end, hl, isLast, flagsFrag, charge, ecnBit);
    const whole = (this.flags[q]! & (FIRST_IN | LAST_IN)) === (FIRST_IN | LAST_IN);
    return whole && this.received[q] === this.dataLen[q] ? this.complete(q) : FRAG_HELD;
  }

  /** Take a free slot for a new datagram (the caller checked there is one) and return it. */
  private startQueue(src: number, dst: number, protoId: number, hash: number, now: number): number {
    const q = this.free[--this.freeCount]!;
    if (this.bufs[q] === undefined) {
      this.bufs[q] = Buffer.alloc(SLOT_BUF_SIZE);
      this.buffersAllocated++;
    }
    this.keySrc[q] = src;
    this.keyDst[q] = dst;
    this.keyProtoId[q] = protoId;
    this.keyHash[q] = hash;
    this.created[q] = now;
    this.flags[q] = 0;
    this.ecnSeen[q] = 0;
    this.headerLen[q] = 0;
    this.firstEnd[q] = 0;
    this.dataLen[q] = 0;
    this.received[q] = 0;
    this.charged[q] = 0;
    this.nFrags[q] = 0;
    let i = hash & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = q + 1;
    this.activePos[q] = this.queues;
    this.active[this.queues++] = q;
    return q;
  }

  /** FRAG_HELD if [start, end) is clear of the held ranges, else FRAG_DUPLICATE or FRAG_OVERLAP. */
  private checkRanges(q: number, start: number, end: number): FragStatus {
    const base = q * this.maxFragments;
    const stop = base + this.nFrags[q]!;
    for (let i = base; i < stop; i++) {
      const s = this.rangeStart[i]!;
      const e = this.rangeEnd[i]!;
      if (start < e && end > s) return start >= s && end <= e ? FRAG_DUPLICATE : FRAG_OVERLAP;
    }
    return FRAG_HELD;
  }

  /** Copy an accepted fragment into slot q and record it. */
  private store(
    q: number,
    buf: Buffer,
    off: number,
    start: number,
    end: number,
    hl: number,
    isLast: boolean,
    flagsFrag: number,
    charge: number,
    ecnBit: number,
  ): void {
    const qbuf = this.bufs[q]!;
    const from = off + hl;
    buf.copy(qbuf, HEADER_ROOM + start, from, from + (end - start));
    let f = this.flags[q]!;
    if (start === 0) {
      buf.copy(qbuf, HEADER_ROOM - hl, off, from);
      this.headerLen[q] = hl;
      this.firstEnd[q] = end;
      f |= FIRST_IN;
    }
    if (isLast) {
      this.dataLen[q] = end;
      f |= LAST_IN;
    } else if (end > this.dataLen[q]!) this.dataLen[q] = end;
    if ((flagsFrag & IPV4_DF) !== 0) f |= DF_SEEN;
    this.flags[q] = f;
    this.ecnSeen[q] = this.ecnSeen[q]! | ecnBit;
    const r = q * this.maxFragments + this.nFrags[q]!;
    this.rangeStart[r] = start;
    this.rangeEnd[r] = end;
    this.nFrags[q] = this.nFrags[q]! + 1;
    this.received[q] = this.received[q]! + (end - start);
    this.charged[q] = this.charged[q]! + charge;
    this.heldBytes += charge;
  }

  /** Fix up the first fragment's header for the whole datagram and park slot q as the ready one. */
  private complete(q: number): FragStatus {
    const hl = this.headerLen[q]!;
    const len = hl + this.dataLen[q]!;
    const at = HEADER_ROOM - hl;
    const qbuf = this.bufs[q]!;
    const f = this.flags[q]!;
    const h = this.out.reset(qbuf, at, len);
    h.totalLen = len;
    qbuf.writeUInt16BE((f & DF_SEEN) !== 0 ? IPV4_DF : 0, at + IPV4.FLAGS_FRAG);
    if ((this.ecnSeen[q]! & ECN_SEEN_CE) !== 0) h.tos = h.tos | ECN_CE;
    h.fillChecksum();
    this.unlink(q);
    this.ready = q;
    this.completeBufShared = qbuf;
    this.completeOff = at;
    this.completeLen = len;
    return FRAG_COMPLETE;
  }

  /**
   * Copy the completed datagram to out[outOff] and hand its slot back. Returns its length, or 0
   * if no datagram is waiting or out has no room for it from outOff (the datagram then stays).
   */
  copyComplete(out: Buffer, outOff: number): number {
    const len = this.completeLen;
    if (len === 0 || outOff < 0 || outOff + len > out.length) return 0;
    this.completeBufShared.copy(out, outOff, this.completeOff, this.completeOff + len);
    this.releaseComplete();
    return len;
  }

  /** Hand the completed datagram's slot back (after reading completeBufShared in place). */
  releaseComplete(): void {
    const q = this.ready;
    if (q < 0) return;
    this.ready = -1;
    this.completeLen = 0;
    this.free[this.freeCount++] = q;
  }

  /**
   * Drop the datagrams whose first fragment came timeoutSeconds or more before `now`, calling
   * onExpire for those that had their first fragment. Returns how many were dropped.
   */
  expire(now: number): number {
    if (this.ready >= 0) this.releaseComplete();
    const limit = now - this.timeoutSeconds;
    let n = 0;
    for (let i = this.queues - 1; i >= 0; i--) {
      const q = this.active[i]!;
      if (this.created[q]! > limit) continue;
      if (this.onExpire !== undefined && (this.flags[q]! & FIRST_IN) !== 0) {
        const hl = this.headerLen[q]!;
        this.onExpire(this.bufs[q]!, HEADER_ROOM - hl, hl + this.firstEnd[q]!);
      }
      this.unlink(q);
      this.free[this.freeCount++] = q;
      n++;
    }
    this.expired += n;
    return n;
  }

  /** Drop every incomplete datagram and any waiting complete one (buffers are kept). */
  clear(): void {
    if (this.ready >= 0) this.releaseComplete();
    while (this.queues > 0) {
      const q = this.active[this.queues - 1]!;
      this.unlink(q);
      this.free[this.freeCount++] = q;
    }
  }

  /** Slot of the queue with this key, or -1. */
  private find(src: number, dst: number, protoId: number, hash: number): number {
    const table = this.table;
    let i = hash & this.mask;
    for (;;) {
      const e = table[i]!;
      if (e === 0) return -1;
      const q = e - 1;
      if (this.keySrc[q] === src && this.keyDst[q] === dst && this.keyProtoId[q] === protoId) return q;
      i = (i + 1) & this.mask;
    }
  }

  /** Incomplete datagrams from source address `src` (a scan, made only when a queue starts). */
  private countFrom(src: number): number {
    let n = 0;
    for (let i = 0; i < this.queues; i++) if (this.keySrc[this.active[i]!] === src) n++;
    return n;
  }

  /** Throw away incomplete datagram q. */
  private discard(q: number): void {
    this.unlink(q);
    this.free[this.freeCount++] = q;
    this.discarded++;
  }

  /** Take slot q out of the hash table, the active list and the byte count (not onto the free list). */
  private unlink(q: number): void {
    const table = this.table;
    const mask = this.mask;
    let i = this.keyHash[q]! & mask;
    while (table[i] !== q + 1) i = (i + 1) & mask;
    // Backward-shift deletion: pull later entries of the probe run into the hole unless their
    // home cell lies cyclically after the hole (moving them would put them before their home).
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = table[j]!;
      if (e === 0) break;
      const home = this.keyHash[e - 1]! & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        table[i] = e;
        i = j;
      }
    }
    table[i] = 0;

    const pos = this.activePos[q]!;
    const last = this.active[--this.queues]!;
    this.active[pos] = last;
    this.activePos[last] = pos;
    this.heldBytes -= this.charged[q]!;
    this.charged[q] = 0;
  }
}
