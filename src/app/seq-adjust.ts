// TCP sequence-number adjustment after an application helper changed a payload's length
// (ip_vs_app.c's `struct ip_vs_seq {init_seq, delta, previous_delta}`), stored struct-of-arrays
// and indexed by connection id like the connection table.
//
// The model. Each direction of a connection has its own record:
//   SEQ_IN  data the client sends (client -> server), kernel cp->in_seq
//   SEQ_OUT data the real server sends (server -> client), kernel cp->out_seq
// When a helper resizes a segment of direction `dir` by `diff` bytes, the bytes after that
// segment sit `diff` further along on the wire than the sender thinks. The record keeps:
//   initSeq        the sender's sequence number (before any fix-up) of the last resized segment
//   delta          the total shift of the bytes after that segment
//   previousDelta  the shift before it, which still applies to the resized segment's first byte
//                  and to everything between the previous resized segment and this one
// Per packet:
//   data of dir        wire seq = seq + delta          if after(seq, initSeq)
//                                  seq + previousDelta  otherwise (the resized segment itself,
//                                                       retransmitted, or one sent before it)
//   ACKs of dir's data sender ack = ack - delta        if after(ack, initSeq + previousDelta)
//   (reverse packets)              ack - previousDelta  otherwise
//
// Worked example. The server sends "227 ...(172,16,0,5,...)" as 50 bytes at seq 1000; the
// helper rewrites it to the VIP "...(10,0,0,1,...)", 46 bytes: update(c, SEQ_OUT, 1000, -4) gives
// initSeq 1000, previousDelta 0, delta -4. The segment goes out at 1000 (previousDelta) and
// covers [1000, 1046) on the wire. The server's next segment, seq 1050, goes out at 1046. The
// client acks 1046; after(1046, 1000 + 0), so the server sees 1046 + 4 = 1050: all 50 bytes it
// sent are acknowledged. If the 227 reply is lost and retransmitted (seq 1000 again), it is
// rewritten again to 46 bytes, update() ignores it (not after initSeq) and it goes out at 1000
// again. A duplicate ack 1000 (not after 1000) stays 1000.
//
// How to use it (as app_tcp_pkt_out/app_tcp_pkt_in do), for a packet of direction dir:
//   1. seq = the packet's own sequence number, before any fix-up.
//   2. put fixSeq(c, dir, seq) on the wire; put fixAck(c, other, ack) in its ack field.
//   3. let the helper rewrite the payload; if it changed the length by diff != 0:
//      update(c, dir, seq, diff), with the seq of step 1.
//
// Deliberate differences and limits:
// - update() records only a segment that is new: the first resize of the direction, or one whose
//   seq is after initSeq (the kernel's `!(cp->flags & flag) || after(seq, init_seq)`). A
//   retransmission, which the helper rewrites again and reports the same diff for, must not add
//   it twice.
// - The ACK threshold is initSeq + previousDelta, where the resized segment starts on the wire
//   (netfilter's nf_nat_seqadj compares the same point). ip_vs_app.c compares initSeq + delta;
//   for a shrinking rewrite (diff < 0) that point lies before the segment's start, so an ack of
//   exactly the bytes before the segment would be mapped -diff bytes into it: the sender would
//   believe part of a segment the receiver never got was delivered, and retransmit only the rest.
//   At the segment's end (the usual ack) both give the exact answer. An ack that ends inside a
//   resized segment has no exact image in the sender's space; for a growing rewrite this maps it
//   to at or before the segment's start (an old ack, ignored) where the kernel may map it past
//   the segment's end.
// - Two levels only, as in the kernel: once a second segment is resized, the first one's own
//   shift is forgotten. A retransmission of the older resized segment, or of anything before it,
//   would get the wrong offset; so would an ack older than it (such an ack is at or below what
//   the sender already had acknowledged, so it maps to an old ack). FTP control traffic is
//   request/response, so the previous rewritten reply is acknowledged before the next is sent.
// - All arithmetic is mod 2^32; after()/before() compare like the kernel's (within 2^31).
// - SACK blocks are not adjusted.

