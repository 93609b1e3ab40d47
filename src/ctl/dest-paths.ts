// Path upkeep: what the data path needs to reach each real server, kept current by the control
// plane. Every dest gets its path MTU; a DR dest also its frame device and the Ethernet header
// to its MAC (Dest.l2Dev, l2Header); a TUN dest also the director's source address towards it
// (Dest.tunSrc). What a method needs from the host is installed through the injected HostNet
// once per real-server address, the first time a route towards it shows: a NAT server's reply
// rule (moved when the route moves), a DR server's managed neighbour entry (the kernel then
// resolves and re-validates the MAC itself).
//
// The Balancer tells this module when a dest starts or stops using its method (add, remove),
// and lvsd calls refresh() every second and notePathMtu() for each router's frag-needed error
// about a tunnel packet. A dest without a route is accepted, as the kernel accepts it
// (Dest.noRoute: its packets are dropped as no_route until a route appears).
//
// Path upkeep must not fork in the steady state (a fork of lvsd blocks the event loop for
// 0.5-3 ms): most refreshes only read the kernel's neighbour table (HostNet.neighbourMacs);
// a full resolve (HostNet.destPath: `ip route get`, `ip link`, `ip neigh`) happens per dest
// every FULL_REFRESH_MS, or at once when it has no path or the data path asked for one.

import type { DataPlane } from '../core/data-plane';
import { AF_INET6, type Dest, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL } from '../ip-vs';
import { formatIpv6Words } from '../wire/addr6';
import { ETH, ETH_ALEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethernetHeader } from '../wire/ethernet';
import { type DestPath, type HostAddr, type HostNet, hostAddr, hostAddrText } from './host-net';

/** A new DR server's MAC is polled this many times, this often, before its first packets. */
const NEIGH_WAIT_TRIES = 20;
const NEIGH_WAIT_MS = 25;
/** A DR/TUN dest's route, interface and MTU are looked up again this often. */
const FULL_REFRESH_MS = 30_000;
/** An IPv6 DR dest's path and MAC are looked up again this often. */
const NEIGH6_REFRESH_MS = 5_000;
/** How long a path MTU learnt from a router's error holds (the kernel's default, 10 minutes). */
const PMTU_AGE_MS = 600_000;

/** What path upkeep needs of the data plane. */
/** What path upkeep needs of the data plane: the services with their dests, and frame devices. */
export type PathPlane = Pick<DataPlane, 'services' | 'openFrameDev'>;

/** Add `delta` to a per-address count; returns the new count (entries at 0 are removed). */
function refCount(counts: Map<HostAddr, number>, addr: HostAddr, delta: number): number {
  const n = (counts.get(addr) ?? 0) + delta;
  if (n > 0) counts.set(addr, n);
  else counts.delete(addr);
  return n;
}

/**
 * Whether `dest`'s packets leave framed on a packet socket (DR: to the server's MAC; TUN: the
 * encapsulated packet to the next hop's MAC, sparing the kernel's IP output per segment).
 */
function framedMethod(dest: Dest): boolean {
  // IPv6 tunnel packets go through the kernel's forward (xmit/ipv6.ts): no MAC needed.
  return dest.fwd === FWD_DROUTE || (dest.fwd === FWD_TUNNEL && dest.addr6 === null);
}

export class DestPaths {
  /** NAT real-server address → number of NAT dests using it (one reply rule each). */
  private readonly natServers = new Map<HostAddr, number>();
  /** NAT real-server address → the interface its replies are steered from (absent: no route yet). */
  private readonly natSteered = new Map<HostAddr, string>();
  /** DR real-server address → number of DR dests using it (one managed neighbour entry each). */
  private readonly drServers = new Map<HostAddr, number>();
  /** DR server address → the interface the host keeps its neighbour entry resolved on. */
  private readonly drNeighbours = new Map<HostAddr, string>();
  /** How each server address was last fully resolved (interface, our MAC there, when). */
  private readonly resolved = new Map<HostAddr, { dev: string; devMac: Buffer; nextHop: number; at: number }>();
  /** Path MTUs learnt from routers' frag-needed errors, by tunnel destination, until they age out. */
  private readonly learntMtu = new Map<HostAddr, { mtu: number; until: number }>();
  private refreshing = false;

