// The plain data types and constants that several layers share (the role include/net/ip_vs.h
// plays for kernel IPVS). Nothing here imports anything else of ours: schedulers, the connection
// table, transmitters and the control plane all depend on this module and on nothing above it.

/** IP protocol numbers used on the data path. */
/** IPPROTO_IP: the protocol of a firewall-mark service's persistence templates. */
export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;
export const IPPROTO_ICMPV6 = 58;

/** Address families, numbered as the kernel numbers them (ServiceKey.af on the control socket). */
export const AF_INET = 2;
export const AF_INET6 = 10;

/** Words per IPv6 connection (ConnTable's wide `addr6`): the client, virtual and dest addresses. */
export const ADDR6_WORDS = 12;
/** Where each address starts within a connection's ADDR6_WORDS (and within an insert6 key). */
export const A6_CLIENT = 0;
export const A6_VIRTUAL = 4;
export const A6_DEST = 8;

/**
 * The fold of an IPv6 address held as four host-order words at w[off]: the words XORed, what
 * the kernel's sh, dh, lblc, lblcr and mh hash, and what lvs-ts's numeric keys of IPv6
 * connections and services hold (wire/addr6.ts ipv6Fold is the same on bytes).
 */
export function ipv6FoldWords(w: Uint32Array, off: number): number {
  return (w[off] ^ w[off + 1] ^ w[off + 2] ^ w[off + 3]) >>> 0;
}

/** Forwarding methods, numbered as IP_VS_CONN_F_FWD_MASK values. */
export const FWD_MASQ = 0;
export const FWD_LOCALNODE = 1;
export const FWD_TUNNEL = 2;
export const FWD_DROUTE = 3;
export const FWD_BYPASS = 4;
export type FwdMethod = 0 | 1 | 2 | 3 | 4;

/** Display names of the forwarding methods, as `ipvsadm -L` prints them. */
export const FWD_NAMES: readonly string[] = ['Masq', 'Local', 'Tunnel', 'Route', 'Bypass'];

/** Tunnel types (`--tun-type`), numbered as IP_VS_CONN_F_TUNNEL_TYPE_*. */
export const TUN_TYPE_IPIP = 0;
export const TUN_TYPE_GUE = 1;
export const TUN_TYPE_GRE = 2;
/** Tunnel types by number, as `--tun-type` and keepalived's `lvs_method TUN type` name them. */
export const TUN_TYPE_NAMES = ['ipip', 'gue', 'gre'] as const;
export type TunTypeName = (typeof TUN_TYPE_NAMES)[number];

/** Tunnel encapsulation flags (IP_VS_TUNNEL_ENCAP_FLAG_*). */
export const TUN_F_NOCSUM = 0;
export const TUN_F_CSUM = 1 << 0;
export const TUN_F_REMCSUM = 1 << 1;
/**
 * The checksum modes by their flags value (TUN_F_NOCSUM 0, TUN_F_CSUM 1, TUN_F_REMCSUM 2), as
 * ipvsadm's `--tun-nocsum|--tun-csum|--tun-remcsum` and keepalived's `lvs_method TUN` name them.
 */
export const TUN_CSUM_NAMES = ['nocsum', 'csum', 'remcsum'] as const;
export type TunCsumName = (typeof TUN_CSUM_NAMES)[number];

/** Dest flags (IP_VS_DEST_F_*). */
export const DEST_F_AVAILABLE = 0x1;
export const DEST_F_OVERLOAD = 0x2;

/** Service flags (IP_VS_SVC_F_*). */
export const SVC_F_PERSISTENT = 0x1;
export const SVC_F_HASHED = 0x2;
export const SVC_F_ONEPACKET = 0x4;
export const SVC_F_SCHED1 = 0x8;
export const SVC_F_SCHED2 = 0x10;
export const SVC_F_SCHED3 = 0x20;

