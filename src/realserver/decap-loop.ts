// The data path of a TUN-mode real server: IP-in-IP datagrams in from a raw protocol-4 socket, in
// batches (recvmmsg into one preallocated slab), the decision made by the pure Decapsulator, and
// the batch's inner packets handed to the local stack in one sendmmsg on a raw IPv4 socket: each
// is addressed to a VIP, an address of this host, so the kernel delivers it locally (over lo,
// keeping the route it looked up, so no reverse-path check applies) and the server answers the
// client directly. One system call per batch, where writing each into the TUN took one per
// packet. Nothing is allocated per packet; what is dropped is counted by reason.

import { IPPROTO_IPIP } from '../ip-vs';
import type { LvsNative, WatchHandle } from '../native/addon';
import { DECAP_OK, DECAP_VERDICT_NAMES, Decapsulator } from './decap';

/** Receive slot: the largest IPv4 datagram (the stack reassembles fragments before a raw socket). */
export const RECV_SLOT = 65536;
/** Datagrams per recvmmsg call. */
export const RECV_BATCH = 64;
/** Batches per readiness callback before yielding to the event loop (poll is level-triggered). */
const MAX_BATCHES_PER_WAKEUP = 16;

export class DecapLoop {
  readonly decap: Decapsulator;
  /** Datagrams read from the raw socket. */
  received = 0;
  /** Inner packets the local stack accepted. */
  delivered = 0;
  /** Inner packets the local stack refused (the send failed). */
  deliverErrors = 0;
  private readonly slab: Buffer;
  private readonly lens: Uint32Array;
  /** The batch's inner packets: offsets and lengths in the slab. */
  private readonly innerOff: Uint32Array;
  private readonly innerLen: Uint32Array;
  private handle: WatchHandle | null = null;
  private closed = false;

  private constructor(
    private readonly native: LvsNative,
    private readonly rawFd: number,
    private readonly sendFd: number,
    vips: readonly number[],
    private readonly batch: number,
  ) {
    this.decap = new Decapsulator(vips);
    this.slab = Buffer.alloc(batch * RECV_SLOT);
    this.lens = new Uint32Array(batch);
    this.innerOff = new Uint32Array(batch);
    this.innerLen = new Uint32Array(batch);
  }

  /**
   * Open the protocol-4 raw socket that receives and the raw IPv4 socket that delivers (needs
   * CAP_NET_RAW). The VIPs must be local addresses (tun-setup.ts puts them on a TUN).
   */
  static open(native: LvsNative, vips: readonly number[], batch = RECV_BATCH): DecapLoop {
    const rawFd = native.rawOpenProto(IPPROTO_IPIP);
    let sendFd: number;
    try {
      sendFd = native.rawOpen();
    } catch (err) {
      native.close(rawFd);
      throw err;
    }
    return new DecapLoop(native, rawFd, sendFd, vips, batch);
  }

  /** Start handling datagrams as they arrive; `onError` gets what a callback throws. */
  start(onError: (err: unknown) => void): void {
    if (this.closed) throw new Error('DecapLoop is closed');
    if (this.handle !== null) throw new Error('DecapLoop.start: already started');
    this.handle = this.native.watch(
      this.rawFd,
      () => {
        try {
          this.poll();
        } catch (err) {
          onError(err);
        }
      },
      onError,
    );
  }

  /** Handle what is waiting: up to MAX_BATCHES_PER_WAKEUP batches. Returns the datagrams read. */
  poll(): number {
    const { native, slab, lens, batch, decap, rawFd, sendFd, innerOff, innerLen } = this;
    let total = 0;
    for (let round = 0; round < MAX_BATCHES_PER_WAKEUP; round++) {
      const n = native.recvBatch(rawFd, slab, RECV_SLOT, 0, batch, lens);
      let count = 0;
      for (let i = 0; i < n; i++) {
        if (decap.decide(slab, i * RECV_SLOT, lens[i]) !== DECAP_OK) continue;
        innerOff[count] = decap.innerOff;
        innerLen[count] = decap.innerLen;
        count++;
      }
      if (count > 0) {
        let accepted = 0;
        try {
          accepted = native.sendBatch(sendFd, slab, innerOff, innerLen, count);
        } catch {
          accepted = 0;
        }
        this.delivered += accepted;
        this.deliverErrors += count - accepted;
      }
      total += n;
      if (n < batch) break;
    }
    this.received += total;
    return total;
  }

  /** The counters, one line each: totals first, then each drop reason that occurred. */
  summary(): string[] {
    const lines = [`received ${this.received} IP-in-IP datagrams, delivered ${this.delivered} inner packets`];
    const c = this.decap.counters;
    for (let v = 0; v < c.length; v++) {
      if (v !== DECAP_OK && c[v] > 0) lines.push(`dropped ${c[v]} ${DECAP_VERDICT_NAMES[v]}`);
    }
    if (this.deliverErrors > 0) lines.push(`dropped ${this.deliverErrors} deliver_error`);
    return lines;
  }

  /** Stop watching and close the raw sockets. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handle !== null) {
      this.native.unwatch(this.handle);
      this.handle = null;
    }
    this.native.close(this.rawFd);
    this.native.close(this.sendFd);
  }
}
