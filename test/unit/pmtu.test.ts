// Reading routers' frag-needed errors about our tunnel packets (lvsd's ICMP receiver).

import { describe, expect, it } from 'vitest';
import { parseTunnelFragNeeded, parseTunnelPacketTooBig } from '../../src/ctl/pmtu';
import { ipToU32 } from '../../src/wire/addr';
import { formatIpv6Words, ipv6ToBytes } from '../../src/wire/addr6';
import { packet } from '../helpers/packet-builder';
import { decode6, icmp6, tcp6 } from '../helpers/packet6';

/** An ICMP error from a router to the director quoting the first 28 bytes of `offending`. */
function icmpError(type: number, code: number, mtu: number, offending: Buffer): Buffer {
  return packet()
    .ipv4({ src: '10.0.0.253', dst: '192.168.0.254' })
    .icmp({ type, code, rest: mtu, payload: offending.subarray(0, 28) })
    .build();
}

const inner = packet()
  .ipv4({ src: '192.168.0.2', dst: '192.168.0.1', df: true })
  .tcp({ sport: 4000, dport: 80 })
  .build();
const tunnelPacket = Buffer.concat([
  packet().ipv4({ src: '192.168.0.254', dst: '172.16.0.1', protocol: 4, df: true }).payload(inner).build(),
]);

describe('parseTunnelFragNeeded', () => {
  it('reports the tunnel destination, source and next-hop MTU of a frag-needed about IP-in-IP', () => {
    const seen: number[][] = [];
    const e = icmpError(3, 4, 1400, tunnelPacket);
    expect(parseTunnelFragNeeded(e, 0, e.length, (d, s, m) => seen.push([d, s, m]))).toBe(true);
    expect(seen).toEqual([[ipToU32('172.16.0.1'), ipToU32('192.168.0.254'), 1400]]);
  });

  it('ignores other errors, errors about other protocols, and impossible MTUs', () => {
    const never = () => {
      throw new Error('must not be called');
    };
    for (const e of [
      icmpError(3, 3, 1400, tunnelPacket), // port unreachable
      icmpError(11, 0, 0, tunnelPacket), // time exceeded
      icmpError(3, 4, 1400, inner), // about a plain TCP packet
      icmpError(3, 4, 40, tunnelPacket), // below the IPv4 minimum
    ]) {
      expect(parseTunnelFragNeeded(e, 0, e.length, never)).toBe(false);
    }
    const truncated = icmpError(3, 4, 1400, tunnelPacket).subarray(0, 30);
    expect(parseTunnelFragNeeded(truncated, 0, truncated.length, never)).toBe(false);
  });
});

describe('parseTunnelPacketTooBig', () => {
  // An IPv6-in-IPv6 packet from the director to a real server, as a router quotes it.
  const inner6 = tcp6({ src: '2001:db8::2', dst: '2001:db8::1', sport: 4000, dport: 80, payload: Buffer.alloc(1300) });
  const outer6 = Buffer.alloc(40 + inner6.length);
  outer6.writeUInt32BE(0x60000000, 0);
  outer6.writeUInt16BE(inner6.length, 4);
  outer6[6] = 41;
  outer6[7] = 64;
  outer6.set(ipv6ToBytes('2001:db8::fe'), 8);
  outer6.set(ipv6ToBytes('2001:db8:10::1'), 24);
  inner6.copy(outer6, 40);
  /** The ICMPv6 message as an IPv6 raw socket reads it: from its header on, quoting 1232 bytes. */
  const tooBig = (type: number, mtu: number, quoted: Buffer) =>
    decode6(icmp6({ src: '2001:db8::fd', dst: '2001:db8::fe', type, rest: mtu, payload: quoted.subarray(0, 1232) }))
      .payload;

  it('reports the tunnel destination, source and MTU of a packet too big about IPv6-in-IPv6', () => {
    const seen: string[] = [];
    const m = tooBig(2, 1400, outer6);
    const lower = (d: Uint32Array, s: Uint32Array, mtu: number) =>
      seen.push(`${formatIpv6Words(d)} ${formatIpv6Words(s)} ${mtu}`);
    expect(parseTunnelPacketTooBig(m, 0, m.length, lower)).toBe(true);
    expect(seen).toEqual(['2001:db8:10::1 2001:db8::fe 1400']);
  });

  it('ignores other messages, packets that are not tunnelled, and MTUs below 1280', () => {
    const never = () => {
      throw new Error('must not be called');
    };
    for (const m of [tooBig(1, 1400, outer6), tooBig(2, 1400, inner6), tooBig(2, 1000, outer6), Buffer.alloc(4)]) {
      expect(parseTunnelPacketTooBig(m, 0, m.length, never)).toBe(false);
    }
  });
});
