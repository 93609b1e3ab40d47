import { describe, expect, it } from 'vitest';
import { decodePacket, expectValidPacket, flagLetters } from '../helpers/packet-assert';
import { addr, fromHex, packet, tcpFlags, toHex } from '../helpers/packet-builder';

const http = () =>
  packet()
    .ipv4({ src: '10.0.0.1', dst: '192.168.0.1', ttl: 63, id: 7, tos: 0x10, df: true })
    .tcp({ sport: 40000, dport: 80, flags: 'PA', seq: 1000, ack: 2000, window: 512 })
    .payload('GET / HTTP/1.0\r\n\r\n')
    .build();

describe('packet builder + decodePacket', () => {
  it('builds a TCP packet that decodes to what was asked for', () => {
    const d = expectValidPacket(http());
    expect(d).toMatchObject({
      src: '10.0.0.1',
      dst: '192.168.0.1',
      ttl: 63,
      id: 7,
      tos: 0x10,
      df: true,
      protocol: 6,
      totalLen: 58,
      sport: 40000,
      dport: 80,
      flags: 'PA',
      seq: 1000,
      ack: 2000,
      window: 512,
    });
    expect(d.payload.toString()).toBe('GET / HTTP/1.0\r\n\r\n');
  });

  it('defaults: ttl 64, id 0, tos 0, no DF, flags S, window 65535', () => {
    const d = expectValidPacket(packet().ipv4({ src: '1.2.3.4', dst: '5.6.7.8' }).tcp({ sport: 1, dport: 2 }).build());
    expect(d).toMatchObject({ ttl: 64, id: 0, tos: 0, df: false, flags: 'S', seq: 0, ack: 0, window: 65535 });
  });

  it('builds UDP with and without a checksum', () => {
    const withSum = expectValidPacket(
      packet().ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 5, dport: 6 }).payload('abc').build(),
    );
    expect(withSum).toMatchObject({ protocol: 17, sport: 5, dport: 6, udpLen: 11 });
    expect(withSum.l4Checksum).not.toBe(0);
    const without = expectValidPacket(
      packet().ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 5, dport: 6, checksum: false }).build(),
    );
    expect(without.l4Checksum).toBe(0);
  });

  it('builds ICMP from .icmp({ payload }) or from .payload()', () => {
    const a = packet()
      .ipv4({ src: '1.1.1.1', dst: '2.2.2.2' })
      .icmp({ type: 8, rest: 0x00010002 })
      .payload('hi')
      .build();
    const da = expectValidPacket(a);
    expect(da.icmp).toEqual({ type: 8, code: 0, rest: 0x00010002 });
    expect(da.payload.toString()).toBe('hi');
    const b = packet()
      .ipv4({ src: '1.1.1.1', dst: '2.2.2.2' })
      .icmp({ type: 3, code: 3, payload: Buffer.from('quoted') })
      .build();
    expect(expectValidPacket(b).payload.toString()).toBe('quoted');
  });

  it('builds a bare IPv4 packet (protocol 253 unless given) and IP options', () => {
    const d = expectValidPacket(packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2' }).payload('raw').build());
    expect([d.protocol, d.payload.toString()]).toEqual([253, 'raw']);
    const gre = expectValidPacket(packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2', protocol: 47 }).build());
    expect(gre.protocol).toBe(47);
    const opt = expectValidPacket(
      packet()
        .ipv4({ src: '1.1.1.1', dst: '2.2.2.2', options: fromHex('01 01 01') })
        .tcp({ sport: 1, dport: 2 })
        .build(),
    );
    expect([opt.headerLen, opt.sport]).toEqual([24, 1]);
  });

  it('accepts addresses as uint32 as well as dotted quads', () => {
    const d = expectValidPacket(
      packet()
        .ipv4({ src: 0x0a000001, dst: addr('10.0.0.2') })
        .build(),
    );
    expect([d.src, d.dst]).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('refuses to build without .ipv4() and rejects unknown flag letters', () => {
    expect(() => packet().tcp({ sport: 1, dport: 2 }).build()).toThrow(/ipv4/);
    expect(() => tcpFlags('SX')).toThrow(/flag letter/);
  });

  it('flag letters round-trip in bit order F S R P A U E C', () => {
    expect(tcpFlags('AS')).toBe(0x12);
    expect(flagLetters(0x12)).toBe('SA');
    expect(flagLetters(tcpFlags('FA'))).toBe('FA');
    expect(flagLetters(tcpFlags('RA'))).toBe('RA');
    expect(flagLetters(0xff)).toBe('FSRPAUEC');
    expect(flagLetters(0)).toBe('');
  });

  it('fromHex ignores spaces, colons and # comments; toHex spaces bytes', () => {
    expect(fromHex('45 00:01 # comment\n ff')).toEqual(Buffer.from([0x45, 0x00, 0x01, 0xff]));
    expect(() => fromHex('4')).toThrow();
    expect(toHex(Buffer.from([1, 0xab]))).toBe('01 ab');
  });
});

describe('expectValidPacket catches broken packets', () => {
  it('a wrong IPv4 header checksum', () => {
    const b = http();
    b[10] ^= 1;
    expect(() => expectValidPacket(b)).toThrow(/IPv4 header checksum/);
  });

  it('a total length that differs from the buffer length', () => {
    expect(() => expectValidPacket(Buffer.concat([http(), Buffer.alloc(1)]))).toThrow(/total length/);
  });

  it('a wrong TCP checksum (payload changed)', () => {
    const b = http();
    b[b.length - 1] ^= 1;
    expect(() => expectValidPacket(b)).toThrow(/TCP checksum/);
  });

  it('a wrong UDP checksum, but not a zero one', () => {
    const b = packet().ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 5, dport: 6 }).payload('abc').build();
    b[b.length - 1] ^= 1;
    expect(() => expectValidPacket(b)).toThrow(/UDP checksum/);
    b.writeUInt16BE(0, 26);
    expect(() => expectValidPacket(b)).not.toThrow();
  });

  it('a wrong ICMP checksum', () => {
    const b = packet().ipv4({ src: '1.1.1.1', dst: '2.2.2.2' }).icmp({ type: 8 }).payload('x').build();
    b[b.length - 1] ^= 1;
    expect(() => expectValidPacket(b)).toThrow(/ICMP checksum/);
  });

  it('a TCP data offset beyond the segment', () => {
    const b = http();
    b[32] = 0xf0;
    expect(() => expectValidPacket(b)).toThrow(/data offset/);
  });

  it('decodePacket itself does not validate', () => {
    const b = http();
    b[10] ^= 1;
    expect(decodePacket(b).dport).toBe(80);
  });
});
