import { describe, expect, it } from 'vitest';
import { steerHash, steerMix } from '../../src/wire/steer-hash';

const VIP = 0x0a630001; // 10.99.0.1
const CLIENT = 0xac100001; // 172.16.0.1
const RIP = 0x0a620005; // 10.98.0.5
const isVip = (a: number): boolean => a === VIP;

function ipv4(src: number, dst: number, proto: number, payload: Buffer, frag = 0x4000): Buffer {
  const b = Buffer.alloc(20 + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(frag, 6);
  b[8] = 64;
  b[9] = proto;
  b.writeUInt32BE(src, 12);
  b.writeUInt32BE(dst, 16);
  payload.copy(b, 20);
  return b;
}

function ports(sport: number, dport: number, len = 8): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
}

function icmpError(type: number, quoted: Buffer): Buffer {
  const b = Buffer.alloc(8 + quoted.length);
  b[0] = type;
  quoted.copy(b, 8);
  return b;
}

const h = (b: Buffer, clientIsSource = false): number => steerHash(b, 0, b.length, isVip, clientIsSource);

describe('steerHash (the multi-queue TUN steering program, in TypeScript)', () => {
  it('hashes a request and its NAT reply alike: the client address and port', () => {
    const req = ipv4(CLIENT, VIP, 6, ports(40000, 80));
    const reply = ipv4(RIP, CLIENT, 6, ports(8080, 40000));
    expect(h(req)).toBe(steerMix(CLIENT, 40000));
    expect(h(reply)).toBe(h(req));
    expect(h(ipv4(CLIENT, VIP, 17, ports(40000, 53)))).toBe(h(req));
  });

  it('separates clients by port', () => {
    const a = h(ipv4(CLIENT, VIP, 6, ports(40000, 80)));
    const b = h(ipv4(CLIENT, VIP, 6, ports(40001, 80)));
    expect(a).not.toBe(b);
  });

  it('hashes fragments, first and later, and portless packets by the client address alone', () => {
    const first = ipv4(CLIENT, VIP, 17, ports(40000, 53), 0x2000);
    const later = ipv4(CLIENT, VIP, 17, Buffer.alloc(8), 0x0003);
    const replyLater = ipv4(RIP, CLIENT, 17, Buffer.alloc(8), 0x0003);
    const echo = ipv4(CLIENT, VIP, 1, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]));
    for (const p of [first, later, replyLater, echo]) expect(h(p)).toBe(steerMix(CLIENT, 0));
  });

  it('steers an ICMP error by the packet it quotes, whichever way that one went', () => {
    const aboutRequest = ipv4(0x0a610001, CLIENT, 1, icmpError(3, ipv4(CLIENT, RIP, 6, ports(40000, 8080))));
    const aboutReply = ipv4(0x0a610001, VIP, 1, icmpError(11, ipv4(VIP, CLIENT, 6, ports(80, 40000))));
    expect(h(aboutRequest)).toBe(steerMix(CLIENT, 40000));
    expect(h(aboutReply)).toBe(steerMix(CLIENT, 40000));
  });

  it('with an address mask (persistence) drops the port and masks the client address', () => {
    const req = ipv4(CLIENT, VIP, 6, ports(40000, 80));
    const neighbour = ipv4(CLIENT + 5, VIP, 6, ports(40001, 80));
    const reply = ipv4(RIP, CLIENT + 5, 6, ports(8080, 40001));
    const masked = steerMix((CLIENT & 0xffffff00) >>> 0, 0);
    expect(steerHash(req, 0, req.length, isVip, false, 0xffffff00)).toBe(masked);
    expect(steerHash(neighbour, 0, neighbour.length, isVip, false, 0xffffff00)).toBe(masked);
    expect(steerHash(reply, 0, reply.length, isVip, false, 0xffffff00)).toBe(masked);
    expect(steerHash(req, 0, req.length, isVip, false, 0xffffffff)).toBe(steerMix(CLIENT, 0));
  });

  it('with clientIsSource always takes the source (a device that carries only requests)', () => {
    expect(h(ipv4(CLIENT, 0x01020304, 6, ports(40000, 80)), true)).toBe(steerMix(CLIENT, 40000));
  });

  it('returns 0 where the kernel program would read past the end', () => {
    expect(h(Buffer.alloc(19))).toBe(0);
    const cut = ipv4(CLIENT, VIP, 6, Buffer.alloc(2));
    expect(h(cut)).toBe(0);
    const shortQuote = ipv4(0x0a610001, CLIENT, 1, icmpError(3, Buffer.alloc(10)));
    expect(h(shortQuote)).toBe(0);
  });
});
