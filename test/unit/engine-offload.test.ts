// TUN offloads through the engine (MemoryIo with an offload slab: every packet read comes with
// its virtio_net_hdr): partial checksums updated for NAT as fold(P + ~old + new) and completed
// where the packet leaves on a raw socket, 64 KiB GSO packets written back into the TUN (NAT,
// with the TTL restored), handed on in DR frames with PACKET_VNET_HDR, and cut into complete
// segments before IP-in-IP encapsulation. Every expectation is checked against packets built
// independently by the test's packet builder.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL } from '../../src/ip-vs';
import { TX_DEV_RAW, TX_DEV_TUN } from '../../src/native/packet-io';
import { ipToU32 } from '../../src/wire/addr';
import { updatePartial32 } from '../../src/wire/checksum';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_UDP } from '../../src/wire/vnet';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';
import { mulberry32 } from '../helpers/prng';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const DIRECTOR = '10.0.0.254';
const RS_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const DEV_MAC = Buffer.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);

/** The folded (uncomplemented) pseudo-header sum of an IPv4 TCP/UDP packet: its partial checksum. */
function pseudoSum(pkt: Buffer): number {
  const ihl = (pkt[0] & 0x0f) * 4;
  let sum = pkt[9] + (pkt.readUInt16BE(2) - ihl);
  for (let i = 12; i < 20; i += 2) sum += pkt.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Offsets of the L4 checksum field from the IPv4 header. */
function csumAt(pkt: Buffer): number {
  return (pkt[0] & 0x0f) * 4 + (pkt[9] === 6 ? 16 : 6);
}

/** A 10-byte virtio_net_hdr. */
function vnet(
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): Buffer {
  const h = Buffer.alloc(10);
  h[0] = flags;
  h[1] = gsoType;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOffset, 8);
  return h;
}

/** What an offload TUN hands over for `pkt`: with a partial checksum, optionally as GSO. */
function offloaded(pkt: Buffer, gsoSize = 0): Buffer {
  const p = Buffer.from(pkt);
  const ihl = (p[0] & 0x0f) * 4;
  p.writeUInt16BE(pseudoSum(p), csumAt(p));
  const tcp = p[9] === 6;
  const hdrLen = tcp ? ihl + (p[ihl + 12] >> 4) * 4 : ihl + 8;
  const h = vnet(VNET_F_NEEDS_CSUM, gsoSize > 0 ? VNET_GSO_TCPV4 : VNET_GSO_NONE, hdrLen, gsoSize, ihl, tcp ? 16 : 6);
  return Buffer.concat([h, p]);
}

/** Push packets; returns what was sent and the txDev of each. */
function run(d: TestDirector, ...packets: Buffer[]): { out: Buffer[]; dev: number[] } {
  d.io.push(...packets);
  const dev = [...d.io.sentDev];
  return { out: d.io.takeSent(), dev };
}

/** A plain packet from an offload TUN: an all-zero header (complete checksum, no GSO). */
function plain(pkt: Buffer): Buffer {
  return Buffer.concat([Buffer.alloc(10), pkt]);
}

function tcpPacket(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  o: { flags?: string; payload?: Buffer; seq?: number; ttl?: number; id?: number } = {},
): Buffer {
  return packet()
    .ipv4({ src, dst, ttl: o.ttl ?? 63, id: o.id ?? 0x1000, df: true })
    .tcp({ sport, dport, flags: o.flags ?? 'A', seq: o.seq ?? 1000, ack: 77 })
    .payload(o.payload ?? Buffer.alloc(0))
    .build();
}

