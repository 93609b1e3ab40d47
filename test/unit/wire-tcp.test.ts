import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { ipToU32 } from '../../src/wire/addr';
import { Ipv4View } from '../../src/wire/ipv4';
import { TCP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, TcpRepr, TcpView } from '../../src/wire/tcp';
import { V_BAD_DATA_OFFSET, V_OK, V_TRUNCATED } from '../../src/wire/verdict';
import { expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet, toHex } from '../helpers/packet-builder';

const CLIENT = ipToU32('10.0.0.1');
const VIP = ipToU32('192.168.0.1');
const REAL = ipToU32('172.16.0.5');

// A Linux-style SYN, 10.0.0.1:40000 -> 192.168.0.1:80, seq 0x6b8b4567, window 64240, with options
// MSS 1460, SACK-permitted, timestamps (val 0x0012d687), NOP, window scale 7. Checksums computed
// by an independent script.
const SYN = fromHex(`
  45 00 00 3c 1c 46 40 00 40 06 53 cc 0a 00 00 01   # IPv4
  c0 a8 00 01                                       # dst; TCP starts at 20:
  9c 40 00 50  6b 8b 45 67  00 00 00 00             # ports 40000 -> 80, seq, ack 0
  a0 02 fa f0  5e 48 00 00                          # doff 10 (40 bytes), SYN, window, csum, urg
  02 04 05 b4  04 02  08 0a 00 12 d6 87 00 00 00 00  01  03 03 07  # options
`);
const SYN_OPTIONS = SYN.subarray(40, 60);

// A PSH|ACK with a 5-byte (odd) payload "ping!", seq 0x6b8b4568, ack 0x2a3b4c5d, window 502.
const PSH = fromHex(`
  45 00 00 2d 1c 47 40 00 40 06 53 da 0a 00 00 01
  c0 a8 00 01 9c 40 00 50 6b 8b 45 68 2a 3b 4c 5d
  50 18 01 f6 1f 3a 00 00 70 69 6e 67 21
`);

function tcpOf(buf: Buffer): TcpView {
  const ip = new Ipv4View().reset(buf, 0, buf.length);
  expect(ip.checkLen()).toBe(V_OK);
  return new TcpView().reset(buf, ip.payloadOffset, ip.payloadLen);
}

describe('TcpView: bytes -> fields', () => {
  it('reads every field of a real SYN with options', () => {
    const t = tcpOf(SYN);
    expect(t.checkLen()).toBe(V_OK);
    expect(t.srcPort).toBe(40000);
    expect(t.dstPort).toBe(80);
    expect(t.seq).toBe(0x6b8b4567);
    expect(t.ack).toBe(0);
    expect(t.headerLen).toBe(40);
    expect(t.flags).toBe(TCP_SYN);
    expect(t.window).toBe(64240);
    expect(t.checksum).toBe(0x5e48);
    expect(t.urgent).toBe(0);
    expect(t.optionsOffset).toBe(40);
    expect(t.optionsLen).toBe(20);
    expect(t.payloadOffset).toBe(60);
    expect(t.payloadLen).toBe(0);
    expect(t.verifyChecksum(CLIENT, VIP)).toBe(true);
    expect(t.verifyChecksum(CLIENT, REAL)).toBe(false); // the pseudo-header counts
  });

  it('reads a PSH|ACK with an odd-length payload', () => {
    const t = tcpOf(PSH);
    expect(t.checkLen()).toBe(V_OK);
    expect(t.flags).toBe(TCP_PSH | TCP_ACK);
    expect(t.seq).toBe(0x6b8b4568);
    expect(t.ack).toBe(0x2a3b4c5d);
    expect(t.window).toBe(502);
    expect(t.headerLen).toBe(20);
    expect(t.payloadOffset).toBe(40);
    expect(t.payloadLen).toBe(5);
    expect(PSH.subarray(t.payloadOffset, t.payloadOffset + t.payloadLen).toString()).toBe('ping!');
    expect(t.verifyChecksum(CLIENT, VIP)).toBe(true);
  });

  it('reports sequence numbers above 2^31 as unsigned', () => {
    const b = Buffer.from(PSH);
    const t = tcpOf(b);
    t.setSeqWithChecksumUpdate(0xfffffff0);
    expect(t.seq).toBe(0xfffffff0);
  });

  it('flag constants are the RFC 793 bits', () => {
    expect([TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG]).toEqual([1, 2, 4, 8, 16, 32]);
  });
});

