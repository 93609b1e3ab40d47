// IP-in-IP tunnelling (-i, ip_vs_tunnel_xmit): a new outer IPv4 header (protocol 4, from the
// director's address towards the real server to the real server) in front of the unchanged
// packet, framed for the next hop's MAC on the packet socket of the interface towards the real
// server (as DR frames, sparing the kernel's IP output of every segment), or sent on the raw
// socket while that MAC is unknown. The outer header copies the inner TOS and TTL, and DF
// (pmtu_disc = 1). Over the path MTU: with DF the client gets ICMP fragmentation needed
// (next-hop MTU = path MTU - 20); without DF the outer datagram is fragmented. Offloads: a
// partial checksum is completed first. A GSO packet is encapsulated whole and written back into
// the TUN for the kernel to forward and cut into IP-in-IP segments, when lvsd's ingress program
// on the TUN (native/src/encap.c) tells the kernel it is IP-in-IP (x.ipipGso); without it, it is
// segmented here first (gso.ts), each segment encapsulated on its own.

import { IPPROTO_IPIP } from '../ip-vs';
import { TX_DEV_RAW, TX_DEV_TUN } from '../native/packet-io';
import { IPV4, IPV4_DF, IPV4_MF, writeIpv4Header } from '../wire/ipv4';
import { VNET, VNET_F_NEEDS_CSUM, writeVnetHdr } from '../wire/vnet';
import { bypass } from './bypass';
import { completeChecksum, framePlain, type Transmitter, tcpHeaderLen, wireLen } from './common';
import { segmentTcp } from './gso';
import { sendFragNeeded } from './icmp-error';
import type { PacketContext } from './packet-context';
import { D_FRAG_NEEDED, D_NO_ROUTE, D_TOO_BIG, TX, TX_QUEUED } from './verdict';

const OUTER = IPV4.MIN_HEADER;

/**
 * Where the finished outer packet at buf[off, off + len) leaves: framed to the next hop (the
 * Ethernet header, and a plain virtio_net_hdr with offloads, written in the headroom before it)
 * when its MAC is known, else the raw socket. Sets the context's outOff/outLen/outDev.
 */
function place(x: PacketContext, off: number, len: number): void {
  const dest = x.dest;
  const header = dest.l2Header;
  if (header === null) {
    x.outOff = off;
    x.outLen = len;
    x.outDev = TX_DEV_RAW;
    return;
  }
  framePlain(x, off, len, header, dest.l2Dev);
}

/** Queue the outer packet at buf[off, off + len) where place() says. */
function queueOuter(x: PacketContext, off: number, len: number): boolean {
  place(x, off, len);
  return x.queue(x.outOff, x.outLen, x.outDev);
}

/** Send the inner packet at (off, len) as outer fragments of at most `mtu` bytes each. */
function fragment(
  x: PacketContext,
  off: number,
  len: number,
  mtu: number,
  id: number,
  tos: number,
  ttl: number,
): number {
  const dest = x.dest;
  const chunk = (mtu - OUTER) & ~7;
  if (chunk <= 0) return D_TOO_BIG;
  const buf = x.ip.buf;
  // The first fragment is built in place, in front of the inner packet.
  const first = Math.min(chunk, len);
  writeIpv4Header(buf, off - OUTER, tos, OUTER + first, id, IPV4_MF, ttl, IPPROTO_IPIP, dest.tunSrc, dest.addr);
  if (!queueOuter(x, off - OUTER, OUTER + first)) return D_TOO_BIG;
  for (let done = first; done < len; done += chunk) {
    const part = Math.min(chunk, len - done);
    const g = x.genSlot();
    if (g < 0 || OUTER + part > x.slotCapacity) return D_TOO_BIG;
    const more = done + part < len ? IPV4_MF : 0;
    buf.copy(buf, g + OUTER, off + done, off + done + part);
    writeIpv4Header(buf, g, tos, OUTER + part, id, more | (done >> 3), ttl, IPPROTO_IPIP, dest.tunSrc, dest.addr);
    if (!queueOuter(x, g, OUTER + part)) return D_TOO_BIG;
  }
  return TX_QUEUED;
}

