// Queue steering of a multi-queue TUN: the eBPF program of native/src/steer.c, attached to the
// device, and the map of virtual addresses it reads (which side of a packet is the client's).
// lvsd keeps the map equal to its set of VIPs; src/wire/steer-hash.ts is the same hash in
// TypeScript.

import { type LvsNative, loadNative } from './addon';

/** The most virtual addresses the map holds (its entries are allocated as they are added). */
export const STEER_MAX_VIPS = 1 << 20;

export class TunSteering {
  private readonly vips = new Set<number>();
  private closed = false;
  /** The address-only switch's mask, or null while off. */
  addrMask: number | null = null;

  private constructor(
    private readonly native: LvsNative,
    private readonly mapFd: number,
  ) {}

  /** Steer the queues of the multi-queue TUN that `tunFd` is a queue of (lvsd's main TUN). */
  static attach(tunFd: number): TunSteering {
    const native = loadNative();
    const mapFd = native.steerMapCreate(STEER_MAX_VIPS);
    try {
      native.steerAttach(tunFd, mapFd, false);
    } catch (err) {
      native.close(mapFd);
      throw err;
    }
    return new TunSteering(native, mapFd);
  }

  /**
   * Steer another multi-queue TUN, one that carries requests only (a firewall-mark device: the
   * client is every packet's source), by this map: it reads only the address-only switch.
   */
  attachRequestsOnly(tunFd: number): void {
    this.native.steerAttach(tunFd, this.mapFd, true);
  }

  /**
   * Steer by the client's address alone, masked with `mask` (the map's key 0), or by address and
   * port again (null): while a persistent service exists, every connection from a client's
   * network (the service's persistence netmask) must reach the engine that holds its template.
   */
  setAddrOnly(mask: number | null): void {
    if (this.closed || mask === this.addrMask) return;
    this.native.steerMapSet(this.mapFd, 0, mask ?? 0, mask !== null);
    this.addrMask = mask;
  }

  /** Make the map hold exactly `addrs` (host order; 0 is never a VIP). */
  setVips(addrs: Iterable<number>): void {
    if (this.closed) return;
    const want = new Set(addrs);
    want.delete(0);
    for (const a of this.vips) {
      if (!want.has(a)) {
        this.native.steerMapSet(this.mapFd, a, 0, false);
        this.vips.delete(a);
      }
    }
    for (const a of want) {
      if (!this.vips.has(a)) {
        this.native.steerMapSet(this.mapFd, a, 1, true);
        this.vips.add(a);
      }
    }
  }

  /** Close the map's fd (the program attached to the TUN keeps the map while the TUN lives). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close(this.mapFd);
  }
}
