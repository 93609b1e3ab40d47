// Fragments through the engine: IPVS sees whole datagrams (the kernel reassembles first), so
// lvsd reassembles every fragment it reads, decides the datagram as one packet (all of its
// fragments reach the same real server) and fragments it again where it exceeds the MTU: NAT
// and bypass hand it back to the kernel through the TUN, DR sends one frame per fragment, TUN
// fragments the outer packet.

import { beforeEach, describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL } from '../../src/ip-vs';
import { TX_DEV_TUN } from '../../src/native/packet-io';
import { ipToU32 } from '../../src/wire/addr';
import { checksum } from '../../src/wire/checksum';
import { fragmentCount, writeFragment } from '../../src/wire/fragment';
import { IPV4_MF } from '../../src/wire/ipv4';
import { Reassembler } from '../../src/wire/reassembly';
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

/** A UDP datagram of `size` payload bytes (a pattern), DF clear. */
function datagram(src: string, dst: string, sport: number, dport: number, size: number, id = 0x1234): Buffer {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 7 + sport) & 0xff;
  return packet().ipv4({ src, dst, ttl: 63, id, df: false }).udp({ sport, dport }).payload(body).build();
}

/** The datagram cut into fragments of at most `mtu` bytes. */
function fragments(whole: Buffer, mtu = 1500): Buffer[] {
  const n = fragmentCount(whole, 0, mtu);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(mtu);
    out.push(b.subarray(0, writeFragment(whole, 0, mtu, i, b, 0)));
  }
  return out;
}

describe('fragments through NAT', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    const key = svcSpec(VIP, 53, { sched: 'rr', protocol: 17 });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 5353, { fwd: FWD_MASQ }));
    await d.balancer.addDest(key, destSpec(RS2, 5353, { fwd: FWD_MASQ }));
  });

  it('holds fragments (in any order) and forwards the whole 4000-byte datagram, rewritten, back through the kernel', () => {
    const whole = datagram(CLIENT, VIP, 40000, 53, 4000);
    const parts = fragments(whole);
    expect(parts).toHaveLength(3);
    expect(d.send(parts[2], parts[0])).toEqual([]);
    d.io.push(parts[1]);
    expect(d.io.sentDev).toEqual([TX_DEV_TUN]);
    const out = d.io.takeSent();
    expect(out).toHaveLength(1);
    const p = expectValidPacket(out[0]);
    expect(p).toMatchObject({ src: CLIENT, dst: RS2, sport: 40000, dport: 5353, ttl: 64 });
    expect(out[0].length).toBe(whole.length);
    expect(out[0].subarray(28).equals(whole.subarray(28))).toBe(true);
    expect(drops(d)).toEqual({});
  });

  it('sends each datagram whole to one real server, several reassembled in one batch', () => {
    const a = fragments(datagram(CLIENT, VIP, 40000, 53, 3000, 1));
    const b = fragments(datagram('192.168.0.3', VIP, 40001, 53, 3000, 1));
    const out = d.send(a[0], b[1], b[0], a[1], a[2], b[2]);
    expect(out.map((o) => [decodePacket(o).src, decodePacket(o).dst, o.length])).toEqual([
      [CLIENT, RS2, 3028],
      ['192.168.0.3', RS1, 3028],
    ]);
    for (const o of out) expectValidPacket(o);
  });

  it("reassembles a real server's fragmented reply and sends it whole from the VIP", () => {
    d.send(datagram(CLIENT, VIP, 40000, 53, 10));
    const reply = datagram(RS2, CLIENT, 5353, 40000, 4004, 0x777);
    const out = d.send(...fragments(reply));
    expect(out).toHaveLength(1);
    expect(expectValidPacket(out[0])).toMatchObject({ src: VIP, dst: CLIENT, sport: 53, dport: 40000 });
    expect(out[0].length).toBe(4032);
  });

  it('drops overlapping fragments (whole datagram), keeps a duplicate from spoiling it', () => {
    const parts = fragments(datagram(CLIENT, VIP, 40000, 53, 4000, 9));
    expect(d.send(parts[0], parts[0])).toEqual([]);
    const out = d.send(parts[1], parts[2]);
    expect(out).toHaveLength(1);
    const bad = fragments(datagram(CLIENT, VIP, 40000, 53, 4000, 10));
    // A second "middle" fragment starting 8 bytes into the first one's data.
    const overlap = Buffer.from(bad[1]);
    overlap.writeUInt16BE(IPV4_MF | ((bad[1].readUInt16BE(6) & 0x1fff) - 1), 6);
    overlap.writeUInt16BE(0, 10);
    overlap.writeUInt16BE(checksum(overlap, 0, 20), 10);
    expect(d.send(bad[0], bad[1], overlap, bad[2])).toEqual([]);
    expect(drops(d)).toEqual({ frag_duplicate: 1, frag_overlap: 1 });
  });

  it('answers a datagram that stays incomplete for 30 s with ICMP reassembly time exceeded', () => {
    const parts = fragments(datagram(CLIENT, VIP, 40000, 53, 4000, 0x99));
    d.send(parts[0], parts[2]);
    expect(d.advance(29)).toBe(0);
    expect(d.io.takeSent()).toEqual([]);
    d.advance(1);
    const [icmp] = d.io.takeSent();
    const p = expectValidPacket(icmp!);
    expect(p).toMatchObject({ src: VIP, dst: CLIENT, icmp: { type: 11, code: 1, rest: 0 } });
    // It quotes the first fragment (header and the start of its data).
    expect(p.payload.equals(parts[0].subarray(0, 548))).toBe(true);
    // A late fragment starts a new datagram, which never completes either.
    expect(d.send(parts[1])).toEqual([]);
    expect(d.engine.frags.expired).toBe(1);
  });

  it('hands a whole packet over the real server path MTU without DF to the kernel to fragment', async () => {
    d.host.paths.set(RS2, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1280, devMac: DEV_MAC });
    await d.balancer.refreshPaths();
    d.io.push(datagram(CLIENT, VIP, 40000, 53, 1400));
    expect(d.io.sentDev).toEqual([TX_DEV_TUN]);
    const out = d.io.takeSent();
    expect(expectValidPacket(out[0])).toMatchObject({ dst: RS2, ttl: 64 });
  });
});

