// Reading routers' frag-needed errors about our tunnel packets (lvsd's ICMP receiver).

import { describe, expect, it } from 'vitest';
import { parseTunnelFragNeeded } from '../../src/ctl/pmtu';
import { ipToU32 } from '../../src/wire/addr';
import { packet } from '../helpers/packet-builder';

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
