// The control plane's verbs: kernel errno semantics, what they ask of the host, snapshots.

import { describe, expect, it } from 'vitest';
import { EnginePlane } from '../../src/core/data-plane';
import { Engine } from '../../src/core/engine';
import { Balancer } from '../../src/ctl/balancer';
import type { DestPath } from '../../src/ctl/host-net';
import { LvsError } from '../../src/errors';
import {
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  IPPROTO_UDP,
  SVC_F_PERSISTENT,
  TUN_TYPE_GRE,
  TUN_TYPE_GUE,
} from '../../src/ip-vs';
import { MemoryIo } from '../../src/native/memory-io';
import { ipToU32 } from '../../src/wire/addr';
import { DEV_MAC, destSpec, FakeHost, RS_MAC, svcSpec } from '../helpers/engine-lab';

/** A route towards a real server through `dev`. */
function path(dev: string): DestPath {
  return { dev, src: ipToU32('172.16.0.254'), mtu: 1500, devMac: DEV_MAC };
}

function setup() {
  const host = new FakeHost();
  const b = new Balancer(new EnginePlane(new Engine(new MemoryIo())), host);
  return { b, host };
}

async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LvsError);
    return (err as LvsError).errno;
  }
  throw new Error('expected the call to fail');
}

const SVC = svcSpec('192.168.0.1', 80);

