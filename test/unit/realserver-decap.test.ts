// lvs-realserver's IP-in-IP decapsulation decision, on byte vectors: what it accepts (and where
// the inner packet is), every drop reason, RFC 6040 ECN handling, and its counters.

import { describe, expect, it } from 'vitest';
import {
  DECAP_OK,
  DECAP_VERDICT_COUNT,
  DECAP_VERDICT_NAMES,
  Decapsulator,
  DROP_ECN,
  DROP_INNER_BAD_CHECKSUM,
  DROP_INNER_MALFORMED,
  DROP_INNER_TRUNCATED,
  DROP_NOT_IPIP,
  DROP_NOT_VIP,
  DROP_OUTER_BAD_CHECKSUM,
  DROP_OUTER_FRAGMENT,
  DROP_OUTER_MALFORMED,
  DROP_OUTER_TRUNCATED,
  DROP_OVERSIZE,
} from '../../src/realserver/decap';
import { decapInterfaces } from '../../src/realserver/kernel-decap';
import { ipToU32 } from '../../src/wire/addr';
import { expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet, toHex } from '../helpers/packet-builder';

const VIP = '10.200.0.1';
const VIP2 = '10.200.0.2';
const CLIENT = '10.201.0.1';
const RS = '10.201.0.2';

// An IP-in-IP datagram as the raw socket delivers it (checksums computed by an independent
// script): outer 10.201.0.1 -> 10.201.0.2 protocol 4, carrying UDP 10.201.0.1:40000 ->
// 10.200.0.1:5353 "ping".
const IPIP_UDP = fromHex(`
  45 00 00 34 12 34 40 00 40 04 12 fe 0a c9 00 01   # outer: len 52, id 0x1234, DF, ttl 64, proto 4
  0a c9 00 02                                       # outer dst 10.201.0.2
  45 00 00 20 be ef 40 00 40 11 66 4b 0a c9 00 01   # inner: len 32, udp, src 10.201.0.1
  0a c8 00 01 9c 40 14 e9 00 0c 5a 49 70 69 6e 67   # inner dst 10.200.0.1 | udp 40000 -> 5353 "ping"
`);

/** RFC 1071 checksum, written out slowly here so the test does not trust the code under test. */
function slowChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface OuterOptions {
  src?: string;
  dst?: string;
  protocol?: number;
  tos?: number;
  /** The flags/fragment-offset word (default DF). */
  flagsFrag?: number;
  /** IPv4 option bytes (a multiple of 4). */
  options?: Buffer;
  /** Override the total length field (the checksum is computed after). */
  totalLen?: number;
  /** Store a wrong header checksum. */
  badChecksum?: boolean;
}

/** Wrap `inner` in an outer IPv4 header, by hand. */
function encap(inner: Buffer, o: OuterOptions = {}): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const hlen = 20 + opts.length;
  const out = Buffer.alloc(hlen + inner.length);
  out[0] = 0x40 | (hlen >> 2);
  out[1] = o.tos ?? 0;
  out.writeUInt16BE(o.totalLen ?? out.length, 2);
  out.writeUInt16BE(0x4242, 4);
  out.writeUInt16BE(o.flagsFrag ?? 0x4000, 6);
  out[8] = 64;
  out[9] = o.protocol ?? 4;
  out.writeUInt32BE(ipToU32(o.src ?? CLIENT), 12);
  out.writeUInt32BE(ipToU32(o.dst ?? RS), 16);
  opts.copy(out, 20);
  out.writeUInt16BE(slowChecksum(out.subarray(0, hlen)) ^ (o.badChecksum ? 0x0101 : 0), 10);
  inner.copy(out, hlen);
  return out;
}

function udpTo(dst: string, tos = 0, data = 'hello'): Buffer {
  return packet().ipv4({ src: CLIENT, dst, tos }).udp({ sport: 40000, dport: 5353 }).payload(data).build();
}

