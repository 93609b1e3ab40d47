// ipvsadm's listings, byte for byte, from lvsd's snapshot types. Pure: names come from an
// injected NameLookup, so `-L` without `-n` is testable without DNS.
//
// The printf formats of ipvsadm 1.31 (print_title, print_service_entry, print_largenum,
// print_conn, list_all/list_service/list_timeout) are reproduced as small padding helpers;
// fixed widths do not truncate, except where ipvsadm cuts a string short on purpose
// (addresses at 59 chars, the service column at 33, the dest column at 28).
//
// Sorting follows libipvs: ipvs_cmp_services / ipvs_cmp_dests under glibc's merge-sort qsort.
// The comparators subtract 32-bit unsigned fields into an int, so two addresses (or fwmarks)
// more than 2^31 apart compare "wrapped"; that quirk is kept.

import type {
  ConnSnapshot,
  DaemonSpec,
  DestSnapshot,
  ServiceKey,
  ServiceSnapshot,
  Snapshot,
  Timeouts,
  VirtualServerSnapshot,
  VrrpSnapshot,
} from '../ctl/protocol';
import {
  AF_INET,
  AF_INET6,
  FWD_DROUTE,
  FWD_LOCALNODE,
  FWD_MASQ,
  FWD_NAMES,
  FWD_TUNNEL,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipVsProtoName,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  serviceProtoName,
  TUN_CSUM_NAMES,
  TUN_TYPE_GRE,
  TUN_TYPE_GUE,
  TUN_TYPE_IPIP,
  TUN_TYPE_NAMES,
} from '../ip-vs';
import { ipToU32 } from '../wire/addr';
import { ipv6Word, isIpv6Text, parseIpv6 } from '../wire/addr6';
import type { ListFormat } from './lvsadm-args';

const SCHED_FLAGS = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;
const HOST_MASK = '255.255.255.255';

/** Reverse name resolution for listings without `-n`. */
export interface NameLookup {
  /** gethostbyaddr: the host name of a dotted-quad address, or undefined to print it as is. */
  host(addr: string): string | undefined;
  /** getservbyport: the service name of a port for an IP protocol number, or undefined. */
  service(port: number, protocol: number): string | undefined;
}

/** No names at all: what `-n` prints. */
export const NUMERIC_NAMES: NameLookup = { host: () => undefined, service: () => undefined };

// --- printf helpers --------------------------------------------------------------------------

/** `%-Ns` */
function left(s: string | number, width: number): string {
  return String(s).padEnd(width, ' ');
}

/** `%Ns` / `%Nllu` */
function right(s: string | number, width: number): string {
  return String(s).padStart(width, ' ');
}

/** C `%d` of a 32-bit signed int (values past 2^31 print negative, as in ipvsadm). */
function int32(n: number): number {
  return n | 0;
}

/**
 * ipvsadm's print_largenum: `%9llu` below 10^8, then thousands (K), millions (M), billions (G),
 * trillions (T) in `%8llu` plus the suffix; with `--exact` the full number, at least 9 wide with
 * one blank before it.
 */
