// The control plane: the verbs ipvsadm drives (add/edit/delete services and dests, flush, zero,
// timeouts, listings), checked as the kernel checks them and applied to the data path through
// its one narrow interface (core/data-plane.ts).
// Host side effects (routes into the TUN, proxy ARP, reply rules) go through the injected
// HostNet, so tests run the whole control plane without touching the host. What the data path
// needs to reach each dest (MTU, DR MAC, tunnel source) is kept by DestPaths (dest-paths.ts).

import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, type ConnRows } from '../conn/conn-rows';
import type { DataPlane } from '../core/data-plane';
import { ExistsError, InvalidError, LvsError, NoSuchServiceError, NotFoundError } from '../errors';
import {
  AF_INET,
  AF_INET6,
  CONN_TAB_SIZE,
  DEST_F_AVAILABLE,
  DEST_F_OVERLOAD,
  type Dest,
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  type FwdMethod,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPVS_VERSION,
  ipv6FoldWords,
  newDest,
  newService,
  type Service,
  type Stats,
  TUN_TYPE_IPIP,
  zeroStats,
} from '../ip-vs';
import { TCP_S_ESTABLISHED, TCP_S_FIN_WAIT } from '../proto/tcp-states';
import { UDP_S_NORMAL } from '../proto/udp-states';
import { getScheduler } from '../sched/registry';
import { SyncDaemons } from '../sync/daemon';
import { ipToU32, u32ToIp } from '../wire/addr';
import { formatIpv6Words, ipv6Words, isIpv6Text, parseIpv6 } from '../wire/addr6';
import { DROP_NAMES } from '../xmit/verdict';
import { DestPaths } from './dest-paths';
import { EstimatorSet, newRates, type Rates } from './estimator';
import { type HostAddr, type HostNet, hostAddr } from './host-net';
import type {
  ConnSnapshot,
  DestKey,
  DestSnapshot,
  DestSpec,
  HealthCounters,
  ServiceKey,
  ServiceSnapshot,
  ServiceSpec,
  Snapshot,
  StatsSnapshot,
  Timeouts,
  VirtualServerSnapshot,
  VrrpSnapshot,
} from './protocol';

const MAX_TIMEOUT = 2678400;

/**
 * What the kernel answers for what it was built without: a protocol lvsd has no handler for
 * (SCTP), and a tunnel across address families (an IPv4 service's IPv6 tunnel endpoint and the
 * reverse), which lvsd does not transmit yet.
 */
function afNotSupported(): never {
  throw new LvsError('EAFNOSUPPORT', 'Operation not supported with specified address family');
}

function parseAddr(s: string, what: string): number {
  if (parseIpv6(s) !== null) afNotSupported();
  try {
    return ipToU32(s);
  } catch {
    throw new InvalidError(`invalid ${what} address ${s}`);
  }
}

/** An address of either family as the tables hold it: IPv4 as is, IPv6 as its words and their fold. */
interface AnyAddr {
  af: number;
  addr: number;
  addr6: Uint32Array | null;
}

function parseAnyAddr(s: string, what: string): AnyAddr {
  const w = ipv6Words(s);
  if (w === null) return { af: AF_INET, addr: parseAddr(s, what), addr6: null };
  return { af: AF_INET6, addr: ipv6FoldWords(w, 0), addr6: w };
}

/** The address text of a service or dest: dotted IPv4, or IPv6 as inet_ntop writes it. */
function addrText(a: { addr: number; addr6: Uint32Array | null }): string {
  return a.addr6 === null ? u32ToIp(a.addr) : formatIpv6Words(a.addr6);
}

/** An IPv6 service's persistence prefix length (ipvsadm sends it as text, "128" by default). */
function prefixLen(netmask: string): number {
  const plen = Number(netmask || '128');
  if (!Number.isInteger(plen) || plen < 1 || plen > 128) throw new InvalidError('invalid persistence netmask');
  return plen;
}

function copyStats(s: Stats): StatsSnapshot {
  return { conns: s.conns, inPkts: s.inPkts, outPkts: s.outPkts, inBytes: s.inBytes, outBytes: s.outBytes };
}

/** Two addresses of one family are the same. */
function sameAddr(d: Dest, a: AnyAddr): boolean {
  if (a.addr6 === null || d.addr6 === null) return d.addr === a.addr;
  for (let i = 0; i < 4; i++) if (d.addr6[i] !== a.addr6[i]) return false;
  return true;
}

/** An IPv6 unicast address a real server may have: not unspecified, loopback, multicast or link-local. */
function isUnicast6(w: Uint32Array): boolean {
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && (w[3] === 0 || w[3] === 1)) return false;
  const top = w[0] >>> 16;
  return top >>> 8 !== 0xff && (top & 0xffc0) !== 0xfe80;
}

