// The text of kernel IPVS's /proc files (REFERENCE.md §1.12), built from control-socket snapshots.
// Pure: no I/O; writer.ts writes the results. Each function reproduces the kernel's seq_printf
// output byte for byte (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_conn.c):
//
//   formatProcIpVs          /proc/net/ip_vs            ip_vs_info_seq_show
//   formatProcIpVsStats     /proc/net/ip_vs_stats      ip_vs_stats_show
//   formatSysctlValue       /proc/sys/net/ipv4/vs/*    proc_dointvec
//
// The connection files (ip_vs_conn_seq_show, ip_vs_conn_sync_seq_show) are encoded straight
// into bytes from a table snapshot by conns.ts, with the headers and names from here.
//
// Rows come out in the order given (the kernel walks its hash tables; the snapshots already
// hold services, dests and connections in lvsd's table order). Counters are 64-bit in the
// kernel and JS numbers here: hex is produced with Number.prototype.toString(16), exact up to
// 2^53, never with 32-bit bitwise operators.

import type { Snapshot, StatsSnapshot } from '../ctl/protocol';
import {
  AF_INET6,
  CONN_F_SYNC,
  FWD_DROUTE,
  FWD_LOCALNODE,
  FWD_TUNNEL,
  ipVsProtoName,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../ip-vs';
import { ipToU32 } from '../wire/addr';
import { formatIpv6Full, isIpv6Text, parseIpv6 } from '../wire/addr6';

/**
 * The kernel keeps a service's persistence timeout in jiffies (timeout * HZ) and /proc/net/ip_vs
 * prints that raw value, so the figure depends on CONFIG_HZ. lvs-ts reports as a HZ=250 kernel,
 * Debian's default and what the machines it runs on use.
 */
export const PROC_HZ = 250;

const IP_VS_HEADER =
  'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n';
export const CONN_HEADER = 'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n';

/** The Origin column of /proc/net/ip_vs_conn_sync for connection flags. */
export function connOrigin(flags: number): string {
  return flags & CONN_F_SYNC ? 'SYNC' : 'LOCAL';
}
export const CONN_SYNC_HEADER = 'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n';
const STATS_TOTAL_HEADER =
  '   Total Incoming Outgoing         Incoming         Outgoing\n' +
  '   Conns  Packets  Packets            Bytes            Bytes\n';
const STATS_RATE_HEADER = ' Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n';

/** printf `%0<width>X` (pad '0') or `%<width>X` (pad ' ') of a non-negative integer. */
function hex(n: number, width: number, pad: '0' | ' '): string {
  return Math.max(0, Math.floor(n)).toString(16).toUpperCase().padStart(width, pad);
}

/** `%08X` of a dotted-quad address in host order (what the kernel prints after ntohl). */
function hexAddr(dotted: string): string {
  return hex(ipToU32(dotted), 8, '0');
}

/** The kernel's `[%pI6]` of IPv6 text: bracketed, uncompressed (39 characters inside). */
function fullAddr6(text: string): string {
  const b = parseIpv6(text);
  return `[${b === null ? text : formatIpv6Full(b)}]`;
}

/** `%04X` of a port. */
function hexPort(port: number): string {
  return hex(port, 4, '0');
}

/** The kernel's ip_vs_fwd_name: any method other than Local, Tunnel or Route reads Masq. */
function fwdName(fwd: number): string {
  switch (fwd & 0x7) {
    case FWD_LOCALNODE:
      return 'Local';
    case FWD_TUNNEL:
      return 'Tunnel';
    case FWD_DROUTE:
      return 'Route';
    default:
      return 'Masq';
  }
}

/**
 * /proc/net/ip_vs: banner and two title lines, then per service its row and its dests' rows.
 * The service row ends in the scheduler, a space, "ops " for one-packet scheduling, then either
 * "persistent <timeout in jiffies> <netmask>" or nothing. Because the ops field is followed by a
 * space in the address row but not in the fwmark row, a plain address service ends in two
 * blanks ("wlc  ") and a plain fwmark service in one ("wlc ").
 */
export function formatProcIpVs(s: Snapshot, hz: number = PROC_HZ): string {
  let out = `IP Virtual Server version ${s.version} (size=${s.size})\n${IP_VS_HEADER}`;
  for (const svc of s.services) {
    const sched = svc.sched || 'none';
    const ops = svc.flags & SVC_F_ONEPACKET ? 'ops ' : '';
    const v6 = svc.af === AF_INET6;
    if (svc.fwmark !== 0) out += `FWM  ${hex(svc.fwmark, 8, '0')} ${sched} ${ops}`;
    // An IPv6 row has no ops field (and so one blank after the scheduler, not two).
    else if (v6) out += `${ipVsProtoName(svc.protocol)}  ${fullAddr6(svc.addr)}:${hexPort(svc.port)} ${sched} `;
    else out += `${ipVsProtoName(svc.protocol)}  ${hexAddr(svc.addr)}:${hexPort(svc.port)} ${sched} ${ops} `;
    // The netmask field is ntohl() of what the kernel keeps: an IPv6 service keeps its prefix
    // length there in host order, so a little-endian kernel prints 128 as 80000000.
    const mask = v6 ? hex(byteSwap32(Number(svc.netmask)), 8, '0') : hexAddr(svc.netmask);
    if (svc.flags & SVC_F_PERSISTENT) out += `persistent ${svc.timeout * hz} ${mask}\n`;
    else out += '\n';
    for (const d of svc.dests) {
      const addr = isIpv6Text(d.addr) ? fullAddr6(d.addr) : hexAddr(d.addr);
      out +=
        `  -> ${addr}:${hexPort(d.port)}      ${fwdName(d.fwd).padEnd(7)} ` +
        `${String(d.weight).padEnd(6)} ${String(d.activeConns).padEnd(10)} ${String(d.inactConns).padEnd(10)}\n`;
    }
  }
  return out;
}

/** A 32-bit value with its bytes reversed (ntohl on a little-endian host). */
function byteSwap32(n: number): number {
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | ((n >>> 24) & 0xff)) >>> 0;
}

/** `%7u` of the seconds left (the kernel rounds down and never goes below zero). */
/** One `%8LX %8LX %8LX %16LX %16LX` row. */
function statsRow(s: StatsSnapshot): string {
  return (
    `${hex(s.conns, 8, ' ')} ${hex(s.inPkts, 8, ' ')} ${hex(s.outPkts, 8, ' ')} ` +
    `${hex(s.inBytes, 16, ' ')} ${hex(s.outBytes, 16, ' ')}\n`
  );
}

/**
 * /proc/net/ip_vs_stats: totals since start (or the last zero) and the estimated rates
 * (conns/s, packets/s, bytes/s), every number in hex, with a blank line between the blocks.
 */
export function formatProcIpVsStats(total: StatsSnapshot, rates: StatsSnapshot): string {
  return `${STATS_TOTAL_HEADER}${statsRow(total)}\n${STATS_RATE_HEADER}${statsRow(rates)}`;
}

/** A /proc/sys integer file as read: the value in decimal and a newline (proc_dointvec). */
export function formatSysctlValue(v: number): string {
  return `${Math.trunc(v)}\n`;
}
