// Control-socket snapshots for lvsadm tests: a dest or a service with ipvsadm's defaults and
// zero counters, overridden field by field.

import { type ConnRows, newConnRows } from '../../src/conn/conn-rows';
import type { ConnSnapshot, DestSnapshot, ServiceSnapshot, StatsSnapshot } from '../../src/ctl/protocol';
import { ipToU32 } from '../../src/wire/addr';

export const ZERO: StatsSnapshot = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };

export function dest(addr: string, port: number, over: Partial<DestSnapshot> = {}): DestSnapshot {
  return {
    addr,
    port,
    fwd: 0,
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
    tunType: 0,
    tunPort: 0,
    tunFlags: 0,
    activeConns: 0,
    inactConns: 0,
    persistConns: 0,
    stats: ZERO,
    rates: ZERO,
    ...over,
  };
}

export function service(
  protocol: number,
  addr: string,
  port: number,
  dests: DestSnapshot[],
  over: Partial<ServiceSnapshot> = {},
): ServiceSnapshot {
  return {
    protocol,
    addr,
    port,
    fwmark: 0,
    sched: 'wlc',
    flags: 0,
    timeout: 0,
    netmask: '255.255.255.255',
    pe: '',
    dests,
    stats: ZERO,
    rates: ZERO,
    ...over,
  };
}

/**
 * The procfs worker's table snapshot (src/procfs/conns.ts ConnRows) holding `conns`, in order: what
 * lets the connection-file tests feed listing-shaped connections to the encoder.
 */
export function connRows(conns: readonly ConnSnapshot[]): ConnRows {
  const rows = newConnRows(conns.length);
  rows.n = conns.length;
  const names: Record<number, string[]> = {};
  conns.forEach((c, i) => {
    const list = names[c.protocol] ?? [];
    names[c.protocol] = list;
    if (!list.includes(c.state)) list.push(c.state);
    rows.protocol[i] = c.protocol;
    rows.state[i] = list.indexOf(c.state);
    rows.flags[i] = c.flags;
    rows.caddr[i] = ipToU32(c.caddr);
    rows.vaddr[i] = ipToU32(c.vaddr);
    rows.daddr[i] = ipToU32(c.daddr);
    rows.cport[i] = c.cport;
    rows.vport[i] = c.vport;
    rows.dport[i] = c.dport;
    rows.expires[i] = Math.floor(c.expires);
  });
  rows.stateNames = names;
  return rows;
}
