import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { ipToU32 } from '../../src/wire/addr';
import {
  ICMP,
  ICMP_CODE,
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_FRAG_NEEDED,
  ICMP_PARAM_PROBLEM,
  ICMP_PORT_UNREACH,
  ICMP_QUOTED_L4_LEN,
  ICMP_REDIRECT,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  ICMP_TYPE,
  IcmpRepr,
  IcmpView,
} from '../../src/wire/icmp';
import { Ipv4View } from '../../src/wire/ipv4';
import { TcpView } from '../../src/wire/tcp';
import { V_OK, V_TRUNCATED } from '../../src/wire/verdict';
import { expectValidPacket } from '../helpers/packet-assert';
import { fromHex, packet, toHex } from '../helpers/packet-builder';

// A Windows-style ping, 10.0.0.1 -> 192.168.0.1, ttl 128, id 0x1c2f seq 1, 32 bytes "abc...".
// Checksums computed by an independent script.
const ECHO = fromHex(`
  45 00 00 3c 0b 0e 00 00 80 01 65 09 0a 00 00 01   # IPv4, ttl 128, icmp
  c0 a8 00 01                                       # dst; ICMP starts at 20:
  08 00 31 2c 1c 2f 00 01                           # echo request, csum 0x312c, id, seq
  61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f 70 71 72 73 74 75 76 77 61 62 63 64 65 66 67 68 69
`);
const ECHO_DATA = ECHO.subarray(28);

// Fragmentation needed (next-hop MTU 1400) from router 192.168.0.254 to 10.0.0.1, quoting the
// IPv4 header and first 8 TCP bytes of the SYN 10.0.0.1:40000 -> 192.168.0.1:80.
const FRAG_NEEDED = fromHex(`
  45 c0 00 38 00 01 00 00 ff 01 ef 5c c0 a8 00 fe 0a 00 00 01   # IPv4
  03 04 aa 00 00 00 05 78                                       # type 3 code 4, csum, mtu 1400
  45 00 00 3c 1c 46 40 00 40 06 53 cc 0a 00 00 01 c0 a8 00 01   # quoted IPv4 header
  9c 40 00 50 6b 8b 45 67                                       # quoted TCP ports + seq
`);
const QUOTED = FRAG_NEEDED.subarray(28);

function icmpOf(buf: Buffer): IcmpView {
  const ip = new Ipv4View().reset(buf, 0, buf.length);
  expect(ip.checkLen()).toBe(V_OK);
  return new IcmpView().reset(buf, ip.payloadOffset, ip.payloadLen);
}

describe('IcmpView: bytes -> fields', () => {
  it('reads a real echo request', () => {
    const m = icmpOf(ECHO);
    expect(m.checkLen()).toBe(V_OK);
    expect(m.type).toBe(ICMP_ECHO_REQUEST);
    expect(m.code).toBe(0);
    expect(m.checksum).toBe(0x312c);
    expect(m.rest32).toBe(0x1c2f0001);
    expect(m.id).toBe(0x1c2f);
    expect(m.seq).toBe(1);
    expect(m.payloadOffset).toBe(28);
    expect(m.payloadLen).toBe(32);
    expect(m.isError()).toBe(false);
    expect(m.verifyChecksum()).toBe(true);
  });

  it('reads a real fragmentation-needed error and the packet it quotes', () => {
    const m = icmpOf(FRAG_NEEDED);
    expect(m.checkLen()).toBe(V_OK);
    expect([m.type, m.code]).toEqual([ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED]);
    expect(m.nextHopMtu).toBe(1400);
    expect(m.isError()).toBe(true);
    expect(m.verifyChecksum()).toBe(true);
    expect(m.payloadLen).toBe(28);

    // The quoted header: its totalLen (60) describes the original packet, so checkLen() refuses
    // it and checkHeaderLen() is the check to use.
    const inner = new Ipv4View().reset(FRAG_NEEDED, m.payloadOffset, m.payloadLen);
    expect(inner.checkLen()).not.toBe(V_OK);
    expect(inner.checkHeaderLen()).toBe(V_OK);
    expect(inner.srcAddr).toBe(ipToU32('10.0.0.1'));
    expect(inner.dstAddr).toBe(ipToU32('192.168.0.1'));
    expect(inner.protocol).toBe(6);
    const quotedL4 = m.payloadLen - inner.headerLen;
    expect(quotedL4).toBe(ICMP_QUOTED_L4_LEN);
    const tcp = new TcpView().reset(FRAG_NEEDED, inner.payloadOffset, quotedL4);
    expect([tcp.srcPort, tcp.dstPort, tcp.seq]).toEqual([40000, 80, 0x6b8b4567]);
  });

  it('isError is true exactly for the error types', () => {
    const m = new IcmpView().reset(Buffer.from(ECHO.subarray(20)), 0, 40);
    const errors = [ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT, ICMP_TIME_EXCEEDED, ICMP_PARAM_PROBLEM];
    for (let t = 0; t < 256; t++) {
      m.type = t;
      expect(m.isError(), `type ${t}`).toBe(errors.includes(t));
    }
  });

  it('type and code constants have their RFC 792 values', () => {
    expect(ICMP_TYPE).toEqual({
      ECHO_REPLY: 0,
      DEST_UNREACH: 3,
      SOURCE_QUENCH: 4,
      REDIRECT: 5,
      ECHO_REQUEST: 8,
      TIME_EXCEEDED: 11,
      PARAM_PROBLEM: 12,
    });
    expect([ICMP_CODE.PORT_UNREACH, ICMP_CODE.FRAG_NEEDED, ICMP_CODE.EXC_TTL]).toEqual([3, 4, 0]);
    expect(ICMP_PORT_UNREACH).toBe(3);
  });
});

