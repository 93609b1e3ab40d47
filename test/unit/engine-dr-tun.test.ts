// Golden DR and TUN forwarding fixtures through the engine on an in-memory PacketIo: the exact
// Ethernet frame of a DR packet, the exact outer header of an IP-in-IP packet, ICMP
// fragmentation needed for DF packets over the path MTU, and outer fragments without DF.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL } from '../../src/ip-vs';
import { TCP_S_ESTABLISHED, TCP_S_SYN_RECV } from '../../src/proto/tcp-states';
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
  RS2,
  svcSpec,
  type TestDirector,
  VIP,
} from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

function syn(sport: number, opts: { df?: boolean; payload?: number; tos?: number; ttl?: number } = {}): Buffer {
  return packet()
    .ipv4({ src: CLIENT, dst: VIP, ttl: opts.ttl ?? 63, id: 0x4242, df: opts.df ?? true, tos: opts.tos ?? 0 })
    .tcp({ sport, dport: 80, flags: opts.payload ? 'PA' : 'S', seq: 7, ack: 0 })
    .payload(Buffer.alloc(opts.payload ?? 0, 0x5a))
    .build();
}

describe('DR (-g): frames to the real server MAC', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_DROUTE }));
  });

  it('sends the unchanged IP packet in an Ethernet frame to the RS MAC on its interface', () => {
    const input = syn(40000);
    const out = d.send(input);
    expect(out).toHaveLength(1);
    expect(d.io.frameDevs).toEqual(['', 'eth1']);
    const frame = out[0];
    expect(frame.subarray(0, 14).toString('hex')).toBe(`${RS_MAC.toString('hex')}${DEV_MAC.toString('hex')}0800`);
    expect(frame.subarray(14).toString('hex')).toBe(input.toString('hex'));
    expectValidPacket(frame.subarray(14));
    expect(d.host.calls).toContain('addDr 172.16.0.1 eth1');
  });

  it('goes out on the frame device, and follows the INPUT_ONLY state table', () => {
    d.io.push(syn(40000));
    expect(d.io.sentDev).toEqual([1]);
    const conns = d.engine.conns;
    const c = conns.lookupIn(6, ipToU32(CLIENT), 40000, ipToU32(VIP), 80);
    expect(conns.state[c]).toBe(TCP_S_SYN_RECV);
    d.send(packet().ipv4({ src: CLIENT, dst: VIP }).tcp({ sport: 40000, dport: 80, flags: 'A' }).build());
    expect(conns.state[c]).toBe(TCP_S_ESTABLISHED);
    expect(d.engine.services.list[0].dests[0].activeConns).toBe(1);
  });

  it('drops (counted) while the MAC is unresolved, and asks for it', async () => {
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC });
    await d.balancer.refreshPaths();
    expect(d.send(syn(40001))).toHaveLength(0);
    expect(drops(d).neigh_miss).toBe(1);
    const dest = d.engine.services.list[0].dests[0];
    expect(dest.pathWanted).toBe(true);
    // The neighbour entry appears (a new machine answered): the next refresh picks up its MAC.
    const newMac = Buffer.from([0x02, 0, 0, 0, 0, 0x77]);
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: newMac });
    await d.balancer.refreshPaths();
    const out = d.send(syn(40001));
    expect(out[0].subarray(0, 6)).toEqual(newMac);
  });

  it('answers a DF packet over the interface MTU with ICMP fragmentation needed', async () => {
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 576, devMac: DEV_MAC, mac: RS_MAC });
    // The interface MTU is read on the periodic full resolve.
    await d.balancer.refreshPaths(Date.now() + 31_000);
    d.send(syn(40002));
    const big = syn(40002, { payload: 1000 });
    const out = d.send(big);
    expect(out).toHaveLength(1);
    const icmp = expectValidPacket(out[0]);
    expect([icmp.src, icmp.dst, icmp.protocol]).toEqual([VIP, CLIENT, 1]);
    expect(icmp.icmp).toEqual({ type: 3, code: 4, rest: 576 });
    expect(drops(d).frag_needed).toBe(1);
  });

  it('mixes methods in one service, as IPVS allows', async () => {
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 8080, { fwd: FWD_MASQ }));
    const a = d.send(syn(41000))[0];
    const b = d.send(syn(41001))[0];
    // rr: the NAT dest (added last) first, then the DR dest.
    expect(decodePacket(a).dst).toBe(RS2);
    expect(decodePacket(a).dport).toBe(8080);
    expect(decodePacket(b.subarray(14)).dst).toBe(VIP);
  });
});