describe('TcpRepr: fields -> bytes', () => {
  it('emits exactly the SYN segment, options and checksum included', () => {
    const r = new TcpRepr();
    r.srcPort = 40000;
    r.dstPort = 80;
    r.seq = 0x6b8b4567;
    r.flags = TCP_SYN;
    r.window = 64240;
    r.options = Buffer.from(SYN_OPTIONS);
    expect(r.bufferLen()).toBe(40);
    const out = Buffer.alloc(40);
    r.emit(out, 0, CLIENT, VIP);
    expect(toHex(out)).toBe(toHex(SYN.subarray(20)));
  });

  it('emits exactly the PSH segment with its payload', () => {
    const r = new TcpRepr();
    Object.assign(r, { srcPort: 40000, dstPort: 80, seq: 0x6b8b4568, ack: 0x2a3b4c5d, flags: 0x18, window: 502 });
    const out = Buffer.alloc(25);
    r.emit(out, 0, CLIENT, VIP, Buffer.from('ping!'));
    expect(toHex(out)).toBe(toHex(PSH.subarray(20)));
  });

  it('pads options to a multiple of 4 with zero (EOL) bytes', () => {
    const r = new TcpRepr();
    r.options = fromHex('02 04 05 b4 01 01 03'); // 7 bytes -> 8
    expect(r.bufferLen()).toBe(28);
    const out = Buffer.alloc(28, 0xee);
    r.emit(out, 0, CLIENT, VIP);
    expect(out[TCP.DATA_OFF]).toBe(7 << 4);
    expect(out[27]).toBe(0);
    expect(new TcpView().reset(out, 0, 28).verifyChecksum(CLIENT, VIP)).toBe(true);
  });

  it('rejects options longer than 40 bytes', () => {
    const r = new TcpRepr();
    r.options = Buffer.alloc(41);
    expect(() => r.bufferLen()).toThrow(InvalidError);
  });

  it('round-trips: parse(view of vector) then emit gives the vector back', () => {
    const r = TcpRepr.parse(tcpOf(SYN));
    expect(r).toMatchObject({ srcPort: 40000, dstPort: 80, seq: 0x6b8b4567, ack: 0, flags: TCP_SYN, window: 64240 });
    expect(r.options).toEqual(SYN_OPTIONS);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, 0, CLIENT, VIP);
    expect(out).toEqual(SYN.subarray(20));
  });

  it('parse copies the options out of the packet buffer', () => {
    const b = Buffer.from(SYN);
    const r = TcpRepr.parse(tcpOf(b));
    b.fill(0, 40);
    expect(r.options).toEqual(SYN_OPTIONS);
  });

  it('parse leaves options undefined when there are none, and throws on a bad header', () => {
    expect(TcpRepr.parse(tcpOf(PSH)).options).toBeUndefined();
    expect(() => TcpRepr.parse(new TcpView().reset(PSH, 20, 19))).toThrow(InvalidError);
  });

  it('the packet builder produces the SYN vector byte for byte', () => {
    const built = packet()
      .ipv4({ src: '10.0.0.1', dst: '192.168.0.1', id: 0x1c46, df: true })
      .tcp({ sport: 40000, dport: 80, flags: 'S', seq: 0x6b8b4567, window: 64240, options: SYN_OPTIONS })
      .build();
    expect(toHex(built)).toBe(toHex(SYN));
  });
});

