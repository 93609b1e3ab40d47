// The IPv6 transmitters (core/path6.ts decides; these rewrite and queue), and the ICMPv6 the
// director originates.
//
// Who changes which field:
//   nat6 in:  destination address → RIP, L4 dport → RS port; the L4 checksum updated
//             incrementally for the port and the four address words (IPv6 has no header checksum)
//        out: source address → VIP, L4 sport → virtual port; likewise
//   dr6:      nothing at L3/L4; a 14-byte Ethernet header (RS MAC, EtherType 0x86DD) prepended
//   tunnel6:  nothing in the inner packet; a 40-byte outer IPv6 header (next header 41) prepended
//   bypass6:  nothing
// Every routed IPv6 packet is written back into the TUN (TX_DEV_TUN), and the director's kernel
// forwards it: routes, neighbour discovery and the hop limit are its (a forwarded NAT packet's
// hop limit is raised by one first, as for IPv4's TTL, since that forward decrements it
// again). An offload's partial checksum stays partial (the kernel completes it, or the next
// device does), and a TCPv6 GSO packet (the TUN takes TSO6) stays whole for the kernel to
// segment: the TUN's virtio_net_hdr in front of the packet is written back with it. DR frames
// carry theirs to the packet socket; a tunnel's GSO packet is segmented here (segmentTcp6).
//
// MTU: routers never fragment IPv6. A client's packet over the path MTU towards its real server
// (dest.mtu) is answered here with ICMPv6 packet too big quoting the packet as the client sent it
// (to the VIP), as ip_vs_nat_xmit_v6 does; a forward over the MTU of the client's link is
// answered by the kernel itself.

import { A6_DEST, A6_VIRTUAL, ADDR6_WORDS } from '../conn/conn-table';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../ip-vs';
import { TX_DEV_TUN } from '../native/packet-io';
import { checksum, update16 } from '../wire/checksum';
import { ETH } from '../wire/ethernet';
import {
  ICMP,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PARAMPROB,
  ICMPV6_PKT_TOOBIG,
  IPV6_MIN_MTU,
} from '../wire/icmp';
import { IPV6, Ipv6View } from '../wire/ipv6';
import { TCP, TCP_CWR, TCP_FIN, TCP_PSH } from '../wire/tcp';
import { V_BAD_CHECKSUM } from '../wire/verdict';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV6, writeVnetHdr } from '../wire/vnet';
import { framePlain, type Transmitter } from './common';
import type { PacketContext } from './packet-context';
import { unsupported } from './unsupported';
import { D_FRAG_NEEDED, D_NEIGH_MISS, D_NO_ROUTE, D_NO_SERVICE, D_TOO_BIG, TX, TX_QUEUED } from './verdict';

/** The hop limit of what the director originates, as the kernel's default (64). */
const HOP_LIMIT = 64;
/** Unknown option (code 2 of ICMPV6_PARAMPROB): may be answered to a multicast destination. */
const PARAMPROB_OPTION = 2;

/**
 * Queue the current IPv6 packet, as it now is, for the kernel to route: written back into the TUN
 * (with its virtio_net_hdr, partial checksum kept), with hop limit + 1 when `restoreHop`.
 */
export function sendRouted6(x: PacketContext, restoreHop: boolean): number {
  const ip = x.ip6;
  if (restoreHop && ip.hopLimit < 255) ip.hopLimit = ip.hopLimit + 1;
  if (x.reassembled && x.fragSize6 !== 0 && ip.totalLen > x.fragSize6) {
    return sendFragments6(x, x.fragSize6, (off, len) => queueBuilt6(x, off, len));
  }
  if (x.vnetHdr !== 0 && x.csumStart === 0) writeVnetHdr(ip.buf, ip.off - x.vnetHdr, 0, VNET_GSO_NONE, 0, 0, 0, 0);
  x.outOff = ip.off - x.vnetHdr;
  x.outLen = ip.totalLen + x.vnetHdr;
  x.outDev = TX_DEV_TUN;
  return TX;
}

/** An IPv6 packet of no service and no connection: forwarded unchanged. */
export function bypass6(x: PacketContext): number {
  return sendRouted6(x, false);
}

