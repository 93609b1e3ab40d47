import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { ipToU32 } from '../../src/wire/addr';
import { IPV4, Ipv4Repr, Ipv4View } from '../../src/wire/ipv4';
import { V_BAD_IHL, V_BAD_TOTAL_LEN, V_BAD_VERSION, V_OK, V_TRUNCATED } from '../../src/wire/verdict';
import { expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet, toHex } from '../helpers/packet-builder';

// A Linux-style TCP SYN, 10.0.0.1:40000 -> 192.168.0.1:80, 60 bytes (checksums computed by an
// independent script). Only the IPv4 header matters here; wire-tcp.test.ts covers the rest.
const SYN = fromHex(`
  45 00 00 3c 1c 46 40 00 40 06 53 cc 0a 00 00 01   # v4 ihl5, len 60, id 0x1c46, DF, ttl 64, tcp, csum
  c0 a8 00 01 9c 40 00 50 6b 8b 45 67 00 00 00 00   # dst 192.168.0.1 | tcp ...
  a0 02 fa f0 5e 48 00 00 02 04 05 b4 04 02 08 0a
  00 12 d6 87 00 00 00 00 01 03 03 07
`);

// An ICMP "fragmentation needed" from a router 192.168.0.254, TOS 0xc0, no DF, ttl 255, id 1.
const FRAG_NEEDED_IP_HEADER = fromHex('45 c0 00 38 00 01 00 00 ff 01 ef 5c c0 a8 00 fe 0a 00 00 01');

/** A copy of `b` placed at `off` in a larger buffer, as packets sit in the slab after headroom. */
function atOffset(b: Buffer, off: number, tail = 0): Buffer {
  const big = Buffer.alloc(off + b.length + tail, 0xee);
  b.copy(big, off);
  return big;
}

