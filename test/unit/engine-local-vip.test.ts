// A VIP that is also a local address of the director (ctl/intercept.ts takes only its services'
// packets, its fragments and the ICMP errors to it): what reaches the engine and is not a
// service's or a connection's goes to the local stack unchanged, through the raw socket, where
// a VIP lvsd owns alone would get a reset, an echo reply or a drop.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_MASQ, IPPROTO_UDP } from '../../src/ip-vs';
import { TX_DEV_RAW } from '../../src/native/packet-io';
import { ipToU32 } from '../../src/wire/addr';
import { fragmentCount, writeFragment } from '../../src/wire/fragment';
import { CLIENT, destSpec, director, drops, RS1, svcSpec, type TestDirector, VIP } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const syn = (dport: number) =>
  packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).tcp({ sport: 40000, dport, flags: 'S', seq: 1 }).build();

/** What the engine sent for `input`, with the device each went out on. */
function through(d: TestDirector, input: Buffer[]): { out: Buffer[]; devs: number[] } {
  d.io.push(...input);
  const devs = [...d.io.sentDev];
  return { out: d.io.takeSent(), devs };
}

describe('a virtual address that is also a local address', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    d.host.local.add(ipToU32(VIP));
    await d.balancer.addService(svcSpec(VIP, 80));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 8080, { fwd: FWD_MASQ }));
  });

  it('is known to the engine as soon as its first service is added, and follows the host', async () => {
    expect(d.engine.services.isRemoteVip(ipToU32(VIP))).toBe(false);
    d.host.local.clear();
    await d.balancer.refreshPaths();
    expect(d.engine.services.isRemoteVip(ipToU32(VIP))).toBe(true);
  });

  it("still schedules its services' packets", () => {
    const [out] = d.send(syn(80));
    expect([decodePacket(out!).dst, decodePacket(out!).dport]).toEqual([RS1, 8080]);
    expect(d.engine.conns.count).toBe(1);
  });

  it('hands the rest to the local stack unchanged: no reset, no echo reply, no drop', () => {
    const other = syn(22);
    const ping = packet().ipv4({ src: CLIENT, dst: VIP }).icmp({ type: 8, code: 0, rest: 0x00010001 }).build();
    // An error about a packet the host itself sent from the VIP (its sshd's, say).
    const quoted = packet().ipv4({ src: VIP, dst: CLIENT }).tcp({ sport: 22, dport: 50000, flags: 'A' }).build();
    const error = packet()
      .ipv4({ src: CLIENT, dst: VIP })
      .icmp({ type: 3, code: 4, rest: 1400, payload: quoted.subarray(0, 28) })
      .build();
    const gre = packet().ipv4({ src: CLIENT, dst: VIP, protocol: 47 }).payload('gre').build();
    const { out, devs } = through(d, [other, ping, error, gre]);
    expect(out.map((b) => b.toString('hex'))).toEqual([other, ping, error, gre].map((b) => b.toString('hex')));
    expect(devs).toEqual([TX_DEV_RAW, TX_DEV_RAW, TX_DEV_RAW, TX_DEV_RAW]);
    expect(drops(d)).toEqual({});
    expect(d.engine.conns.count).toBe(0);
  });

  it('hands a datagram whose fragments it took back whole, through the raw socket', () => {
    const body = Buffer.alloc(3000, 7);
    const whole = packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63, id: 9, df: false }).udp({ sport: 5000, dport: 5353 });
    const dgram = whole.payload(body).build();
    const frags: Buffer[] = [];
    for (let i = 0; i < fragmentCount(dgram, 0, 1500); i++) {
      const b = Buffer.alloc(1500);
      frags.push(b.subarray(0, writeFragment(dgram, 0, 1500, i, b, 0)));
    }
    const { out, devs } = through(d, frags);
    expect(devs).toEqual([TX_DEV_RAW]);
    const p = expectValidPacket(out[0]!);
    expect([p.src, p.dst, p.protocol, p.payload.length]).toEqual([CLIENT, VIP, IPPROTO_UDP, 3000]);
    expect(out[0]!.toString('hex')).toBe(dgram.toString('hex'));
  });

  it('relays an ICMP error about one of its connections as for any VIP', () => {
    const [fwd] = d.send(syn(80));
    // The client's router says the VIP's SYN-ACK (VIP:80 → client) was too big.
    const synAck = packet().ipv4({ src: VIP, dst: CLIENT }).tcp({ sport: 80, dport: 40000, flags: 'SA' }).build();
    const error = packet()
      .ipv4({ src: '10.0.0.9', dst: VIP })
      .icmp({ type: 3, code: 4, rest: 1400, payload: synAck.subarray(0, 28) })
      .build();
    const [relayed] = d.send(error);
    expect(decodePacket(relayed!).dst).toBe(decodePacket(fwd!).dst);
    expect(drops(d)).toEqual({});
  });
});
