// An in-memory PacketIo: tests and the engine benchmark push packets in and read what the engine
// sent, with no TUN, no socket and no root. With a slab that has a virtio_net_hdr (offload TUN)
// each pushed packet starts with its 10-byte header, as a read from such a TUN does; what was
// sent is recorded exactly as queued (TUN writes and frames with their header).

import { type PacketIo, Slab } from './packet-io';

export class MemoryIo implements PacketIo {
  readonly slab: Slab;
  /** Packets waiting to be received. */
  private readonly pending: Buffer[] = [];
  /** When set, recv() replays these packets forever (benchmarks) instead of draining `pending`. */
  private replay: Buffer[] | undefined;
  private replayPos = 0;
  /** Copies of every packet sent (unless `keepSent` is false), and the txDev each went out on. */
  readonly sent: Buffer[] = [];
  readonly sentDev: number[] = [];
  /** Interface names of the frame devices opened, by txDev number (index 0 unused: raw socket). */
  readonly frameDevs: string[] = [''];
  sentCount = 0;
  /** How many packets of each send batch the fake kernel accepts (default: all). */
  acceptLimit = Number.POSITIVE_INFINITY;
  private onReadable: (() => void) | undefined;
  private onError: ((err: unknown) => void) | undefined;

  constructor(
    slab = new Slab(),
    private readonly keepSent = true,
  ) {
    this.slab = slab;
  }

  /** Mark devices opened, by mark (their names are `mark<N>`). */
  readonly markDevs = new Set<number>();
  /** Marks of pending packets (0 = the main device), parallel to `pending`. */
  private readonly pendingMarks: number[] = [];

  /** Queue packets for the engine; wakes it like a readable TUN would. */
  push(...packets: Buffer[]): void {
    this.pushMarked(0, ...packets);
  }

  /** Queue packets as read from the mark device of `mark` (0: the main device). */
  pushMarked(mark: number, ...packets: Buffer[]): void {
    this.pending.push(...packets);
    for (let i = 0; i < packets.length; i++) this.pendingMarks.push(mark);
    if (this.onReadable) {
      try {
        this.onReadable();
      } catch (err) {
        this.onError?.(err);
      }
    }
  }

  /** Make every recv() return a full batch cycling through `packets`. */
  replayForever(packets: Buffer[]): void {
    this.replay = packets;
    this.replayPos = 0;
  }

  recv(): number {
    const slab = this.slab;
    const src = this.replay;
    let n = 0;
    while (n < slab.rxSlots) {
      let p: Buffer | undefined;
      let mark = 0;
      if (src !== undefined) {
        p = src[this.replayPos];
        this.replayPos = this.replayPos + 1 === src.length ? 0 : this.replayPos + 1;
      } else {
        p = this.pending.shift();
        if (p === undefined) break;
        mark = this.pendingMarks.shift() ?? 0;
      }
      slab.rxMark[n] = mark;
      const vnet = slab.vnetHdr;
      const len = Math.min(p.length - vnet, slab.maxPacket);
      if (len < 0) continue;
      slab.buf.set(p.subarray(0, vnet + len), slab.rxOffset(n) - vnet);
      slab.rxLen[n] = len;
      n++;
    }
    return n;
  }

  send(count: number): number {
    const n = Math.min(count, this.acceptLimit);
    if (this.keepSent) {
      const { buf, txOff, txLen, txDev } = this.slab;
      for (let i = 0; i < n; i++) {
        this.sent.push(Buffer.from(buf.subarray(txOff[i], txOff[i] + txLen[i])));
        this.sentDev.push(txDev[i]);
      }
    }
    this.sentCount += n;
    return n;
  }

  openFrameDev(ifname: string): number {
    const i = this.frameDevs.indexOf(ifname);
    if (i > 0) return i;
    this.frameDevs.push(ifname);
    return this.frameDevs.length - 1;
  }

  openMarkDev(mark: number): string {
    this.markDevs.add(mark);
    return `mark${mark}`;
  }

  closeMarkDev(mark: number): void {
    this.markDevs.delete(mark);
  }

  start(onReadable: () => void, onError: (err: unknown) => void): void {
    this.onReadable = onReadable;
    this.onError = onError;
  }

  close(): void {
    this.onReadable = undefined;
    this.onError = undefined;
  }

  /** Take (and clear) the packets sent so far. */
  takeSent(): Buffer[] {
    this.sentDev.length = 0;
    return this.sent.splice(0, this.sent.length);
  }
}
