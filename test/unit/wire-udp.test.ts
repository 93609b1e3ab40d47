import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { ipToU32 } from '../../src/wire/addr';
import { Ipv4View } from '../../src/wire/ipv4';
import { UDP, UdpRepr, UdpView } from '../../src/wire/udp';
import { V_OK, V_TRUNCATED } from '../../src/wire/verdict';
import { expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet, toHex } from '../helpers/packet-builder';

const CLIENT = ipToU32('10.0.0.1');
const VIP = ipToU32('192.168.0.1');
const REAL = ipToU32('172.16.0.5');

// A DNS query for example.com/A, 10.0.0.1:53000 -> 192.168.0.1:53, 29-byte (odd) payload.
// Checksums computed by an independent script.
const DNS = fromHex(`
  45 00 00 39 7e 11 00 00 40 11 31 f9 0a 00 00 01   # IPv4, id 0x7e11, no DF, udp
  c0 a8 00 01                                       # dst; UDP starts at 20:
  cf 08 00 35 00 25 84 1a                           # 53000 -> 53, length 37, csum 0x841a
  12 34 01 00 00 01 00 00 00 00 00 00               # DNS header: id 0x1234, RD, 1 question
  07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01  # example.com A IN
`);
const DNS_PAYLOAD = DNS.subarray(28);

// 10.0.0.1:5000 -> 192.168.0.1:53 with payload 0x2173, chosen so the computed checksum is 0: it
// is sent as 0xffff (RFC 768).
const ZERO_SUM = fromHex(`
  45 00 00 1e 00 02 00 00 40 11 b0 23 0a 00 00 01
  c0 a8 00 01 13 88 00 35 00 0a ff ff 21 73
`);

function udpOf(buf: Buffer): UdpView {
  const ip = new Ipv4View().reset(buf, 0, buf.length);
  expect(ip.checkLen()).toBe(V_OK);
  return new UdpView().reset(buf, ip.payloadOffset, ip.payloadLen);
}

describe('UdpView: bytes -> fields', () => {
  it('reads every field of a real DNS query', () => {
    const u = udpOf(DNS);
    expect(u.checkLen()).toBe(V_OK);
    expect(u.srcPort).toBe(53000);
    expect(u.dstPort).toBe(53);
    expect(u.length).toBe(37);
    expect(u.checksum).toBe(0x841a);
    expect(u.headerLen).toBe(8);
    expect(u.payloadOffset).toBe(28);
    expect(u.payloadLen).toBe(29);
    expect(u.verifyChecksum(CLIENT, VIP)).toBe(true);
    expect(u.verifyChecksum(CLIENT, REAL)).toBe(false);
  });

  it('payloadLen follows the length field, not trailing bytes of the L4 area', () => {
    const big = Buffer.concat([DNS, Buffer.alloc(3)]);
    const u = new UdpView().reset(big, 20, big.length - 20);
    expect(u.checkLen()).toBe(V_OK);
    expect(u.payloadLen).toBe(29);
    expect(u.verifyChecksum(CLIENT, VIP)).toBe(true);
  });

  it('a zero checksum means "none" and always verifies', () => {
    const b = Buffer.from(DNS);
    b.writeUInt16BE(0, 20 + UDP.CHECKSUM);
    expect(udpOf(b).verifyChecksum(CLIENT, REAL)).toBe(true);
  });

  it('a 0xffff checksum (a computed 0) verifies', () => {
    const u = udpOf(ZERO_SUM);
    expect(u.checksum).toBe(0xffff);
    expect(u.verifyChecksum(CLIENT, VIP)).toBe(true);
  });
});

describe('UdpRepr: fields -> bytes', () => {
  it('emits exactly the DNS datagram', () => {
    const r = new UdpRepr();
    r.srcPort = 53000;
    r.dstPort = 53;
    expect(r.bufferLen()).toBe(8);
    const out = Buffer.alloc(37);
    r.emit(out, 0, CLIENT, VIP, DNS_PAYLOAD);
    expect(toHex(out)).toBe(toHex(DNS.subarray(20)));
  });

  it('sends a computed checksum of 0 as 0xffff', () => {
    const r = new UdpRepr();
    r.srcPort = 5000;
    r.dstPort = 53;
    const out = Buffer.alloc(10);
    r.emit(out, 0, CLIENT, VIP, fromHex('21 73'));
    expect(toHex(out)).toBe(toHex(ZERO_SUM.subarray(20)));
  });

  it('withChecksum = false emits a zero checksum', () => {
    const r = new UdpRepr();
    Object.assign(r, { srcPort: 53000, dstPort: 53, withChecksum: false });
    const out = Buffer.alloc(37);
    r.emit(out, 0, CLIENT, VIP, DNS_PAYLOAD);
    expect(out.readUInt16BE(UDP.CHECKSUM)).toBe(0);
  });

  it('round-trips: parse then emit (payload already in place) gives the vector back', () => {
    const r = UdpRepr.parse(udpOf(DNS));
    expect(r).toEqual(
      Object.assign(new UdpRepr(), { srcPort: 53000, dstPort: 53, payloadLen: 29, withChecksum: true }),
    );
    const out = Buffer.from(DNS.subarray(20));
    out.fill(0, 0, 8);
    r.emit(out, 0, CLIENT, VIP);
    expect(out).toEqual(DNS.subarray(20));
  });

  it('parse throws InvalidError on a bad datagram', () => {
    expect(() => UdpRepr.parse(new UdpView().reset(DNS, 20, 7))).toThrow(InvalidError);
  });

  it('the packet builder produces the DNS vector byte for byte', () => {
    const built = packet()
      .ipv4({ src: '10.0.0.1', dst: '192.168.0.1', id: 0x7e11 })
      .udp({ sport: 53000, dport: 53 })
      .payload(DNS_PAYLOAD)
      .build();
    expect(toHex(built)).toBe(toHex(DNS));
  });
});

