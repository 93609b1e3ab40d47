// Firewall-mark services (-f N) through the engine: packets read from the input device of mark N
// (MemoryIo.pushMarked) find the service by their mark before any <protocol, address, port>
// lookup, a dest with port 0 keeps the packet's port, replies are rewritten back, and adding or
// deleting the service opens or closes the mark's device and asks the host to route into it.

import { beforeEach, describe, expect, it } from 'vitest';
import { CONN_F_TEMPLATE, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { destSpec, director, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const MARKED = '10.9.9.9';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function tcp(src: string, sport: number, dst: string, dport: number, flags: string): Buffer {
  return packet().ipv4({ src, dst, ttl: 63 }).tcp({ sport, dport, flags }).build();
}

function marked(d: TestDirector, mark: number, pkt: Buffer): Buffer[] {
  d.io.pushMarked(mark, pkt);
  return d.io.takeSent();
}

describe('firewall-mark services', () => {
  let d: TestDirector;
  const key = svcSpec('0.0.0.0', 0, { fwmark: 7, protocol: 0, sched: 'rr' });

  beforeEach(async () => {
    d = director();
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 80, { fwd: FWD_MASQ }));
    await d.balancer.addDest(key, destSpec(RS2, 0, { fwd: FWD_MASQ }));
  });

  it('opens the mark’s input device and has the host route into it; closes it on delete', async () => {
    expect([...d.io.markDevs]).toEqual([7]);
    expect(d.host.calls).toContain('addFwmark 7 mark7');
    await d.balancer.deleteService(key);
    expect([...d.io.markDevs]).toEqual([]);
    expect(d.host.calls).toContain('delFwmark 7');
  });

  it('balances marked packets; a dest with port 0 keeps the original port', () => {
    const a = decodePacket(marked(d, 7, tcp(CLIENT, 40000, MARKED, 8080, 'S'))[0]);
    const b = decodePacket(marked(d, 7, tcp(CLIENT, 40001, MARKED, 8080, 'S'))[0]);
    expect([a.dst, a.dport, b.dst, b.dport]).toEqual([RS2, 8080, RS1, 80]);
    // The same address without the mark is no virtual service: forwarded unchanged.
    const plain = tcp(CLIENT, 40002, MARKED, 8080, 'S');
    expect(d.send(plain)[0].toString('hex')).toBe(plain.toString('hex'));
    // Another mark finds no service either.
    expect(marked(d, 8, plain)[0].toString('hex')).toBe(plain.toString('hex'));
  });

  it('follows the connection both ways, the reply rewritten to the marked address', () => {
    marked(d, 7, tcp(CLIENT, 40000, MARKED, 8080, 'S'));
    const reply = d.send(tcp(RS2, 8080, CLIENT, 40000, 'SA'))[0];
    const r = expectValidPacket(reply);
    expect([r.src, r.sport, r.dst, r.dport]).toEqual([MARKED, 8080, CLIENT, 40000]);
    expect(decodePacket(marked(d, 7, tcp(CLIENT, 40000, MARKED, 8080, 'A'))[0]).dst).toBe(RS2);
  });

  it('keys persistence templates by the mark (<IPPROTO_IP, client, 0, mark, 0>)', async () => {
    await d.balancer.editService({ ...key, flags: SVC_F_PERSISTENT, timeout: 300 });
    const to = (port: number, sport: number) =>
      decodePacket(marked(d, 7, tcp(CLIENT, sport, MARKED, port, 'S'))[0]).dst;
    expect([to(8080, 40000), to(443, 40001), to(22, 40002)]).toEqual([RS2, RS2, RS2]);
    const t = d.connections().filter((c) => c.flags & CONN_F_TEMPLATE);
    expect(t.map((c) => [c.protocol, c.state, c.caddr, c.cport, c.vaddr, c.vport, c.daddr, c.dport])).toEqual([
      [0, 'NONE', CLIENT, 0, '0.0.0.7', 0, RS2, 0],
    ]);
  });
});