/** Recompute a header checksum after the test pokes at a header field. */
function refreshChecksum(b: Buffer, off: number): void {
  const hlen = (b[off] & 0x0f) * 4;
  b.writeUInt16BE(0, off + 10);
  b.writeUInt16BE(slowChecksum(b.subarray(off, off + hlen)), off + 10);
}

function decide(d: Decapsulator, b: Buffer): number {
  return d.decide(b, 0, b.length);
}

describe('Decapsulator: accepted datagrams', () => {
  it('accepts the real IP-in-IP vector and points at the inner UDP packet', () => {
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(decide(d, IPIP_UDP)).toBe(DECAP_OK);
    expect(d.innerOff).toBe(20);
    expect(d.innerLen).toBe(32);
    const inner = IPIP_UDP.subarray(d.innerOff, d.innerOff + d.innerLen);
    expectValidPacket(inner);
    expect(toHex(inner.subarray(28))).toBe(toHex(Buffer.from('ping')));
  });

  it('leaves the inner packet byte for byte as the client sent it', () => {
    const inner = udpTo(VIP);
    const dgram = encap(inner);
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(decide(d, dgram)).toBe(DECAP_OK);
    expect(toHex(dgram.subarray(d.innerOff, d.innerOff + d.innerLen))).toBe(toHex(inner));
  });

  it('finds the inner packet behind outer header options', () => {
    const inner = udpTo(VIP);
    const dgram = encap(inner, { options: Buffer.from([1, 1, 1, 0]) }); // NOP NOP NOP EOL
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(decide(d, dgram)).toBe(DECAP_OK);
    expect(d.innerOff).toBe(24);
    expect(d.innerLen).toBe(inner.length);
  });

  it('cuts padding after the inner total length off the packet it hands on', () => {
    const inner = udpTo(VIP);
    const dgram = encap(Buffer.concat([inner, Buffer.alloc(6)]));
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(decide(d, dgram)).toBe(DECAP_OK);
    expect(d.innerLen).toBe(inner.length);
  });

  it('works on a datagram at an offset inside a larger slab', () => {
    const dgram = encap(udpTo(VIP));
    const slab = Buffer.alloc(4096, 0xee);
    dgram.copy(slab, 2048 + 64);
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(d.decide(slab, 2048 + 64, dgram.length)).toBe(DECAP_OK);
    expect(d.innerOff).toBe(2048 + 64 + 20);
  });

  it('accepts any of several VIPs, TCP as well as UDP', () => {
    const d = new Decapsulator([ipToU32(VIP), ipToU32(VIP2)]);
    const syn = packet().ipv4({ src: CLIENT, dst: VIP2 }).tcp({ sport: 40001, dport: 80, flags: 'S' }).build();
    expect(decide(d, encap(syn))).toBe(DECAP_OK);
    expect(decide(d, encap(udpTo(VIP)))).toBe(DECAP_OK);
  });

  it('passes inner fragments on (the local stack reassembles them)', () => {
    const frag = packet().ipv4({ src: CLIENT, dst: VIP, mf: true, id: 7 }).udp({ sport: 1, dport: 2 }).build();
    expect(decide(new Decapsulator([ipToU32(VIP)]), encap(frag))).toBe(DECAP_OK);
  });
});

