// Masquerading (-m, ip_vs_nat_xmit / handle_response): DNAT the client's packets to the real
// server, SNAT the real server's replies back to the virtual service. A client's packet over the
// MTU of the route to the real server (dest.mtu, kept by the control plane) is answered with
// frag-needed when it has DF; without DF it goes back through the TUN for the kernel to fragment
// as it forwards it (a GSO packet whose segments are too big and carry no DF: too_big). A reply
// bigger than the director's smallest link MTU takes the same way: the kernel fragments it or
// answers frag-needed (to the VIP, relayed to the real server as any ICMP error about it).

import { sendRouted, type Transmitter, wireLen } from './common';
import { sendFragNeeded } from './icmp-error';
import type { PacketContext } from './packet-context';
import { D_FRAG_NEEDED, D_NO_ROUTE, D_TOO_BIG } from './verdict';

export const nat: Transmitter = {
  in(x: PacketContext, c: number): number {
    if (x.dest.noRoute) return D_NO_ROUTE;
    // ip_vs_nat_xmit's MTU check, before the rewrite: the client's frag-needed must quote the
    // packet it sent (to the VIP), or it could not match it to its connection.
    const mtu = x.dest.mtu;
    const tooBig = wireLen(x) > mtu;
    if (tooBig) {
      if (x.gsoSize !== 0 && !x.ip.dontFrag) return D_TOO_BIG;
      if (x.ip.dontFrag) {
        sendFragNeeded(x, mtu);
        return D_FRAG_NEEDED;
      }
    }
    const vaddr = x.conns.vaddr[c];
    const daddr = x.conns.daddr[c];
    x.l4.dnat(vaddr, daddr, x.conns.dport[c], x.csumStart !== 0);
    x.ip.setDstAddrWithChecksumUpdate(daddr);
    return sendRouted(x, true, tooBig);
  },

  out(x: PacketContext, c: number): number {
    const vaddr = x.conns.vaddr[c];
    const daddr = x.conns.daddr[c];
    x.l4.snat(daddr, vaddr, x.conns.vport[c], x.csumStart !== 0);
    x.ip.setSrcAddrWithChecksumUpdate(vaddr);
    return sendRouted(x, true, x.ip.totalLen > x.replyMtu);
  },
};