import { CONN_F_IN_SEQ, CONN_F_OUT_SEQ } from '../ip-vs';
import { update32 } from '../wire/checksum';
import { TCP, TCP_ACK } from '../wire/tcp';
import type { PacketContext } from '../xmit/packet-context';

/** Direction of the data: sent by the client (kernel in_seq). */
export const SEQ_IN = 0;
/** Direction of the data: sent by the real server (kernel out_seq). */
export const SEQ_OUT = 1;
export type SeqDir = typeof SEQ_IN | typeof SEQ_OUT;

/** Whether sequence number a comes after b (mod 2^32), like the kernel's after(a, b). */
export function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** Whether sequence number a comes before b (mod 2^32), like the kernel's before(a, b). */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

const INITIAL_CAPACITY = 1024;

/**
 * The sequence adjustment records of every connection, two per connection id (index c * 2 + dir).
 * Connection ids at or beyond `capacity` simply have no adjustment; update() grows the arrays.
 */
export class SeqAdjust {
  capacity = 0;
  /** Bit (1 << dir) set once direction dir of a connection has been resized (IP_VS_CONN_F_*_SEQ). */
  flags: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  /** Sender's sequence number of the last resized segment, per c * 2 + dir. */
  initSeq: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  /** Shift of the bytes after it, per c * 2 + dir (an int32 holding a value mod 2^32). */
  delta: Int32Array<ArrayBuffer> = new Int32Array(0);
  /** Shift of the bytes up to its start, per c * 2 + dir. */
  previousDelta: Int32Array<ArrayBuffer> = new Int32Array(0);

  constructor(capacity = INITIAL_CAPACITY) {
    this.grow(capacity);
  }

  /** Makes room for connection ids below `capacity`; existing records are kept. */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    const flags = new Uint8Array(capacity);
    flags.set(this.flags);
    const initSeq = new Uint32Array(capacity * 2);
    initSeq.set(this.initSeq);
    const delta = new Int32Array(capacity * 2);
    delta.set(this.delta);
    const previousDelta = new Int32Array(capacity * 2);
    previousDelta.set(this.previousDelta);
    this.flags = flags;
    this.initSeq = initSeq;
    this.delta = delta;
    this.previousDelta = previousDelta;
    this.capacity = capacity;
  }

  /** Whether direction dir of connection c has been resized, so its packets need fixing. */
  active(c: number, dir: SeqDir): boolean {
    return c < this.capacity && (this.flags[c] & (1 << dir)) !== 0;
  }

  /** Forgets both directions of connection c (a new connection in a reused slot). */
  clear(c: number): void {
    if (c >= this.capacity) return;
    this.flags[c] = 0;
    const i = c * 2;
    this.initSeq[i] = 0;
    this.initSeq[i + 1] = 0;
    this.delta[i] = 0;
    this.delta[i + 1] = 0;
    this.previousDelta[i] = 0;
    this.previousDelta[i + 1] = 0;
  }

  /**
   * Records that the segment of direction dir whose original sequence number is `seq` was
   * resized by `diff` bytes. Only a new segment counts: the first resize, or one after initSeq;
   * a retransmission (seq at or before initSeq) is ignored. Returns whether it was recorded.
   */
  update(c: number, dir: SeqDir, seq: number, diff: number): boolean {
    if (c >= this.capacity) this.grow(Math.max(c + 1, this.capacity * 2, INITIAL_CAPACITY));
    const bit = 1 << dir;
    const i = c * 2 + dir;
    if ((this.flags[c] & bit) !== 0 && !seqAfter(seq, this.initSeq[i])) return false;
    this.previousDelta[i] = this.delta[i];
    this.delta[i] = this.delta[i] + diff;
    this.initSeq[i] = seq;
    this.flags[c] = this.flags[c] | bit;
    return true;
  }

  /** Set direction dir's record as a sync message carries it (a backup's copy of a connection). */
  load(c: number, dir: SeqDir, initSeq: number, delta: number, previousDelta: number): void {
    if (c >= this.capacity) this.grow(Math.max(c + 1, this.capacity * 2, INITIAL_CAPACITY));
    const i = c * 2 + dir;
    this.initSeq[i] = initSeq;
    this.delta[i] = delta | 0;
    this.previousDelta[i] = previousDelta | 0;
    this.flags[c] = this.flags[c] | (1 << dir);
  }

  /** The wire sequence number for a packet of direction dir carrying original sequence `seq`. */
  fixSeq(c: number, dir: SeqDir, seq: number): number {
    if (!this.active(c, dir)) return seq >>> 0;
    const i = c * 2 + dir;
    const shift = seqAfter(seq, this.initSeq[i]) ? this.delta[i] : this.previousDelta[i];
    return (seq + shift) >>> 0;
  }

  /**
   * The sender's view of `ack`, an acknowledgment (carried by a packet of the other direction)
   * of dir's data as the receiver saw it on the wire.
   */
  fixAck(c: number, dir: SeqDir, ack: number): number {
    if (!this.active(c, dir)) return ack >>> 0;
    const i = c * 2 + dir;
    const previous = this.previousDelta[i];
    const resizedStart = (this.initSeq[i] + previous) >>> 0;
    const shift = seqAfter(ack, resizedStart) ? this.delta[i] : previous;
    return (ack - shift) >>> 0;
  }
}