describe('IcmpRepr: fields -> bytes', () => {
  it('emits exactly the echo request', () => {
    const r = new IcmpRepr();
    r.type = ICMP_ECHO_REQUEST;
    r.rest = (0x1c2f << 16) | 1;
    expect(r.bufferLen()).toBe(8);
    const out = Buffer.alloc(40);
    r.emit(out, 0, ECHO_DATA);
    expect(toHex(out)).toBe(toHex(ECHO.subarray(20)));
  });

  it('emits exactly the fragmentation-needed error', () => {
    const r = new IcmpRepr();
    Object.assign(r, { type: ICMP_DEST_UNREACH, code: ICMP_FRAG_NEEDED, rest: 1400 });
    const out = Buffer.alloc(36);
    r.emit(out, 0, QUOTED);
    expect(toHex(out)).toBe(toHex(FRAG_NEEDED.subarray(20)));
  });

  it('round-trips: parse then emit (payload in place) gives the vector back', () => {
    const r = IcmpRepr.parse(icmpOf(ECHO));
    expect(r).toEqual(Object.assign(new IcmpRepr(), { type: 8, code: 0, rest: 0x1c2f0001, payloadLen: 32 }));
    const out = Buffer.from(ECHO.subarray(20));
    out.fill(0, 0, 8);
    r.emit(out, 0);
    expect(out).toEqual(ECHO.subarray(20));
  });

  it('parse throws InvalidError below 8 bytes', () => {
    expect(() => IcmpRepr.parse(new IcmpView().reset(ECHO, 20, 7))).toThrow(InvalidError);
  });

  it('the packet builder produces both vectors byte for byte', () => {
    const echo = packet()
      .ipv4({ src: '10.0.0.1', dst: '192.168.0.1', ttl: 128, id: 0x0b0e })
      .icmp({ type: ICMP_ECHO_REQUEST, rest: 0x1c2f0001 })
      .payload(ECHO_DATA)
      .build();
    expect(toHex(echo)).toBe(toHex(ECHO));
    const err = packet()
      .ipv4({ src: '192.168.0.254', dst: '10.0.0.1', ttl: 255, id: 1, tos: 0xc0 })
      .icmp({ type: 3, code: 4, rest: 1400, payload: QUOTED })
      .build();
    expect(toHex(err)).toBe(toHex(FRAG_NEEDED));
  });
});

describe('IcmpView.checkLen verdicts', () => {
  it('V_TRUNCATED below 8 bytes', () => {
    expect(new IcmpView().reset(ECHO, 20, 7).checkLen()).toBe(V_TRUNCATED);
    expect(new IcmpView().reset(ECHO, 20, 8).checkLen()).toBe(V_OK);
  });

  it('V_TRUNCATED when len runs past the end of the buffer', () => {
    expect(new IcmpView().reset(ECHO, 20, 41).checkLen()).toBe(V_TRUNCATED);
  });

  it('a corrupted payload byte fails verifyChecksum', () => {
    const b = Buffer.from(ECHO);
    b[59] ^= 0xff;
    expect(icmpOf(b).verifyChecksum()).toBe(false);
  });
});

describe('IcmpView: checksum maintenance', () => {
  it('echo request -> reply: type rewrite + updateChecksum16 equals a full recompute', () => {
    const b = Buffer.from(ECHO);
    const m = icmpOf(b);
    const oldWord = (m.type << 8) | m.code;
    m.type = ICMP_ECHO_REPLY;
    m.updateChecksum16(oldWord, (m.type << 8) | m.code);
    expect(m.verifyChecksum()).toBe(true);
    const incremental = m.checksum;
    m.fillChecksum();
    expect(m.checksum).toBe(incremental);
  });

  it('NAT of a quoted packet: inner address + port + inner checksum folded into the ICMP checksum', () => {
    // The error is about a packet to the VIP; rewrite the quoted dst to the real server 172.16.0.5:8080.
    const b = Buffer.from(FRAG_NEEDED);
    const m = icmpOf(b);
    const inner = new Ipv4View().reset(b, m.payloadOffset, m.payloadLen);
    expect(inner.checkHeaderLen()).toBe(V_OK);
    const tcp = new TcpView().reset(b, inner.payloadOffset, ICMP_QUOTED_L4_LEN);

    const oldAddr = inner.dstAddr;
    const oldInnerCsum = inner.checksum;
    inner.setDstAddrWithChecksumUpdate(ipToU32('172.16.0.5'));
    m.updateChecksum32(oldAddr, inner.dstAddr);
    m.updateChecksum16(oldInnerCsum, inner.checksum);
    const oldPort = tcp.dstPort;
    tcp.dstPort = 8080; // the quoted TCP checksum is not among the 8 bytes: only ICMP's changes
    m.updateChecksum16(oldPort, 8080);

    expect(inner.verifyChecksum()).toBe(true);
    const d = expectValidPacket(b);
    expect(d.icmp).toEqual({ type: 3, code: 4, rest: 1400 });
    const incremental = m.checksum;
    m.fillChecksum();
    expect(m.checksum).toBe(incremental);
  });

  it('raw setters for id, seq, rest32 and nextHopMtu write in place', () => {
    const m = new IcmpView().reset(Buffer.alloc(8), 0, 8);
    m.id = 0xabcd;
    m.seq = 0x0102;
    expect(m.rest32).toBe(0xabcd0102);
    m.nextHopMtu = 576;
    expect(m.seq).toBe(576);
    m.rest32 = 0xffffffff;
    expect(m.buf.readUInt32BE(ICMP.REST)).toBe(0xffffffff);
    m.code = 3;
    expect(m.code).toBe(3);
  });
});
