// What every transmitter works with, and the rules they share.
//
// Who changes which field of a forwarded packet:
//   nat.ts  in:  IPv4 daddr → RIP, L4 dport → RS port; IP and L4 checksums updated incrementally
//           out: IPv4 saddr → VIP, L4 sport → virtual port; likewise
//   dr.ts        nothing at L3/L4; a 14-byte Ethernet header (RS MAC) is prepended in the headroom
//   tunnel.ts    nothing in the inner packet; a 20-byte outer IPv4 header (protocol 4, director →
//                RIP, inner TOS, DF and TTL) is prepended in the headroom
//   bypass.ts:   nothing
// Packets over the path MTU with DF set are answered with ICMP fragmentation needed (icmp-error.ts);
// without DF they are fragmented: by the kernel for routed packets (NAT, bypass: back through the
// TUN), here for DR frames and TUN outer packets.
// TTL: a packet read from the TUN has already been forwarded once by the director's kernel,
// which decremented its TTL (and answered an expiring one with ICMP time exceeded). Sending it
// on the raw socket is not another hop, so transmitters leave the TTL alone: a real server sees
// the same TTL as behind a kernel IPVS director, which decrements once.
//
// Offloads (a TUN with IFF_VNET_HDR, x.vnetHdr = 10): a packet may come with a partial L4
// checksum (x.csumStart != 0) and may be a TCP GSO packet of up to 64 KiB (x.gsoSize != 0).
//   routed (NAT, bypass): a GSO packet is written back into the TUN with its virtio_net_hdr and
//     the kernel forwards and segments it; NAT first adds 1 to its TTL, since that forward
//     decrements it again (bypass does not, so a routing loop still ends). Anything else goes
//     on the raw socket with its checksum completed here.
//   DR: every frame starts with a virtio_net_hdr; a partial or GSO packet keeps its offload
//     and the kernel completes or segments it on the packet socket.
//   TUN: the kernel cannot segment inside IP-in-IP from user space, so a GSO packet is cut into
//     complete segments here (gso.ts) and each is encapsulated; a partial checksum is completed.

import { IPPROTO_UDP } from '../ip-vs';
import { TX_DEV_RAW, TX_DEV_TUN } from '../native/packet-io';
import { checksum } from '../wire/checksum';
import { ETH } from '../wire/ethernet';
import { TCP } from '../wire/tcp';
import { VNET_GSO_NONE, writeVnetHdr } from '../wire/vnet';
import type { PacketContext } from './packet-context';
import { TX } from './verdict';

/** A forwarding method: one per IP_VS_CONN_F_FWD_MASK value, bound to a connection at creation. */
export interface Transmitter {
  /** A client's packet (client → virtual service). Returns TX or a drop reason. */
  in(x: PacketContext, c: number): number;
  /** A real server's reply (only NAT sees them). Returns TX or a drop reason. */
  out(x: PacketContext, c: number): number;
}

/**
 * Queue the current IPv4 packet, as it now is, for the kernel to route by its destination: on the
 * raw IPv4 socket, or back into the TUN when the kernel must cut it up (a GSO packet; a
 * reassembled datagram or one over the path MTU without DF, `viaKernel`, which the kernel
 * fragments), with TTL + 1 when `restoreTtl` (that forward decrements it again).
 */
export function sendRouted(x: PacketContext, restoreTtl: boolean, viaKernel = false): number {
  const ip = x.ip;
  if (x.gsoSize !== 0 || viaKernel || x.reassembled) {
    if (restoreTtl && ip.ttl < 255) ip.incTtlWithChecksumUpdate();
    // A checksum completed here (an application helper's rewrite, a relayed ICMP error) must
    // not leave with the TUN's "needs checksum" header: the kernel would complete it again.
    if (x.vnetHdr !== 0 && x.gsoSize === 0 && x.csumStart === 0) {
      writeVnetHdr(ip.buf, ip.off - x.vnetHdr, 0, VNET_GSO_NONE, 0, 0, 0, 0);
    }
    x.outOff = ip.off - x.vnetHdr;
    x.outLen = ip.totalLen + x.vnetHdr;
    x.outDev = TX_DEV_TUN;
    return TX;
  }
  if (x.csumStart !== 0) completeChecksum(x);
  x.outOff = ip.off;
  x.outLen = ip.totalLen;
  x.outDev = TX_DEV_RAW;
  return TX;
}

/**
 * Frame the finished packet at buf[off, off + len) for the packet socket of frame device `dev`:
 * the Ethernet `header` and, with offloads, a plain virtio_net_hdr (nothing partial, no
 * segmentation) written in the headroom before it. Sets the context's outOff/outLen/outDev.
 */
export function framePlain(x: PacketContext, off: number, len: number, header: Buffer, dev: number): void {
  const buf = x.ip.buf;
  const vnet = x.vnetHdr;
  header.copy(buf, off - ETH.HEADER, 0, ETH.HEADER);
  if (vnet !== 0) writeVnetHdr(buf, off - ETH.HEADER - vnet, 0, VNET_GSO_NONE, 0, 0, 0, 0);
  x.outOff = off - ETH.HEADER - vnet;
  x.outLen = vnet + ETH.HEADER + len;
  x.outDev = dev;
}

/** Finish the current packet's partial L4 checksum (what a NIC does for CHECKSUM_PARTIAL). */
export function completeChecksum(x: PacketContext): void {
  const ip = x.ip;
  const start = ip.off + x.csumStart;
  let c = checksum(ip.buf, start, ip.off + ip.totalLen - start);
  if (c === 0 && ip.protocol === IPPROTO_UDP) c = 0xffff;
  ip.buf.writeUInt16BE(c, start + x.csumOffset);
  x.csumStart = 0;
}

/** Bytes of the TCP header of the current packet (its data offset; parsed and checked before). */
export function tcpHeaderLen(x: PacketContext): number {
  return (x.ip.buf[x.ip.payloadOffset + TCP.DATA_OFF] >> 4) << 2;
}

/** Largest IPv4 packet the current one stands for: one segment of a GSO packet, else itself. */
export function wireLen(x: PacketContext): number {
  const ip = x.ip;
  if (x.gsoSize === 0) return ip.totalLen;
  return Math.min(ip.totalLen, ip.headerLen + tcpHeaderLen(x) + x.gsoSize);
}