describe('TUN (-i): IP-in-IP to the real server', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_TUNNEL }));
  });

  it('prepends an outer header: protocol 4, director → RIP, inner TOS, TTL and DF, valid checksum', () => {
    const input = syn(40000, { tos: 0x28, ttl: 61 });
    const out = d.send(input);
    expect(out).toHaveLength(1);
    expect(d.io.sentDev).toEqual([]);
    const outer = expectValidPacket(out[0]);
    expect({
      src: outer.src,
      dst: outer.dst,
      protocol: outer.protocol,
      tos: outer.tos,
      ttl: outer.ttl,
      df: outer.df,
      mf: outer.mf,
      totalLen: outer.totalLen,
      headerLen: outer.headerLen,
    }).toEqual({
      src: DIRECTOR,
      dst: RS1,
      protocol: 4,
      tos: 0x28,
      ttl: 61,
      df: true,
      mf: false,
      totalLen: input.length + 20,
      headerLen: 20,
    });
    expect(out[0].subarray(20).toString('hex')).toBe(input.toString('hex'));
  });

  it('answers a DF packet whose encapsulation exceeds the path MTU with frag-needed, MTU - 20', () => {
    d.send(syn(40003));
    const big = syn(40003, { payload: 1460 }); // 1500 bytes: 1520 encapsulated
    const out = d.send(big);
    expect(out).toHaveLength(1);
    const icmp = expectValidPacket(out[0]);
    expect([icmp.src, icmp.dst, icmp.protocol, icmp.tos]).toEqual([VIP, CLIENT, 1, 0xc0]);
    expect(icmp.icmp).toEqual({ type: 3, code: 4, rest: 1480 });
    // The quoted packet starts with the original header and its TCP ports, unchanged.
    const quoted = icmp.payload;
    expect(quoted.length).toBe(576 - 28);
    expect(quoted.subarray(0, 28).toString('hex')).toBe(big.subarray(0, 28).toString('hex'));
    expect(drops(d).frag_needed).toBe(1);
  });

  it('fragments the outer datagram when the inner packet has no DF', () => {
    d.send(syn(40004));
    const big = syn(40004, { payload: 1460, df: false });
    const out = d.send(big);
    expect(out).toHaveLength(2);
    const [f1, f2] = out.map((p) => expectValidPacket(p));
    expect([f1.mf, f1.fragOffset, f1.df, f1.protocol]).toEqual([true, 0, false, 4]);
    expect([f2.mf, f2.fragOffset, f2.protocol]).toEqual([false, f1.totalLen - 20, 4]);
    expect(f1.id).toBe(f2.id);
    expect(f1.totalLen).toBeLessThanOrEqual(1500);
    expect(Buffer.concat([out[0].subarray(20), out[1].subarray(20)]).toString('hex')).toBe(big.toString('hex'));
  });

  it('uses a path MTU a router reported, until it ages out', async () => {
    const now = Date.now();
    // A router's frag-needed about a tunnel packet from us to RS1 (as lvsd's ICMP reader sees it).
    d.balancer.notePathMtu(ipToU32(RS1), ipToU32(DIRECTOR), 1400, now);
    d.send(syn(40005));
    const icmp = expectValidPacket(d.send(syn(40005, { payload: 1400 }))[0]);
    expect(icmp.icmp?.rest).toBe(1380);
    expect(decodePacket(d.send(syn(40005, { payload: 1300 }))[0]).totalLen).toBe(1360);
    // A report about another tunnel source is not ours.
    d.balancer.notePathMtu(ipToU32(RS1), ipToU32('10.9.9.9'), 600, now);
    expect(d.engine.services.list[0].dests[0].mtu).toBe(1400);
    // A full resolve keeps the learnt MTU while it holds, and drops it after ten minutes.
    await d.balancer.refreshPaths(now + 31_000);
    expect(d.engine.services.list[0].dests[0].mtu).toBe(1400);
    await d.balancer.refreshPaths(now + 601_000);
    expect(d.engine.services.list[0].dests[0].mtu).toBe(1500);
  });
});