describe('TcpView.checkLen verdicts', () => {
  it('V_TRUNCATED below 20 bytes', () => {
    expect(new TcpView().reset(PSH, 20, 19).checkLen()).toBe(V_TRUNCATED);
    expect(new TcpView().reset(PSH, 20, 0).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_TRUNCATED when len runs past the end of the buffer', () => {
    expect(new TcpView().reset(PSH, 20, 26).checkLen()).toBe(V_TRUNCATED);
  });

  it('V_BAD_DATA_OFFSET for a data offset below 5 words', () => {
    const b = Buffer.from(PSH);
    b[20 + TCP.DATA_OFF] = 4 << 4;
    expect(new TcpView().reset(b, 20, 25).checkLen()).toBe(V_BAD_DATA_OFFSET);
  });

  it('V_BAD_DATA_OFFSET for a data offset beyond the segment (overlong header)', () => {
    const b = Buffer.from(SYN);
    b[20 + TCP.DATA_OFF] = 11 << 4; // 44 > 40
    expect(new TcpView().reset(b, 20, 40).checkLen()).toBe(V_BAD_DATA_OFFSET);
    expect(new TcpView().reset(SYN, 20, 39).checkLen()).toBe(V_BAD_DATA_OFFSET);
  });

  it('a corrupted byte fails verifyChecksum but not checkLen', () => {
    const b = Buffer.from(PSH);
    b[44] ^= 0x20; // payload 'ping!' -> 'Ping!'
    const t = tcpOf(b);
    expect(t.checkLen()).toBe(V_OK);
    expect(t.verifyChecksum(CLIENT, VIP)).toBe(false);
  });
});

describe('TcpView: set with checksum update', () => {
  it('DNAT: rewrite IPv4 dst + TCP dport, the whole packet verifies and equals a full recompute', () => {
    const b = Buffer.from(SYN);
    const ip = new Ipv4View().reset(b, 0, b.length);
    const t = tcpOf(b);
    ip.setDstAddrWithChecksumUpdate(REAL);
    t.updateChecksumForAddr(VIP, REAL);
    t.setDstPortWithChecksumUpdate(8080);
    const d = expectValidPacket(b);
    expect([d.dst, d.dport, d.sport]).toEqual(['172.16.0.5', 8080, 40000]);
    const incremental = t.checksum;
    t.fillChecksum(CLIENT, REAL);
    expect(t.checksum).toBe(incremental);
  });

  it('SNAT: rewrite IPv4 src + TCP sport on the reply path', () => {
    const reply = packet()
      .ipv4({ src: '172.16.0.5', dst: '10.0.0.1' })
      .tcp({ sport: 8080, dport: 40000, flags: 'SA', seq: 1, ack: 0x6b8b4568 })
      .build();
    const ip = new Ipv4View().reset(reply, 0, reply.length);
    const t = tcpOf(reply);
    ip.setSrcAddrWithChecksumUpdate(VIP);
    t.updateChecksumForAddr(REAL, VIP);
    t.setSrcPortWithChecksumUpdate(80);
    const d = expectValidPacket(reply);
    expect([d.src, d.sport, d.flags]).toEqual(['192.168.0.1', 80, 'SA']);
  });

  it('seq/ack rewrite (wrapping past 2^32) keeps the segment valid', () => {
    const b = Buffer.from(PSH);
    const t = tcpOf(b);
    t.setSeqWithChecksumUpdate((t.seq + 0xfffffff0) >>> 0);
    t.setAckWithChecksumUpdate(0xffffffff);
    expect(t.ack).toBe(0xffffffff);
    const d = expectValidPacket(b);
    expect(d.seq).toBe((0x6b8b4568 + 0xfffffff0) >>> 0);
  });

  it('works on a segment at a non-zero offset in a larger buffer', () => {
    const big = Buffer.alloc(64 + SYN.length + 32, 0xee);
    SYN.copy(big, 64);
    const t = new TcpView().reset(big, 84, 40);
    expect(t.checkLen()).toBe(V_OK);
    t.setSrcPortWithChecksumUpdate(1);
    expect(t.verifyChecksum(CLIENT, VIP)).toBe(true);
    expect(big.subarray(0, 64)).toEqual(Buffer.alloc(64, 0xee));
  });

  it('raw setters leave the checksum alone', () => {
    const b = Buffer.from(PSH);
    const t = tcpOf(b);
    t.dstPort = 81;
    expect(t.checksum).toBe(0x1f3a);
    expect(t.verifyChecksum(CLIENT, VIP)).toBe(false);
  });
});