/** Scheduler flag names (-b, keepalived's words) and the IP_VS_SVC_F_SCHED* bit each sets. */
export const SCHED_FLAG_BITS: Readonly<Record<string, number>> = {
  'flag-1': SVC_F_SCHED1,
  'flag-2': SVC_F_SCHED2,
  'flag-3': SVC_F_SCHED3,
  'sh-fallback': SVC_F_SCHED1,
  'mh-fallback': SVC_F_SCHED1,
  'sh-port': SVC_F_SCHED2,
  'mh-port': SVC_F_SCHED2,
};

/**
 * Connection flags (IP_VS_CONN_F_*), with the kernel's values: the sync protocol carries them on
 * the wire.
 */
export const CONN_F_FWD_MASK = 0x0007;
/** Created by a sync message (a backup director's copy). */
export const CONN_F_SYNC = 0x0020;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
/** Sequence numbers adjusted by an application helper (FTP), out and in. */
export const CONN_F_OUT_SEQ = 0x0200;
export const CONN_F_IN_SEQ = 0x0400;
export const CONN_F_SEQ_MASK = 0x0600;
/** Client port not known yet (an FTP passive data connection's expectation). */
export const CONN_F_NO_CPORT = 0x0800;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;
/** lvs-ts's own: an application helper (FTP) is bound to the connection (kernel: cp->app). Never synced. */
export const CONN_F_APP = 0x8000;
/**
 * lvs-ts's own: a connection the SYN proxy opened for a client's cookie, waiting for its real
 * server's SYN-ACK (core/syn-proxy.ts). Never synced.
 */
export const CONN_F_PROXY_WAIT = 0x4000;
/** The flags a backup accepts from a sync message (IP_VS_CONN_F_BACKUP_MASK), and may update later. */
export const CONN_F_BACKUP_MASK = 0x1f87;
export const CONN_F_BACKUP_UPD_MASK = 0x0700;

/** The size `ipvsadm -L` reports in its banner: the kernel's default connection hash size. */
export const CONN_TAB_SIZE = 4096;
/** IP_VS_VERSION_CODE 0x010201. */
export const IPVS_VERSION = '1.2.1';

/** Defaults of ipvsadm 1.31. */
export const DEFAULT_SCHEDULER = 'wlc';
export const DEFAULT_PERSISTENT_TIMEOUT = 360;
export const DEFAULT_WEIGHT = 1;

/** 64-bit-safe traffic counters (JS numbers are exact to 2^53). */
export interface Stats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export function newStats(): Stats {
  return { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
}

export function zeroStats(s: Stats): void {
  s.conns = 0;
  s.inPkts = 0;
  s.outPkts = 0;
  s.inBytes = 0;
  s.outBytes = 0;
}

/** Slots of a dest's shared state (`Dest.shared`): flags, path request, then counts per engine. */
const D_FLAGS = 0;
const D_PATH_WANTED = 1;
const D_COUNTS = 2;
/** Count slots of one engine, from its base. */
const D_ACTIVE = 0;
const D_INACT = 1;
const D_PERSIST = 2;
const D_PER_ENGINE = 3;

/** Int32 slots of `Dest.shared` for `engines` engines. */
export function destSharedInts(engines: number): number {
  return D_COUNTS + D_PER_ENGINE * engines;
}

/**
 * A real server of one virtual service. What the engines change (the connection counts, the
 * flags, the path request) lives in `shared`, an Int32Array that every engine's copy of the dest
 * sees (on a SharedArrayBuffer when there are several engines), changed with Atomics. Each engine
 * counts its connections in slots of its own and the counts read as the sum over all engines (the
 * kernel's atomic counters): the schedulers of every engine weigh every connection, and the
 * counts of an engine that is gone can be taken out.
 */
export class Dest {
  /** Index in the engine's dest registry; connections refer to their dest by it. */
  id = -1;
  /** AF_INET, or AF_INET6 with `addr6` its address (four host-order words) and `addr` their fold. */
  af = AF_INET;
  addr6: Uint32Array | null = null;
  fwd: FwdMethod = FWD_DROUTE;
  weight = DEFAULT_WEIGHT;
  uThreshold = 0;
  lThreshold = 0;
  tunType = TUN_TYPE_IPIP;
  tunPort = 0;
  tunFlags = 0;
  stats: Stats = newStats();
  /**
   * How the data path reaches the dest (kept current by the control plane):
   * DR: `l2Dev` is the frame device (txDev) towards it and `l2Header` the 14-byte Ethernet header
   * (destination = the real server's MAC from the neighbour table); null while unresolved.
   * TUN: `tunSrc` is the director's source address towards it, `mtu` the path MTU, and `l2Dev`
   * / `l2Header` frame the encapsulated packet for the next hop (the route's gateway, or the
   * server on a LAN of ours); null while that MAC is unknown (then the raw socket).
   */
  l2Dev = 0;
  l2Header: Buffer | null = null;
  tunSrc = 0;
  /** An IPv6 TUN dest's `tunSrc`: four host-order words; null until its route is known. */
  tunSrc6: Uint32Array | null = null;
  mtu = 1500;
  /**
   * The host has no route to the dest (yet): the kernel accepts such a dest, and drops what it
   * cannot send to it; so does the data path (no_route) until the control plane finds one.
   */
  noRoute = false;
  /** [IP_VS_DEST_F_* flags, path wanted, then active, inactive, persistent connections per engine]. */
  shared: Int32Array<ArrayBufferLike> = new Int32Array(destSharedInts(1));
  /** Where this copy's engine counts (the first engine's slots for the control plane's copy). */
  countBase = D_COUNTS;

