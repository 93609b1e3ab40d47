// Direct routing (-g, ip_vs_dr_xmit): the packet leaves unchanged at L3/L4, framed for the real
// server's MAC on the interface towards it. The real server owns the VIP and answers the client
// itself, so only the client's direction exists.

import { bypass } from './bypass';
import type { Transmitter, XmitContext } from './common';
import { sendFragNeeded } from './icmp-error';
import { D_FRAG_NEEDED, D_NEIGH_MISS, D_TOO_BIG, TX } from './verdict';

const ETH_HEADER = 14;

export const dr: Transmitter = {
  in(x: XmitContext, _c: number): number {
    const dest = x.dest;
    const header = dest.l2Header;
    if (header === null) {
      dest.pathWanted = true;
      return D_NEIGH_MISS;
    }
    const ip = x.ip;
    const len = ip.totalLen;
    if (len > dest.mtu) {
      if (!ip.dontFrag) return D_TOO_BIG;
      sendFragNeeded(x, dest.mtu);
      return D_FRAG_NEEDED;
    }
    const off = ip.off - ETH_HEADER;
    header.copy(ip.buf, off, 0, ETH_HEADER);
    x.outOff = off;
    x.outLen = len + ETH_HEADER;
    x.outDev = dest.l2Dev;
    return TX;
  },
  // A packet from the real server's own address is not a reply IPVS handles: forward it as is.
  out: bypass,
};