function bytes(n: number, seed = 1): Buffer {
  const next = mulberry32(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff;
  return b;
}

describe('updatePartial32', () => {
  it('keeps a partial checksum equal to the pseudo-header sum of the rewritten addresses', () => {
    const next = mulberry32(42);
    for (let i = 0; i < 2000; i++) {
      const pkt = tcpPacket(CLIENT, VIP, 1 + (next() % 65535), 80, { payload: bytes(next() % 64, i) });
      const before = pseudoSum(pkt);
      const newDst = next();
      const oldDst = pkt.readUInt32BE(16);
      pkt.writeUInt32BE(newDst, 16);
      // Both are one's-complement representations of the same sum (0 and 0xffff are equal).
      const got = updatePartial32(before, oldDst, newDst);
      expect(got % 0xffff).toBe(pseudoSum(pkt) % 0xffff);
    }
  });
});

describe('NAT with offloads', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director({ offload: true });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 8080, { fwd: FWD_MASQ }));
    d.send(plain(tcpPacket(CLIENT, VIP, 40000, 80, { flags: 'S' })));
  });

  it('completes a partial checksum before the raw socket, equal to a packet built rewritten', () => {
    const payload = bytes(300);
    const { out, dev } = run(d, offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload })));
    expect(out).toHaveLength(1);
    expect(dev).toEqual([TX_DEV_RAW]);
    const want = tcpPacket(CLIENT, RS1, 40000, 8080, { payload });
    expect(out[0].toString('hex')).toBe(want.toString('hex'));
    expect(d.engine.offload).toEqual({ partial: 1, gso: 0 });
  });

  it('completes partial UDP checksums too', async () => {
    await d.balancer.addService(svcSpec(VIP, 53, { protocol: 17, sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 53, { protocol: 17 }), destSpec(RS1, 5353, { fwd: FWD_MASQ }));
    const q = (dst: string, dport: number) =>
      packet().ipv4({ src: CLIENT, dst, ttl: 63 }).udp({ sport: 5000, dport }).payload('query').build();
    const out = d.send(offloaded(q(VIP, 53)));
    expect(out[0].toString('hex')).toBe(q(RS1, 5353).toString('hex'));
  });

  it('writes a GSO packet back into the TUN: header kept, TTL + 1, checksum left partial for the new addresses', () => {
    const payload = bytes(20000);
    const input = tcpPacket(CLIENT, VIP, 40000, 80, { payload, ttl: 62 });
    const { out, dev } = run(d, offloaded(input, 1448));
    expect(out).toHaveLength(1);
    expect(dev).toEqual([TX_DEV_TUN]);
    const hdr = out[0].subarray(0, 10);
    expect(hdr.toString('hex')).toBe(vnet(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 40, 1448, 20, 16).toString('hex'));
    const ip = out[0].subarray(10);
    // What the kernel forwards: the rewritten packet one TTL higher (its forward takes it back
    // to 62), with the partial checksum of the rewritten pseudo-header.
    const want = tcpPacket(CLIENT, RS1, 40000, 8080, { payload, ttl: 63 });
    want.writeUInt16BE(pseudoSum(want), 36);
    expect(ip.toString('hex')).toBe(want.toString('hex'));
    expectValidPacket(ip, { partialL4: true });
    expect(d.engine.offload).toEqual({ partial: 1, gso: 1 });
  });

  it('rewrites the reply direction of a GSO packet as well', () => {
    const payload = bytes(9000);
    const { out, dev } = run(d, offloaded(tcpPacket(RS1, CLIENT, 8080, 40000, { payload }), 1448));
    expect(dev).toEqual([TX_DEV_TUN]);
    const want = tcpPacket(VIP, CLIENT, 80, 40000, { payload, ttl: 64 });
    want.writeUInt16BE(pseudoSum(want), 36);
    expect(out[0].subarray(10).toString('hex')).toBe(want.toString('hex'));
  });

  it('writes a bypassed GSO packet back unchanged, without restoring the TTL (a loop still ends)', () => {
    const input = offloaded(tcpPacket('10.9.9.9', '10.8.8.8', 1234, 5678, { payload: bytes(5000) }), 1448);
    const { out, dev } = run(d, input);
    expect(dev).toEqual([TX_DEV_TUN]);
    expect(out[0].toString('hex')).toBe(input.toString('hex'));
  });

  it('drops what it cannot honour as bad_offload: UDP GSO, GSO without a partial checksum, odd offsets', () => {
    const pkt = tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(3000) });
    const udpGso = offloaded(pkt, 1448);
    udpGso[1] = VNET_GSO_UDP;
    const noCsum = offloaded(pkt, 1448);
    noCsum[0] = 0;
    const badStart = offloaded(pkt);
    badStart.writeUInt16LE(24, 6);
    const badOffset = offloaded(pkt);
    badOffset.writeUInt16LE(6, 8);
    const pastEnd = offloaded(packet().ipv4({ src: CLIENT, dst: '10.8.8.8', protocol: 47 }).payload(bytes(8)).build());
    pastEnd.writeUInt16LE(20, 6);
    pastEnd.writeUInt16LE(16, 8);
    expect(d.send(udpGso, noCsum, badStart, badOffset, pastEnd)).toEqual([]);
    expect(drops(d)).toEqual({ bad_offload: 5 });
  });
});