  constructor(
    public svc: Service,
    /** Host-order IPv4 address. */
    public addr: number,
    public port: number,
  ) {
    this.shared[D_FLAGS] = DEST_F_AVAILABLE;
  }

  /** The sum of every engine's count in slot `k`. */
  private sum(k: number): number {
    const s = this.shared;
    let n = 0;
    for (let i = D_COUNTS + k; i < s.length; i += D_PER_ENGINE) n += s[i]!;
    return n;
  }
  /** Set the count to `n`: this engine's slot gets it, the others 0 (tests, resets). */
  private setCount(k: number, n: number): void {
    const s = this.shared;
    for (let i = D_COUNTS + k; i < s.length; i += D_PER_ENGINE) Atomics.store(s, i, 0);
    Atomics.store(s, this.countBase + k, n);
  }
  get activeConns(): number {
    return this.sum(D_ACTIVE);
  }
  set activeConns(n: number) {
    this.setCount(D_ACTIVE, n);
  }
  get inactConns(): number {
    return this.sum(D_INACT);
  }
  set inactConns(n: number) {
    this.setCount(D_INACT, n);
  }
  get persistConns(): number {
    return this.sum(D_PERSIST);
  }
  set persistConns(n: number) {
    this.setCount(D_PERSIST, n);
  }
  /** Engine `k` is gone: its connections no longer count. */
  forgetEngine(k: number): void {
    const base = D_COUNTS + D_PER_ENGINE * k;
    for (let i = 0; i < D_PER_ENGINE; i++) Atomics.store(this.shared, base + i, 0);
  }
  /** IP_VS_DEST_F_*; change single bits with setFlag / clearFlag (other engines may be changing others). */
  get flags(): number {
    return this.shared[D_FLAGS]!;
  }
  set flags(f: number) {
    Atomics.store(this.shared, D_FLAGS, f);
  }
  setFlag(bit: number): void {
    Atomics.or(this.shared, D_FLAGS, bit);
  }
  clearFlag(bit: number): void {
    Atomics.and(this.shared, D_FLAGS, ~bit);
  }
  /** Set by the data path when a packet found the path unresolved; the control plane clears it. */
  get pathWanted(): boolean {
    return this.shared[D_PATH_WANTED] !== 0;
  }
  set pathWanted(v: boolean) {
    Atomics.store(this.shared, D_PATH_WANTED, v ? 1 : 0);
  }
  /** Add `n` to this engine's count (0 active, 1 inactive, 2 persistent) atomically. */
  count(slot: 0 | 1 | 2, n: number): void {
    Atomics.add(this.shared, this.countBase + slot, n);
  }
  /** This copy is engine `k`'s: it counts in the k-th slots. */
  countAs(k: number): void {
    this.countBase = D_COUNTS + D_PER_ENGINE * k;
  }
}

/** A virtual service: `<protocol, vaddr, vport>` or a firewall mark. */
export interface Service {
  protocol: number;
  /** Host-order IPv4 address; for an IPv6 service the fold of `addr6` (wire/addr6.ts ipv6Fold). */
  addr: number;
  port: number;
  fwmark: number;
  /** AF_INET or AF_INET6 (a firewall-mark service too: `-f N -6`). */
  af: number;
  /** An IPv6 service's address: four host-order words, the most significant first; else null. */
  addr6: Uint32Array | null;
  schedName: string;
  sched: Scheduler;
  /** Scheduler-private state (set by `initService`). */
  schedData: unknown;
  /** IP_VS_SVC_F_* */
  flags: number;
  /** Persistence timeout in seconds (meaningful with SVC_F_PERSISTENT). */
  timeout: number;
  /** Host-order netmask for persistence granularity. */
  netmask: number;
  peName: string;
  /** Kernel order: the most recently added dest first (IPVS inserts at the list head). */
  dests: Dest[];
  stats: Stats;
}

/** What the schedulers may read of the packet being scheduled. Host-order addresses. */
export interface PktInfo {
  protocol: number;
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
}

/**
 * A scheduling algorithm (ip_vs_scheduler). One module per algorithm; `schedule` returns the dest
 * for a new connection or null when none is available. Every scheduler skips dests of weight 0
 * and dests flagged DEST_F_OVERLOAD. `now` is the engine clock in whole seconds (schedulers that
 * age state, lblc and lblcr, use it instead of a timer); scheduler flags (`-b`) are in svc.flags
 * (SVC_F_SCHED1..3).
 */
export interface Scheduler {
  readonly name: string;
  initService?(svc: Service): void;
  doneService?(svc: Service): void;
  addDest?(svc: Service, dest: Dest): void;
  delDest?(svc: Service, dest: Dest): void;
  updDest?(svc: Service, dest: Dest): void;
  schedule(svc: Service, pkt: PktInfo, now: number): Dest | null;
}

/** A scheduler that never picks: the placeholder of a service not yet bound to one. */
export const NO_SCHEDULER: Scheduler = { name: 'none', schedule: () => null };

/** A service with ipvsadm's defaults (not persistent, /32 mask), no dests. */
export function newService(protocol = 0, addr = 0, port = 0, fwmark = 0, sched: Scheduler = NO_SCHEDULER): Service {
  return {
    protocol,
    addr,
    port,
    fwmark,
    af: AF_INET,
    addr6: null,
    schedName: sched.name,
    sched,
    schedData: undefined,
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    peName: '',
    dests: [],
    stats: newStats(),
  };
}

/** A dest with ipvsadm's defaults (DR, weight 1, no thresholds), available, path unresolved. */
export function newDest(svc: Service, addr: number, port: number): Dest {
  return new Dest(svc, addr, port);
}

/** `ip_vs_dest_conn_overhead`: active connections weigh 256 times an inactive one. */
export function destOverhead(d: Dest): number {
  return d.activeConns * 256 + d.inactConns;
}

/**
 * A connection with `flags` is bound to `d` (ip_vs_bind_dest): it counts as persistent (a
 * template), inactive or active, then the upper threshold is checked. destUnbind undoes it.
 */
export function destBind(d: Dest, flags: number): void {
  d.count(countSlot(flags), 1);
  overloadOnBind(d);
}

function countSlot(flags: number): 0 | 1 | 2 {
  return (flags & CONN_F_TEMPLATE) !== 0 ? D_PERSIST : (flags & CONN_F_INACTIVE) !== 0 ? D_INACT : D_ACTIVE;
}

/** A connection with `flags` leaves `d` (ip_vs_unbind_dest): destBind undone. */
export function destUnbind(d: Dest, flags: number): void {
  d.count(countSlot(flags), -1);
  overloadOnUnbind(d);
}

/** A (non-template) connection of `d` turns inactive, or active again. */
export function destActivity(d: Dest, inactive: boolean): void {
  d.count(D_ACTIVE, inactive ? -1 : 1);
  d.count(D_INACT, inactive ? 1 : -1);
}

/**
 * A connection was bound to `d` (its counters already raised): at or above the upper threshold
 * (`-x`, 0 = none) the dest is flagged overloaded and schedulers skip it (ip_vs_bind_dest).
 */
function overloadOnBind(d: Dest): void {
  if (d.uThreshold !== 0 && d.activeConns + d.inactConns >= d.uThreshold) d.setFlag(DEST_F_OVERLOAD);
}

/**
 * A connection left `d` (its counters already lowered): the overload flag clears below the lower
 * threshold (`-y`), or below 3/4 of the upper one when no lower threshold is set, and at once
 * when neither is set (ip_vs_unbind_dest).
 */
function overloadOnUnbind(d: Dest): void {
  if ((d.flags & DEST_F_OVERLOAD) === 0) return;
  const conns = d.activeConns + d.inactConns;
  if (d.lThreshold !== 0) {
    if (conns < d.lThreshold) d.clearFlag(DEST_F_OVERLOAD);
  } else if (d.uThreshold !== 0) {
    if (conns * 4 < d.uThreshold * 3) d.clearFlag(DEST_F_OVERLOAD);
  } else {
    d.clearFlag(DEST_F_OVERLOAD);
  }
}

/** True when a scheduler may pick the dest (weight > 0 and not overloaded). */
export function destUsable(d: Dest): boolean {
  return d.weight > 0 && (d.flags & DEST_F_OVERLOAD) === 0;
}

/**
 * The IP protocols IPVS names, by the kernel's spelling (ip_vs_proto_name). The one table of
 * protocol names: ipvsadm's and keepalived's names are the service protocols' entries of it.
 */
export const IP_VS_PROTOCOLS = {
  IP: IPPROTO_IP,
  ICMP: IPPROTO_ICMP,
  TCP: IPPROTO_TCP,
  UDP: IPPROTO_UDP,
  SCTP: IPPROTO_SCTP,
  ICMPv6: IPPROTO_ICMPV6,
} as const;
export type IpVsProtoName = keyof typeof IP_VS_PROTOCOLS;

/**
 * The protocols a virtual service can have, by name: ipvsadm's -t, -u, --sctp-service (and the
 * names its protocol_name prints), keepalived's `protocol`.
 */
export const SERVICE_PROTO_NAMES = ['TCP', 'UDP', 'SCTP'] as const satisfies readonly IpVsProtoName[];
export type ServiceProtoName = (typeof SERVICE_PROTO_NAMES)[number];

/** Names by protocol number (IP_VS_PROTOCOLS inverted). */
const PROTO_NAME_BY_NUMBER: ReadonlyMap<number, IpVsProtoName> = new Map(
  (Object.keys(IP_VS_PROTOCOLS) as IpVsProtoName[]).map((name) => [IP_VS_PROTOCOLS[name], name]),
);

/** The kernel's ip_vs_proto_name: the name of a protocol, `IP_<number>` for one it does not name. */
export function ipVsProtoName(protocol: number): string {
  return PROTO_NAME_BY_NUMBER.get(protocol) ?? `IP_${protocol}`;
}

/** The name of a virtual service protocol (TCP, UDP, SCTP); undefined for any other protocol. */
export function serviceProtoName(protocol: number): ServiceProtoName | undefined {
  return SERVICE_PROTO_NAMES.find((name) => IP_VS_PROTOCOLS[name] === protocol);
}

/** True if `name` is a virtual service protocol's name, spelt as in SERVICE_PROTO_NAMES. */
export function isServiceProtoName(name: string): name is ServiceProtoName {
  return SERVICE_PROTO_NAMES.some((n) => n === name);
}

/** The FTP control port (ip_vs_ftp): persistent FTP services stick every port, the helper watches it. */
export const FTP_PORT = 21;