/** A unicast address a real server may have (the kernel wants RTN_UNICAST or RTN_LOCAL). */
function isUnicast(a: number): boolean {
  const first = a >>> 24;
  return a !== 0 && a !== 0xffffffff && first < 224 && first !== 0;
}

export class Balancer {
  /** What the data path needs to reach each dest (MTU, DR MAC, tunnel source), kept current. */
  readonly paths: DestPaths;
  /** Rate estimators (ip_vs_est) of the global stats and of every service and dest; tick every 2 s. */
  readonly estimators = new EstimatorSet();
  /** The connection sync daemons (--start-daemon / --stop-daemon). */
  readonly sync: SyncDaemons;
  /** The health monitor, when lvsd runs one (--keepalived-conf): what `list-checks` and the metrics show. */
  health: { snapshot(): VirtualServerSnapshot[]; stats(): HealthCounters } | undefined;
  /** Virtual addresses with a usable real server, as last told to the host (HostNet.announce). */
  private readonly announced = new Set<HostAddr>();
  /** keepalived's VRRP, when lvsd runs it (--keepalived-conf with vrrp_instance blocks): `list-vrrp`. */
  vrrp: { snapshot(): VrrpSnapshot[] } | undefined;

  constructor(
    readonly plane: DataPlane,
    private readonly host: HostNet,
    log: (msg: string) => void = () => {},
  ) {
    this.estimators.add(plane.stats);
    this.sync = new SyncDaemons(plane, log);
    this.paths = new DestPaths(plane, host, log);
  }

  /** The director's global counters (/proc/net/ip_vs_stats). */
  globalStats(): StatsSnapshot {
    return copyStats(this.plane.stats);
  }

  /** The data path's drops by reason name (only reasons that occurred). */
  dropCounts(counts: Float64Array): Record<string, number> {
    const drops: Record<string, number> = {};
    counts.forEach((n, i) => {
      if (i > 0 && n > 0) drops[DROP_NAMES[i]] = n;
    });
    return drops;
  }

  /** The director's global rates. */
  globalRates(): Rates {
    return this.ratesOf(this.plane.stats);
  }

  private ratesOf(stats: Stats): Rates {
    const est = this.estimators.get(stats);
    return est === undefined ? newRates() : est.rates();
  }

  private findService(key: ServiceKey): Service | undefined {
    const services = this.plane.services;
    if (key.fwmark) return services.findMark(key.fwmark, key.af ?? AF_INET);
    const a = parseAnyAddr(key.addr, 'virtual');
    if (a.addr6 !== null) return services.get6(key.protocol, a.addr6, 0, key.port);
    return services.get(key.protocol, a.addr, key.port);
  }

  private mustFindService(key: ServiceKey): Service {
    const svc = this.findService(key);
    if (svc === undefined) throw new NoSuchServiceError();
    return svc;
  }

  private checkServiceSpec(spec: ServiceSpec): void {
    if (!spec.fwmark && spec.protocol !== IPPROTO_TCP && spec.protocol !== IPPROTO_UDP) afNotSupported();
    if (getScheduler(spec.sched) === undefined) {
      throw new NotFoundError('Scheduler or persistence engine not found');
    }
    if (spec.pe) throw new NotFoundError('Scheduler or persistence engine not found');
    if (spec.timeout < 0 || spec.timeout > MAX_TIMEOUT) throw new InvalidError('invalid persistence timeout');
    this.netmaskOf(spec);
  }

  /** The service's netmask field: a host-order IPv4 mask, or an IPv6 service's prefix length. */
  private netmaskOf(spec: ServiceSpec): number {
    if (spec.fwmark ? spec.af === AF_INET6 : isIpv6Text(spec.addr)) return prefixLen(spec.netmask);
    return parseAddr(spec.netmask || '255.255.255.255', 'netmask');
  }