describe('NAT path MTU (ip_vs_nat_xmit), with and without GSO', () => {
  it('answers a DF packet over the route MTU to the real server with frag-needed quoting the packet sent to the VIP', async () => {
    const d = director({ offload: true });
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1400, devMac: DEV_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 8080, { fwd: FWD_MASQ }));
    await d.balancer.refreshPaths();
    d.send(plain(tcpPacket(CLIENT, VIP, 40000, 80, { flags: 'S' })));
    const big = tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(1400) }); // 1440 bytes
    const [icmp] = d.send(plain(big));
    const e = expectValidPacket(icmp!);
    expect([e.src, e.dst, e.icmp]).toEqual([VIP, CLIENT, { type: 3, code: 4, rest: 1400 }]);
    expect(e.payload.subarray(0, 40).toString('hex')).toBe(big.subarray(0, 40).toString('hex'));
    // A GSO packet is measured by its segments: 1448-byte ones do not fit, 1360-byte ones do.
    expect(
      decodePacket(d.send(offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(9000) }), 1448))[0]).icmp,
    ).toEqual({ type: 3, code: 4, rest: 1400 });
    const { dev } = run(d, offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(9000) }), 1360));
    expect(dev).toEqual([TX_DEV_TUN]);
    expect(drops(d)).toEqual({ frag_needed: 2 });
  });
});

describe('DR with offloads: frames start with a virtio_net_hdr for PACKET_VNET_HDR', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director({ offload: true });
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_DROUTE }));
    d.send(plain(tcpPacket(CLIENT, VIP, 40000, 80, { flags: 'S' })));
  });

  const eth = `${RS_MAC.toString('hex')}${DEV_MAC.toString('hex')}0800`;

  it('hands a GSO packet on whole: offsets moved by the Ethernet header, IP packet untouched', () => {
    const input = offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(30000) }), 1448);
    const { out, dev } = run(d, input);
    expect(dev).toEqual([1]);
    const f = out[0];
    expect(f.subarray(0, 10).toString('hex')).toBe(vnet(1, VNET_GSO_TCPV4, 14 + 40, 1448, 34, 16).toString('hex'));
    expect(f.subarray(10, 24).toString('hex')).toBe(eth);
    expect(f.subarray(24).toString('hex')).toBe(input.subarray(10).toString('hex'));
  });

  it('leaves a partial checksum partial, and sends plain packets with an all-zero header', () => {
    const partial = offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(100) }));
    const whole = tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(100, 2) });
    const [a, b] = d.send(partial, plain(whole));
    expect(a.subarray(0, 10).toString('hex')).toBe(vnet(1, 0, 0, 0, 34, 16).toString('hex'));
    expect(a.subarray(24).toString('hex')).toBe(partial.subarray(10).toString('hex'));
    expect(b.subarray(0, 10).toString('hex')).toBe('00'.repeat(10));
    expect(b.subarray(24).toString('hex')).toBe(whole.toString('hex'));
  });

  it('checks a GSO packet against the MTU by its segment size', async () => {
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1400, devMac: DEV_MAC, mac: RS_MAC });
    await d.balancer.refreshPaths(Date.now() + 31_000);
    const input = offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(30000) }), 1448);
    const [icmp] = d.send(input);
    expect(expectValidPacket(icmp).icmp).toEqual({ type: 3, code: 4, rest: 1400 });
    expect(d.send(offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(30000) }), 1360))).toHaveLength(1);
    expect(drops(d)).toEqual({ frag_needed: 1 });
  });
});

