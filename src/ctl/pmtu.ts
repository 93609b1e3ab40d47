// Path MTU towards TUN real servers, learnt from the ICMP "fragmentation needed" errors that
// routers send back about our tunnel packets (their outer source is the director). The kernel
// would drop such errors (no ipip handler), so lvsd reads ICMP itself (a raw receiver) and lowers
// the dest's MTU at once; the periodic path refresh raises it again when the route says so.

import { readdirSync, readFileSync } from 'node:fs';
import { IPPROTO_IPIP } from '../ip-vs';
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, IcmpView } from '../wire/icmp';
import { Ipv4View } from '../wire/ipv4';
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
