// Path MTU towards TUN real servers, learnt from the ICMP "fragmentation needed" errors that
// routers send back about our tunnel packets (their outer source is the director). The kernel
// would drop such errors (no ipip handler), so lvsd reads ICMP itself (a raw receiver) and lowers
// the dest's MTU at once; the periodic path refresh raises it again when the route says so.

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