  constructor(
    private readonly plane: PathPlane,
    private readonly host: HostNet,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** `dest` starts using its forwarding method (added, or edited to another method). */
  add(dest: Dest): Promise<void> {
    return this.methodRef(dest, +1);
  }

  /** `dest` stops using its forwarding method (deleted, or edited to another method). */
  remove(dest: Dest): Promise<void> {
    return this.methodRef(dest, -1);
  }

  /**
   * A dest starts (+1) or stops (-1) using its forwarding method, counted per address: every
   * method needs a path (resolvePath), NAT servers a reply rule too, DR servers a managed
   * neighbour entry. A dest without a route is accepted, as the kernel accepts it; what its
   * method needs is installed once a route appears (refresh).
   */
  private async methodRef(dest: Dest, delta: number): Promise<void> {
    const addr = hostAddr(dest);
    const users = dest.fwd === FWD_MASQ ? this.natServers : dest.fwd === FWD_DROUTE ? this.drServers : undefined;
    const n = users === undefined ? 0 : refCount(users, addr, delta);
    if (delta > 0) {
      await this.resolvePath(dest);
      if (dest.noRoute && n === 1) {
        this.log(
          `${hostAddrText(addr)}: no route to this real server yet; its packets are dropped (no_route) until one appears`,
        );
      }
      if (dest.fwd === FWD_DROUTE && n === 1 && this.drNeighbours.has(addr)) {
        // The kernel resolves the MAC within milliseconds on a LAN; wait briefly so the first
        // packets of the first connection find it.
        for (let i = 0; i < NEIGH_WAIT_TRIES && dest.l2Header === null; i++) {
          await new Promise((r) => setTimeout(r, NEIGH_WAIT_MS));
          await this.resolvePath(dest);
        }
      }
      return;
    }
    if (n !== 0) return;
    if (dest.fwd === FWD_MASQ && this.natSteered.delete(addr)) await this.host.delNatServer(addr);
    if (dest.fwd === FWD_DROUTE && this.drNeighbours.delete(addr)) await this.host.delDrServer(addr);
  }

  /**
   * NAT real server `addr` is reached through `dev` now: steer its replies from there (moving the
   * rule when the route moved). Nothing to do for an address no NAT dest uses.
   */
  private async steerNat(addr: HostAddr, dev: string): Promise<void> {
    if (!this.natServers.has(addr)) return;
    const was = this.natSteered.get(addr);
    if (was === dev) return;
    if (was !== undefined) await this.host.delNatServer(addr);
    this.natSteered.set(addr, dev);
    await this.host.addNatServer(addr, dev);
    if (was !== undefined) this.log(`${hostAddrText(addr)}: the route moved from ${was} to ${dev}; its replies follow`);
  }

  /**
   * Look up (spawning `ip`) how to reach a dest and hand the data path what it needs; install
   * what its method needs from the host the first time a route shows (a NAT server's reply
   * rule, a DR server's managed neighbour entry).
   */
  private async resolvePath(dest: Dest, now = Date.now(), pass?: Map<string, DestPath | undefined>): Promise<void> {
    const dr = dest.fwd === FWD_DROUTE;
    const framed = framedMethod(dest);
    // One lookup per address (and kind) in a refresh pass, however many dests share it.
    const addr = hostAddr(dest);
    const key = `${addr}/${framed}`;
    let path: DestPath | undefined;
    if (pass?.has(key)) {
      path = pass.get(key);
    } else {
      path = await this.host.destPath(addr, framed);
      pass?.set(key, path);
    }
    dest.pathWanted = false;
    dest.noRoute = path === undefined && this.host.resolves;
    if (path === undefined) {
      dest.l2Header = null;
      return;
    }
    this.resolved.set(addr, { dev: path.dev, devMac: path.devMac, nextHop: path.nextHop ?? dest.addr, at: now });
    const learnt = dest.fwd === FWD_TUNNEL ? this.learntMtu.get(addr) : undefined;
    dest.mtu = learnt !== undefined && learnt.until > now ? Math.min(path.mtu, learnt.mtu) : path.mtu;
    dest.tunSrc = path.src;
    dest.tunSrc6 = path.src6 ?? null;
    if (dest.fwd === FWD_MASQ) await this.steerNat(addr, path.dev);
    if (!framed) return;
    dest.l2Dev = this.plane.openFrameDev(path.dev);
    this.applyMac(dest, path.mac, path.devMac);
    if (dr && this.drServers.has(addr)) await this.keepNeighbour(addr, path.dev);
  }

  /**
   * DR real server `addr` is reached through `dev` now: have the kernel keep its MAC resolved
   * there (moving the managed entry when the route moved to another interface).
   */
  private async keepNeighbour(addr: HostAddr, dev: string): Promise<void> {
    const was = this.drNeighbours.get(addr);
    if (was === dev) return;
    if (was !== undefined) await this.host.delDrServer(addr);
    this.drNeighbours.set(addr, dev);
    await this.host.addDrServer(addr, dev);
    if (was !== undefined)
      this.log(`${hostAddrText(addr)}: the route moved from ${was} to ${dev}; its neighbour entry follows`);
  }

  /** Point a DR dest's frames at `mac` (or hold them while it is unknown). */
  private applyMac(dest: Dest, mac: Buffer | undefined, devMac: Buffer): void {
    if (mac === undefined) {
      dest.l2Header = null;
      return;
    }
    const h = dest.l2Header;
    if (
      h !== null &&
      h.compare(mac, 0, ETH_ALEN, ETH.DST, ETH.DST + ETH_ALEN) === 0 &&
      h.compare(devMac, 0, ETH_ALEN, ETH.SRC, ETH.SRC + ETH_ALEN) === 0
    ) {
      return;
    }
    dest.l2Header = ethernetHeader(mac, devMac, dest.af === AF_INET6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
  }

  /**
   * Keep every dest's path current (NAT: the MTU towards it; DR: also the MAC; TUN: also the
   * source address); lvsd calls it every second (a call while one is
   * running returns at once). Cheap on most calls: DR MACs come from one read of the kernel's
   * neighbour table. A full resolve (route, interface, MTU: a few `ip` processes) happens for a
   * dest every FULL_REFRESH_MS, or at once when it has no path or the data path asked for one.
   */
  async refresh(now = Date.now()): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      let macs: Map<number, { mac: Buffer; dev: string }> | undefined;
      const pass = new Map<string, DestPath | undefined>();
      for (const svc of [...this.plane.services.list]) {
        for (const dest of [...svc.dests]) {
          const addr = hostAddr(dest);
          const known = this.resolved.get(addr);
          // A dest whose address this pass already looked up takes that path too, at no cost.
          const looked = pass.has(`${addr}/${framedMethod(dest)}`);
          // IPv6 neighbours are not in a /proc file: an IPv6 DR dest's MAC is checked with its
          // path (an `ip` process) every NEIGH6_REFRESH_MS instead of every second.
          const age = dest.addr6 !== null && framedMethod(dest) ? NEIGH6_REFRESH_MS : FULL_REFRESH_MS;
          if (known === undefined || looked || dest.pathWanted || dest.noRoute || now - known.at >= age) {
            await this.resolvePath(dest, now, pass);
          } else if (framedMethod(dest) && dest.addr6 === null) {
            macs ??= await this.host.neighbourMacs();
            const n = macs.get(known.nextHop);
            this.applyMac(dest, n !== undefined && n.dev === known.dev ? n.mac : undefined, known.devMac);
          }
        }
      }
    } finally {
      this.refreshing = false;
    }
  }

