// The IPVS defense strategies (REFERENCE.md §1.13, update_defense_level): secure_tcp's stricter
// state table, drop_packet's rate of dropped new connections, drop_entry's sweep of half-open
// entries, and the automatic modes that follow free memory against amemthresh.

import { beforeEach, describe, expect, it } from 'vitest';
import { writeSysctl } from '../../src/ctl/sysctl';
import { FWD_DROUTE, FWD_MASQ } from '../../src/ip-vs';
import { ipToU32 } from '../../src/wire/addr';
import {
  CLIENT,
  DEV_MAC,
  DIRECTOR,
  destSpec,
  director,
  drops,
  RS_MAC,
  RS1,
  svcSpec,
  type TestDirector,
  VIP,
} from '../helpers/engine-lab';
import { packet } from '../helpers/packet-builder';
import { tcp6 } from '../helpers/packet6';

function fromClient(flags: string, sport = 40000, src = CLIENT): Buffer {
  return packet().ipv4({ src, dst: VIP }).tcp({ sport, dport: 80, flags, seq: 1, ack: 1 }).build();
}

function fromServer(flags: string, sport = 40000): Buffer {
  return packet().ipv4({ src: RS1, dst: CLIENT }).tcp({ sport: 80, dport: sport, flags, seq: 1, ack: 2 }).build();
}

function states(d: TestDirector): string[] {
  return d.connections().map((c) => `${c.state} ${c.expires}`);
}

describe('secure_tcp', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
  });

  async function service(fwd: number): Promise<void> {
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd }));
  }

  it("NAT: the client's ACK alone does not make a connection ESTABLISHED; the server's SYN-ACK first", async () => {
    await service(FWD_MASQ);
    writeSysctl(d.plane, 'secure_tcp', '3');
    d.send(fromClient('S'), fromClient('A'));
    expect(states(d)).toEqual(['SYN_RECV 60']);
    d.send(fromServer('SA'));
    expect(states(d)).toEqual(['SYNACK 120']);
    // The client's ACK is not enough either: the server's own ACK proves the handshake.
    d.send(fromClient('A'));
    expect(states(d)).toEqual(['SYNACK 120']);
    d.send(fromServer('A'));
    expect(states(d)).toEqual(['ESTABLISHED 900']);
    // Off again: the normal table.
    writeSysctl(d.plane, 'secure_tcp', '0');
    d.send(fromClient('S', 40001), fromClient('A', 40001));
    expect(states(d)[1]).toBe('ESTABLISHED 900');
  });

  it("DR: a client SYN starts in SYNACK (input only), and the handshake's ACK makes it ESTABLISHED", async () => {
    await service(FWD_DROUTE);
    await d.balancer.refreshPaths();
    writeSysctl(d.plane, 'secure_tcp', '3');
    d.send(fromClient('S'));
    expect(states(d)).toEqual(['SYNACK 120']);
    d.send(fromClient('A'));
    expect(states(d)).toEqual(['ESTABLISHED 900']);
  });

  it('follows free memory in the automatic modes: 1 <-> 2 around amemthresh', async () => {
    await service(FWD_MASQ);
    writeSysctl(d.plane, 'secure_tcp', '1');
    d.engine.defense.update(5000);
    expect([d.engine.defense.secureTcp, d.engine.defense.secureTcpOn]).toEqual([1, false]);
    d.engine.defense.update(1000);
    expect([d.engine.defense.secureTcp, d.engine.defense.secureTcpOn]).toEqual([2, true]);
    d.engine.defense.update(1024);
    expect([d.engine.defense.secureTcp, d.engine.defense.secureTcpOn]).toEqual([1, false]);
  });
});

describe('drop_packet', () => {
  it('drops one new connection in am_droprate (mode 3), and amemthresh/(amemthresh-free) in mode 2', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ }));
    writeSysctl(d.plane, 'am_droprate', '5');
    writeSysctl(d.plane, 'drop_packet', '3');
    const sent = (n: number, base: number) =>
      Array.from({ length: n }, (_, i) => d.send(fromClient('S', base + i)).length).join('');
    // The counter starts spent, as the kernel's: the first new connection goes.
    expect(sent(10, 1000)).toBe('0111101111');
    expect(drops(d)).toEqual({ defense: 2 });
    // Established connections are never dropped.
    expect(d.send(fromClient('A', 1001))).toHaveLength(1);
    writeSysctl(d.plane, 'drop_packet', '1');
    d.engine.defense.update(768); // a quarter of amemthresh missing: one in 4
    expect(d.engine.defense.dropPacket).toBe(2);
    expect(sent(8, 2000)).toBe('11101110');
    d.engine.defense.update(4096);
    expect(d.engine.defense.dropPacket).toBe(1);
    expect(sent(8, 3000)).toBe('11111111');
  });
});

describe('drop_entry', () => {
  it('sweeps half-open TCP entries away, keeps UDP and recently active ESTABLISHED ones', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ }));
    const dns = svcSpec(VIP, 53, { sched: 'rr', protocol: 17 });
    await d.balancer.addService(dns);
    await d.balancer.addDest(dns, destSpec(RS1, 53, { fwd: FWD_MASQ }));
    // 300 half-open connections from spoofed sources, one established, one UDP flow.
    for (let i = 0; i < 300; i++) d.send(fromClient('S', 1000 + i, `10.1.${i >> 8}.${i & 255}`));
    d.send(fromClient('S', 999), fromClient('A', 999));
    d.send(packet().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5000, dport: 53 }).build());
    writeSysctl(d.plane, 'drop_entry', '3');
    for (let s = 0; s < 40; s++) d.advance(1);
    // The sweep looks at a random 1/32 of the table a second: by now most half-open entries
    // (whose own 60 s are not over) are gone; the established and the UDP one are not.
    const left = d.connections().map((c) => c.state);
    expect(left).toContain('ESTABLISHED');
    expect(left).toContain('UDP');
    const halfOpen = left.filter((x) => x === 'SYN_RECV').length;
    expect(halfOpen).toBeLessThan(150);
    expect(d.engine.defense.counts.entriesDropped).toBe(300 - halfOpen);
    const dest = d.engine.services.list[0].dests[0];
    expect([dest.activeConns, dest.inactConns]).toEqual([1, halfOpen]);
  });

  it('sweeps the IPv6 table too', async () => {
    const d = director();
    const svc = svcSpec('2001:db8:1::1', 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec('2001:db8:2::10', 80, { fwd: FWD_MASQ }));
    for (let i = 0; i < 300; i++) {
      d.send(tcp6({ src: `2001:db8:9::${(i + 1).toString(16)}`, dst: '2001:db8:1::1', sport: 1000 + i, dport: 80 }));
    }
    expect(d.engine.v6.conns.count).toBe(300);
    writeSysctl(d.plane, 'drop_entry', '3');
    for (let s = 0; s < 40; s++) d.advance(1);
    const left = d.engine.v6.conns.count;
    expect(left).toBeLessThan(150);
    expect(d.engine.defense.counts.entriesDropped).toBe(300 - left);
    expect(d.engine.services.list[0].dests[0].inactConns).toBe(left);
  });
});