describe("NAT replies bigger than the director's smallest link MTU", () => {
  it("go through the kernel's forward path (which fragments them or answers frag-needed), TTL kept", async () => {
    const d = director();
    const key = svcSpec(VIP, 80, { sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 80, { fwd: FWD_MASQ }));
    d.engine.replyMtu = 1280;
    const syn = packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).tcp({ sport: 40000, dport: 80, flags: 'S' }).build();
    d.send(syn);
    const reply = (size: number) =>
      packet()
        .ipv4({ src: RS1, dst: CLIENT, ttl: 64, df: true })
        .tcp({ sport: 80, dport: 40000, flags: 'A', seq: 1, ack: 1 })
        .payload(Buffer.alloc(size, 1))
        .build();
    d.io.push(reply(1240), reply(1460));
    expect(d.io.sentDev).toEqual([0, TX_DEV_TUN]);
    const [small, big] = d.io.takeSent();
    expect(expectValidPacket(small!)).toMatchObject({ src: VIP, totalLen: 1280, ttl: 64 });
    expect(expectValidPacket(big!)).toMatchObject({ src: VIP, totalLen: 1500, ttl: 65, df: true });
  });
});

describe('fragments through DR and TUN', () => {
  let d: TestDirector;
  beforeEach(() => {
    d = director();
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
  });

  async function service(fwd: number): Promise<void> {
    const key = svcSpec(VIP, 53, { sched: 'rr', protocol: 17 });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 53, { fwd }));
  }

  it('DR: the reassembled datagram leaves as MTU-sized fragments, one frame each, which reassemble to it', async () => {
    await service(FWD_DROUTE);
    const whole = datagram(CLIENT, VIP, 40000, 53, 4000);
    // Fragmented on the way to the director at a smaller MTU than its own.
    const out = d.send(...fragments(whole, 576));
    expect(out).toHaveLength(3);
    const r = new Reassembler();
    let got = Buffer.alloc(0);
    for (const f of out) {
      expect(f.subarray(0, 6).equals(RS_MAC)).toBe(true);
      const ip = f.subarray(14);
      expect(ip.length).toBeLessThanOrEqual(1500);
      expectValidPacket(ip, { partialL4: true });
      if (r.add(ip, 0, ip.length, 0) === 1) {
        got = Buffer.alloc(r.completeLen);
        r.copyComplete(got, 0);
      }
    }
    expect(got.equals(whole)).toBe(true);
  });

  it('TUN: the reassembled datagram is encapsulated and the outer packet fragmented', async () => {
    await service(FWD_TUNNEL);
    const whole = datagram(CLIENT, VIP, 40000, 53, 4000);
    // Framed for the next hop (here the real server itself, on the director's LAN).
    const frames = d.send(...fragments(whole));
    expect(frames.length).toBe(3);
    for (const f of frames) expect([f.subarray(0, 6), f.subarray(6, 12)]).toEqual([RS_MAC, DEV_MAC]);
    const out = frames.map((f) => f.subarray(14));
    const r = new Reassembler();
    let inner = Buffer.alloc(0);
    for (const o of out) {
      expect(o.length).toBeLessThanOrEqual(1500);
      expect(decodePacket(o)).toMatchObject({ src: DIRECTOR, dst: RS1, protocol: 4 });
      if (r.add(o, 0, o.length, 0) === 1) {
        const outer = Buffer.alloc(r.completeLen);
        r.copyComplete(outer, 0);
        inner = outer.subarray(20);
      }
    }
    expect(inner.equals(whole)).toBe(true);
  });

  it('TUN: while the next hop has no known MAC the outer packets go on the raw socket', async () => {
    d.host.paths.set(RS1, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC });
    await service(FWD_TUNNEL);
    d.io.push(...fragments(datagram(CLIENT, VIP, 40000, 53, 4000)));
    expect(d.io.sentDev).toEqual([0, 0, 0]);
    const out = d.io.takeSent();
    expect(out.map((o) => decodePacket(o)).every((p) => p.src === DIRECTOR && p.dst === RS1 && p.protocol === 4)).toBe(
      true,
    );
  });
});