  async addService(spec: ServiceSpec): Promise<void> {
    if (this.findService(spec) !== undefined) throw new ExistsError('Service already exists');
    this.checkServiceSpec(spec);
    const sched = getScheduler(spec.sched)!;
    const a = spec.fwmark ? { af: spec.af ?? AF_INET, addr: 0, addr6: null } : parseAnyAddr(spec.addr, 'virtual');
    const svc: Service = {
      ...newService(spec.fwmark ? 0 : spec.protocol, a.addr, spec.fwmark ? 0 : spec.port, spec.fwmark, sched),
      af: a.af,
      addr6: a.addr6,
      flags: spec.flags,
      timeout: spec.timeout,
      netmask: this.netmaskOf(spec),
      peName: spec.pe,
    };
    sched.initService?.(svc);
    const plane = this.plane;
    const firstOnVip =
      !svc.fwmark && (svc.addr6 !== null ? !plane.services.isVip6(svc.addr6, 0) : !plane.services.isVip(svc.addr));
    // First: with several engines the plane gives the service its shared counters.
    plane.addService(svc);
    this.estimators.add(svc.stats);
    if (firstOnVip) {
      plane.setLocalAddrs(this.host.localAddrs());
      await this.host.addVip(hostAddr(svc));
    }
    if (!svc.fwmark) await this.host.addService(svc.protocol, hostAddr(svc), svc.port);
    if (svc.fwmark) {
      // Marked packets need a way in: an input device of their own, which the host routes them to.
      const dev = plane.openMarkDev(svc.fwmark);
      await this.host.addFwmark(svc.fwmark, dev, svc.af === AF_INET6);
    }
  }

  /**
   * After every verb and path refresh: engines with a copy of the table take the new one, and
   * the announced virtual addresses follow (when lvsd announces any).
   */
  private async changed(): Promise<void> {
    this.plane.tableChanged();
    if (this.host.announces) await this.updateAnnounced();
  }

  /**
   * Announce each virtual address while some service on it has a usable real server (weight
   * above 0, available, routable) and withdraw it when none has (--announce-table).
   */
  private async updateAnnounced(): Promise<void> {
    const usable = new Set<HostAddr>();
    for (const svc of this.plane.services.list) {
      if (svc.fwmark !== 0) continue;
      if (svc.dests.some((d) => d.weight > 0 && (d.flags & DEST_F_AVAILABLE) !== 0 && !d.noRoute)) {
        usable.add(hostAddr(svc));
      }
    }
    for (const a of this.announced) {
      if (usable.has(a)) continue;
      this.announced.delete(a);
      await this.host.announce(a, false);
    }
    for (const a of usable) {
      if (this.announced.has(a)) continue;
      this.announced.add(a);
      await this.host.announce(a, true);
    }
  }

  async editService(spec: ServiceSpec): Promise<void> {
    const svc = this.mustFindService(spec);
    this.checkServiceSpec(spec);
    const sched = getScheduler(spec.sched)!;
    if (sched !== svc.sched) {
      svc.sched.doneService?.(svc);
      svc.sched = sched;
      svc.schedName = sched.name;
      svc.schedData = undefined;
      sched.initService?.(svc);
    }
    svc.flags = spec.flags;
    svc.timeout = spec.timeout;
    svc.netmask = this.netmaskOf(spec);
    svc.peName = spec.pe;
    this.plane.tableChanged();
  }

  async deleteService(key: ServiceKey): Promise<void> {
    await this.removeService(this.mustFindService(key));
    await this.changed();
  }

  private async removeService(svc: Service): Promise<void> {
    for (const dest of [...svc.dests]) await this.removeDest(svc, dest);
    svc.sched.doneService?.(svc);
    this.estimators.remove(svc.stats);
    const plane = this.plane;
    if (svc.fwmark) {
      plane.removeService(svc);
      await this.host.delFwmark(svc.fwmark, svc.af === AF_INET6);
      // `-f N` and `-f N -6` share the mark's input device: it goes with the last of them.
      if (plane.services.findMark(svc.fwmark, svc.af === AF_INET6 ? AF_INET : AF_INET6) === undefined) {
        plane.closeMarkDev(svc.fwmark);
      }
    } else {
      await this.host.delService(svc.protocol, hostAddr(svc), svc.port);
      if (plane.removeService(svc)) await this.host.delVip(hostAddr(svc));
    }
  }

  async flush(): Promise<void> {
    for (const svc of [...this.plane.services.list]) await this.removeService(svc);
    await this.changed();
  }

  private findDest(svc: Service, key: DestKey): Dest | undefined {
    const a = parseAnyAddr(key.addr, 'real server');
    return svc.dests.find((d) => d.port === key.port && d.af === a.af && sameAddr(d, a));
  }