describe('Ipv4View: bytes -> fields', () => {
  it('reads every field of a real header', () => {
    const v = new Ipv4View().reset(SYN, 0, SYN.length);
    expect(v.checkLen()).toBe(V_OK);
    expect(v.version).toBe(4);
    expect(v.ihl).toBe(5);
    expect(v.headerLen).toBe(20);
    expect(v.tos).toBe(0);
    expect(v.totalLen).toBe(60);
    expect(v.id).toBe(0x1c46);
    expect(v.dontFrag).toBe(true);
    expect(v.moreFrags).toBe(false);
    expect(v.fragOffset).toBe(0);
    expect(v.isFragment).toBe(false);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(6);
    expect(v.checksum).toBe(0x53cc);
    expect(v.srcAddr).toBe(ipToU32('10.0.0.1'));
    expect(v.dstAddr).toBe(ipToU32('192.168.0.1'));
    expect(v.payloadOffset).toBe(20);
    expect(v.payloadLen).toBe(40);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('reads a header at a non-zero offset, with absolute payloadOffset', () => {
    const buf = atOffset(SYN, 64, 100);
    const v = new Ipv4View().reset(buf, 64, SYN.length);
    expect(v.checkLen()).toBe(V_OK);
    expect(v.srcAddr).toBe(0x0a000001);
    expect(v.payloadOffset).toBe(84);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('reads TOS, a cleared DF and TTL 255 from the ICMP error header', () => {
    const v = new Ipv4View().reset(FRAG_NEEDED_IP_HEADER, 0, 20);
    // Only the header is here, so only the quoted-header check passes.
    expect(v.checkLen()).toBe(V_BAD_TOTAL_LEN);
    expect(v.checkHeaderLen()).toBe(V_OK);
    expect(v.tos).toBe(0xc0);
    expect(v.dontFrag).toBe(false);
    expect(v.ttl).toBe(255);
    expect(v.protocol).toBe(1);
    expect(v.srcAddr).toBe(ipToU32('192.168.0.254'));
    expect(v.verifyChecksum()).toBe(true);
  });

  it('one view instance serves packet after packet', () => {
    const v = new Ipv4View();
    v.reset(SYN, 0, SYN.length);
    expect(v.protocol).toBe(6);
    v.reset(FRAG_NEEDED_IP_HEADER, 0, 20);
    expect(v.protocol).toBe(1);
  });

  it('decodes fragment flags and the offset in bytes', () => {
    const first = packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2', mf: true }).payload(Buffer.alloc(16)).build();
    const later = packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2', fragOffset: 1480 }).payload(Buffer.alloc(16)).build();
    const v = new Ipv4View();
    v.reset(first, 0, first.length);
    expect([v.moreFrags, v.fragOffset, v.isFragment]).toEqual([true, 0, true]);
    v.reset(later, 0, later.length);
    expect([v.moreFrags, v.fragOffset, v.isFragment]).toEqual([false, 1480, true]);
    expect(v.flagsFrag).toBe(1480 / 8);
  });

  it('ignores link-layer padding beyond totalLen (len > totalLen is fine)', () => {
    const buf = atOffset(SYN, 0, 6); // e.g. Ethernet minimum-frame padding
    const v = new Ipv4View().reset(buf, 0, buf.length);
    expect(v.checkLen()).toBe(V_OK);
    expect(v.payloadLen).toBe(40);
  });

  it('handles options: IHL 6 moves the payload', () => {
    const p = packet()
      .ipv4({ src: '10.0.0.1', dst: '10.0.0.2', options: fromHex('94 04 00 00') }) // router alert
      .udp({ sport: 1, dport: 2 })
      .build();
    const v = new Ipv4View().reset(p, 0, p.length);
    expect(v.checkLen()).toBe(V_OK);
    expect(v.ihl).toBe(6);
    expect(v.headerLen).toBe(24);
    expect(v.payloadOffset).toBe(24);
    expect(v.payloadLen).toBe(8);
    expect(v.verifyChecksum()).toBe(true);
  });
});

describe('Ipv4Repr: fields -> bytes', () => {
  it('emits exactly the bytes of the real header', () => {
    const r = new Ipv4Repr();
    r.srcAddr = ipToU32('10.0.0.1');
    r.dstAddr = ipToU32('192.168.0.1');
    r.protocol = 6;
    r.ttl = 64;
    r.id = 0x1c46;
    r.dontFrag = true;
    r.payloadLen = 40;
    expect(r.bufferLen()).toBe(20);
    const out = Buffer.alloc(20);
    r.emit(out, 0);
    expect(toHex(out)).toBe(toHex(SYN.subarray(0, 20)));
  });

  it('emits the ICMP error header (TOS, no DF, TTL 255)', () => {
    const r = new Ipv4Repr();
    r.srcAddr = ipToU32('192.168.0.254');
    r.dstAddr = ipToU32('10.0.0.1');
    r.protocol = 1;
    r.ttl = 255;
    r.tos = 0xc0;
    r.id = 1;
    r.payloadLen = 36;
    const out = Buffer.alloc(28, 0xaa);
    r.emit(out, 4);
    expect(toHex(out.subarray(4, 24))).toBe(toHex(FRAG_NEEDED_IP_HEADER));
    expect(out.subarray(0, 4)).toEqual(Buffer.alloc(4, 0xaa)); // nothing written outside
    expect(out.subarray(24)).toEqual(Buffer.alloc(4, 0xaa));
  });

  it('round-trips: parse(view of vector) then emit gives the vector back', () => {
    const r = Ipv4Repr.parse(new Ipv4View().reset(SYN, 0, SYN.length));
    expect(r).toMatchObject({ srcAddr: 0x0a000001, dstAddr: 0xc0a80001, protocol: 6, ttl: 64, id: 0x1c46 });
    const out = Buffer.alloc(20);
    r.emit(out, 0);
    expect(out).toEqual(SYN.subarray(0, 20));
  });

  it('round-trips: emit then parse gives the same fields (fragment fields too)', () => {
    const r = new Ipv4Repr();
    Object.assign(r, {
      srcAddr: 0xfffffffe,
      dstAddr: 0x80000001,
      protocol: 17,
      ttl: 1,
      tos: 0x10,
      id: 0xffff,
      dontFrag: false,
      moreFrags: true,
      fragOffset: 8 * 0x1fff,
      payloadLen: 8,
    });
    const out = Buffer.alloc(28);
    r.emit(out, 0);
    const back = Ipv4Repr.parse(new Ipv4View().reset(out, 0, out.length));
    expect(back).toEqual(r);
  });

  it('parse throws InvalidError on a header that fails checkLen', () => {
    expect(() => Ipv4Repr.parse(new Ipv4View().reset(SYN, 0, 19))).toThrow(InvalidError);
    expect(() => Ipv4Repr.parse(new Ipv4View().reset(SYN, 0, 19))).toThrow(/truncated/);
  });
});

describe('Ipv4View.checkLen verdicts', () => {
  function verdictOf(mutate: (b: Buffer) => void, len = SYN.length): number {
    const b = Buffer.from(SYN);
    mutate(b);
    return new Ipv4View().reset(b, 0, len).checkLen();
  }

  it('V_TRUNCATED for fewer than 20 bytes (even 0)', () => {
    expect(verdictOf(() => {}, 19)).toBe(V_TRUNCATED);
    expect(verdictOf(() => {}, 0)).toBe(V_TRUNCATED);
  });

  it('V_TRUNCATED when len runs past the end of the buffer', () => {
    expect(new Ipv4View().reset(SYN, 10, SYN.length).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_BAD_VERSION for version 6 or 0', () => {
    expect(verdictOf((b) => (b[IPV4.VER_IHL] = 0x65))).toBe(V_BAD_VERSION);
    expect(verdictOf((b) => (b[IPV4.VER_IHL] = 0x05))).toBe(V_BAD_VERSION);
  });

  it('V_BAD_IHL for IHL 0..4', () => {
    for (let ihl = 0; ihl < 5; ihl++) expect(verdictOf((b) => (b[IPV4.VER_IHL] = 0x40 | ihl))).toBe(V_BAD_IHL);
  });

  it('V_TRUNCATED when the IHL claims more header than there are bytes', () => {
    expect(verdictOf((b) => (b[IPV4.VER_IHL] = 0x4f), 40)).toBe(V_TRUNCATED); // 60-byte header, 40 bytes
  });

  it('V_BAD_TOTAL_LEN when totalLen exceeds the bytes received (overlong)', () => {
    expect(verdictOf((b) => b.writeUInt16BE(61, IPV4.TOTAL_LEN))).toBe(V_BAD_TOTAL_LEN);
    expect(verdictOf(() => {}, 59)).toBe(V_BAD_TOTAL_LEN);
  });

  it('V_BAD_TOTAL_LEN when totalLen is below the header length', () => {
    expect(verdictOf((b) => b.writeUInt16BE(19, IPV4.TOTAL_LEN))).toBe(V_BAD_TOTAL_LEN);
    expect(verdictOf((b) => b.writeUInt16BE(0, IPV4.TOTAL_LEN))).toBe(V_BAD_TOTAL_LEN);
  });

  it('V_OK for a header-only packet (totalLen == headerLen == 20)', () => {
    expect(verdictOf((b) => b.writeUInt16BE(20, IPV4.TOTAL_LEN), 20)).toBe(V_OK);
  });

  it('checkLen does not look at the checksum; verifyChecksum does', () => {
    const b = Buffer.from(SYN);
    b[IPV4.CHECKSUM] ^= 0x01;
    const v = new Ipv4View().reset(b, 0, b.length);
    expect(v.checkLen()).toBe(V_OK);
    expect(v.verifyChecksum()).toBe(false);
  });
});

describe('Ipv4View: set with checksum update', () => {
  it('decTtlWithChecksumUpdate: TTL 64 -> 63 and the header still verifies', () => {
    const buf = atOffset(SYN, 64);
    const v = new Ipv4View().reset(buf, 64, SYN.length);
    v.decTtlWithChecksumUpdate();
    expect(v.ttl).toBe(63);
    expect(v.verifyChecksum()).toBe(true);
    expect(v.checksum).toBe(0x54cc); // the TTL/protocol word dropped by 0x0100
    expectValidPacket(buf.subarray(64));
  });

  it('setDstAddrWithChecksumUpdate / setSrcAddrWithChecksumUpdate give the full-recompute checksum', () => {
    const b = Buffer.from(SYN);
    const v = new Ipv4View().reset(b, 0, b.length);
    v.setDstAddrWithChecksumUpdate(ipToU32('172.16.0.5'));
    v.setSrcAddrWithChecksumUpdate(ipToU32('255.255.255.254'));
    expect(v.dstAddr).toBe(0xac100005);
    expect(v.srcAddr).toBe(0xfffffffe);
    expect(v.verifyChecksum()).toBe(true);
    const incremental = v.checksum;
    v.fillChecksum();
    expect(v.checksum).toBe(incremental);
  });

  it('setTotalLenWithChecksumUpdate and setTosWithChecksumUpdate keep the header valid', () => {
    const b = Buffer.from(SYN);
    const v = new Ipv4View().reset(b, 0, b.length);
    v.setTosWithChecksumUpdate(0xb8);
    v.setTotalLenWithChecksumUpdate(40);
    expect([v.tos, v.totalLen]).toEqual([0xb8, 40]);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('raw setters do not touch the checksum; fillChecksum repairs it', () => {
    const b = Buffer.from(SYN);
    const v = new Ipv4View().reset(b, 0, b.length);
    v.ttl = 1;
    expect(v.checksum).toBe(0x53cc);
    expect(v.verifyChecksum()).toBe(false);
    v.fillChecksum();
    expect(v.verifyChecksum()).toBe(true);
  });
});
