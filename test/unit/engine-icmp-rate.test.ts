// The ICMP errors the director originates are limited as the kernel's icmp_send limits them
// (core/icmp-rate.ts): per client, a burst of 6 then one a second, within a global budget. Seen
// through the engine: port unreachable for new connections to a service without dests
// (ip_vs_leave), and reassembly time exceeded, which draws on the same client's bucket.

import { describe, expect, it } from 'vitest';
import { IPPROTO_UDP } from '../../src/ip-vs';
import { fragmentCount, writeFragment } from '../../src/wire/fragment';
import { director, drops, svcSpec, type TestDirector, VIP } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT_A = '192.168.0.2';
const CLIENT_B = '192.168.0.3';

function syns(src: string, n: number, firstPort = 10000): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    packet()
      .ipv4({ src, dst: VIP })
      .tcp({ sport: firstPort + i, dport: 80, flags: 'S' })
      .build(),
  );
}

/** Push the packets in batches of 64; return the ICMP errors sent, as "dst type/code". */
function errors(d: TestDirector, packets: Buffer[]): string[] {
  for (let i = 0; i < packets.length; i += 64) d.io.push(...packets.slice(i, i + 64));
  return d.io.takeSent().map((b) => {
    const p = decodePacket(b);
    return `${p.dst} ${p.icmp?.type}/${p.icmp?.code}`;
  });
}

describe('ICMP error rate limit through the engine', () => {
  it('gives a client a burst of 6 port unreachables, then one a second; another client gets its own', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    expect(errors(d, syns(CLIENT_A, 500))).toEqual(Array(6).fill(`${CLIENT_A} 3/3`));
    expect(drops(d).no_dest).toBe(500);
    // The limit holds for A however many more it sends.
    expect(errors(d, syns(CLIENT_A, 500, 20000))).toEqual([]);
    // B is another destination, with a bucket of its own.
    expect(errors(d, syns(CLIENT_B, 100))).toEqual(Array(6).fill(`${CLIENT_B} 3/3`));
    expect(d.engine.icmpRate.counts.rateLimitHost).toBe(1088);
    // A second later A has earned one more; six seconds later a whole burst again.
    d.advance(1);
    expect(errors(d, syns(CLIENT_A, 50, 30000))).toEqual([`${CLIENT_A} 3/3`]);
    d.advance(6);
    expect(errors(d, syns(CLIENT_A, 50, 40000))).toHaveLength(6);
    expect(drops(d).no_dest).toBe(1200);
  });

  it("charges reassembly time exceeded to the same client's bucket", async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 53, { sched: 'rr', protocol: IPPROTO_UDP }));
    const udp = (src: string, sport: number) =>
      packet().ipv4({ src, dst: VIP }).udp({ sport, dport: 53 }).payload('q').build();
    // A spends its burst on port unreachables.
    expect(
      errors(
        d,
        Array.from({ length: 10 }, (_, i) => udp(CLIENT_A, 5000 + i)),
      ),
    ).toHaveLength(6);
    // An incomplete datagram from each client times out 30 s later, A's bucket full again: both
    // are answered, and the time exceeded leaves A 5 of its 6.
    d.io.push(firstFragment(CLIENT_A, 1), firstFragment(CLIENT_B, 2));
    d.advance(30);
    const answered = d.io.takeSent().map((b) => `${decodePacket(b).dst} ${decodePacket(b).icmp?.type}`);
    expect(answered.sort()).toEqual([`${CLIENT_A} 11`, `${CLIENT_B} 11`]);
    expect(
      errors(
        d,
        Array.from({ length: 10 }, (_, i) => udp(CLIENT_A, 6000 + i)),
      ),
    ).toHaveLength(5);
  });
});

/** The first fragment of a 3000-byte UDP datagram to the VIP (the rest never comes). */
function firstFragment(src: string, id: number): Buffer {
  const whole = packet()
    .ipv4({ src, dst: VIP, id, df: false })
    .udp({ sport: 7000, dport: 53 })
    .payload(Buffer.alloc(3000))
    .build();
  expect(fragmentCount(whole, 0, 1500)).toBeGreaterThan(1);
  const b = Buffer.alloc(1500);
  return b.subarray(0, writeFragment(whole, 0, 1500, 0, b, 0));
}
