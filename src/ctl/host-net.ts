// What the control plane needs from the host's network configuration, as one narrow interface:
// steer a virtual address into the TUN (and answer ARP for it), and steer a NAT real server's
// replies into the TUN. lvsd uses IpRouteNet (routing.ts); tests and --no-routes use NoHostNet.
// Addresses are HostAddr: an IPv4 address as its host-order number, an IPv6 one as its text.

import { u32ToIp } from '../wire/addr';
import { formatIpv6Words } from '../wire/addr6';

/** An address the host is told about: IPv4 as a host-order number, IPv6 as text. */
export type HostAddr = number | string;

/** The HostAddr of a service or dest. */
export function hostAddr(a: { addr: number; addr6: Uint32Array | null }): HostAddr {
  return a.addr6 === null ? a.addr : formatIpv6Words(a.addr6);
}

/** The text of a HostAddr (for logs and commands). */
export function hostAddrText(a: HostAddr): string {
  return typeof a === 'string' ? a : u32ToIp(a);
}

/** How the director reaches a DR or TUN real server right now. */
export interface DestPath {
  /** Interface the route towards it leaves on. */
  dev: string;
  /** The director's source address towards it (the outer source of tunnelled packets). */
  src: number;
  /** The same for an IPv6 server: four host-order words. */
  src6?: Uint32Array;
  /** Path MTU towards it: the route's (a learnt PMTU or a configured one), else the interface's. */
  mtu: number;
  /** The interface's own MAC address (6 bytes). */
  devMac: Buffer;
  /**
   * The address frames towards it go to: the route's gateway, or the server itself on a LAN of
   * ours (absent: the server itself).
   */
  nextHop?: number;
  /** The next hop's MAC from the neighbour table, when the entry is usable (asked for only). */
  mac?: Buffer;
}

export interface HostNet {
  /**
   * Whether `destPath` knows the host's routes: then undefined from it means "no route". False
   * when lvsd leaves routing alone (nothing is known, nothing is refused).
   */
  readonly resolves: boolean;
  /** The first service on a virtual address was added. */
  addVip(addr: HostAddr): Promise<void>;
  /** The last service on a virtual address was deleted. */
  delVip(addr: HostAddr): Promise<void>;
  /**
   * Take the packets of service <protocol, addr, port> (port 0: any port) into the TUN even
   * when `addr` is a local address of the director (intercept.ts).
   */
  addService(protocol: number, addr: HostAddr, port: number): Promise<void>;
  delService(protocol: number, addr: HostAddr, port: number): Promise<void>;
  /** announce() has somewhere to announce (lvsd --announce-table): worth calling. */
  readonly announces: boolean;
  /**
   * Virtual address `addr` got its first usable real server (`on`), or lost its last: a route a
   * routing daemon announces (--announce-table) comes or goes.
   */
  announce(addr: HostAddr, on: boolean): Promise<void>;
  /** The director's own IPv4 addresses, now. */
  localAddrs(): ReadonlySet<number>;
  /**
   * Virtual addresses became, or stopped being, local addresses (`local`): the kernel answers
   * ARP for a local one, lvsd (proxy ARP) for the others.
   */
  updateVips(local: ReadonlySet<number>): Promise<void>;
  /**
   * Steer the replies of NAT real server `addr`, arriving on interface `dev` (where the route
   * towards it leaves), into the TUN, with the ICMP errors routers beyond `dev` send to clients
   * about packets to it. Called once its first NAT dest has a route, and again with the new
   * interface when the route moves.
   */
  addNatServer(addr: HostAddr, dev: string): Promise<void>;
  /** Stop steering NAT real server `addr` (its last NAT dest went away, or its route moved). */
  delNatServer(addr: HostAddr): Promise<void>;
  /** The route, MTU and (with `neighbour`) MAC towards `addr`; undefined without a route. */
  destPath(addr: HostAddr, neighbour: boolean): Promise<DestPath | undefined>;
  /**
   * The kernel's resolved neighbours (address → MAC and interface), read without spawning a
   * process: the cheap per-second check of DR servers' MACs.
   */
  neighbourMacs(): Promise<Map<number, { mac: Buffer; dev: string }>>;
  /** The first DR dest with this address was added: keep its MAC resolved on `dev`. */
  addDrServer(addr: HostAddr, dev: string): Promise<void>;
  /** The last DR dest with this address went away. */
  delDrServer(addr: HostAddr): Promise<void>;
  /**
   * A firewall-mark service was added: route packets with `mark` into input device `dev`
   * (`v6`: IPv6 packets, for `-f N -6`).
   */
  addFwmark(mark: number, dev: string, v6?: boolean): Promise<void>;
  /** The firewall-mark service of `mark` (of IPv6 with `v6`) was deleted. */
  delFwmark(mark: number, v6?: boolean): Promise<void>;
}

/** Leaves the host alone (routing is the operator's job, or there is no host: tests). */
export class NoHostNet implements HostNet {
  readonly resolves: boolean = false;
  readonly announces: boolean = false;
  async addVip(_addr: HostAddr): Promise<void> {}
  async delVip(_addr: HostAddr): Promise<void> {}
  async addService(_protocol: number, _addr: HostAddr, _port: number): Promise<void> {}
  async delService(_protocol: number, _addr: HostAddr, _port: number): Promise<void> {}
  localAddrs(): ReadonlySet<number> {
    return new Set();
  }
  async announce(_addr: HostAddr, _on: boolean): Promise<void> {}
  async updateVips(_local: ReadonlySet<number>): Promise<void> {}
  async addNatServer(_addr: HostAddr, _dev: string): Promise<void> {}
  async delNatServer(_addr: HostAddr): Promise<void> {}
  async destPath(_addr: HostAddr, _neighbour: boolean): Promise<DestPath | undefined> {
    return undefined;
  }
  async neighbourMacs(): Promise<Map<number, { mac: Buffer; dev: string }>> {
    return new Map();
  }
  async addDrServer(_addr: HostAddr, _dev: string): Promise<void> {}
  async delDrServer(_addr: HostAddr): Promise<void> {}
  async addFwmark(_mark: number, _dev: string, _v6?: boolean): Promise<void> {}
  async delFwmark(_mark: number, _v6?: boolean): Promise<void> {}
}
