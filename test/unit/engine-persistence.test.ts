// Persistence (-p, -M; REFERENCE.md §1.5) through the engine: connection templates keyed by the
// masked client address send a client's new connections to the dest its first one got, live
// while they control connections and for the persistence timeout after the last use, are
// listed as NONE entries with client port 0, and give way when their dest is deleted.

import { beforeEach, describe, expect, it } from 'vitest';
import { CONN_F_TEMPLATE, FWD_MASQ, IPPROTO_UDP, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { destSpec, director, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function syn(client: string, sport: number, dport = 80): Buffer {
  return packet().ipv4({ src: client, dst: VIP, ttl: 63 }).tcp({ sport, dport, flags: 'S' }).build();
}

/** The real server a new connection went to. */
function to(d: TestDirector, pkt: Buffer): string {
  return decodePacket(d.send(pkt)[0]).dst;
}

function templates(d: TestDirector) {
  return d
    .connections()
    .filter((c) => (c.flags & CONN_F_TEMPLATE) !== 0)
    .map((c) => `${c.state} ${c.caddr}:${c.cport} ${c.vaddr}:${c.vport} ${c.daddr}:${c.dport} ${c.expires}`);
}

describe('persistence', () => {
  let d: TestDirector;

  async function setup(port: number, timeout: number, netmask = '255.255.255.255', protocol = 6): Promise<void> {
    const key = svcSpec(VIP, port, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout, netmask, protocol });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, port, { fwd: FWD_MASQ }));
    await d.balancer.addDest(key, destSpec(RS2, port, { fwd: FWD_MASQ }));
  }

  beforeEach(() => {
    d = director();
  });

  it('sends every new connection of a client to the same dest, and lists the template', async () => {
    await setup(80, 360);
    expect([40000, 40001, 40002].map((p) => to(d, syn('192.168.1.10', p)))).toEqual([RS2, RS2, RS2]);
    // Another client is scheduled afresh (rr moves on) and gets its own template.
    expect(to(d, syn('192.168.1.20', 40000))).toBe(RS1);
    expect(templates(d)).toEqual([
      `NONE 192.168.1.10:0 ${VIP}:80 ${RS2}:80 360`,
      `NONE 192.168.1.20:0 ${VIP}:80 ${RS1}:80 360`,
    ]);
    const [rs2, rs1] = d.engine.services.list[0].dests;
    expect([rs2!.persistConns, rs2!.inactConns, rs1!.persistConns, rs1!.inactConns]).toEqual([1, 3, 1, 1]);
  });

  it('keys templates by the client address under -M: one /24 shares a dest', async () => {
    await setup(80, 360, '255.255.255.0');
    const got = ['192.168.1.10', '192.168.1.99', '192.168.2.7', '192.168.2.200'].map((c) => to(d, syn(c, 40000)));
    expect(got).toEqual([RS2, RS2, RS1, RS1]);
    expect(templates(d).map((t) => t.split(' ')[1])).toEqual(['192.168.1.0:0', '192.168.2.0:0']);
  });

  it('lives while it controls connections, then for the timeout after the last use', async () => {
    await setup(80, 30);
    to(d, syn('192.168.1.10', 40000)); // SYN_RECV: the connection lives 60 s
    d.advance(45);
    expect(templates(d)).toHaveLength(1); // past its 30 s, kept by the connection
    d.advance(20); // the connection expired at 60 s
    expect(d.engine.conns.count).toBe(1);
    d.advance(60);
    expect(templates(d)).toEqual([]);
    expect(d.engine.conns.count).toBe(0);
    expect(d.engine.services.list[0].dests.map((x) => x.persistConns)).toEqual([0, 0]);
    // The next connection is scheduled again: rr moves on to the other dest.
    expect(to(d, syn('192.168.1.10', 40001))).toBe(RS1);
  });

  it('restarts the template timer on each new connection of the client', async () => {
    await setup(80, 100);
    to(d, syn('192.168.1.10', 40000));
    d.advance(90);
    to(d, syn('192.168.1.10', 40001));
    expect(templates(d)).toEqual([`NONE 192.168.1.10:0 ${VIP}:80 ${RS2}:80 100`]);
  });

  it('gives way when its dest is deleted: the client is scheduled to a live dest', async () => {
    await setup(80, 360);
    expect(to(d, syn('192.168.1.10', 40000))).toBe(RS2);
    await d.balancer.deleteDest(svcSpec(VIP, 80), destSpec(RS2, 80));
    expect(to(d, syn('192.168.1.10', 40001))).toBe(RS1);
    expect(templates(d).filter((t) => t.includes(`${VIP}:80 `))).toEqual([
      `NONE 192.168.1.10:0 ${VIP}:80 ${RS1}:80 360`,
    ]);
  });

  it('keeps a quiescent dest (weight 0) for its clients unless expire_quiescent_template is set', async () => {
    await setup(80, 360);
    to(d, syn('192.168.1.10', 40000));
    await d.balancer.editDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ, weight: 0 }));
    expect(to(d, syn('192.168.1.10', 40001))).toBe(RS2);
    d.engine.expireQuiescentTemplate = 1;
    expect(to(d, syn('192.168.1.10', 40002))).toBe(RS1);
  });

  it('an "any port" service (port 0) matches every port and keeps the original port', async () => {
    await setup(0, 360);
    const a = decodePacket(d.send(syn('192.168.1.10', 40000, 443))[0]);
    const b = decodePacket(d.send(syn('192.168.1.10', 40001, 8443))[0]);
    expect([a.dst, a.dport, b.dst, b.dport]).toEqual([RS2, 443, RS2, 8443]);
    expect(templates(d)).toEqual([`NONE 192.168.1.10:0 ${VIP}:0 ${RS2}:0 360`]);
  });

  it('works for UDP, the template listed in state UDP', async () => {
    await setup(53, 360, '255.255.255.255', IPPROTO_UDP);
    const q = (sport: number) =>
      packet().ipv4({ src: '192.168.1.10', dst: VIP, ttl: 63 }).udp({ sport, dport: 53 }).payload('q').build();
    expect([5000, 5001].map((p) => to(d, q(p)))).toEqual([RS2, RS2]);
    expect(templates(d)).toEqual([`UDP 192.168.1.10:0 ${VIP}:53 ${RS2}:53 360`]);
  });
});
