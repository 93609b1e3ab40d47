// ip_vs_leave: a new connection to a service with no usable dest is answered with ICMP port
// unreachable (TCP and UDP alike), within the kernel's ICMP rate limits (engine-icmp-rate.test.ts).

import { describe, expect, it } from 'vitest';
import { FWD_MASQ, IPPROTO_UDP } from '../../src/ip-vs';
import { destSpec, director, svcSpec } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const VIP = '192.168.0.1';

describe('no dest available', () => {
  it('answers UDP with port unreachable too', async () => {
    const d = director();
    const key = svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec('172.16.0.1', 53, { fwd: FWD_MASQ, weight: 0 }));
    const q = packet().ipv4({ src: '192.168.0.2', dst: VIP }).udp({ sport: 5000, dport: 53 }).payload('q').build();
    expect(decodePacket(d.send(q)[0]).icmp).toEqual({ type: 3, code: 3, rest: 0 });
  });
});