/** Queue a packet the director built in a generated slot at `off` (IPv6, `len` bytes) for the kernel to route. */
function queueBuilt6(x: PacketContext, off: number, len: number): boolean {
  const buf = x.ip6.buf;
  if (x.vnetHdr !== 0) writeVnetHdr(buf, off - x.vnetHdr, 0, VNET_GSO_NONE, 0, 0, 0, 0);
  return x.queue(off - x.vnetHdr, len + x.vnetHdr, TX_DEV_TUN);
}

/**
 * The largest packet the current IPv6 one leaves as: itself, or for a datagram reassembled here
 * the fragments it will be cut into again (x.fragSize6).
 */
function wireLen6(x: PacketContext): number {
  const ip = x.ip6;
  const len = ip.totalLen;
  if (x.gsoSize !== 0) return Math.min(len, ip.l4Offset + tcpHeaderLen6(x) + x.gsoSize);
  return x.reassembled && x.fragSize6 !== 0 ? Math.min(len, x.fragSize6) : len;
}

/** Bytes of the TCP header of the current IPv6 packet (its data offset; parsed and checked before). */
function tcpHeaderLen6(x: PacketContext): number {
  const ip = x.ip6;
  return (ip.buf[ip.off + ip.l4Offset + TCP.DATA_OFF] >> 4) << 2;
}

/**
 * Software TCP segmentation of the current IPv6 GSO packet (gso.ts's segmentTcp for IPv6): each
 * segment a complete packet in a generated slot, the headers repeated, at most x.gsoSize payload
 * bytes, payload length and sequence number set, FIN and PSH on the last, CWR on the first only,
 * the TCP checksum computed in full. `sink(off, len)` takes each; returns TX_QUEUED or its drop.
 */
function segmentTcp6(x: PacketContext, sink: (off: number, len: number) => number): number {
  const ip = x.ip6;
  const buf = ip.buf;
  const thl = tcpHeaderLen6(x);
  const hdrs = ip.l4Offset + thl;
  const payload = ip.totalLen - hdrs;
  const mss = x.gsoSize;
  if (hdrs + Math.min(mss, payload) > x.slotCapacity) return D_TOO_BIG;
  const tcpAt = ip.off + ip.l4Offset;
  const seq0 = buf.readUInt32BE(tcpAt + TCP.SEQ);
  const flags0 = buf[tcpAt + TCP.FLAGS];
  let done = 0;
  do {
    const chunk = Math.min(mss, payload - done);
    const g = x.genSlot();
    if (g < 0) return D_TOO_BIG;
    buf.copy(buf, g, ip.off, ip.off + hdrs);
    buf.copy(buf, g + hdrs, ip.off + hdrs + done, ip.off + hdrs + done + chunk);
    const len = hdrs + chunk;
    buf.writeUInt16BE(len - IPV6.HEADER, g + IPV6.PAYLOAD_LEN);
    const t = g + ip.l4Offset;
    buf.writeUInt32BE((seq0 + done) >>> 0, t + TCP.SEQ);
    let flags = flags0;
    if (done !== 0) flags &= ~TCP_CWR;
    if (done + chunk < payload) flags &= ~(TCP_FIN | TCP_PSH);
    buf[t + TCP.FLAGS] = flags;
    buf.writeUInt16BE(0, t + TCP.CHECKSUM);
    built.reset(buf, g, len);
    buf.writeUInt16BE(checksum(buf, t, thl + chunk, built.pseudoHeaderSum(IPPROTO_TCP, thl + chunk)), t + TCP.CHECKSUM);
    const v = sink(g, len);
    if (v !== TX_QUEUED) return v;
    done += chunk;
  } while (done < payload);
  return TX_QUEUED;
}

/** The identification of the fragments the director cuts (one per datagram). */
let fragId = 0x6c76;

/**
 * The current IPv6 packet (a reassembled datagram, checksum complete) cut into fragments of at
 * most `size` bytes, each built in a generated slot and handed to `emit(off, len)` (false: no
 * room, the rest is dropped). The unfragmentable part is the IPv6 header and the hop-by-hop and
 * routing headers right after it (RFC 8200 section 4.5); every fragment repeats it.
 */