export function formatLargeNum(n: number, exact: boolean): string {
  if (exact) {
    const s = String(n);
    return right(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (n < 1e8) return right(n, 9);
  if (n < 1e9) return `${right(Math.floor(n / 1e3), 8)}K`;
  if (n < 1e11) return `${right(Math.floor(n / 1e6), 8)}M`;
  if (n < 1e14) return `${right(Math.floor(n / 1e9), 8)}G`;
  return `${right(Math.floor(n / 1e12), 8)}T`;
}

/**
 * The protocol column of listings (ipvsadm's protocol_name): a service protocol's name, '?' for
 * any other (where the kernel's ip_vs_proto_name, used for -c, prints IP_<n>).
 */
function protocolName(protocol: number): string {
  return serviceProtoName(protocol) ?? '?';
}

/** ipvsadm's addrport_to_anyname, including its 60-byte buffer: IPv6 in brackets. */
function addrPort(addr: string, port: number, protocol: number, numeric: boolean, names: NameLookup): string {
  const host = numeric ? addr : (names.host(addr) ?? addr);
  const portText = numeric ? String(port) : (names.service(port, protocol) ?? String(port));
  const text = isIpv6Text(addr) ? `[${host}]:${portText}` : `${host}:${portText}`;
  return text.slice(0, 59);
}

/** Word `i` (0..3) of an address as libipvs's union holds it: an IPv4 address is word 0, then zeros. */
function addrWord(addr: string, v6: Uint8Array | null, i: number): number {
  if (v6 !== null) return ipv6Word(v6, 0, i);
  return i === 0 ? ipToU32(addr) : 0;
}

/**
 * libipvs's address comparison (wrapped 32-bit differences): the four words when `a` is IPv6,
 * else the IPv4 address against `b`'s first word.
 */
function compareAddrs(a: string, b: string): number {
  const va = isIpv6Text(a) ? parseIpv6(a) : null;
  const vb = isIpv6Text(b) ? parseIpv6(b) : null;
  const words = va === null ? 1 : 4;
  for (let i = 0; i < words; i++) {
    const r = wrappedDiff(addrWord(a, va, i), addrWord(b, vb, i));
    if (r !== 0) return r;
  }
  return 0;
}

// --- sorting ---------------------------------------------------------------------------------

/** C's `int r = (u32)a - (u32)b`. */
function wrappedDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** libipvs ipvs_cmp_services: fwmark, address family, protocol, address, port. */
export function compareServices(a: ServiceKey, b: ServiceKey): number {
  return (
    wrappedDiff(a.fwmark, b.fwmark) ||
    (a.af ?? AF_INET) - (b.af ?? AF_INET) ||
    a.protocol - b.protocol ||
    compareAddrs(a.addr, b.addr) ||
    a.port - b.port
  );
}

/** libipvs ipvs_cmp_dests: address, then port. */
export function compareDests(a: { addr: string; port: number }, b: { addr: string; port: number }): number {
  return compareAddrs(a.addr, b.addr) || a.port - b.port;
}

/**
 * glibc's qsort (msort): top-down merge sort, left half n/2, ties taken from the left. Using the
 * same algorithm keeps even the wrapped, non-transitive comparisons in ipvsadm's order.
 */
export function qsortLikeGlibc<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  if (items.length <= 1) return items.slice();
  const n1 = items.length >> 1;
  const b1 = qsortLikeGlibc(items.slice(0, n1), cmp);
  const b2 = qsortLikeGlibc(items.slice(n1), cmp);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < b1.length && j < b2.length) out.push(cmp(b1[i], b2[j]) <= 0 ? b1[i++] : b2[j++]);
  while (i < b1.length) out.push(b1[i++]);
  while (j < b2.length) out.push(b2[j++]);
  return out;
}

export function sortServices<T extends ServiceKey>(services: readonly T[]): T[] {
  return qsortLikeGlibc(services, compareServices);
}

export function sortDests<T extends { addr: string; port: number }>(dests: readonly T[]): T[] {
  return qsortLikeGlibc(dests, compareDests);
}

/** The snapshot's service with this key (ipvs_get_service), if any. */
export function findService(snapshot: Snapshot, key: ServiceKey): ServiceSnapshot | undefined {
  return snapshot.services.find(
    (s) =>
      (s.af ?? AF_INET) === (key.af ?? AF_INET) &&
      (key.fwmark
        ? s.fwmark === key.fwmark
        : !s.fwmark && s.protocol === key.protocol && s.addr === key.addr && s.port === key.port),
  );
}

// --- service and dest lines ------------------------------------------------------------------