  /**
   * A router reported that tunnel packets from `src` to `dst` need to fit `mtu`: lower the path
   * MTU of the TUN dests at `dst` now (the data path then answers larger DF packets with
   * frag-needed), and remember it for PMTU_AGE_MS, as the kernel remembers learnt PMTUs.
   */
  notePathMtu(dst: number, src: number, mtu: number, now = Date.now()): void {
    this.lowerTunnelMtu((d) => d.addr6 === null && d.addr === dst && d.tunSrc === src, dst, mtu, now);
  }

  /** notePathMtu for IPv6-in-IPv6 packets from `src` to `dst` (four host-order words each). */
  notePathMtu6(dst: Uint32Array, src: Uint32Array, mtu: number, now = Date.now()): void {
    const same = (a: Uint32Array | null, b: Uint32Array) =>
      a !== null && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
    this.lowerTunnelMtu((d) => same(d.addr6, dst) && same(d.tunSrc6, src), formatIpv6Words(dst), mtu, now);
  }

  /** Lower the path MTU of the TUN dests `match` picks to `mtu`, and remember it for `addr`. */
  private lowerTunnelMtu(match: (d: Dest) => boolean, addr: HostAddr, mtu: number, now: number): void {
    let matched = false;
    for (const svc of this.plane.services.list) {
      for (const dest of svc.dests) {
        if (dest.fwd !== FWD_TUNNEL || !match(dest)) continue;
        matched = true;
        if (mtu < dest.mtu) dest.mtu = mtu;
      }
    }
    if (matched) this.learntMtu.set(addr, { mtu, until: now + PMTU_AGE_MS });
  }
}