describe('Balancer', () => {
  it('takes IPv6 services and real servers, and refuses what is not forwarded yet as EAFNOSUPPORT', async () => {
    const { b } = setup();
    await b.addService(SVC);
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    const v6 = svcSpec('2001:db8::1', 80, { netmask: '128', af: 10 });
    await b.addService(v6);
    await b.addDest(v6, destSpec('2001:db8:1::10', 8080, { fwd: FWD_MASQ }));
    expect(await errnoOf(b.addService(v6))).toBe('EEXIST');
    const svc = b.snapshot().services.find((s) => s.af === 10)!;
    expect(svc).toMatchObject({ addr: '2001:db8::1', port: 80, netmask: '128' });
    expect(svc.dests.map((d) => `${d.addr} ${d.port}`)).toEqual(['2001:db8:1::10 8080']);
    const before = JSON.stringify(b.snapshot());
    // Not forwarded yet: tunnels across families.
    expect(await errnoOf(b.addDest(SVC, destSpec('2001:db8::10', 80, { fwd: FWD_TUNNEL })))).toBe('EAFNOSUPPORT');
    // Other mixes of families the kernel refuses for every method but tunnels.
    expect(await errnoOf(b.addDest(v6, destSpec('172.16.0.2', 80, { fwd: FWD_MASQ })))).toBe('EINVAL');
    expect(await errnoOf(b.addDest(v6, destSpec('fe80::1', 80, { fwd: FWD_MASQ })))).toBe('EINVAL');
    expect(await errnoOf(b.addDest(v6, destSpec('ff02::1', 80, { fwd: FWD_MASQ })))).toBe('EINVAL');
    expect(await errnoOf(b.addService(svcSpec('2001:db8::2', 80, { netmask: '129', af: 10 })))).toBe('EINVAL');
    expect(await errnoOf(b.deleteDest(SVC, destSpec('2001:db8::10', 80)))).toBe('ENOENT');
    expect(JSON.stringify(b.snapshot())).toBe(before);
    await b.deleteService(v6);
    expect(b.snapshot().services).toHaveLength(1);
  });

  it('returns the errno the kernel returns for each refused command', async () => {
    const { b } = setup();
    expect(await errnoOf(b.editService(SVC))).toBe('ESRCH');
    expect(await errnoOf(b.deleteService(SVC))).toBe('ESRCH');
    expect(await errnoOf(b.addDest(SVC, destSpec('172.16.0.1', 80)))).toBe('ESRCH');
    expect(await errnoOf(b.addService(svcSpec('192.168.0.1', 80, { sched: 'nosuch' })))).toBe('ENOENT');
    await b.addService(SVC);
    expect(await errnoOf(b.addService(SVC))).toBe('EEXIST');
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    expect(await errnoOf(b.addDest(SVC, destSpec('172.16.0.1', 80)))).toBe('EEXIST');
    expect(await errnoOf(b.editDest(SVC, destSpec('172.16.0.9', 80)))).toBe('ENOENT');
    expect(await errnoOf(b.deleteDest(SVC, { addr: '172.16.0.9', port: 80 }))).toBe('ENOENT');
    expect(await errnoOf(b.addDest(SVC, destSpec('224.0.0.1', 80)))).toBe('EINVAL');
    expect(await errnoOf(b.addDest(SVC, destSpec('172.16.0.2', 80, { uThreshold: 1, lThreshold: 2 })))).toBe('ERANGE');
    expect(() => b.zero(svcSpec('10.0.0.1', 80))).toThrow(LvsError);
    // GUE and GRE tunnels are refused until they are transmitted.
    expect(
      await errnoOf(
        b.addDest(SVC, destSpec('172.16.0.3', 80, { fwd: FWD_TUNNEL, tunType: TUN_TYPE_GUE, tunPort: 6080 })),
      ),
    ).toBe('EINVAL');
    expect(await errnoOf(b.addDest(SVC, destSpec('172.16.0.3', 80, { fwd: FWD_TUNNEL, tunType: TUN_TYPE_GRE })))).toBe(
      'EINVAL',
    );
    // Nothing the refused commands touched changed.
    const snap = b.snapshot();
    expect(snap.services).toHaveLength(1);
    expect(snap.services[0].dests.map((d) => d.addr)).toEqual(['172.16.0.1']);
  });

  it('asks the host for a VIP route once per address and a reply rule once per NAT server', async () => {
    const { b, host } = setup();
    host.paths.set('172.16.0.1', path('eth1'));
    host.paths.set('172.16.0.2', { ...path('eth1'), mac: RS_MAC });
    await b.addService(SVC);
    await b.addService(svcSpec('192.168.0.1', 53, { protocol: IPPROTO_UDP }));
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    await b.addDest(svcSpec('192.168.0.1', 53, { protocol: IPPROTO_UDP }), destSpec('172.16.0.1', 53));
    await b.addDest(SVC, destSpec('172.16.0.2', 80, { fwd: FWD_DROUTE }));
    expect(host.calls).toEqual(['addVip 192.168.0.1', 'addNat 172.16.0.1 eth1', 'addDr 172.16.0.2 eth1']);
    await b.editDest(SVC, destSpec('172.16.0.2', 80, { fwd: FWD_MASQ }));
    await b.deleteService(SVC);
    expect(host.calls.slice(3)).toEqual(['delDr 172.16.0.2', 'addNat 172.16.0.2 eth1', 'delNat 172.16.0.2']);
    await b.flush();
    expect(host.calls.slice(6)).toEqual(['delNat 172.16.0.1', 'delVip 192.168.0.1']);
    expect(b.snapshot().services).toEqual([]);
  });

  it('accepts a real server with no route yet, for every method, as the kernel does; steers it once a route appears', async () => {
    const { b, host } = setup();
    host.resolves = true;
    await b.addService(SVC);
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    await b.addDest(SVC, destSpec('172.16.0.2', 80, { fwd: FWD_DROUTE }));
    await b.addDest(SVC, destSpec('172.16.0.3', 80, { fwd: FWD_TUNNEL }));
    expect(b.snapshot().services[0].dests.map((d) => d.addr)).toEqual(['172.16.0.3', '172.16.0.2', '172.16.0.1']);
    // Nothing can be installed yet: no interface leads to them.
    expect(host.calls).toEqual(['addVip 192.168.0.1']);
    const dests = b.plane.services.list[0].dests;
    expect(dests.map((d) => d.noRoute)).toEqual([true, true, true]);

    // The network comes up: the next refresh installs the reply rule and the neighbour entry.
    host.paths.set('172.16.0.1', path('eth1'));
    host.paths.set('172.16.0.2', { ...path('eth0'), mac: RS_MAC });
    host.paths.set('172.16.0.3', path('eth1'));
    await b.refreshPaths();
    expect(host.calls.slice(1)).toEqual(['addDr 172.16.0.2 eth0', 'addNat 172.16.0.1 eth1']);
    expect(dests.map((d) => d.noRoute)).toEqual([false, false, false]);
    expect(dests[1].l2Header?.subarray(0, 6)).toEqual(RS_MAC);

    // The route to the NAT server moves to another interface: its rule follows (within the full
    // refresh period); so does the DR server's managed neighbour entry when its route moves.
    host.paths.set('172.16.0.1', path('eth2'));
    host.paths.set('172.16.0.2', { ...path('eth3'), mac: RS_MAC });
    await b.refreshPaths(Date.now() + 60_000);
    expect(host.calls.slice(3)).toEqual([
      'delDr 172.16.0.2',
      'addDr 172.16.0.2 eth3',
      'delNat 172.16.0.1',
      'addNat 172.16.0.1 eth2',
    ]);
    await b.flush();
    expect(host.calls.slice(7)).toEqual(['delDr 172.16.0.2', 'delNat 172.16.0.1', 'delVip 192.168.0.1']);
  });

  it('without routing of its own (--no-routes) knows nothing of routes and drops nothing for it', async () => {
    const { b } = setup();
    await b.addService(SVC);
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    expect(b.plane.services.list[0].dests[0].noRoute).toBe(false);
  });

  it('edits a service in place: scheduler, persistence, netmask', async () => {
    const { b } = setup();
    await b.addService(svcSpec('192.168.0.1', 80, { sched: 'rr' }));
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    await b.editService(
      svcSpec('192.168.0.1', 80, { sched: 'wrr', flags: SVC_F_PERSISTENT, timeout: 360, netmask: '255.255.255.0' }),
    );
    const s = b.snapshot().services[0];
    expect([s.sched, s.flags, s.timeout, s.netmask, s.dests.length]).toEqual([
      'wrr',
      SVC_F_PERSISTENT,
      360,
      '255.255.255.0',
      1,
    ]);
  });

  it('lists dests newest first (kernel order) with their settings and counters', async () => {
    const { b } = setup();
    await b.addService(SVC);
    await b.addDest(SVC, destSpec('172.16.0.1', 8080, { weight: 3 }));
    await b.addDest(SVC, destSpec('172.16.0.2', 80, { fwd: FWD_DROUTE, uThreshold: 10, lThreshold: 5 }));
    const snap = b.snapshot();
    expect(snap.version).toBe('1.2.1');
    expect(snap.size).toBe(4096);
    expect(snap.services[0].dests.map((d) => [d.addr, d.port, d.fwd, d.weight, d.uThreshold, d.lThreshold])).toEqual([
      ['172.16.0.2', 80, FWD_DROUTE, 1, 10, 5],
      ['172.16.0.1', 8080, FWD_MASQ, 3, 0, 0],
    ]);
  });

  it('sets timeouts with 0 meaning unchanged, and refuses out-of-range values', () => {
    const { b } = setup();
    expect(b.getTimeouts()).toEqual({ tcp: 900, tcpfin: 120, udp: 300 });
    b.setTimeouts({ tcp: 3600, tcpfin: 0, udp: 60 });
    expect(b.getTimeouts()).toEqual({ tcp: 3600, tcpfin: 120, udp: 60 });
    expect(() => b.setTimeouts({ tcp: 2678401, tcpfin: 0, udp: 0 })).toThrow(LvsError);
    expect(b.getTimeouts()).toEqual({ tcp: 3600, tcpfin: 120, udp: 60 });
  });
});