/** print_title. */
function title(format: ListFormat): string {
  const prot = left('Prot LocalAddress:Port', 33);
  if (format.stats)
    return `${prot} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  if (format.rate)
    return `${prot} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  if (format.thresholds)
    return `${prot} ${left('Uthreshold', 10)} ${left('Lthreshold', 10)} ${left('ActiveConn', 10)} ${left('InActConn', 10)}\n  -> RemoteAddress:Port\n`;
  if (format.persistentConn)
    return `${prot} ${left('Weight', 9)} ${left('PersistConn', 11)} ${left('ActiveConn', 10)} ${left('InActConn', 10)}\n  -> RemoteAddress:Port\n`;
  if (format.tunInfo)
    return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
  return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

/** print_sched_flags: the names of the flags as the scheduler knows them. */
function schedFlagNames(svc: ServiceSnapshot): string {
  const names: string[] = [];
  if (svc.sched === 'sh' || svc.sched === 'mh') {
    if (svc.flags & SVC_F_SCHED1) names.push(`${svc.sched}-fallback`);
    if (svc.flags & SVC_F_SCHED2) names.push(`${svc.sched}-port`);
  } else {
    if (svc.flags & SVC_F_SCHED1) names.push('flag-1');
    if (svc.flags & SVC_F_SCHED2) names.push('flag-2');
    if (svc.flags & SVC_F_SCHED3) names.push('flag-3');
  }
  return names.join(',');
}

function fwdName(fwd: number): string {
  return FWD_NAMES[fwd] ?? '(null)';
}

/** fwd_switch: the option `-S` prints for a forwarding method. */
function fwdSwitch(fwd: number): string {
  if (fwd === FWD_MASQ) return '-m';
  if (fwd === FWD_TUNNEL) return '-i';
  if (fwd === FWD_LOCALNODE || fwd === FWD_DROUTE) return '-g';
  return '(null)';
}

/** The checksum mode (TUN_F_* value) as --tun-info shows it, and as -S writes its option. */
const TUN_FLAG_SHORT: readonly string[] = ['-c', '+c', 'r+c'];
const TUN_FLAG_OPTS: readonly string[] = TUN_CSUM_NAMES.map((name) => `--tun-${name}`);

/** fwd_tun_info: the TunnelInfo column of `--tun-info`. */
function tunInfo(d: DestSnapshot): string {
  if (d.fwd !== FWD_TUNNEL) return 'n/a';
  if (d.tunType === TUN_TYPE_IPIP) return 'ipip';
  if (d.tunType === TUN_TYPE_GUE) return `gue:${d.tunPort}:${TUN_FLAG_SHORT[d.tunFlags] ?? '?'}`;
  if (d.tunType === TUN_TYPE_GRE) return `gre:${TUN_FLAG_SHORT[d.tunFlags] ?? '?'}`;
  return 'n/a';
}

/** The service part of a line: `TCP  1.2.3.4:80`, `FWM  5`, or `-t 1.2.3.4:80` for -S. */
function serviceName(svc: ServiceSnapshot, format: ListFormat, names: NameLookup, rule: boolean): string {
  const v6 = svc.af === AF_INET6;
  if (svc.fwmark) {
    const mark = int32(svc.fwmark);
    if (rule) return v6 ? `-f ${mark} -6` : `-f ${mark}`;
    return v6 ? `FWM  ${mark} IPv6` : `FWM  ${mark}`;
  }
  const vname = addrPort(svc.addr, svc.port, svc.protocol, format.numeric, names);
  if (rule) {
    const opt =
      svc.protocol === IPPROTO_TCP
        ? '-t'
        : svc.protocol === IPPROTO_UDP
          ? '-u'
          : svc.protocol === IPPROTO_SCTP
            ? '--sctp-service'
            : '--xxx-service';
    return `${opt} ${vname}`;
  }
  const name = `${left(protocolName(svc.protocol), 4)} ${vname}`;
  // IPv4 names are cut to 33 characters; IPv6 ones are not.
  return v6 ? name : name.slice(0, 33);
}

/** The persistence mask a listing shows, if any: IPv4's unless /32, IPv6's prefix unless 128. */
function shownMask(svc: ServiceSnapshot): string | null {
  if (svc.af === AF_INET6) return svc.netmask !== '128' ? svc.netmask : null;
  return svc.netmask !== HOST_MASK ? svc.netmask : null;
}

function serviceLine(svc: ServiceSnapshot, name: string, format: ListFormat): string {
  const big = (n: number) => formatLargeNum(n, format.exact);
  if (format.stats) {
    const s = svc.stats;
    return `${left(name, 33)}${big(s.conns)}${big(s.inPkts)}${big(s.outPkts)}${big(s.inBytes)}${big(s.outBytes)}`;
  }
  if (format.rate) {
    const r = svc.rates;
    return `${left(name, 33)}${big(r.conns)}${big(r.inPkts)}${big(r.outPkts)}${big(r.inBytes)}${big(r.outBytes)}`;
  }
  let line = `${name} ${svc.sched}`;
  if (svc.flags & SCHED_FLAGS) line += ` (${schedFlagNames(svc)})`;
  if (svc.flags & SVC_F_PERSISTENT) {
    line += ` persistent ${svc.timeout}`;
    const mask = shownMask(svc);
    if (mask !== null) line += ` mask ${mask}`;
    if (svc.pe) line += ` pe ${svc.pe}`;
  }
  if (svc.flags & SVC_F_ONEPACKET) line += ' ops';
  return line;
}

function destLine(d: DestSnapshot, dname: string, format: ListFormat): string {
  const big = (n: number) => formatLargeNum(n, format.exact);
  const col = `  -> ${left(dname, 28)}`;
  if (format.stats) {
    const s = d.stats;
    return `${col}${big(s.conns)}${big(s.inPkts)}${big(s.outPkts)}${big(s.inBytes)}${big(s.outBytes)}`;
  }
  if (format.rate) {
    const r = d.rates;
    return `${col} ${right(r.conns, 8)} ${right(r.inPkts, 8)} ${right(r.outPkts, 8)}${big(r.inBytes)}${big(r.outBytes)}`;
  }
  if (format.thresholds)
    return `${col} ${left(d.uThreshold, 10)} ${left(d.lThreshold, 10)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}`;
  if (format.persistentConn)
    return `${col} ${left(d.weight, 9)} ${left(d.persistConns, 11)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}`;
  if (format.tunInfo)
    return `${col} ${left(fwdName(d.fwd), 7)} ${left(tunInfo(d), 13)} ${left(int32(d.weight), 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}`;
  return `${col} ${left(fwdName(d.fwd), 7)} ${left(int32(d.weight), 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}`;
}

/**
 * `-S`'s line for a dest (print_tunnel_rule and the plain form); with `thresholds`, non-zero
 * -x/-y too, which ipvsadm -S leaves out (lvsd's configuration file keeps them).
 */
function destRule(d: DestSnapshot, svcName: string, dname: string, thresholds: boolean): string {
  let base = `-a ${svcName} -r ${dname} ${fwdSwitch(d.fwd)} -w ${int32(d.weight)}`;
  if (thresholds && d.uThreshold !== 0) base += ` -x ${d.uThreshold}`;
  if (thresholds && d.lThreshold !== 0) base += ` -y ${d.lThreshold}`;
  const tunType = TUN_TYPE_NAMES[d.tunType];
  if (d.fwd !== FWD_TUNNEL || tunType === undefined) return base;
  const rule = `${base} --tun-type ${tunType}`;
  const csum = TUN_FLAG_OPTS[d.tunFlags] ?? '';
  if (d.tunType === TUN_TYPE_GRE) return `${rule} ${csum}`;
  if (d.tunType === TUN_TYPE_GUE) return `${rule} --tun-port ${d.tunPort} ${csum}`;
  return rule;
}

/** `-S`'s line for a service. */
function serviceRule(svc: ServiceSnapshot, name: string): string {
  let line = `-A ${name} -s ${svc.sched}`;
  if (svc.flags & SVC_F_PERSISTENT) {
    line += ` -p ${svc.timeout}`;
    const mask = shownMask(svc);
    if (mask !== null) line += ` -M ${mask}`;
  }
  if (svc.pe) line += ` --pe ${svc.pe}`;
  if (svc.flags & SVC_F_ONEPACKET) line += ' -o';
  if (svc.flags & SCHED_FLAGS) line += ` -b ${schedFlagNames(svc)}`;
  return line;
}

/** print_service_entry: the service line and its dests, each ending in a newline. */
function serviceEntry(
  svc: ServiceSnapshot,
  format: ListFormat,
  names: NameLookup,
  rule: boolean,
  thresholds = false,
): string {
  const name = serviceName(svc, format, names, rule);
  const lines = [rule ? serviceRule(svc, name) : serviceLine(svc, name, format)];
  const dests = format.nosort ? svc.dests : sortDests(svc.dests);
  for (const d of dests) {
    const full = addrPort(d.addr, d.port, svc.protocol, format.numeric, names);
    // IPv4 names are cut to 28 characters in the columns; IPv6 ones push the columns right.
    lines.push(
      rule ? destRule(d, name, full, thresholds) : destLine(d, isIpv6Text(d.addr) ? full : full.slice(0, 28), format),
    );
  }
  return `${lines.join('\n')}\n`;
}

// --- whole listings --------------------------------------------------------------------------

/** `-L` (list_all): banner, titles, then every service in ipvsadm's order (or kernel order with --nosort). */
export function formatList(snapshot: Snapshot, format: ListFormat, names: NameLookup = NUMERIC_NAMES): string {
  const services = format.nosort ? snapshot.services : sortServices(snapshot.services);
  let out = `IP Virtual Server version ${snapshot.version} (size=${snapshot.size})\n${title(format)}`;
  for (const svc of services) out += serviceEntry(svc, format, names, false);
  return out;
}

/** `-L` with a virtual service (list_service): titles and that service, no banner. */
export function formatListService(svc: ServiceSnapshot, format: ListFormat, names: NameLookup = NUMERIC_NAMES): string {
  return title(format) + serviceEntry(svc, format, names, false);
}

/**
 * `-S` (save): the rules that rebuild the table, no banner, no titles. `thresholds` adds the
 * dests' -x/-y (lvs-ts's configuration file; ipvsadm -S does not save them).
 */
export function formatSave(
  snapshot: Snapshot,
  format: ListFormat,
  names: NameLookup = NUMERIC_NAMES,
  thresholds = false,
): string {
  const services = format.nosort ? snapshot.services : sortServices(snapshot.services);
  return services.map((svc) => serviceEntry(svc, format, names, true, thresholds)).join('');
}

/** `-L -c` (list_conn): the connection table in the daemon's order. */
export function formatConnections(
  conns: readonly ConnSnapshot[],
  format: ListFormat,
  names: NameLookup = NUMERIC_NAMES,
): string {
  let out = 'IPVS connection entries\n';
  out += format.persistentConn
    ? `pro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} ${left('destination', 18)} ${left('pe name', 16)} pe_data\n`
    : `pro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} destination\n`;
  for (const c of conns) {
    // The protocol column of -c: the kernel's name in /proc/net/ip_vs_conn (ip_vs_proto_name).
    const proto = ipVsProtoName(c.protocol);
    // ipvsadm maps the /proc protocol name back to a number for getservbyport: the service
    // protocols' names give theirs, any other name 0.
    const nameProto = serviceProtoName(c.protocol) === undefined ? 0 : c.protocol;
    const expires = Math.max(0, Math.floor(c.expires));
    const expire = `${String(Math.floor(expires / 60)).padStart(2, '0')}:${String(expires % 60).padStart(2, '0')}`;
    const cname = addrPort(c.caddr, c.cport, nameProto, format.numeric, names);
    const vname = addrPort(c.vaddr, c.vport, nameProto, format.numeric, names);
    const dname = addrPort(c.daddr, c.dport, nameProto, format.numeric, names);
    out += `${left(proto, 3)} ${left(expire, 6)} ${left(c.state, 11)} ${left(cname, 18)} ${left(vname, 18)} ${dname}\n`;
  }
  return out;
}

/** `-L --timeout`. */
export function formatTimeouts(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}

/** Every address a listing may print a name for (to resolve them before formatting). */
export function listedAddresses(snapshot: Snapshot): string[] {
  const set = new Set<string>();
  for (const s of snapshot.services) {
    if (!s.fwmark) set.add(s.addr);
    for (const d of s.dests) set.add(d.addr);
  }
  return [...set];
}

export function connAddresses(conns: readonly ConnSnapshot[]): string[] {
  const set = new Set<string>();
  for (const c of conns) {
    set.add(c.caddr);
    set.add(c.vaddr);
    set.add(c.daddr);
  }
  return [...set];
}

/**
 * `-L --daemon` (list_daemon): one line per running sync daemon, master first, with the
 * settings the daemon runs with; nothing when none runs.
 */
export function formatDaemons(daemons: readonly DaemonSpec[]): string {
  let out = '';
  for (const d of daemons) {
    out += `${d.state} sync daemon (mcast=${d.mcastIfn}, syncid=${d.syncid}`;
    if (d.maxlen) out += `, maxlen=${d.maxlen}`;
    if (d.group) out += `, group=${d.group}`;
    if (d.port) out += `, port=${d.port}`;
    if (d.ttl) out += `, ttl=${d.ttl}`;
    out += ')\n';
  }
  return out;
}

/**
 * keepalived's VRRP as lvsd runs it (lvs-ts; `-L --daemon` and `--checks` end with it): one line
 * per instance and sync group, as `vrrp instance VI_1: MASTER for 1m15s (priority 150, eth0, vrid 51)`.
 */
export function formatVrrp(list: readonly VrrpSnapshot[]): string {
  let out = '';
  for (const v of list) {
    const what = v.kind === 'instance' ? ` (priority ${v.priority}, ${v.iface}, vrid ${v.vrid})` : '';
    out += `vrrp ${v.kind} ${v.name}: ${v.state} for ${formatAge(v.since)}${what}\n`;
  }
  return out;
}

/** `75` → `1m15s`: the age of a health state. */
function formatAge(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/**
 * `lvsadm -L --checks` (lvs-ts): the health monitor's virtual servers, each with its quorum,
 * then its real servers: state (up, down; the sorry server: sorry when in use, standby), the
 * weight it has in the table ('-' when it is not in it), how long it has been in that state,
 * and each checker's state with the reason of its last result. Addresses are always numeric.
 */
export function formatChecks(vss: readonly VirtualServerSnapshot[]): string {
  let out = 'Prot LocalAddress:Port                 Quorum\n';
  out += '  -> RemoteAddress:Port                State   Weight Since   Checks\n';
  for (const v of vss) {
    const sp = v.label.indexOf(' ');
    const prot = v.label.slice(0, sp);
    const where = v.label.slice(sp + 1);
    const hyst = v.hysteresis ? `, hysteresis ${v.hysteresis}` : '';
    const q = `${v.hasQuorum ? 'up' : 'lost'} (live weight ${v.liveWeight}, quorum ${v.quorum}${hyst})`;
    out += `${prot.padEnd(4)} ${where.padEnd(33)} ${q}\n`;
    for (const r of v.servers) {
      const addr = `${r.addr}:${r.port}`;
      const weight = r.inTable ? String(r.weight) : '-';
      const since = r.state === 'sorry' || r.state === 'standby' ? '-' : formatAge(r.since);
      const checks =
        r.state === 'sorry' || r.state === 'standby'
          ? 'sorry server'
          : r.checkers.length === 0
            ? 'no checker (always up)'
            : r.checkers.map((c) => `${c.type} ${c.up ? 'up' : 'down'}${c.why ? ` (${c.why})` : ''}`).join('; ');
      out += `  -> ${addr.padEnd(33)} ${r.state.padEnd(7)} ${weight.padEnd(6)} ${since.padEnd(7)} ${checks}\n`;
    }
  }
  return out;
}
