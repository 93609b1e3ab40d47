// Control-socket snapshots for lvsadm tests: a dest or a service with ipvsadm's defaults and
// zero counters, overridden field by field.

import type { DestSnapshot, ServiceSnapshot, StatsSnapshot } from '../../src/ctl/protocol';

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
