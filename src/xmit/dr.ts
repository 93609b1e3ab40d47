// Direct routing (-g, ip_vs_dr_xmit): the packet leaves unchanged at L3/L4, framed for the real
// server's MAC on the interface towards it. The real server owns the VIP and answers the client
// itself, so only the client's direction exists. With offloads the frame starts with a
// virtio_net_hdr (the packet socket has PACKET_VNET_HDR): a partial checksum or a GSO packet
// is left for the kernel to complete or segment on the way out. A packet over the MTU without
// DF (a reassembled datagram) leaves as IPv4 fragments, one frame each.

import { ETH } from '../wire/ethernet';
import { fragmentCount, writeFragment } from '../wire/fragment';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, writeVnetHdr } from '../wire/vnet';
import { bypass } from './bypass';
import { completeChecksum, framePlain, type Transmitter, tcpHeaderLen, wireLen } from './common';
import { sendFragNeeded } from './icmp-error';
import type { PacketContext } from './packet-context';
import { D_FRAG_NEEDED, D_NEIGH_MISS, D_NO_ROUTE, D_TOO_BIG, TX, TX_QUEUED } from './verdict';

/** The current packet (no DF, not GSO) as fragments of at most `mtu` bytes, one frame each. */
function sendFragments(x: PacketContext, header: Buffer, mtu: number): number {
  const ip = x.ip;
  if (x.csumStart !== 0) completeChecksum(x);
  const buf = ip.buf;
  const n = fragmentCount(buf, ip.off, mtu);
  if (n === 0 || mtu > x.slotCapacity) return D_TOO_BIG;
  const dev = x.dest.l2Dev;
  for (let i = 0; i < n; i++) {
    const g = x.genSlot();
    framePlain(x, g, writeFragment(buf, ip.off, mtu, i, buf, g), header, dev);
    if (!x.queue(x.outOff, x.outLen, x.outDev)) return D_TOO_BIG;
  }
  return TX_QUEUED;
}

export const dr: Transmitter = {
  in(x: PacketContext, _c: number): number {
    const dest = x.dest;
    const header = dest.l2Header;
    if (header === null) {
      dest.pathWanted = true;
      return dest.noRoute ? D_NO_ROUTE : D_NEIGH_MISS;
    }
    const ip = x.ip;
    const len = ip.totalLen;
    if (wireLen(x) > dest.mtu) {
      if (ip.dontFrag) {
        sendFragNeeded(x, dest.mtu);
        return D_FRAG_NEEDED;
      }
      return x.gsoSize !== 0 ? D_TOO_BIG : sendFragments(x, header, dest.mtu);
    }
    const vnet = x.vnetHdr;
    const off = ip.off - ETH.HEADER - vnet;
    if (vnet !== 0) {
      // Offsets in the header count from the frame's first byte: the Ethernet header is added.
      if (x.gsoSize !== 0) {
        const hdrs = ETH.HEADER + ip.headerLen + tcpHeaderLen(x);
        writeVnetHdr(
          ip.buf,
          off,
          VNET_F_NEEDS_CSUM,
          VNET_GSO_TCPV4,
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
  out: bypass,
};
