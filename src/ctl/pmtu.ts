// Path MTU towards TUN real servers, learnt from the ICMP "fragmentation needed" errors (ICMPv6
// packet too big) that routers send back about our tunnel packets (their outer source is the
// director). The kernel would drop such errors (no ipip or ip6_tunnel handler), so lvsd reads
// ICMP and ICMPv6 itself (raw receivers) and lowers the dest's MTU at once; the periodic path
// refresh raises it again when the route says so.

import { readdirSync, readFileSync } from 'node:fs';
import { IPPROTO_IPIP } from '../ip-vs';
import { ICMP, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMPV6_PKT_TOOBIG, IcmpView, IPV6_MIN_MTU } from '../wire/icmp';
import { Ipv4View } from '../wire/ipv4';
import { Ipv6View } from '../wire/ipv6';
import { V_OK } from '../wire/verdict';

const outer = new Ipv4View();
const icmp = new IcmpView();
const quoted = new Ipv4View();

/** The smallest MTU IPv4 allows (RFC 791); lower announcements are ignored. */
const MIN_MTU = 68;

/**
 * If the ICMP datagram at buf[off, off+len) is a frag-needed about an IP-in-IP packet, call
 * `lower(dst, src, mtu)` with the quoted tunnel packet's addresses and the next-hop MTU.
 * Returns true when it was one.
 */
export function parseTunnelFragNeeded(
  buf: Buffer,
  off: number,
  len: number,
  lower: (dst: number, src: number, mtu: number) => void,
): boolean {
  outer.reset(buf, off, len);
  if (outer.checkLen() !== V_OK || outer.isFragment) return false;
  icmp.reset(buf, outer.payloadOffset, outer.payloadLen);
  if (icmp.checkLen() !== V_OK || icmp.type !== ICMP_DEST_UNREACH || icmp.code !== ICMP_FRAG_NEEDED) return false;
  quoted.reset(buf, icmp.payloadOffset, icmp.payloadLen);
  if (quoted.checkHeaderLen() !== V_OK || quoted.protocol !== IPPROTO_IPIP) return false;
  const mtu = icmp.nextHopMtu;
  if (mtu < MIN_MTU) return false;
  lower(quoted.dstAddr, quoted.srcAddr, mtu);
  return true;
}

const quoted6 = new Ipv6View();
/** IPv6 in IPv6: the quoted tunnel packet's next header. */
const IPPROTO_IPV6 = 41;

/**
 * If the ICMPv6 message at buf[off, off+len) (as an IPv6 raw socket reads it: from the ICMPv6
 * header on) is a packet too big about an IPv6-in-IPv6 packet, call `lower(dst, src, mtu)` with
 * the quoted tunnel packet's addresses (four host-order words each, views into `buf`: copy what
 * you keep) and the MTU. Returns true when it was one.
 */
export function parseTunnelPacketTooBig(
  buf: Buffer,
  off: number,
  len: number,
  lower: (dst: Uint32Array, src: Uint32Array, mtu: number) => void,
): boolean {
  if (len < ICMP.HEADER || buf[off + ICMP.TYPE] !== ICMPV6_PKT_TOOBIG) return false;
  const mtu = buf.readUInt32BE(off + ICMP.REST);
  // Below IPv6's minimum nothing is lowered (RFC 8201 section 4).
  if (mtu < IPV6_MIN_MTU) return false;
  const q = quoted6.reset(buf, off + ICMP.HEADER, len - ICMP.HEADER);
  if (q.checkQuoted() !== V_OK || q.protocol !== IPPROTO_IPV6) return false;
  for (let i = 0; i < 4; i++) {
    dst6[i] = q.dstWord(i);
    src6[i] = q.srcWord(i);
  }
  lower(dst6, src6, mtu);
  return true;
}

const dst6 = new Uint32Array(4);
const src6 = new Uint32Array(4);

/**
 * The smallest MTU among this namespace's interfaces other than loopback and lvsd's own input
 * devices (`own`: its TUN and the mark devices): the largest NAT reply lvsd sends on the raw
 * socket without asking the kernel's forward path. 0xffff when there is none.
 */
export function smallestLinkMtu(own: (name: string) => boolean, root = '/sys/class/net'): number {
  let min = 0xffff;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return min;
  }
  for (const name of names) {
    if (name === 'lo' || own(name)) continue;
    try {
      const mtu = Number(readFileSync(`${root}/${name}/mtu`, 'utf8'));
      if (Number.isInteger(mtu) && mtu >= MIN_MTU && mtu < min) min = mtu;
    } catch {
      // gone meanwhile
    }
  }
  return min;
}