describe('Decapsulator: drop reasons', () => {
  const vip = [ipToU32(VIP)];

  /** [name, datagram, expected verdict] */
  const cases: [string, () => Buffer, number][] = [
    ['a datagram that did not fit its slot (length 0)', () => Buffer.alloc(0), DROP_OVERSIZE],
    ['fewer bytes than an outer header', () => IPIP_UDP.subarray(0, 19), DROP_OUTER_TRUNCATED],
    [
      'outer IHL beyond the bytes received',
      () => {
        const b = Buffer.from(IPIP_UDP.subarray(0, 22));
        b[0] = 0x46;
        return b;
      },
      DROP_OUTER_TRUNCATED,
    ],
    [
      'outer version 6',
      () => {
        const b = Buffer.from(IPIP_UDP);
        b[0] = 0x65;
        return b;
      },
      DROP_OUTER_MALFORMED,
    ],
    [
      'outer IHL below 5',
      () => {
        const b = encap(udpTo(VIP));
        b[0] = 0x44;
        return b;
      },
      DROP_OUTER_MALFORMED,
    ],
    ['outer total length beyond the bytes received', () => encap(udpTo(VIP), { totalLen: 200 }), DROP_OUTER_MALFORMED],
    ['a bad outer header checksum', () => encap(udpTo(VIP), { badChecksum: true }), DROP_OUTER_BAD_CHECKSUM],
    ['an outer first fragment (MF)', () => encap(udpTo(VIP), { flagsFrag: 0x2000 }), DROP_OUTER_FRAGMENT],
    ['an outer later fragment (offset)', () => encap(udpTo(VIP), { flagsFrag: 0x0010 }), DROP_OUTER_FRAGMENT],
    ['outer protocol UDP instead of IP-in-IP', () => encap(udpTo(VIP), { protocol: 17 }), DROP_NOT_IPIP],
    ['outer protocol 41 (IPv6-in-IPv4)', () => encap(udpTo(VIP), { protocol: 41 }), DROP_NOT_IPIP],
    ['an inner header cut short', () => encap(udpTo(VIP).subarray(0, 12)), DROP_INNER_TRUNCATED],
    ['nothing after the outer header', () => encap(Buffer.alloc(0)), DROP_INNER_TRUNCATED],
    ['an inner total length beyond the bytes that came', () => encap(udpTo(VIP).subarray(0, 30)), DROP_INNER_TRUNCATED],
    [
      'inner version 6',
      () => {
        const inner = udpTo(VIP);
        inner[0] = 0x65;
        return encap(inner);
      },
      DROP_INNER_MALFORMED,
    ],
    [
      'inner IHL below 5',
      () => {
        const inner = udpTo(VIP);
        inner[0] = 0x44;
        return encap(inner);
      },
      DROP_INNER_MALFORMED,
    ],
    [
      'inner total length below its header length',
      () => {
        const inner = udpTo(VIP);
        inner.writeUInt16BE(19, 2);
        refreshChecksum(inner, 0);
        return encap(inner);
      },
      DROP_INNER_MALFORMED,
    ],
    [
      'a bad inner header checksum',
      () => {
        const inner = udpTo(VIP);
        inner[10] ^= 0xff;
        return encap(inner);
      },
      DROP_INNER_BAD_CHECKSUM,
    ],
    ['an inner destination that is not a VIP', () => encap(udpTo('10.200.0.9')), DROP_NOT_VIP],
    ['an inner destination equal to the outer one (not a VIP)', () => encap(udpTo(RS)), DROP_NOT_VIP],
  ];

  for (const [name, build, verdict] of cases) {
    it(`drops ${name} as ${DECAP_VERDICT_NAMES[verdict]}`, () => {
      const d = new Decapsulator(vip);
      const b = build();
      expect(DECAP_VERDICT_NAMES[decide(d, b)]).toBe(DECAP_VERDICT_NAMES[verdict]);
      expect(d.counters[verdict]).toBe(1);
      expect(d.counters[DECAP_OK]).toBe(0);
    });
  }

  it('with no VIPs configured, drops every well-formed datagram as not_vip', () => {
    expect(decide(new Decapsulator([]), IPIP_UDP)).toBe(DROP_NOT_VIP);
  });
});

