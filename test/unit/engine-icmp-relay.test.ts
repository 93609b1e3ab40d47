// ICMP errors from a NAT real server about a connection's packet (ip_vs_out_icmp): relayed to
// the client from the virtual address, quoting the packet the client sent to the virtual service.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, IPPROTO_UDP } from '../../src/ip-vs';
import { checksum } from '../../src/wire/checksum';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';

/** An ICMP error from `from` to `to` quoting the first 28 bytes of `quoted`. */
function icmpError(from: string, to: string, type: number, code: number, quoted: Buffer): Buffer {
  return packet()
    .ipv4({ src: from, dst: to, ttl: 64 })
    .icmp({ type, code, rest: 0, payload: quoted.subarray(0, 28) })
    .build();
}

describe('ICMP errors from a NAT real server or a router before it (ip_vs_out_icmp)', () => {
  let d: TestDirector;
  let sent: Buffer;
  let forwarded: Buffer;
  beforeEach(async () => {
    d = director();
    const key = svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 5353, { fwd: FWD_MASQ }));
    sent = packet()
      .ipv4({ src: CLIENT, dst: VIP, ttl: 63, id: 0x77 })
      .udp({ sport: 5000, dport: 53 })
      .payload('query')
      .build();
    forwarded = d.send(sent)[0];
  });

  it('relays port unreachable to the client from the VIP, quoting what the client sent', () => {
    const [out] = d.send(icmpError(RS1, CLIENT, 3, 3, forwarded));
    const o = expectValidPacket(out!);
    expect([o.src, o.dst, o.icmp]).toEqual([VIP, CLIENT, { type: 3, code: 3, rest: 0 }]);
    const quoted = o.payload;
    // The quoted IPv4 header is the client's, to the VIP, with a valid checksum (TTL as the
    // real server saw it); the quoted UDP ports are the client's and the virtual port.
    const q = decodePacket(quoted.subarray(0, 20));
    expect([q.src, q.dst]).toEqual([CLIENT, VIP]);
    expect(checksum(quoted, 0, 20)).toBe(0);
    expect(quoted.readUInt16BE(20)).toBe(5000);
    expect(quoted.readUInt16BE(22)).toBe(53);
    expect(quoted.subarray(0, 20).toString('hex').slice(24)).toBe(sent.subarray(0, 20).toString('hex').slice(24));
  });

  // A router between the director and the real server reports to the packet's source, the
  // client; passing through the director, the error is translated as the real server's own.
  const routerErrors: [string, number, number, number][] = [
    ['fragmentation needed (MTU 1280)', 3, 4, 1280],
    ['net unreachable', 3, 0, 0],
    ['host unreachable', 3, 1, 0],
    ['port unreachable', 3, 3, 0],
    ['time exceeded in transit', 11, 0, 0],
  ];
  for (const [what, type, code, mtu] of routerErrors) {
    it(`relays a router's ${what} about a packet to the real server to the client, from the VIP`, () => {
      const err = packet()
        .ipv4({ src: '10.1.0.2', dst: CLIENT, ttl: 63 })
        .icmp({ type, code, rest: mtu, payload: forwarded.subarray(0, 28) })
        .build();
      const [out] = d.send(err);
      const o = expectValidPacket(out!);
      expect([o.src, o.dst, o.icmp]).toEqual([VIP, CLIENT, { type, code, rest: mtu }]);
      const q = decodePacket(o.payload.subarray(0, 20));
      expect([q.src, q.dst]).toEqual([CLIENT, VIP]);
      expect(checksum(o.payload, 0, 20)).toBe(0);
      expect([o.payload.readUInt16BE(20), o.payload.readUInt16BE(22)]).toEqual([5000, 53]);
    });
  }

  it('drops an error about one of its connections whose ICMP checksum is wrong (bad_checksum), as the kernel does', () => {
    const err = icmpError('10.1.0.2', CLIENT, 3, 4, forwarded);
    err.writeUInt16BE(err.readUInt16BE(22) ^ 0x00ff, 22);
    expect(d.send(err)).toEqual([]);
    expect(drops(d)).toEqual({ bad_checksum: 1 });
  });

  it('passes errors about other flows, and other ICMP, unchanged', () => {
    const other = packet().ipv4({ src: CLIENT, dst: RS1 }).udp({ sport: 6000, dport: 5353 }).payload('x').build();
    const unrelated = icmpError(RS1, CLIENT, 3, 3, other);
    expect(d.send(unrelated)[0].toString('hex')).toBe(unrelated.toString('hex'));
    const echo = packet().ipv4({ src: RS1, dst: CLIENT }).icmp({ type: 8, code: 0, rest: 1 }).payload('p').build();
    expect(d.send(echo)[0].toString('hex')).toBe(echo.toString('hex'));
  });
});

describe('ICMP errors towards a virtual address (ip_vs_in_icmp)', () => {
  it('NAT: sends a router’s error about a reply on to the real server, quoting its own packet', async () => {
    const d = director();
    const key = svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 5353, { fwd: FWD_MASQ }));
    d.send(packet().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5000, dport: 53 }).payload('q').build());
    // The real server's answer, as it left the director (from the VIP), and a router's error about it.
    const reply = d.send(
      packet().ipv4({ src: RS1, dst: CLIENT, ttl: 63 }).udp({ sport: 5353, dport: 5000 }).payload('a').build(),
    )[0];
    expect(decodePacket(reply).src).toBe(VIP);
    const [out] = d.send(icmpError('10.9.9.1', VIP, 3, 4, reply));
    const o = expectValidPacket(out!);
    expect([o.src, o.dst, o.icmp?.type, o.icmp?.code]).toEqual(['10.9.9.1', RS1, 3, 4]);
    const quoted = o.payload;
    expect(decodePacket(quoted.subarray(0, 20)).src).toBe(RS1);
    expect(checksum(quoted, 0, 20)).toBe(0);
    expect([quoted.readUInt16BE(20), quoted.readUInt16BE(22)]).toEqual([5353, 5000]);
  });

  it('DR: frames the error unchanged to the real server, which owns the VIP too', async () => {
    const d = director();
    const mac = Buffer.from([2, 0, 0, 0, 0, 1]);
    d.host.paths.set(RS1, { dev: 'eth1', src: 0, mtu: 1500, devMac: Buffer.alloc(6, 0xaa), mac });
    const key = svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 53, { fwd: FWD_DROUTE }));
    d.send(packet().ipv4({ src: CLIENT, dst: VIP }).udp({ sport: 5000, dport: 53 }).payload('q').build());
    const rsReply = packet().ipv4({ src: VIP, dst: CLIENT }).udp({ sport: 53, dport: 5000 }).payload('a').build();
    const err = icmpError('10.9.9.1', VIP, 11, 0, rsReply);
    const [frame] = d.send(err);
    expect(frame!.subarray(0, 6)).toEqual(mac);
    expect(frame!.subarray(14).toString('hex')).toBe(err.toString('hex'));
  });

  it('drops an error about no connection of ours, counted as no_conn', async () => {
    const d = director();
    const stray = packet().ipv4({ src: VIP, dst: CLIENT }).udp({ sport: 53, dport: 5000 }).payload('a').build();
    await d.balancer.addService(svcSpec(VIP, 53, { protocol: IPPROTO_UDP }));
    expect(d.send(icmpError('10.9.9.1', VIP, 3, 4, stray))).toEqual([]);
    expect(drops(d)).toEqual({ no_conn: 1 });
  });
});