describe('UdpView.checkLen verdicts', () => {
  it('V_TRUNCATED below 8 bytes', () => {
    expect(new UdpView().reset(DNS, 20, 7).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_TRUNCATED when the length field is below 8', () => {
    const b = Buffer.from(DNS);
    b.writeUInt16BE(7, 20 + UDP.LENGTH);
    expect(udpOf(b).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_TRUNCATED when the length field exceeds the L4 bytes (overlong)', () => {
    const b = Buffer.from(DNS);
    b.writeUInt16BE(38, 20 + UDP.LENGTH);
    expect(udpOf(b).checkLen()).toBe(V_TRUNCATED);
    expect(new UdpView().reset(DNS, 20, 36).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_TRUNCATED when len runs past the end of the buffer', () => {
    expect(new UdpView().reset(DNS, 20, 38).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_OK for an empty datagram (length 8)', () => {
    const p = packet().ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 1, dport: 2 }).build();
    expect(udpOf(p).checkLen()).toBe(V_OK);
  });
});

describe('UdpView: set with checksum update', () => {
  it('DNAT: rewrite IPv4 dst + UDP dport, the whole packet verifies and equals a full recompute', () => {
    const b = Buffer.from(DNS);
    const ip = new Ipv4View().reset(b, 0, b.length);
    const u = udpOf(b);
    ip.setDstAddrWithChecksumUpdate(REAL);
    u.updateChecksumForAddr(VIP, REAL);
    u.setDstPortWithChecksumUpdate(5353);
    const d = expectValidPacket(b);
    expect([d.dst, d.dport]).toEqual(['172.16.0.5', 5353]);
    const incremental = u.checksum;
    u.fillChecksum(CLIENT, REAL);
    expect(u.checksum).toBe(incremental);
  });

  it('leaves a zero ("no checksum") checksum at zero through every update', () => {
    const b = packet()
      .ipv4({ src: '10.0.0.1', dst: '192.168.0.1' })
      .udp({ sport: 53000, dport: 53, checksum: false })
      .payload('x')
      .build();
    const u = udpOf(b);
    u.updateChecksumForAddr(VIP, REAL);
    u.setDstPortWithChecksumUpdate(5353);
    u.setSrcPortWithChecksumUpdate(1);
    expect(u.checksum).toBe(0);
  });

  it('writes 0xffff when an update computes 0', () => {
    // ZERO_SUM with dport 54 and its proper checksum; moving dport back to 53 computes 0.
    const b = Buffer.from(ZERO_SUM);
    const u = udpOf(b);
    u.dstPort = 54;
    u.fillChecksum(CLIENT, VIP);
    expect(u.checksum).not.toBe(0xffff);
    u.setDstPortWithChecksumUpdate(53);
    expect(u.checksum).toBe(0xffff);
    expect(b).toEqual(ZERO_SUM);
  });

  it('fillChecksum writes 0xffff for a computed 0', () => {
    const b = Buffer.from(ZERO_SUM);
    const u = udpOf(b);
    u.checksum = 0x1234;
    u.fillChecksum(CLIENT, VIP);
    expect(u.checksum).toBe(0xffff);
  });

  it('SNAT on the reply path keeps the datagram valid', () => {
    const reply = packet()
      .ipv4({ src: '172.16.0.5', dst: '10.0.0.1' })
      .udp({ sport: 5353, dport: 53000 })
      .payload('answer')
      .build();
    const ip = new Ipv4View().reset(reply, 0, reply.length);
    const u = udpOf(reply);
    ip.setSrcAddrWithChecksumUpdate(VIP);
    u.updateChecksumForAddr(REAL, VIP);
    u.setSrcPortWithChecksumUpdate(53);
    const d = expectValidPacket(reply);
    expect([d.src, d.sport, d.payload.toString()]).toEqual(['192.168.0.1', 53, 'answer']);
  });
});
