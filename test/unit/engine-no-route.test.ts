// A real server the director has no route to yet (a boot script ran lvsadm before the network
// was up, a saved table restored early): the kernel accepts the dest and drops what it cannot
// send to it. So does lvs-ts, counting those packets as no_route, until a route appears.

import { describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, type FwdMethod } from '../../src/ip-vs';
import { ipToU32 } from '../../src/wire/addr';
import { CLIENT, DEV_MAC, DIRECTOR, destSpec, director, drops, RS_MAC, RS1, svcSpec, VIP } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

function syn(sport: number): Buffer {
  return packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).tcp({ sport, dport: 80, flags: 'S' }).build();
}

const METHODS: [string, FwdMethod][] = [
  ['NAT', FWD_MASQ],
  ['DR', FWD_DROUTE],
  ['TUN', FWD_TUNNEL],
];

describe('a real server without a route', () => {
  for (const [name, fwd] of METHODS) {
    it(`${name}: is accepted, its packets are dropped as no_route, and flow once a route appears`, async () => {
      const d = director();
      d.host.resolves = true;
      await d.balancer.addService(svcSpec(VIP, 80));
      await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd }));
      expect(d.send(syn(40000))).toEqual([]);
      expect(d.send(syn(40001))).toEqual([]);
      expect(drops(d)).toEqual({ no_route: 2 });
      // The kernel counts what it scheduled, sent or not.
      expect(d.balancer.snapshot().services[0].dests[0].stats.conns).toBe(2);

      d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
      await d.balancer.refreshPaths();
      const out = d.send(syn(40002));
      expect(out).toHaveLength(1);
      // DR frames the packet, unchanged, to the server's MAC; TUN frames the encapsulated packet,
      // addressed to RS1, to the next hop's (here RS1's) MAC; NAT addresses it to RS1.
      if (fwd === FWD_DROUTE) expect(out[0].subarray(0, 6)).toEqual(RS_MAC);
      else if (fwd === FWD_TUNNEL) {
        expect(out[0].subarray(0, 6)).toEqual(RS_MAC);
        expect(decodePacket(out[0].subarray(14))).toMatchObject({ dst: RS1, protocol: 4 });
      } else expect(decodePacket(out[0]).dst).toBe(RS1);
      expect(drops(d)).toEqual({ no_route: 2 });
    });
  }
});