describe('announcing virtual addresses (--announce-table)', () => {
  it('announces a VIP while some service on it has a usable real server, and withdraws it after', async () => {
    const { b, host } = setup();
    const udp = svcSpec('192.168.0.1', 53, { protocol: IPPROTO_UDP });
    await b.addService(SVC);
    await b.addService(udp);
    expect(host.announcements).toEqual([]);
    await b.addDest(SVC, destSpec('172.16.0.1', 80));
    await b.addDest(udp, destSpec('172.16.0.1', 53));
    expect(host.announcements).toEqual(['192.168.0.1 on']);
    // Weight 0 on the TCP one: the UDP service still has a usable server.
    await b.editDest(SVC, destSpec('172.16.0.1', 80, { weight: 0 }));
    expect(host.announcements).toEqual(['192.168.0.1 on']);
    await b.deleteDest(udp, destSpec('172.16.0.1', 53));
    expect(host.announcements).toEqual(['192.168.0.1 on', '192.168.0.1 off']);
    await b.editDest(SVC, destSpec('172.16.0.1', 80, { weight: 1 }));
    await b.flush();
    expect(host.announcements).toEqual(['192.168.0.1 on', '192.168.0.1 off', '192.168.0.1 on', '192.168.0.1 off']);
  });
});

describe('path upkeep', () => {
  it('looks up each real-server address once a refresh, however many dests share it', async () => {
    const { b, host } = setup();
    host.resolves = true;
    for (const port of [80, 81, 82]) {
      await b.addService(svcSpec('192.168.0.1', port));
      await b.addDest(svcSpec('192.168.0.1', port), destSpec('172.16.0.1', port));
    }
    // No route yet: every refresh asks again, once for the address, not once per dest.
    host.destPathCalls = 0;
    await b.refreshPaths();
    expect(host.destPathCalls).toBe(1);
    // The route appears: all three dests take it from that one lookup.
    host.paths.set('172.16.0.1', path('eth1'));
    await b.refreshPaths();
    expect(host.destPathCalls).toBe(2);
    expect(b.plane.services.list.map((s) => s.dests[0].noRoute)).toEqual([false, false, false]);
  });
});
