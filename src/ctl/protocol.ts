// Messages between lvsadm (or any client) and lvsd over the control socket: one JSON object per
// line each way. These are wire types of their own, never the engine's internal objects.
// Addresses travel as text (dotted quads, IPv6 as inet_ntop writes it), protocols as IP protocol
// numbers (0 for fwmark).

import { join } from 'node:path';
import type { SynProxyCounters } from '../core/data-plane';
import { runDir } from '../run-dir';

/**
 * The default control socket: `lvsd.sock` in the network namespace's run-time directory
 * (run-dir.ts), so lvsadm reaches the lvsd of the namespace it runs in.
 */
export function defaultSocket(): string {
  return join(runDir(), 'lvsd.sock');
}

/** The control socket: `--socket`, else LVS_SOCKET, else the namespace's default. */
export function socketPath(flag?: string): string {
  return flag || process.env.LVS_SOCKET || defaultSocket();
}

/** Identifies a virtual service: `<protocol, addr, port>` or, with protocol 0, a firewall mark. */
export interface ServiceKey {
  protocol: number;
  addr: string;
  port: number;
  fwmark: number;
  /** 10 (AF_INET6) for an IPv6 service (its address is IPv6 text, or `-f N -6`); absent: IPv4. */
  af?: number;
}

export interface ServiceSpec extends ServiceKey {
  sched: string;
  /** IP_VS_SVC_F_* (persistent, one-packet, scheduler flags). */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** Persistence granularity: a dotted netmask, or for an IPv6 service a prefix length ("64"). */
  netmask: string;
  /** Persistence engine name ('' for none). */
  pe: string;
}

export interface DestKey {
  addr: string;
  port: number;
}

