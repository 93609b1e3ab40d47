// lvs-realserver's IP-in-IP decapsulation in the kernel (native/src/decap.c): an eBPF program
// at the ingress of each interface of the real server takes the outer header off a datagram
// whose inner packet is for a VIP, and the local stack receives the inner packet as if it came
// so; GSO packets too, whole. What the program leaves alone (outer options, fragments, ECN CE, inner
// destinations that are no VIP) still reaches the user-space decapsulator (decap-loop.ts)
// through its raw socket, which decides as before. Interfaces that appear later, or where the
// program cannot be attached, are served by the user-space side alone.

import type { LvsNative } from '../native/addon';

export class KernelDecap {
  private constructor(
    private readonly native: LvsNative,
    private readonly maps: { vips: number; counts: number },
    /** The interfaces the program is attached to, and each link's fd. */
    readonly links: { ifname: string; fd: number }[],
  ) {}

  /**
   * Attach the program for `vips` (host order) to each of `ifnames`. Null when it is attached to
   * none (no eBPF here: the user-space side does all); `warn` hears why.
   */
  static open(
    native: LvsNative,
    vips: readonly number[],
    ifnames: readonly string[],
    warn: (msg: string) => void,
  ): KernelDecap | null {
    let maps: { vips: number; counts: number };
    try {
      maps = native.decapMapsCreate();
      for (const v of vips) native.decapVipAdd(maps.vips, v);
    } catch (err) {
      warn(`decapsulating in user space only: ${(err as Error).message}`);
      return null;
    }
    const links: { ifname: string; fd: number }[] = [];
    for (const ifname of ifnames) {
      try {
        links.push({ ifname, fd: native.decapAttach(ifname, maps.vips, maps.counts) });
      } catch (err) {
        warn(`decapsulating in user space only on ${ifname}: ${(err as Error).message}`);
      }
    }
    if (links.length === 0) {
      native.close(maps.vips);
      native.close(maps.counts);
      return null;
    }
    return new KernelDecap(native, maps, links);
  }

  /** Datagrams decapsulated in the kernel so far. */
  get count(): number {
    return this.native.decapCount(this.maps.counts);
  }

  /** Detach from every interface and free the maps. */
  close(): void {
    for (const l of this.links) this.native.close(l.fd);
    this.native.close(this.maps.vips);
    this.native.close(this.maps.counts);
  }
}

/** The interfaces of `ip -j link show` output to attach to: every one but loopback and `skip`. */
export function decapInterfaces(ipLinkJson: string, skip: string): string[] {
  const links = JSON.parse(ipLinkJson) as { ifname?: string; link_type?: string }[];
  return links
    .filter((l) => l.ifname !== undefined && l.ifname !== skip && l.link_type !== 'loopback')
    .map((l) => l.ifname!);
}
