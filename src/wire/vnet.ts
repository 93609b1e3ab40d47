// The virtio_net_hdr (virtio 1.x "struct virtio_net_hdr", 10 bytes, little-endian on every Linux
// host lvs-ts runs on) that a TUN opened with IFF_VNET_HDR puts in front of every packet it
// hands over and expects in front of every packet written to it; a packet socket with
// PACKET_VNET_HDR expects it in front of every frame sent.
//
//   0        1          2            4            6              8               10
//   +--------+----------+------------+------------+--------------+---------------+
//   | flags  | gso_type |  hdr_len   |  gso_size  |  csum_start  |  csum_offset  |
//   +--------+----------+------------+------------+--------------+---------------+
//
// flags NEEDS_CSUM: the L4 checksum is partial. The field at csum_start + csum_offset holds the
// folded, uncomplemented pseudo-header sum; whoever finishes it sums the bytes from csum_start
// to the end (that field included) and stores the complement. gso_type TCPV4: one large TCP
// segment that stands for several of at most gso_size payload bytes each; hdr_len is the length
// of the headers each segment repeats (a hint). Offsets count from the first byte after this
// header: the IPv4 header on a TUN, the Ethernet header on a packet socket.

import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../ip-vs';
import { checksum } from './checksum';
import { ICMP } from './icmp';
import type { Ipv4View } from './ipv4';
import type { Ipv6View } from './ipv6';
import { TCP } from './tcp';
import { UDP } from './udp';

export const VNET_HDR_LEN = 10;

export const VNET = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
} as const;

/**
 * flags: the checksum at csum_start + csum_offset is partial and must be completed. (The other
 * flag, DATA_VALID = 2, says a received checksum was verified; lvs-ts neither needs nor sends it.)
 */
export const VNET_F_NEEDS_CSUM = 1;

/**
 * gso_type values lvs-ts meets: NONE, TCPV4 (the only one it enables with TUN_F_TSO4) and UDP
 * (USO, never enabled: refused if seen). TCPV6 = 4 and the ECN bit 0x80 are not enabled either.
 */
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;

/** Write a virtio_net_hdr at buf[off]. */
export function writeVnetHdr(
  buf: Buffer,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  buf[off + VNET.FLAGS] = flags;
  buf[off + VNET.GSO_TYPE] = gsoType;
  buf.writeUInt16LE(hdrLen, off + VNET.HDR_LEN);
  buf.writeUInt16LE(gsoSize, off + VNET.GSO_SIZE);
  buf.writeUInt16LE(csumStart, off + VNET.CSUM_START);
  buf.writeUInt16LE(csumOffset, off + VNET.CSUM_OFFSET);
}

/** What a received virtio_net_hdr says of its packet: the offload state kept per packet. */
export interface VnetState {
  /** Payload bytes per segment of a TCP GSO packet, else 0. */
  gsoSize: number;
  /** Start of a partial L4 checksum region from the IPv4 header; 0: the checksum is complete. */
  csumStart: number;
  /** Offset of the partial checksum field from csumStart. */
  csumOffset: number;
}

/**
 * Read the virtio_net_hdr at buf[h], in front of the IPv4 packet `ip` (checkLen passed), into
 * `out`; `counts` counts partial checksums and GSO packets. False when it cannot be honoured: a
 * partial checksum must be TCP's or UDP's own field (ICMP's own, or inside the packet, for other
 * protocols) and never on a fragment (it covers the whole datagram); a GSO packet must be TCPv4
 * with a partial checksum and not a fragment. A partial checksum of another protocol than TCP or
 * UDP is completed here, as the device would have: nothing rewrites those through a partial sum.
 */
export function readVnetHdr(
  buf: Buffer,
  h: number,
  ip: Ipv4View,
  out: VnetState,
  counts: { partial: number; gso: number },
): boolean {
  out.gsoSize = 0;
  out.csumStart = 0;
  if ((buf[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) !== 0) {
    const start = buf.readUInt16LE(h + VNET.CSUM_START);
    const offset = buf.readUInt16LE(h + VNET.CSUM_OFFSET);
    const p = ip.protocol;
    if (ip.isFragment) return false;
    if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
      if (start !== ip.headerLen || offset !== (p === IPPROTO_TCP ? TCP.CHECKSUM : UDP.CHECKSUM)) return false;
    } else if (start < ip.headerLen || (p === IPPROTO_ICMP && (start !== ip.headerLen || offset !== ICMP.CHECKSUM))) {
      return false;
    }
    if (start + offset + 2 > ip.totalLen) return false;
    counts.partial++;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) {
      const at = ip.off + start;
      buf.writeUInt16BE(checksum(buf, at, ip.totalLen - start), at + offset);
    } else {
      out.csumStart = start;
      out.csumOffset = offset;
    }
  }
  const gsoType = buf[h + VNET.GSO_TYPE];
  if (gsoType !== VNET_GSO_NONE) {
    const size = buf.readUInt16LE(h + VNET.GSO_SIZE);
    if (
      gsoType !== VNET_GSO_TCPV4 ||
      out.csumStart === 0 ||
      size === 0 ||
      ip.protocol !== IPPROTO_TCP ||
      ip.isFragment
    ) {
      return false;
    }
    out.gsoSize = size;
    counts.gso++;
  }
  return true;
}

/**
 * readVnetHdr for an IPv6 packet (checkLen passed): the same rules, the L4 header at the end of
 * the extension headers; a GSO packet must be TCPv6 with a partial checksum.
 */
export function readVnetHdr6(
  buf: Buffer,
  h: number,
  ip: Ipv6View,
  out: VnetState,
  counts: { partial: number; gso: number },
): boolean {
  out.gsoSize = 0;
  out.csumStart = 0;
  const gsoType = buf[h + VNET.GSO_TYPE];
  if (gsoType !== VNET_GSO_NONE) {
    const size = buf.readUInt16LE(h + VNET.GSO_SIZE);
    if (gsoType !== VNET_GSO_TCPV6 || size === 0 || ip.protocol !== IPPROTO_TCP || ip.isFragment) return false;
    if ((buf[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) === 0) return false;
    out.gsoSize = size;
    counts.gso++;
  }
  if ((buf[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) === 0) return true;
  const start = buf.readUInt16LE(h + VNET.CSUM_START);
  const offset = buf.readUInt16LE(h + VNET.CSUM_OFFSET);
  const p = ip.protocol;
  const l4 = ip.l4Offset;
  if (ip.isFragment) return false;
  if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
    if (start !== l4 || offset !== (p === IPPROTO_TCP ? TCP.CHECKSUM : UDP.CHECKSUM)) return false;
  } else if (start < l4 || (p === IPPROTO_ICMPV6 && (start !== l4 || offset !== ICMP.CHECKSUM))) {
    return false;
  }
  const total = ip.totalLen;
  if (start + offset + 2 > total) return false;
  counts.partial++;
  if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) {
    const at = ip.off + start;
    buf.writeUInt16BE(checksum(buf, at, total - start), at + offset);
  } else {
    out.csumStart = start;
    out.csumOffset = offset;
  }
  return true;
}