export function sendFragments6(x: PacketContext, size: number, emit: (off: number, len: number) => boolean): number {
  const ip = x.ip6;
  if (x.csumStart !== 0) completeChecksum6(x);
  const buf = ip.buf;
  const total = ip.totalLen;
  // The unfragmentable part, and where the next-header field that will name the fragment header is.
  let field: number = IPV6.NEXT_HEADER;
  let type = buf[ip.off + IPV6.NEXT_HEADER];
  let unfrag: number = IPV6.HEADER;
  while ((type === 0 || type === 43) && unfrag + 8 <= ip.l4Offset) {
    field = unfrag;
    const next = buf[ip.off + unfrag];
    unfrag += (buf[ip.off + unfrag + 1] + 1) * 8;
    type = next;
  }
  const chunk = (size - unfrag - FRAG_HEADER) & ~7;
  if (chunk <= 0 || unfrag + FRAG_HEADER + chunk > x.slotCapacity) return D_TOO_BIG;
  fragId = (fragId + 1) >>> 0;
  for (let done = unfrag; done < total; done += chunk) {
    const part = Math.min(chunk, total - done);
    const g = x.genSlot();
    if (g < 0) return D_TOO_BIG;
    buf.copy(buf, g, ip.off, ip.off + unfrag);
    buf[g + field] = IPPROTO_FRAGMENT;
    buf.writeUInt16BE(unfrag + FRAG_HEADER + part - IPV6.HEADER, g + IPV6.PAYLOAD_LEN);
    const fh = g + unfrag;
    buf[fh] = type;
    buf[fh + 1] = 0;
    buf.writeUInt16BE((done - unfrag) | (done + part < total ? 1 : 0), fh + 2);
    buf.writeUInt32BE(fragId, fh + 4);
    buf.copy(buf, fh + FRAG_HEADER, ip.off + done, ip.off + done + part);
    if (!emit(g, unfrag + FRAG_HEADER + part)) return D_TOO_BIG;
  }
  return TX_QUEUED;
}

/** The IPv6 fragment header's size. */
const FRAG_HEADER = 8;
/** The fragment header's next-header value. */
const IPPROTO_FRAGMENT = 44;

/** Write a 40-byte IPv6 header at buf[off]. `src`/`dst` are 16-byte addresses at buf offsets. */
function writeIpv6Header(
  buf: Buffer,
  off: number,
  payloadLen: number,
  nextHeader: number,
  hopLimit: number,
  srcOff: number,
  dstOff: number,
): void {
  buf.writeUInt32BE(0x60000000, off + IPV6.VER_TC_FL);
  buf.writeUInt16BE(payloadLen, off + IPV6.PAYLOAD_LEN);
  buf[off + IPV6.NEXT_HEADER] = nextHeader;
  buf[off + IPV6.HOP_LIMIT] = hopLimit;
  buf.copy(buf, off + IPV6.SRC, srcOff, srcOff + 16);
  buf.copy(buf, off + IPV6.DST, dstOff, dstOff + 16);
}

/** A view over packets built here (their checksums need the pseudo-header). */
const built = new Ipv6View();

/**
 * icmp6_send's rules (RFC 4443 2.4 e): never about an ICMPv6 error (or a packet whose ICMPv6
 * header cannot be read), never from an unspecified or multicast source, and to a multicast
 * destination only packet too big and an unknown option's parameter problem.
 */
export function mayAnswer6(ip: Ipv6View, type: number, code: number): boolean {
  const buf = ip.buf;
  const src = ip.off + IPV6.SRC;
  if (buf[src] === 0xff) return false;
  if (ip.srcWord(0) === 0 && ip.srcWord(1) === 0 && ip.srcWord(2) === 0 && ip.srcWord(3) === 0) return false;
  if (
    buf[ip.off + IPV6.DST] === 0xff &&
    type !== ICMPV6_PKT_TOOBIG &&
    !(type === ICMPV6_PARAMPROB && code === PARAMPROB_OPTION)
  ) {
    return false;
  }
  if (ip.protocol !== IPPROTO_ICMPV6) return true;
  if (ip.fragOffsetBytes !== 0 || ip.l4Len < 1) return false;
  return buf[ip.off + ip.l4Offset] >= 128;
}