describe('TUN with offloads: GSO packets segmented in user space, then encapsulated', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director({ offload: true });
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_TUNNEL }));
    d.send(plain(tcpPacket(CLIENT, VIP, 40000, 80, { flags: 'S' })));
  });

  /** Segments (inner packets) of a TUN-mode output, each checked as a valid IPIP packet. */
  function inner(out: Buffer[]): Buffer[] {
    return out.map((p) => {
      const o = expectValidPacket(p);
      expect([o.src, o.dst, o.protocol, o.df]).toEqual([DIRECTOR, RS1, 4, true]);
      return p.subarray(20);
    });
  }

  it.each([
    [20000, 1400],
    [1400, 1400],
    [1401, 1400],
    [65000, 536], // 122 segments: more than the batch has gen slots, so they go out in several sends
  ])('cuts %i payload bytes into %i-byte segments that are each a valid packet, in order', (size, mss) => {
    const payload = bytes(size, size);
    const input = tcpPacket(CLIENT, VIP, 40000, 80, { payload, flags: 'FPA', seq: 0xfffff000, id: 0xfffe });
    const segs = inner(d.send(offloaded(input, mss)));
    expect(segs).toHaveLength(Math.ceil(size / mss));
    segs.forEach((s, k) => {
      const p = expectValidPacket(s);
      const last = k === segs.length - 1;
      expect(p.totalLen).toBe(40 + (last ? size - k * mss : mss));
      expect(p.id).toBe((0xfffe + k) & 0xffff);
      expect([p.ttl, p.df, p.src, p.dst]).toEqual([63, true, CLIENT, VIP]);
      expect(p.seq).toBe((0xfffff000 + k * mss) >>> 0);
      expect(p.flags).toBe(last ? 'FPA' : 'A');
    });
    expect(Buffer.concat(segs.map((s) => s.subarray(40))).equals(payload)).toBe(true);
  });

  it('keeps TCP options in every segment and CWR only in the first', () => {
    const options = Buffer.from('0101080a0000000100000002', 'hex'); // NOP NOP timestamps
    const payload = bytes(3000);
    const input = packet()
      .ipv4({ src: CLIENT, dst: VIP, ttl: 63, df: true })
      .tcp({ sport: 40000, dport: 80, flags: 'A', seq: 5, options })
      .payload(payload)
      .build();
    input[33] |= 0x80; // CWR
    input.writeUInt16BE(0, 36);
    const segs = inner(d.send(offloaded(input, 1000)));
    expect(segs).toHaveLength(3);
    segs.forEach((s, k) => {
      const p = expectValidPacket(s);
      expect(s.subarray(40, 52).toString('hex')).toBe(options.toString('hex'));
      expect((s[33] & 0x80) !== 0).toBe(k === 0);
      expect(p.payload.length).toBe(1000);
    });
  });

  it('completes a partial checksum of a packet it does not segment', () => {
    const payload = bytes(500);
    const [out] = d.send(offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload })));
    expect(out.subarray(20).toString('hex')).toBe(tcpPacket(CLIENT, VIP, 40000, 80, { payload }).toString('hex'));
  });

  it('answers a GSO packet whose segments would not fit the tunnel with frag-needed (MTU - 20)', () => {
    const [icmp] = d.send(offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(20000) }), 1460));
    expect(expectValidPacket(icmp).icmp).toEqual({ type: 3, code: 4, rest: 1480 });
    expect(drops(d)).toEqual({ frag_needed: 1 });
  });
});

describe('TUN with offloads, the kernel segmenting IP-in-IP (ipipGso: native/src/encap.c attached)', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director({ offload: true });
    d.engine.ipipGso = true;
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_TUNNEL }));
    d.send(plain(tcpPacket(CLIENT, VIP, 40000, 80, { flags: 'S' })));
  });

  it('writes a GSO packet back into the TUN whole, behind its outer header, the virtio_net_hdr moved with it', () => {
    const input = offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(20000) }), 1400);
    const { out, dev } = run(d, input);
    expect(dev).toEqual([TX_DEV_TUN]);
    const [p] = out;
    // NEEDS_CSUM, TCPV4, header length (outer + inner IPv4 + TCP), the same segment size, the
    // checksum's start 20 bytes further.
    expect(p.subarray(0, 10)).toEqual(vnet(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 60, 1400, 40, 16));
    const outer = expectValidPacket(p.subarray(10), { partialL4: true });
    // TTL one above the inner packet's: the kernel's forward takes it off again.
    expect(outer).toMatchObject({ src: DIRECTOR, dst: RS1, protocol: 4, df: true, ttl: 64, totalLen: 20 + 20040 });
    // The inner packet untouched, its checksum still partial.
    expect(p.subarray(30).equals(input.subarray(10))).toBe(true);
    expect(drops(d)).toEqual({});
  });

  it('still segments itself what would not fit 64 KiB behind an outer header, and encapsulates plain packets as before', () => {
    const big = offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(65480) }), 1400);
    const segs = run(d, big);
    expect(segs.out.length).toBe(Math.ceil(65480 / 1400));
    expect(segs.dev.every((v) => v !== TX_DEV_TUN)).toBe(true);
    const small = run(d, offloaded(tcpPacket(CLIENT, VIP, 40000, 80, { payload: bytes(500) })));
    expect(small.dev).not.toContain(TX_DEV_TUN);
    expect(expectValidPacket(small.out[0].subarray(20))).toMatchObject({ src: CLIENT, dst: VIP });
  });
});