export interface DestSpec extends DestKey {
  /** FWD_* method number. */
  fwd: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

export interface StatsSnapshot {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export interface DestSnapshot extends DestSpec {
  activeConns: number;
  inactConns: number;
  persistConns: number;
  stats: StatsSnapshot;
  rates: StatsSnapshot;
}

export interface ServiceSnapshot extends ServiceSpec {
  /** Dests in kernel order (most recently added first). */
  dests: DestSnapshot[];
  stats: StatsSnapshot;
  rates: StatsSnapshot;
}

export interface Snapshot {
  version: string;
  size: number;
  /** Services in kernel (hash-table) order; lvsadm sorts them as ipvsadm does. */
  services: ServiceSnapshot[];
}

export interface ConnSnapshot {
  protocol: number;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  /** State name as /proc/net/ip_vs_conn prints it (ESTABLISHED, UDP, NONE, ...). */
  state: string;
  /** Seconds until expiry. */
  expires: number;
  flags: number;
}

export interface Timeouts {
  tcp: number;
  tcpfin: number;
  udp: number;
}

/** A sync daemon's settings (ipvsadm's daemon options); 0 / '' mean the kernel's default. */
export interface DaemonSpec {
  state: 'master' | 'backup';
  mcastIfn: string;
  syncid: number;
  maxlen: number;
  group: string;
  port: number;
  ttl: number;
}

export type Request =
  | { cmd: 'add-service'; svc: ServiceSpec }
  | { cmd: 'edit-service'; svc: ServiceSpec }
  | { cmd: 'delete-service'; svc: ServiceKey }
  | { cmd: 'flush' }
  | { cmd: 'add-server'; svc: ServiceKey; dest: DestSpec }
  | { cmd: 'edit-server'; svc: ServiceKey; dest: DestSpec }
  | { cmd: 'delete-server'; svc: ServiceKey; dest: DestKey }
  | { cmd: 'zero'; svc?: ServiceKey }
  | { cmd: 'set-timeouts'; timeouts: Timeouts }
  | { cmd: 'get-timeouts' }
  | { cmd: 'list' }
  | { cmd: 'list-conns' }
  | { cmd: 'start-daemon'; daemon: DaemonSpec }
  | { cmd: 'stop-daemon'; state: 'master' | 'backup' }
  /** The running sync daemons, master first, with every default filled in (DaemonSpec[]). */
  | { cmd: 'list-daemons' }
  /** lvsd's own counters (drops by reason, packets sent): not an ipvsadm command. */
  | { cmd: 'engine-stats' }
  /**
   * Stop packet engine `engine` (lvsd --workers) and start it again with the table, as lvsd does
   * when one dies; its connections are lost. Not an ipvsadm command.
   */
  | { cmd: 'restart-engine'; engine: number }
  /** The health monitor's view (lvsd --keepalived-conf): VirtualServerSnapshot[]. Not an ipvsadm command. */
  | { cmd: 'list-checks' }
  /** keepalived's VRRP as lvsd runs it (lvsd --keepalived-conf): VrrpSnapshot[]. Not an ipvsadm command. */
  | { cmd: 'list-vrrp' }
  /**
   * IPVS settings (src/ctl/sysctl.ts): all of them without a name, one with a name, and set it
   * first with a value. The result is a list of { name, value }. Not an ipvsadm command.
   */
  | { cmd: 'sysctl'; name?: string; value?: string };

/** One VRRP instance or sync group, as `list-vrrp` shows it. */
export interface VrrpSnapshot {
  kind: 'instance' | 'group';
  name: string;
  /** MASTER, BACKUP, FAULT, STOP, or INIT before keepalived's first report. */
  state: string;
  /** Instances: as configured (priority, interface, virtual_router_id); groups: 0 and ''. */
  priority: number;
  iface: string;
  vrid: number;
  /** Seconds in this state. */
  since: number;
}

/** One checker of a real server, as `list-checks` shows it. */
export interface CheckerSnapshot {
  type: string;
  up: boolean;
  why: string;
}

export interface RealServerSnapshot {
  addr: string;
  port: number;
  /** 'up', 'down', or for the sorry server 'sorry' (in use) / 'standby'. */
  state: 'up' | 'down' | 'sorry' | 'standby';
  /** The weight it has in the table now (0 when quiescent or absent). */
  weight: number;
  inTable: boolean;
  /** Seconds since its last change. */
  since: number;
  checkers: CheckerSnapshot[];
}

/** One virtual_server of the keepalived configuration and its real servers' health (`list-checks`). */
export interface VirtualServerSnapshot {
  /** `TCP 192.168.0.1:80`, `FWM 5`, `TCP group web`. */
  label: string;
  quorum: number;
  hysteresis: number;
  liveWeight: number;
  hasQuorum: boolean;
  servers: RealServerSnapshot[];
}

/** The health monitor's counters (metrics). */
export interface HealthCounters {
  checksOk: number;
  checksFailed: number;
  serversUp: number;
  serversDown: number;
  transitionsUp: number;
  transitionsDown: number;
  quorumLost: number;
  quorumGained: number;
  inFlight: number;
}

export interface EngineStats {
  conns: number;
  /** Packets the engine read, and sent. */
  rxPackets: number;
  txPackets: number;
  stats: StatsSnapshot;
  /** Drop reason → packets (only reasons that occurred). */
  drops: Record<string, number>;
  /** Packets read from an offload TUN with a partial checksum, and GSO packets among them. */
  offload: { partial: number; gso: number };
  /** Reassembled datagrams handed from the engine that reassembled them to the one holding their flow. */
  handed: number;
  /** The SYN proxy's counters (syn_proxy; core/syn-proxy.ts). */
  synProxy: SynProxyCounters;
  /** Per engine (lvsd --workers): connections held and packets read. */
  engines: { conns: number; rxPackets: number }[];
}

/**
 * A failed request carries the errno name the kernel would have returned (EEXIST, ESRCH,
 * ENOENT, EINVAL, ...); lvsadm turns (command, errno) into ipvsadm's message as libipvs does.
 */
export type Response = { ok: true; result?: unknown } | { ok: false; errno: string; message: string };