/**
 * Queue an ICMPv6 error of `type`/`code` with the 32-bit `info` field about the current IPv6
 * packet: from its destination to its source, quoting as much of it as fits in 1280 bytes.
 * False when it may not be answered or there is no slot left; the caller still drops the packet.
 */
export function sendIcmp6Error(x: PacketContext, type: number, code: number, info: number): boolean {
  const ip = x.ip6;
  if (!mayAnswer6(ip, type, code)) return false;
  const off = x.genSlot();
  if (off < 0) return false;
  const head = IPV6.HEADER + ICMP.HEADER;
  const quoted = Math.min(ip.totalLen, IPV6_MIN_MTU - head, x.slotCapacity - head);
  const buf = ip.buf;
  const icmp = off + IPV6.HEADER;
  // Addresses first: the quote may not overlap them (different slots), the header writes them.
  writeIpv6Header(buf, off, ICMP.HEADER + quoted, IPPROTO_ICMPV6, HOP_LIMIT + 1, ip.off + IPV6.DST, ip.off + IPV6.SRC);
  buf[icmp + ICMP.TYPE] = type;
  buf[icmp + ICMP.CODE] = code;
  buf.writeUInt16BE(0, icmp + ICMP.CHECKSUM);
  buf.writeUInt32BE(info >>> 0, icmp + ICMP.REST);
  buf.copy(buf, icmp + ICMP.HEADER, ip.off, ip.off + quoted);
  const len = ICMP.HEADER + quoted;
  built.reset(buf, off, IPV6.HEADER + len);
  buf.writeUInt16BE(checksum(buf, icmp, len, built.pseudoHeaderSum(IPPROTO_ICMPV6, len)), icmp + ICMP.CHECKSUM);
  return queueBuilt6(x, off, IPV6.HEADER + len);
}

/**
 * An echo request to a virtual address, answered as the director's kernel (which owns the VIP)
 * would: turned round in place, type 129, hop limit 64. D_NO_SERVICE for any other ICMPv6.
 */
export function answerEcho6(x: PacketContext): number {
  const ip = x.ip6;
  const buf = ip.buf;
  const icmp = ip.off + ip.l4Offset;
  const len = ip.l4Len;
  if (ip.protocol !== IPPROTO_ICMPV6 || ip.isFragment || len < ICMP.HEADER) return D_NO_SERVICE;
  if (buf[icmp + ICMP.TYPE] !== ICMPV6_ECHO_REQUEST || buf[icmp + ICMP.CODE] !== 0) return D_NO_SERVICE;
  if (checksum(buf, icmp, len, ip.pseudoHeaderSum(IPPROTO_ICMPV6, len)) !== 0) return V_BAD_CHECKSUM;
  // Swapping the addresses leaves the pseudo-header's sum as it was: only the type changes.
  buf[icmp + ICMP.TYPE] = ICMPV6_ECHO_REPLY;
  const csum = buf.readUInt16BE(icmp + ICMP.CHECKSUM);
  buf.writeUInt16BE(update16(csum, ICMPV6_ECHO_REQUEST << 8, ICMPV6_ECHO_REPLY << 8), icmp + ICMP.CHECKSUM);
  for (let i = 0; i < 4; i++) {
    const s = ip.srcWord(i);
    ip.setSrcWord(i, ip.dstWord(i));
    ip.setDstWord(i, s);
  }
  ip.hopLimit = HOP_LIMIT + 1;
  return sendRouted6(x, false);
}

