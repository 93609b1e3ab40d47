// The engine's IPv6 path under malformed and hostile packets: a deterministic fuzz run in the
// manner of engine-fuzz.test.ts. One lab carries every IPv6 forwarding method (NAT TCP with a
// weight-0 dest, a persistent NAT UDP service by /64, DR with a resolved and an unresolved MAC,
// IPv6-in-IPv6 with a narrow path, a port-0 service), once without and once with an offload
// TUN's virtio_net_hdr. It is fed seeded golden packets (connections from a small pool of
// clients and ports, both directions, extension headers, fragments, ICMPv6 echo and errors
// quoting what the engine sent, multicast) and their mutations. The oracle: the engine never
// throws; every output is a whole IPv6 packet, an Ethernet frame carrying one, or the IPv6-in-
// IPv6 packet of one; an output's L4 checksum is wrong only where its input's was (checksums are
// inherited, never introduced); and once everything has expired the IPv6 table is empty and
// every dest's counters are zero. FUZZ6_PACKETS=<n> runs n packets per lab; FUZZ6_SEED=<n>
// changes the seed.

import { describe, expect, it } from 'vitest';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, IPPROTO_UDP, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { ipv6ToBytes, ipv6Words } from '../../src/wire/addr6';
import { checksum, sum16 } from '../../src/wire/checksum';
import { VNET_F_NEEDS_CSUM } from '../../src/wire/vnet';
import { DEV_MAC, destSpec, director, drops, RS_MAC, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { Rng } from '../helpers/fuzz-gen';
import { fragment6, icmp6, tcp6, udp6 } from '../helpers/packet6';

const PACKETS = Number(process.env.FUZZ6_PACKETS ?? 12_000);
const SEED = Number(process.env.FUZZ6_SEED ?? 0x1ab5_0020);

const VIP = '2001:db8:1::1';
const VIP0 = '2001:db8:1::2';
const CLIENTS = ['2001:db8::2', '2001:db8::3', '2001:db8:0:1::9', '2001:db8:7::1'];
const NAT_A = '2001:db8:2::10';
const NAT_B = '2001:db8:2::11';
const DR_OK = '2001:db8:3::10';
const DR_NOMAC = '2001:db8:3::11';
const TUN = '2001:db8:4::10';
const EXT_HEADERS = [0, 43, 60, 44, 51];
/** The director's source address towards the tunnel real server. */
const TUN_SRC_TEXT = '2001:db8::fe';
const TUN_SRC = Buffer.from(ipv6ToBytes(TUN_SRC_TEXT));

async function lab(offload: boolean): Promise<TestDirector> {
  const d = director({ offload });
  const path = { dev: 'eth1', src: 0, mtu: 1500, devMac: DEV_MAC };
  d.host.paths.set(NAT_A, path);
  d.host.paths.set(DR_OK, { ...path, mac: RS_MAC });
  d.host.paths.set(DR_NOMAC, path);
  d.host.paths.set(TUN, { ...path, mtu: 1380, src6: ipv6Words(TUN_SRC_TEXT)! });
  const web = svcSpec(VIP, 80, { sched: 'wrr', netmask: '128', af: 10 });
  await d.balancer.addService(web);
  await d.balancer.addDest(web, destSpec(NAT_A, 8080, { fwd: FWD_MASQ, weight: 3 }));
  await d.balancer.addDest(web, destSpec(NAT_B, 8080, { fwd: FWD_MASQ, weight: 0 }));
  await d.balancer.addDest(web, destSpec(DR_OK, 80, { fwd: FWD_DROUTE }));
  await d.balancer.addDest(web, destSpec(DR_NOMAC, 80, { fwd: FWD_DROUTE }));
  await d.balancer.addDest(web, destSpec(TUN, 80, { fwd: FWD_TUNNEL }));
  const dns = svcSpec(VIP, 53, {
    protocol: IPPROTO_UDP,
    sched: 'rr',
    flags: SVC_F_PERSISTENT,
    timeout: 60,
    netmask: '64',
    af: 10,
  });
  await d.balancer.addService(dns);
  await d.balancer.addDest(dns, destSpec(NAT_A, 53, { fwd: FWD_MASQ }));
  await d.balancer.addDest(dns, destSpec(TUN, 53, { fwd: FWD_TUNNEL }));
  const any = svcSpec(VIP0, 0, { sched: 'rr', netmask: '128', af: 10 });
  await d.balancer.addService(any);
  await d.balancer.addDest(any, destSpec(NAT_A, 0, { fwd: FWD_MASQ }));
  return d;
}

/** Insert an extension header of type `type` right after the fixed header of `p`. */
function withExtension(r: Rng, p: Buffer, type: number): Buffer {
  const next = p[6];
  const ext = type === 44 ? Buffer.alloc(8) : Buffer.alloc(type === 51 ? 16 : 8 * r.range(1, 3));
  ext[0] = next;
  if (type === 44) ext.writeUInt32BE(r.u32(), 4);
  else ext[1] = type === 51 ? ext.length / 4 - 2 : ext.length / 8 - 1;
  const out = Buffer.concat([p.subarray(0, 40), ext, p.subarray(40)]);
  out[6] = type;
  out.writeUInt16BE(out.length - 40, 4);
  return out;
}

/** Fragments of a datagram cut earlier, still to be sent (in a shuffled order). */
const pending: Buffer[] = [];

/** A golden packet: valid, from the traffic a real director sees. `sent`: what the engine sent lately. */
function golden(r: Rng, sent: Buffer[]): Buffer {
  if (pending.length > 0 && r.chance(0.8)) return pending.shift()!;
  if (r.chance(0.03)) {
    // A big datagram in fragments, both directions, sometimes with one lost.
    const toVip = r.chance(0.6);
    const big = udp6({
      src: toVip ? r.pick(CLIENTS) : NAT_A,
      dst: toVip ? VIP : r.pick(CLIENTS),
      sport: toVip ? 40000 + r.int(6) : 53,
      dport: toVip ? 53 : 40000 + r.int(6),
      payload: r.bytes(r.range(1300, 5000)),
    });
    const frags = r.shuffle(fragment6(big, r.pick([1280, 1400, 1500]), r.u32()));
    if (frags.length > 1 && r.chance(0.2)) frags.pop();
    pending.push(...frags);
    return pending.shift()!;
  }
  const client = r.pick(CLIENTS);
  const sport = 40000 + r.int(6);
  const flags = r.pick(['S', 'S', 'A', 'PA', 'FA', 'R', 'SA']);
  const payload = r.chance(0.3) ? r.bytes(r.pick([1, 100, 1300, 1400])) : undefined;
  switch (r.int(10)) {
    case 0:
    case 1:
    case 2:
      return tcp6({
        src: client,
        dst: r.chance(0.8) ? VIP : VIP0,
        sport,
        dport: r.pick([80, 81, 8080]),
        flags,
        payload,
      });
    case 3:
      // A real server's reply.
      return tcp6({
        src: r.pick([NAT_A, NAT_B]),
        dst: client,
        sport: r.pick([8080, 53, 20]),
        dport: sport,
        flags,
        payload,
      });
    case 4:
      return udp6({ src: client, dst: VIP, sport, dport: 53, payload });
    case 5:
      return udp6({ src: NAT_A, dst: client, sport: 53, dport: sport, payload });
    case 6:
      return icmp6({ src: client, dst: VIP, type: 128, rest: r.u32(), payload });
    case 7: {
      // An error quoting something the engine sent: to the VIP, or from a router to the client.
      const quoted = sent.length > 0 ? r.pick(sent) : tcp6({ src: VIP, dst: client, sport: 80, dport: sport });
      const ip = quoted[0] >>> 4 === 6 ? quoted : quoted.subarray(14);
      const toVip = r.chance(0.5);
      return icmp6({
        src: toVip ? client : '2001:db8:f::1',
        dst: toVip ? VIP : client,
        type: r.pick([1, 2, 3, 4]),
        rest: r.pick([1280, 1300, 1400, 0]),
        payload: ip.subarray(0, r.pick([ip.length, 48, 44, 40])),
      });
    }
    case 8:
      return withExtension(r, tcp6({ src: client, dst: VIP, sport, dport: 80, flags }), r.pick(EXT_HEADERS));
    default:
      return r.chance(0.5)
        ? icmp6({ src: '::', dst: 'ff02::16', type: 143 })
        : udp6({ src: client, dst: '2001:db8:9::1', sport, dport: 9 });
  }
}

function mutate(r: Rng, golden: Buffer): Buffer {
  const b = Buffer.from(golden);
  switch (r.int(7)) {
    case 0:
      return b.subarray(0, r.int(b.length));
    case 1:
      b.writeUInt16BE(r.chance(0.5) ? r.int(0x10000) : Math.max(0, b.length - 40 + r.range(-8, 8)), 4);
      return b;
    case 2:
      b[6] = r.chance(0.5) ? r.int(256) : r.pick(EXT_HEADERS);
      return b;
    case 3: {
      for (let i = r.range(1, 4); i > 0; i--) {
        const at = r.chance(0.7) ? r.int(Math.min(b.length, 80)) : r.int(b.length);
        b[at] ^= 1 << r.int(8);
      }
      return b;
    }
    case 4: {
      // A chain of extension headers past the walk's limit, or one running off the end.
      let p: Buffer = b;
      for (let i = r.range(1, 18); i > 0 && p.length < 1400; i--) p = withExtension(r, p, r.pick([0, 60, 43]));
      return r.chance(0.3) ? p.subarray(0, p.length - r.range(1, 20)) : p;
    }
    case 5:
      return Buffer.concat([b, r.bytes(r.range(1, 32))]);
    default:
      b[0] = (b[0] & 0x0f) | (r.pick([4, 6, 6, 0, 15]) << 4);
      return b;
  }
}

/** The L4 checksum of the IPv6 packet b (whole, no fragment) verifies; null: not checkable. */
function l4ChecksumOk(b: Buffer): boolean | null {
  if (b.length < 40 || b[0] >>> 4 !== 6) return null;
  const end = 40 + b.readUInt16BE(4);
  if (end > b.length) return null;
  let next = b[6];
  let at = 40;
  while (next === 0 || next === 43 || next === 60 || next === 44) {
    if (at + 8 > end) return null;
    // An atomic fragment (offset 0, no more) is a whole packet; any other is not checkable alone.
    if (next === 44 && (b.readUInt16BE(at + 2) & 0xfff9) !== 0) return null;
    const len = next === 44 ? 8 : (b[at + 1] + 1) * 8;
    next = b[at];
    at += len;
  }
  if (at > end || (next !== 6 && next !== 17 && next !== 58)) return null;
  const len = end - at;
  const pseudo = Buffer.alloc(40);
  b.copy(pseudo, 0, 8, 40);
  pseudo.writeUInt32BE(len, 32);
  pseudo[39] = next;
  return checksum(b, at, len, sum16(pseudo, 0, 40)) === 0;
}

/**
 * What is wrong with output `o` (after its virtio_net_hdr), given its input `i`; null: nothing.
 * `partial`: the input or the output carries a partial checksum (offload), which only the
 * device completes: its field is no full checksum to judge.
 */
function judge(o: Buffer, i: Buffer, partial: boolean): string | null {
  // Forwarded unchanged (bypass): whatever it is, it is what came.
  if (o.equals(i)) return null;
  let ip = o;
  if (o.length >= 14 && o[0] >>> 4 !== 6) {
    if (o.readUInt16BE(12) !== 0x86dd) return 'a frame that is not IPv6';
    ip = o.subarray(14);
  }
  if (ip.length < 40 || ip[0] >>> 4 !== 6) return 'not an IPv6 packet';
  if (40 + ip.readUInt16BE(4) !== ip.length) return 'payload length differs from the bytes sent';
  // A tunnel packet of ours (a foreign next header 41 is forwarded as it came).
  if (ip[6] === 41 && ip.subarray(8, 24).equals(TUN_SRC)) {
    const inner = ip.subarray(40);
    if (inner.length < 40 || 40 + inner.readUInt16BE(4) !== inner.length)
      return 'a tunnel packet whose inner packet is cut';
    ip = inner;
  }
  const ok = l4ChecksumOk(ip);
  // Checksums are inherited (a rewrite keeps a wrong one wrong), never introduced. Output made
  // from a reassembled datagram (the input a fragment) inherits from fragments not at hand.
  const fromFragments = i.length >= 48 && i[6] === 44 && (i.readUInt16BE(42) & 0xfff9) !== 0;
  if (!partial && !fromFragments && ok === false && l4ChecksumOk(i) !== false && ip[6] !== 58) {
    return 'an L4 checksum the input did not have wrong';
  }
  return null;
}

describe('engine fuzz: hostile IPv6', () => {
  for (const offload of [false, true]) {
    it(`${offload ? 'offload' : 'plain'} TUN: legal output, checksums never broken, tables empty at the end`, async () => {
      const d = await lab(offload);
      const r = new Rng(SEED + (offload ? 1 : 0));
      pending.length = 0;
      const sent: Buffer[] = [];
      const findings: string[] = [];
      for (let n = 0; n < PACKETS; n++) {
        const g = golden(r, sent);
        const ip = r.chance(0.35) ? mutate(r, g) : g;
        let input: Buffer = ip;
        if (offload) {
          // A virtio_net_hdr: mostly none; now and then a partial checksum (honest or not).
          const h = Buffer.alloc(10);
          if (r.chance(0.2)) {
            h[0] = VNET_F_NEEDS_CSUM;
            h.writeUInt16LE(r.chance(0.8) ? 40 : r.int(80), 6);
            h.writeUInt16LE(r.pick([16, 6, 2, r.int(30)]), 8);
          }
          if (r.chance(0.02)) h[1] = r.pick([1, 4, 3]);
          input = Buffer.concat([h, ip]);
        }
        let outs: Buffer[];
        try {
          outs = d.send(input);
        } catch (err) {
          throw new Error(`packet ${n} threw: ${(err as Error).stack}\n${ip.toString('hex')}`);
        }
        for (const out of outs) {
          const o = offload ? out.subarray(10) : out;
          const partial = offload && ((input[0] | out[0]) & VNET_F_NEEDS_CSUM) !== 0;
          const why = judge(o, ip, partial);
          if (why !== null && findings.length < 5)
            findings.push(`${why}: in ${ip.toString('hex')} out ${o.toString('hex')}`);
          sent.push(o);
          if (sent.length > 16) sent.shift();
        }
        if (r.chance(0.002)) d.advance(r.pick([1, 10, 120]));
      }
      expect(findings).toEqual([]);
      // It went where it should: connections made, and the drops of every kind of path seen.
      expect(d.engine.v6.conns.count).toBeGreaterThan(0);
      expect(Object.keys(drops(d))).toEqual(
        expect.arrayContaining([
          'truncated',
          'bad_total_len',
          'no_service',
          'no_conn',
          'neigh_miss',
          'frag_needed',
          'link_local',
        ]),
      );
      // Everything expires: no connection, no count left behind.
      for (let t = 0; t < 40; t++) d.advance(60);
      expect(d.engine.v6.conns.count).toBe(0);
      expect([d.engine.v6.frags.queues, d.engine.v6.frags.heldBytes]).toEqual([0, 0]);
      for (const s of d.balancer.snapshot().services) {
        for (const dest of s.dests)
          expect([dest.addr, dest.activeConns, dest.inactConns, dest.persistConns]).toEqual([dest.addr, 0, 0, 0]);
      }
    }, 120_000);
  }
});