  private checkDestSpec(svc: Service, spec: DestSpec): AnyAddr {
    const a = parseAnyAddr(spec.addr, 'real server');
    // Mixed families are for tunnels only (ipvsadm says so first); lvs-ts has none of them yet.
    if (a.af !== svc.af) {
      if (spec.fwd !== FWD_TUNNEL) throw new InvalidError('different address family is allowed only for tunnels');
      afNotSupported();
    }
    if (a.addr6 !== null ? !isUnicast6(a.addr6) : !isUnicast(a.addr)) {
      throw new InvalidError('real server address is not unicast');
    }
    if (spec.weight < 0 || spec.weight > 65535) throw new LvsError('ERANGE', 'Numerical result out of range');
    if (spec.uThreshold < 0 || spec.lThreshold < 0 || spec.lThreshold > spec.uThreshold) {
      throw new LvsError('ERANGE', 'Numerical result out of range');
    }
    if (spec.fwd !== FWD_MASQ && spec.fwd !== FWD_TUNNEL && spec.fwd !== FWD_DROUTE)
      throw new InvalidError('invalid forwarding method');
    // GUE and GRE encapsulation are not transmitted yet: refuse them rather than send IPIP.
    if (spec.fwd === FWD_TUNNEL && spec.tunType !== TUN_TYPE_IPIP) {
      throw new InvalidError('only the ipip tunnel type is supported');
    }
    return a;
  }

  async addDest(key: ServiceKey, spec: DestSpec): Promise<void> {
    const svc = this.mustFindService(key);
    const a = this.checkDestSpec(svc, spec);
    if (this.findDest(svc, spec) !== undefined) throw new ExistsError('Destination already exists');
    const dest = newDest(svc, a.addr, spec.port);
    dest.af = a.af;
    dest.addr6 = a.addr6;
    dest.fwd = spec.fwd as FwdMethod;
    dest.weight = spec.weight;
    dest.uThreshold = spec.uThreshold;
    dest.lThreshold = spec.lThreshold;
    dest.tunType = spec.tunType;
    dest.tunPort = spec.tunPort;
    dest.tunFlags = spec.tunFlags;
    this.plane.addDest(dest);
    this.estimators.add(dest.stats);
    await this.paths.add(dest);
    // IPVS links a new dest at the head of the service's list.
    svc.dests.unshift(dest);
    svc.sched.addDest?.(svc, dest);
    await this.changed();
  }

  async editDest(key: ServiceKey, spec: DestSpec): Promise<void> {
    const svc = this.mustFindService(key);
    this.checkDestSpec(svc, spec);
    const dest = this.findDest(svc, spec);
    if (dest === undefined) throw new NotFoundError('No such destination');
    if (dest.fwd !== spec.fwd) {
      await this.paths.remove(dest);
      dest.fwd = spec.fwd as FwdMethod;
      await this.paths.add(dest);
    }
    dest.weight = spec.weight;
    dest.tunType = spec.tunType;
    dest.tunPort = spec.tunPort;
    dest.tunFlags = spec.tunFlags;
    if (spec.uThreshold === 0 || spec.uThreshold > dest.uThreshold) dest.clearFlag(DEST_F_OVERLOAD);
    dest.uThreshold = spec.uThreshold;
    dest.lThreshold = spec.lThreshold;
    svc.sched.updDest?.(svc, dest);
    await this.changed();
  }

  async deleteDest(key: ServiceKey, dkey: DestKey): Promise<void> {
    const svc = this.mustFindService(key);
    const dest = this.findDest(svc, dkey);
    if (dest === undefined) throw new NotFoundError('No such destination');
    await this.removeDest(svc, dest);
    await this.changed();
  }

  private async removeDest(svc: Service, dest: Dest): Promise<void> {
    svc.sched.delDest?.(svc, dest);
    svc.dests.splice(svc.dests.indexOf(dest), 1);
    dest.clearFlag(DEST_F_AVAILABLE);
    this.plane.retireDest(dest);
    this.estimators.remove(dest.stats);
    await this.paths.remove(dest);
  }

  /**
   * Keep what depends on the host current; lvsd calls it every second: which virtual addresses
   * are also local ones (added or removed by hand or by keepalived), and every dest's path
   * (DestPaths.refresh).
   */
  async refreshPaths(now = Date.now()): Promise<void> {
    const local = this.host.localAddrs();
    this.plane.setLocalAddrs(local);
    await this.host.updateVips(local);
    await this.paths.refresh(now);
    await this.changed();
  }

  /** A router's frag-needed error about a tunnel packet from `src` to `dst` (DestPaths.notePathMtu). */
  notePathMtu(dst: number, src: number, mtu: number, now = Date.now()): void {
    this.paths.notePathMtu(dst, src, mtu, now);
    this.plane.tableChanged();
  }

  /** A router's packet too big about an IPv6 tunnel packet (DestPaths.notePathMtu6). */
  notePathMtu6(dst: Uint32Array, src: Uint32Array, mtu: number, now = Date.now()): void {
    this.paths.notePathMtu6(dst, src, mtu, now);
    this.plane.tableChanged();
  }