/** Masquerading over IPv6 (ip_vs_nat_xmit_v6 and handle_response's IPv6 half). */
export const nat6: Transmitter = {
  in(x: PacketContext, c: number): number {
    if (x.dest.noRoute) return D_NO_ROUTE;
    const ip = x.ip6;
    // Before the rewrite: the client's packet too big must quote what it sent (to the VIP).
    const mtu = x.dest.mtu;
    if (wireLen6(x) > mtu) {
      sendIcmp6Error(x, ICMPV6_PKT_TOOBIG, 0, mtu);
      return D_FRAG_NEEDED;
    }
    const a = x.conns6.addr6;
    const at = c * ADDR6_WORDS + A6_DEST;
    const partial = x.csumStart !== 0;
    const l4 = x.l4;
    l4.dnat(ip.dstWord(0), a[at], x.conns6.dport[c], partial);
    ip.setDstWord(0, a[at]);
    for (let i = 1; i < 4; i++) {
      l4.natAddr(ip.dstWord(i), a[at + i], partial);
      ip.setDstWord(i, a[at + i]);
    }
    return sendRouted6(x, true);
  },

  out(x: PacketContext, c: number): number {
    const ip = x.ip6;
    const a = x.conns6.addr6;
    const at = c * ADDR6_WORDS + A6_VIRTUAL;
    const partial = x.csumStart !== 0;
    const l4 = x.l4;
    l4.snat(ip.srcWord(0), a[at], x.conns6.vport[c], partial);
    ip.setSrcWord(0, a[at]);
    for (let i = 1; i < 4; i++) {
      l4.natAddr(ip.srcWord(i), a[at + i], partial);
      ip.setSrcWord(i, a[at + i]);
    }
    return sendRouted6(x, true);
  },
};

/**
 * Direct routing over IPv6 (ip_vs_dr_xmit_v6): the packet unchanged, framed for the real
 * server's MAC (dest.l2Header, EtherType 0x86DD) on the interface towards it. Over the path MTU
 * it is answered with packet too big (IPv6 is never fragmented on the way).
 */
export const dr6: Transmitter = {
  in(x: PacketContext, _c: number): number {
    const dest = x.dest;
    const header = dest.l2Header;
    if (header === null) {
      dest.pathWanted = true;
      return dest.noRoute ? D_NO_ROUTE : D_NEIGH_MISS;
    }
    const ip = x.ip6;
    const len = ip.totalLen;
    if (wireLen6(x) > dest.mtu) {
      sendIcmp6Error(x, ICMPV6_PKT_TOOBIG, 0, dest.mtu);
      return D_FRAG_NEEDED;
    }
    // A datagram reassembled here leaves in fragments again, no larger than it came in and
    // than the path allows.
    if (x.reassembled && x.fragSize6 !== 0 && len > Math.min(x.fragSize6, dest.mtu)) {
      return sendFragments6(x, Math.min(x.fragSize6, dest.mtu), (off, n) => {
        framePlain(x, off, n, header, dest.l2Dev);
        return x.queue(x.outOff, x.outLen, x.outDev);
      });
    }
    const vnet = x.vnetHdr;
    const off = ip.off - ETH.HEADER - vnet;
    if (vnet !== 0) {
      // A partial checksum stays partial, a GSO packet is segmented by the kernel on the way out;
      // their offsets now count from the Ethernet header.
      if (x.gsoSize !== 0) {
        const hdrs = ETH.HEADER + ip.l4Offset + tcpHeaderLen6(x);
        writeVnetHdr(
          ip.buf,
          off,
          VNET_F_NEEDS_CSUM,
          VNET_GSO_TCPV6,
          hdrs,
          x.gsoSize,
          ETH.HEADER + x.csumStart,
          x.csumOffset,
        );
      } else if (x.csumStart !== 0) {
        writeVnetHdr(ip.buf, off, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, 0, 0, ETH.HEADER + x.csumStart, x.csumOffset);
      } else {
        writeVnetHdr(ip.buf, off, 0, VNET_GSO_NONE, 0, 0, 0, 0);
      }
    }
    header.copy(ip.buf, ip.off - ETH.HEADER, 0, ETH.HEADER);
    x.outOff = off;
    x.outLen = vnet + ETH.HEADER + len;
    x.outDev = dest.l2Dev;
    return TX;
  },
  // A packet from the real server's own address is not a reply IPVS handles: forward it as is.
  out: bypass6,
};

/** Finish the current IPv6 packet's partial L4 checksum (what a NIC does for CHECKSUM_PARTIAL). */
export function completeChecksum6(x: PacketContext): void {
  const ip = x.ip6;
  const start = ip.off + x.csumStart;
  let c = checksum(ip.buf, start, ip.off + ip.totalLen - start);
  if (c === 0 && ip.protocol === IPPROTO_UDP) c = 0xffff;
  ip.buf.writeUInt16BE(c, start + x.csumOffset);
  x.csumStart = 0;
}