/** Encapsulate one finished segment at buf[off, off + len) (gso.ts sink); it fits the path MTU. */
function queueSegment(x: PacketContext, off: number, len: number): number {
  const buf = x.ip.buf;
  const dest = x.dest;
  const df = buf.readUInt16BE(off + IPV4.FLAGS_FRAG) & IPV4_DF;
  const outer = off - OUTER;
  writeIpv4Header(
    buf,
    outer,
    buf[off + IPV4.TOS],
    len + OUTER,
    x.nextIpId(),
    df,
    buf[off + IPV4.TTL],
    IPPROTO_IPIP,
    dest.tunSrc,
    dest.addr,
  );
  return queueOuter(x, outer, len + OUTER) ? TX_QUEUED : D_TOO_BIG;
}

/**
 * The current GSO packet encapsulated whole, for the kernel to segment (x.ipipGso): the outer
 * header in front (TTL + 1, as the kernel's forward decrements it), the virtio_net_hdr moved
 * before it with its offsets 20 bytes further, written back into the TUN.
 */
function encapWhole(x: PacketContext): number {
  const ip = x.ip;
  const buf = ip.buf;
  const dest = x.dest;
  const vnet = x.vnetHdr;
  const gsoType = buf[ip.off - vnet + VNET.GSO_TYPE];
  const hdrLen = OUTER + ip.headerLen + tcpHeaderLen(x);
  const outer = ip.off - OUTER;
  const ttl = ip.ttl < 255 ? ip.ttl + 1 : 255;
  const df = ip.dontFrag ? IPV4_DF : 0;
  writeIpv4Header(buf, outer, ip.tos, ip.totalLen + OUTER, x.nextIpId(), df, ttl, IPPROTO_IPIP, dest.tunSrc, dest.addr);
  const { csumStart, csumOffset, gsoSize } = x;
  writeVnetHdr(buf, outer - vnet, VNET_F_NEEDS_CSUM, gsoType, hdrLen, gsoSize, csumStart + OUTER, csumOffset);
  x.outOff = outer - vnet;
  x.outLen = vnet + OUTER + ip.totalLen;
  x.outDev = TX_DEV_TUN;
  return TX;
}

export const tunnel: Transmitter = {
  in(x: PacketContext, _c: number): number {
    const dest = x.dest;
    if (dest.noRoute) return D_NO_ROUTE;
    const ip = x.ip;
    const df = ip.dontFrag;
    // One MTU rule for whole packets and GSO segments alike (wireLen is the segment size).
    const tooBig = wireLen(x) + OUTER > dest.mtu;
    if (tooBig && df) {
      sendFragNeeded(x, dest.mtu - OUTER);
      return D_FRAG_NEEDED;
    }
    if (x.gsoSize !== 0) {
      if (tooBig) return D_TOO_BIG;
      if (x.ipipGso && x.csumStart !== 0 && ip.totalLen + OUTER <= 0xffff) return encapWhole(x);
      return segmentTcp(x, queueSegment);
    }
    if (x.csumStart !== 0) completeChecksum(x);
    const len = ip.totalLen;
    if (tooBig) return fragment(x, ip.off, len, dest.mtu, x.nextIpId(), ip.tos, ip.ttl);
    const off = ip.off - OUTER;
    writeIpv4Header(
      ip.buf,
      off,
      ip.tos,
      len + OUTER,
      x.nextIpId(),
      df ? IPV4_DF : 0,
      ip.ttl,
      IPPROTO_IPIP,
      dest.tunSrc,
      dest.addr,
    );
    place(x, off, len + OUTER);
    return TX;
  },
  // Only NAT handles replies; anything else from the real server is forwarded as is.
  out: bypass,
};
