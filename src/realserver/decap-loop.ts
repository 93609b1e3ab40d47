// The data path of a TUN-mode real server: IP-in-IP datagrams in from a raw protocol-4 socket (or
// IPv6-in-IPv6 ones from a raw IPv6 protocol-41 socket, which hands over the inner packet), in
// batches (recvmmsg into one preallocated slab), the decision made by the pure Decapsulator (or
// Decapsulator6), each inner packet written into the local TUN device. Nothing is allocated per
// packet; what is dropped is counted by reason.

import { IPPROTO_IPIP } from '../ip-vs';
import type { LvsNative, WatchHandle } from '../native/addon';
import { TCP } from '../wire/tcp';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN, writeVnetHdr } from '../wire/vnet';
import { DECAP_OK, DECAP_VERDICT_NAMES, Decapsulator, type InnerDecider } from './decap';
import { Decapsulator6 } from './decap6';

/** IPv6 encapsulated in IPv6 (or IPv4): the IPv6 next header / IPv4 protocol 41. */
const IPPROTO_IPV6 = 41;
/** Room before each IPv6 datagram for the virtio_net_hdr (the IPv4 one writes it over the outer header). */
const HEADROOM6 = 16;

/** Receive slot: the largest IPv4 datagram (the stack reassembles fragments before a raw socket). */
export const RECV_SLOT = 65536;
/** Datagrams per recvmmsg call. */
export const RECV_BATCH = 64;
/** Batches per readiness callback before yielding to the event loop (poll is level-triggered). */
const MAX_BATCHES_PER_WAKEUP = 16;

export class DecapLoop {
  /** Datagrams read from the raw socket. */
  received = 0;
  /** Inner packets the TUN accepted. */
  delivered = 0;
  /** Inner packets the TUN refused (write failed). */
  tunWriteErrors = 0;
  private readonly slab: Buffer;
  private readonly lens: Uint32Array;
  private handle: WatchHandle | null = null;
  private closed = false;

  private constructor(
    private readonly native: LvsNative,
    private readonly rawFd: number,
    private readonly tunFd: number,
    readonly decap: InnerDecider,
    private readonly batch: number,
    /** Bytes before each datagram in its slot (recvBatch's headroom). */
    private readonly headroom: number,
    /** What the datagrams are, for the summary. */
    private readonly what: string,
  ) {
    this.slab = Buffer.alloc(batch * RECV_SLOT);
    this.lens = new Uint32Array(batch);
  }

  /** Open the protocol-4 raw socket (needs CAP_NET_RAW) for delivering into TUN `tunFd`. */
  static open(native: LvsNative, tunFd: number, vips: readonly number[], batch = RECV_BATCH): DecapLoop {
    const fd = native.rawOpenProto(IPPROTO_IPIP, false);
    return new DecapLoop(native, fd, tunFd, new Decapsulator(vips), batch, 0, 'IP-in-IP');
  }

  /**
   * Open the IPv6 protocol-41 raw socket for IPv6-in-IPv6 to IPv6 VIPs `vips` (four host-order
   * words each), delivering into TUN `tunFd`.
   */
  static open6(native: LvsNative, tunFd: number, vips: readonly Uint32Array[], batch = RECV_BATCH): DecapLoop {
    const fd = native.rawOpenProto(IPPROTO_IPV6, true);
    return new DecapLoop(native, fd, tunFd, new Decapsulator6(vips), batch, HEADROOM6, 'IPv6-in-IPv6');
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
    const { native, slab, lens, batch, decap, rawFd, tunFd, headroom } = this;
    let total = 0;
    for (let round = 0; round < MAX_BATCHES_PER_WAKEUP; round++) {
      const n = native.recvBatch(rawFd, slab, RECV_SLOT, headroom, batch, lens);
      for (let i = 0; i < n; i++) {
        if (decap.decide(slab, i * RECV_SLOT + headroom, lens[i]) !== DECAP_OK) continue;
        try {
          // The virtio_net_hdr in front, over the end of the outer header.
          const hdr = decap.innerOff - VNET_HDR_LEN;
          if (decap.partial) {
            writeVnetHdr(slab, hdr, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, 0, 0, decap.innerHeaderLen, TCP.CHECKSUM);
          } else {
            writeVnetHdr(slab, hdr, 0, VNET_GSO_NONE, 0, 0, 0, 0);
          }
          native.tunWrite(tunFd, slab, hdr, decap.innerLen + VNET_HDR_LEN);
          this.delivered++;
        } catch {
          this.tunWriteErrors++;
        }
      }
      total += n;
      if (n < batch) break;
    }
    this.received += total;
    return total;
  }

  /** The counters, one line each: totals first, then each drop reason that occurred. */
  summary(): string[] {
    const lines = [`received ${this.received} ${this.what} datagrams, delivered ${this.delivered} inner packets`];
    const c = this.decap.counters;
    for (let v = 0; v < c.length; v++) {
      if (v !== DECAP_OK && c[v] > 0) lines.push(`dropped ${c[v]} ${DECAP_VERDICT_NAMES[v]}`);
    }
    if (this.tunWriteErrors > 0) lines.push(`dropped ${this.tunWriteErrors} tun_write_error`);
    if (this.decap.partials > 0) lines.push(`passed on ${this.decap.partials} partial TCP checksums`);
    return lines;
  }

  /** Stop watching and close the raw socket (not the TUN: its owner closes it). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handle !== null) {
      this.native.unwatch(this.handle);
      this.handle = null;
    }
    this.native.close(this.rawFd);
  }
}
