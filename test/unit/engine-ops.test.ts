// One-packet scheduling (-o/--ops, REFERENCE.md §1.6): every UDP datagram of a service with the
// flag is scheduled on its own and leaves no connection behind; without it a client's datagrams
// from one source port stick to one dest for the UDP timeout.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_MASQ, IPPROTO_UDP, SVC_F_ONEPACKET } from '../../src/ip-vs';
import { destSpec, director, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function datagram(src: string, sport: number, dst: string, dport: number): Buffer {
  return packet().ipv4({ src, dst, ttl: 63 }).udp({ sport, dport }).payload('q').build();
}

async function udpService(d: TestDirector, flags: number): Promise<void> {
  const key = svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr', flags });
  await d.balancer.addService(key);
  await d.balancer.addDest(key, destSpec(RS1, 53, { fwd: FWD_MASQ }));
  await d.balancer.addDest(key, destSpec(RS2, 53, { fwd: FWD_MASQ }));
}

describe('one-packet scheduling', () => {
  let d: TestDirector;
  beforeEach(() => {
    d = director();
  });

  it('schedules each datagram of one client port on its own and keeps no connection', async () => {
    await udpService(d, SVC_F_ONEPACKET);
    const dsts = [0, 1, 2, 3].map(() => decodePacket(d.send(datagram(CLIENT, 5000, VIP, 53))[0]).dst);
    expect(dsts).toEqual([RS2, RS1, RS2, RS1]);
    expect(d.engine.conns.count).toBe(0);
    const svc = d.engine.services.list[0];
    expect(svc.stats.conns).toBe(4);
    expect(svc.stats.inPkts).toBe(4);
    expect(svc.dests.map((x) => [x.activeConns, x.inactConns, x.stats.conns])).toEqual([
      [0, 0, 2],
      [0, 0, 2],
    ]);
  });

  it('finds no connection for a reply, which passes unchanged (as in IPVS)', async () => {
    await udpService(d, SVC_F_ONEPACKET);
    d.send(datagram(CLIENT, 5000, VIP, 53));
    const reply = datagram(RS2, 53, CLIENT, 5000);
    expect(d.send(reply)[0].toString('hex')).toBe(reply.toString('hex'));
  });

  it('without --ops keeps the client on one dest', async () => {
    await udpService(d, 0);
    const dsts = [0, 1, 2].map(() => decodePacket(d.send(datagram(CLIENT, 5000, VIP, 53))[0]).dst);
    expect(dsts).toEqual([RS2, RS2, RS2]);
    expect(d.engine.conns.count).toBe(1);
  });
});