/**
 * A client's packet of a connection with sequence fix-ups (an FTP control connection after its
 * helper saw it, a SYN-proxied one, a backup's synced copy of either): its acknowledgment of
 * the server's data, and its own sequence number, as the real server counts them. A partial checksum (TUN offloads) covers the
 * header when it is completed, so it is left alone; a complete one is updated.
 */
export function shiftSeqIn(x: PacketContext, c: number, s: SeqAdjust): void {
  const flags = x.conns.flags[c];
  const buf = x.ip.buf;
  const t = x.ip.payloadOffset;
  if ((flags & CONN_F_OUT_SEQ) !== 0 && (buf[t + TCP.FLAGS] & TCP_ACK) !== 0) {
    setWord(x, t + TCP.ACK, s.fixAck(c, SEQ_OUT, buf.readUInt32BE(t + TCP.ACK)));
  }
  if ((flags & CONN_F_IN_SEQ) !== 0) setWord(x, t + TCP.SEQ, s.fixSeq(c, SEQ_IN, buf.readUInt32BE(t + TCP.SEQ)));
}

/** The real server's packet of such a connection: its sequence number and acknowledgment as the client counts them. */
export function shiftSeqOut(x: PacketContext, c: number, s: SeqAdjust): void {
  const flags = x.conns.flags[c];
  const buf = x.ip.buf;
  const t = x.ip.payloadOffset;
  if ((flags & CONN_F_OUT_SEQ) !== 0) setWord(x, t + TCP.SEQ, s.fixSeq(c, SEQ_OUT, buf.readUInt32BE(t + TCP.SEQ)));
  if ((flags & CONN_F_IN_SEQ) !== 0 && (buf[t + TCP.FLAGS] & TCP_ACK) !== 0) {
    setWord(x, t + TCP.ACK, s.fixAck(c, SEQ_IN, buf.readUInt32BE(t + TCP.ACK)));
  }
}

/** Write a 32-bit word of the current TCP header at `at`, keeping its checksum right. */
function setWord(x: PacketContext, at: number, v: number): void {
  const buf = x.ip.buf;
  const old = buf.readUInt32BE(at);
  if (old === v) return;
  buf.writeUInt32BE(v, at);
  if (x.csumStart !== 0) return;
  const sumAt = x.ip.payloadOffset + TCP.CHECKSUM;
  buf.writeUInt16BE(update32(buf.readUInt16BE(sumAt), old, v), sumAt);
}