describe('Decapsulator: ECN (RFC 6040, as the kernel tunnel code does)', () => {
  const vip = [ipToU32(VIP)];

  it('marks an ECN-capable inner packet CE when the outer header is CE, with a valid checksum', () => {
    const inner = udpTo(VIP, 0xb8 | 0x02); // DSCP EF, ECT(0)
    const dgram = encap(inner, { tos: 0x03 });
    const d = new Decapsulator(vip);
    expect(decide(d, dgram)).toBe(DECAP_OK);
    const out = dgram.subarray(d.innerOff, d.innerOff + d.innerLen);
    expect(out[1]).toBe(0xb8 | 0x03);
    expect(slowChecksum(out.subarray(0, 20))).toBe(0);
    expectValidPacket(out);
  });

  it('drops a not-ECN-capable inner packet under a CE outer header', () => {
    const d = new Decapsulator(vip);
    expect(decide(d, encap(udpTo(VIP, 0x00), { tos: 0x03 }))).toBe(DROP_ECN);
  });

  it('leaves the inner TOS alone when the outer header is not CE', () => {
    const inner = udpTo(VIP, 0x00);
    const dgram = encap(inner, { tos: 0x02 });
    const d = new Decapsulator(vip);
    expect(decide(d, dgram)).toBe(DECAP_OK);
    expect(toHex(dgram.subarray(d.innerOff, d.innerOff + d.innerLen))).toBe(toHex(inner));
  });
});

describe('Decapsulator: counters', () => {
  it('counts every datagram under its verdict, one name per verdict', () => {
    expect(DECAP_VERDICT_NAMES).toHaveLength(DECAP_VERDICT_COUNT);
    expect(new Set(DECAP_VERDICT_NAMES).size).toBe(DECAP_VERDICT_COUNT);
    const d = new Decapsulator([ipToU32(VIP)]);
    decide(d, IPIP_UDP);
    decide(d, IPIP_UDP);
    decide(d, encap(udpTo('10.200.0.9')));
    decide(d, Buffer.alloc(0));
    expect(d.counters[DECAP_OK]).toBe(2);
    expect(d.counters[DROP_NOT_VIP]).toBe(1);
    expect(d.counters[DROP_OVERSIZE]).toBe(1);
    expect(d.counters.reduce((a, b) => a + b, 0)).toBe(4);
  });
});

describe('Decapsulator: partial TCP checksums (segments the director kernel cut, CHECKSUM_PARTIAL over veth)', () => {
  /** Sum of the IPv4 pseudo-header of `pkt`, folded and not complemented, by hand. */
  function pseudo(pkt: Buffer): number {
    let sum = 6 + pkt.readUInt16BE(2) - 20;
    for (let i = 12; i < 20; i += 2) sum += pkt.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    return sum;
  }
  const segment = (): Buffer =>
    packet()
      .ipv4({ src: CLIENT, dst: VIP })
      .tcp({ sport: 40001, dport: 80, flags: 'A' })
      .payload('x'.repeat(3000))
      .build();

  it('flags one whose field holds only the pseudo-header sum, with where its TCP header starts', () => {
    const d = new Decapsulator([ipToU32(VIP)]);
    const seg = segment();
    seg.writeUInt16BE(pseudo(seg), 36);
    expect(decide(d, encap(seg))).toBe(DECAP_OK);
    expect([d.partial, d.innerHeaderLen, d.partials]).toEqual([true, 20, 1]);
  });

  it('leaves a complete checksum, UDP and fragments unflagged', () => {
    const d = new Decapsulator([ipToU32(VIP)]);
    expect(decide(d, encap(segment()))).toBe(DECAP_OK);
    expect(d.partial).toBe(false);
    expect(decide(d, encap(udpTo(VIP)))).toBe(DECAP_OK);
    expect(d.partial).toBe(false);
    const frag = packet().ipv4({ src: CLIENT, dst: VIP, mf: true, id: 7 }).tcp({ sport: 1, dport: 2 }).build();
    frag.writeUInt16BE(pseudo(frag), 36);
    expect(decide(d, encap(frag))).toBe(DECAP_OK);
    expect([d.partial, d.partials]).toEqual([false, 0]);
  });
});

describe('the kernel decapsulation’s interfaces (ip -j link show)', () => {
  it('are every interface but loopback and the decapsulation TUN', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo', link_type: 'loopback' },
      { ifindex: 2, ifname: 'eth0', link_type: 'ether' },
      { ifindex: 3, ifname: 'lvsrs0', link_type: 'none' },
      { ifindex: 4, ifname: 'eth1', link_type: 'ether' },
    ]);
    expect(decapInterfaces(json, 'lvsrs0')).toEqual(['eth0', 'eth1']);
  });
});