  /** -Z: counters to 0 and their estimators restarted (ip_vs_zero_stats / ip_vs_zero_estimator). */
  zero(key?: ServiceKey): void {
    if (key === undefined) {
      for (const svc of this.plane.services.list) this.zeroService(svc);
      this.zeroStats(this.plane.stats);
      return;
    }
    this.zeroService(this.mustFindService(key));
  }

  private zeroService(svc: Service): void {
    this.zeroStats(svc.stats);
    for (const d of svc.dests) this.zeroStats(d.stats);
  }

  private zeroStats(stats: Stats): void {
    zeroStats(stats);
    this.estimators.get(stats)?.reset();
  }

  /** `ipvsadm --set tcp tcpfin udp`; 0 leaves a value unchanged. */
  setTimeouts(t: Timeouts): void {
    for (const v of [t.tcp, t.tcpfin, t.udp]) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT) throw new InvalidError('invalid timeout');
    }
    const p = this.plane;
    if (t.tcp) p.setTimeout(IPPROTO_TCP, TCP_S_ESTABLISHED, t.tcp);
    if (t.tcpfin) p.setTimeout(IPPROTO_TCP, TCP_S_FIN_WAIT, t.tcpfin);
    if (t.udp) p.setTimeout(IPPROTO_UDP, UDP_S_NORMAL, t.udp);
  }

  getTimeouts(): Timeouts {
    const p = this.plane;
    return {
      tcp: p.timeout(IPPROTO_TCP, TCP_S_ESTABLISHED),
      tcpfin: p.timeout(IPPROTO_TCP, TCP_S_FIN_WAIT),
      udp: p.timeout(IPPROTO_UDP, UDP_S_NORMAL),
    };
  }

  snapshot(): Snapshot {
    return {
      version: IPVS_VERSION,
      size: CONN_TAB_SIZE,
      services: this.plane.services.list.map((svc) => this.serviceSnapshot(svc)),
    };
  }

  private serviceSnapshot(svc: Service): ServiceSnapshot {
    return {
      protocol: svc.protocol,
      addr: svc.fwmark ? u32ToIp(0) : addrText(svc),
      port: svc.port,
      fwmark: svc.fwmark,
      ...(svc.af === AF_INET6 ? { af: AF_INET6 } : {}),
      sched: svc.schedName,
      flags: svc.flags,
      timeout: svc.timeout,
      netmask: svc.af === AF_INET6 ? String(svc.netmask) : u32ToIp(svc.netmask),
      pe: svc.peName,
      dests: svc.dests.map((d) => this.destSnapshot(d)),
      stats: copyStats(svc.stats),
      rates: this.ratesOf(svc.stats),
    };
  }

  private destSnapshot(d: Dest): DestSnapshot {
    return {
      addr: addrText(d),
      port: d.port,
      fwd: d.fwd,
      weight: d.weight,
      uThreshold: d.uThreshold,
      lThreshold: d.lThreshold,
      tunType: d.tunType,
      tunPort: d.tunPort,
      tunFlags: d.tunFlags,
      activeConns: d.activeConns,
      inactConns: d.inactConns,
      persistConns: d.persistConns,
      stats: copyStats(d.stats),
      rates: this.ratesOf(d.stats),
    };
  }

  /** Every connection, as `-L -c` lists it (a template is in its protocol's state 0). */
  async connections(): Promise<ConnSnapshot[]> {
    return connSnapshots(await this.plane.connRows());
  }
}

/** Connection rows as `-L -c` lists them. */
export function connSnapshots(r: ConnRows): ConnSnapshot[] {
  const out: ConnSnapshot[] = [];
  let w = 0;
  for (let i = 0; i < r.n; i++) {
    const v6 = r.v6[i] !== 0;
    const a6 = r.addr6;
    if (v6) w += ADDR6_WORDS;
    out.push({
      protocol: r.protocol[i],
      caddr: v6 ? formatIpv6Words(a6, w - ADDR6_WORDS + A6_CLIENT) : u32ToIp(r.caddr[i]),
      cport: r.cport[i],
      vaddr: v6 ? formatIpv6Words(a6, w - ADDR6_WORDS + A6_VIRTUAL) : u32ToIp(r.vaddr[i]),
      vport: r.vport[i],
      daddr: v6 ? formatIpv6Words(a6, w - ADDR6_WORDS + A6_DEST) : u32ToIp(r.daddr[i]),
      dport: r.dport[i],
      state: r.stateNames[r.protocol[i]]?.[r.state[i]] ?? 'NONE',
      expires: Math.max(r.expires[i], 0),
      flags: r.flags[i],
    });
  }
  return out;
}
