// Masquerading (-m, ip_vs_nat_xmit / handle_response): DNAT the client's packets to the real
// server, SNAT the real server's replies back to the virtual service.

import { sendRouted, type Transmitter, type XmitContext } from './common';

export const nat: Transmitter = {
  in(x: XmitContext, c: number): number {
    const vaddr = x.conns.vaddr[c];
    const daddr = x.conns.daddr[c];
    x.l4.dnat(vaddr, daddr, x.conns.dport[c], x.csumStart !== 0);
    x.ip.setDstAddrWithChecksumUpdate(daddr);
    return sendRouted(x, true);
  },

  out(x: XmitContext, c: number): number {
    const vaddr = x.conns.vaddr[c];
    const daddr = x.conns.daddr[c];
    x.l4.snat(daddr, vaddr, x.conns.vport[c], x.csumStart !== 0);
    x.ip.setSrcAddrWithChecksumUpdate(vaddr);
    return sendRouted(x, true);
  },
};