/** The outer header of IPv6-in-IPv6. */
const OUTER6 = IPV6.HEADER;
/** IPv6 encapsulated in IPv6: the outer next header. */
const IPPROTO_IPV6 = 41;

/**
 * IPv6-in-IPv6 tunnelling (ip_vs_tunnel_xmit_v6): a new outer IPv6 header (next header 41, from
 * the director's address towards the real server, dest.tunSrc6, to the real server; the inner
 * traffic class and hop limit) in front of the unchanged packet, written back into the TUN for
 * the kernel to forward. An inner packet over the path MTU less the outer header is answered
 * with packet too big; where that leaves less than IPv6's minimum MTU for the inner packet, the
 * kernel's route lookup fails (IPv6 tunnels do not fragment), and so does this: too_big.
 */
export const tunnel6: Transmitter = {
  in(x: PacketContext, _c: number): number {
    const dest = x.dest;
    const src = dest.tunSrc6;
    if (dest.noRoute || src === null) return D_NO_ROUTE;
    const ip = x.ip6;
    const mtu = dest.mtu - OUTER6;
    if (wireLen6(x) > mtu) {
      if (mtu < IPV6_MIN_MTU) return D_TOO_BIG;
      sendIcmp6Error(x, ICMPV6_PKT_TOOBIG, 0, mtu);
      return D_FRAG_NEEDED;
    }
    // The kernel cannot segment inside IPv6-in-IPv6 written from user space: cut here first.
    if (x.gsoSize !== 0) {
      return segmentTcp6(x, (g, n) => (queueBuilt6(x, encap6(x, src, g, n), n + OUTER6) ? TX_QUEUED : D_TOO_BIG));
    }
    if (x.csumStart !== 0) completeChecksum6(x);
    const len = ip.totalLen;
    const off = encap6(x, src, ip.off, len);
    const vnet = x.vnetHdr;
    if (vnet !== 0) writeVnetHdr(ip.buf, off - vnet, 0, VNET_GSO_NONE, 0, 0, 0, 0);
    x.outOff = off - vnet;
    x.outLen = vnet + OUTER6 + len;
    x.outDev = TX_DEV_TUN;
    return TX;
  },
  // Only NAT handles replies; anything else from the real server is forwarded as is.
  out: bypass6,
};

/**
 * Write the outer IPv6 header (next header 41, from `src` to the dest) in front of the inner
 * packet at buf[off, off + len); returns where it starts.
 */
function encap6(x: PacketContext, src: Uint32Array, off: number, len: number): number {
  const buf = x.ip6.buf;
  const at = off - OUTER6;
  const tc = ((buf.readUInt16BE(off) >>> 4) & 0xff) << 20;
  buf.writeUInt32BE((0x60000000 | tc) >>> 0, at + IPV6.VER_TC_FL);
  buf.writeUInt16BE(len, at + IPV6.PAYLOAD_LEN);
  buf[at + IPV6.NEXT_HEADER] = IPPROTO_IPV6;
  // The kernel's forward takes one off: the outer hop limit arrives as the inner one.
  buf[at + IPV6.HOP_LIMIT] = Math.min(255, buf[off + IPV6.HOP_LIMIT] + 1);
  const a6 = x.dest.addr6!;
  for (let i = 0; i < 4; i++) {
    buf.writeUInt32BE(src[i], at + IPV6.SRC + 4 * i);
    buf.writeUInt32BE(a6[i], at + IPV6.DST + 4 * i);
  }
  return at;
}

/** IPv6 transmitters by forwarding method (LOCALNODE and BYPASS drop as fwd_unsupported). */
export const TRANSMITTERS6: readonly Transmitter[] = (() => {
  const t: Transmitter[] = [unsupported, unsupported, unsupported, unsupported, unsupported];
  t[FWD_MASQ] = nat6;
  t[FWD_DROUTE] = dr6;
  t[FWD_TUNNEL] = tunnel6;
  return t;
})();
