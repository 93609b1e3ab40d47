// The IPVS settings lvsd implements, named as the kernel's /proc/sys/net/ipv4/vs/* (REFERENCE.md
// §1.13) with the kernel's defaults and accepted values. Set with `lvsd --sysctl name=value`
// at start or `lvsadm --sysctl name=value` at run time; the data path keeps each (DataPlane's
// setting()); a change to a defense setting re-decides the strategies at once.

import type { DataPlane, Setting } from '../core/data-plane';
import { InvalidError, NotFoundError } from '../errors';

export interface SysctlDef {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Where the data path keeps it. */
  readonly setting: Setting;
}

/** Setting `name`, kept as `setting`, valid in 0..max. */
function setting(name: string, field: Setting, max: number): SysctlDef {
  return { name, min: 0, max, setting: field };
}

export const SYSCTLS: readonly SysctlDef[] = [
  // 0: a SYN revives a finished connection's entry (same dest); bit 1: a SYN on TIME_WAIT or
  // CLOSE is scheduled afresh; bit 2: also on FIN_WAIT for DR/TUN connections.
  setting('conn_reuse_mode', 'connReuseMode', 3),
  // 1: a connection whose dest was deleted is expired on its next packet, which is scheduled
  // afresh if it may start a connection (else dropped); 0: its packets are dropped until it
  // times out.
  setting('expire_nodest_conn', 'expireNodestConn', 1),
  // 1: a persistence template whose dest is quiescent (weight 0) is dropped, so the client's
  // next connection is scheduled to a dest with weight.
  setting('expire_quiescent_template', 'expireQuiescentTemplate', 1),
  // 1: any TCP packet without RST to a service starts a connection, not only a SYN, in the state
  // the packet leads to from NONE (an ACK: ESTABLISHED): a flow ECMP moves to this director, or
  // one that outlived a failover without its sync copy, goes on (to the same real server with
  // mh or sh on every director, and DR or TUN). sloppy_sctp: the same for SCTP, once supported.
  setting('sloppy_tcp', 'sloppyTcp', 1),
  setting('sloppy_sctp', 'sloppySctp', 1),
  // The defense strategies, each 0 (off), 1/2 (automatic: on while free memory is below
  // amemthresh pages, 2 meaning "on now"), 3 (always on): drop_entry drops half-open and idle
  // entries at random, drop_packet one new connection in a rate, secure_tcp uses the stricter
  // TCP state table (ESTABLISHED only after the real server's SYN-ACK).
  setting('drop_entry', 'dropEntry', 3),
  setting('drop_packet', 'dropPacket', 3),
  setting('secure_tcp', 'secureTcp', 3),
  setting('amemthresh', 'amemthresh', 0x7fffffff),
  // drop_packet's rate in mode 3: one new connection in am_droprate is dropped.
  setting('am_droprate', 'amDroprate', 0x7fffffff),
  // lvs-ts's own: SYN cookies for NAT services (core/syn-proxy.ts). 0: never; 1: always; N >= 2
  // (default 1024): while a packet engine holds N or more half-open connections.
  setting('syn_proxy', 'synProxy', 0x7fffffff),
];

const BY_NAME = new Map(SYSCTLS.map((d) => [d.name, d]));

/** Every setting's current value, in definition order. */
export function readSysctls(p: DataPlane): { name: string; value: number }[] {
  return SYSCTLS.map((d) => ({ name: d.name, value: p.setting(d.setting) }));
}

/** One setting's definition; unknown names are ENOENT, as a missing /proc/sys file is. */
export function sysctlDef(name: string): SysctlDef {
  const d = BY_NAME.get(name);
  if (d === undefined) throw new NotFoundError(`no such setting: ${name}`);
  return d;
}

/** Check a setting's text (an integer in its range), as writing its /proc/sys file would. */
export function parseSysctl(name: string, text: string): { def: SysctlDef; value: number } {
  const def = sysctlDef(name);
  const value = /^\s*-?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < def.min || value > def.max) {
    throw new InvalidError(`invalid value for ${name}: ${text.trim()} (${def.min}..${def.max})`);
  }
  return { def, value };
}

/** Set a setting from its text. */
export function writeSysctl(p: DataPlane, name: string, text: string): number {
  const { def, value } = parseSysctl(name, text);
  p.setSetting(def.setting, value);
  return value;
}

/** Parse lvsd's `--sysctl name=value`. */
export function parseAssignment(arg: string): { def: SysctlDef; value: number } {
  const i = arg.indexOf('=');
  if (i <= 0) throw new InvalidError(`expected name=value, got '${arg}'`);
  return parseSysctl(arg.slice(0, i).trim(), arg.slice(i + 1));
}
