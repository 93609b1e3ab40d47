// ICMP errors about connections (ip_vs_core.c: ip_vs_in_icmp, ip_vs_out_icmp, ip_vs_nat_icmp).
// An error (dest unreachable, source quench, time exceeded) quotes the IPv4 header and the
// first 8 bytes of the packet it is about; when that packet belongs to one of our connections
// the error is sent where that packet's sender is, rewritten as NAT rewrote the packet:
//
//   toVip           an error to a virtual address, about a packet a real server sent a client
//                   through us (the quoted packet: VIP → client): on to that real server,
//                   through the connection's method (NAT: to the real server's address,
//                   quoting its own packet, RIP:rport → client); an echo request is answered,
//                   unless the VIP is also a local address: then the rest is the local stack's.
//   fromRealServer  an error about a packet we sent a NAT real server (quoted: client → RIP),
//                   from the server or from a router before it, addressed to the client: from
//                   the VIP, quoting the client's own packet (client → VIP:vport), so its stack
//                   can match it. Anything else passes unchanged.
//
// The quoted L4 checksum is left alone, as IPVS leaves it; both IPv4 header checksums and the
// ICMP checksum are made right.

import { NIL } from '../conn/conn-table';
import type { DestLookup } from '../conn/templates';
import { DEST_F_AVAILABLE, FWD_MASQ, IPPROTO_TCP, IPPROTO_UDP } from '../ip-vs';
import { ICMP_DEST_UNREACH, ICMP_QUOTED_L4_LEN, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED, IcmpView } from '../wire/icmp';
import { Ipv4View } from '../wire/ipv4';
import { V_BAD_CHECKSUM, V_OK } from '../wire/verdict';
import { bypass, bypassLocal } from '../xmit/bypass';
import { sendRouted } from '../xmit/common';
import { answerEcho } from '../xmit/icmp-echo';
import { TRANSMITTERS } from '../xmit/index';
import type { PacketContext } from '../xmit/packet-context';
import { D_DEST_UNAVAILABLE, D_NO_CONN } from '../xmit/verdict';

/** Offsets of the ports in the quoted TCP/UDP header. */
const SPORT = 0;
const DPORT = 2;

export class IcmpRelay {
  private readonly icmp = new IcmpView();
  /** The IPv4 header the error quotes (with 8 bytes of its payload), and its ports. */
  private readonly quoted = new Ipv4View();
  private sport = 0;
  private dport = 0;

  constructor(private readonly dests: DestLookup) {}

  /**
   * ICMP to a virtual address (ip_vs_in_icmp). When the address is also the director's own
   * (`local`), what is not about a connection is the local stack's: passed on to it.
   */
  toVip(x: PacketContext, local: boolean): number {
    if (!this.quotesFlow(x)) return local ? bypassLocal(x) : answerEcho(x);
    const q = this.quoted;
    const buf = q.buf;
    const l4 = q.payloadOffset;
    const conns = x.conns;
    // The quoted packet went VIP:vport → client:cport: its reverse is the connection's client tuple.
    const c = conns.lookupIn(q.protocol, q.dstAddr, this.dport, q.srcAddr, this.sport);
    if (c === NIL) return local ? bypassLocal(x) : D_NO_CONN;
    const dest = this.dests.get(conns.dest[c]);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    x.dest = dest;
    if (conns.xmit[c] !== FWD_MASQ) return TRANSMITTERS[conns.xmit[c]].in(x, c);
    const rip = conns.daddr[c];
    q.setSrcAddrWithChecksumUpdate(rip);
    buf.writeUInt16BE(conns.dport[c], l4 + SPORT);
    this.finish(x);
    x.ip.setDstAddrWithChecksumUpdate(rip);
    return sendRouted(x, true);
  }

  /** ICMP about a packet to a NAT real server, from it or a router before it (ip_vs_out_icmp). */
  fromRealServer(x: PacketContext): number {
    if (!this.quotesFlow(x)) return bypass(x);
    const q = this.quoted;
    const buf = q.buf;
    const l4 = q.payloadOffset;
    const conns = x.conns;
    // The quoted packet went client:cport → RIP:rport: its reverse is the connection's reply tuple.
    const c = conns.lookupOut(q.protocol, q.dstAddr, this.dport, q.srcAddr, this.sport);
    if (c === NIL || conns.xmit[c] !== FWD_MASQ) return bypass(x);
    if (x.csumStart === 0 && !this.icmp.verifyChecksum()) return V_BAD_CHECKSUM;
    const vaddr = conns.vaddr[c];
    q.setDstAddrWithChecksumUpdate(vaddr);
    buf.writeUInt16BE(conns.vport[c], l4 + DPORT);
    this.finish(x);
    x.ip.setSrcAddrWithChecksumUpdate(vaddr);
    return sendRouted(x, true);
  }

  /**
   * Is the packet (ICMP, checkLen passed) an error IPVS relays, quoting an IPv4 header and 8
   * bytes of a TCP or UDP packet? Points the views at the message and the quoted header, and
   * reads the quoted ports.
   */
  private quotesFlow(x: PacketContext): boolean {
    const ip = x.ip;
    const icmp = this.icmp;
    icmp.reset(ip.buf, ip.payloadOffset, ip.payloadLen);
    if (icmp.checkLen() !== V_OK) return false;
    const type = icmp.type;
    if (type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED) return false;
    const q = this.quoted;
    q.reset(ip.buf, icmp.payloadOffset, icmp.payloadLen);
    if (q.checkHeaderLen() !== V_OK || icmp.payloadLen < q.headerLen + ICMP_QUOTED_L4_LEN) return false;
    const p = q.protocol;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return false;
    this.sport = q.buf.readUInt16BE(q.payloadOffset + SPORT);
    this.dport = q.buf.readUInt16BE(q.payloadOffset + DPORT);
    return true;
  }

  /** The message was rewritten: its checksum is recomputed, whole whatever the offload header said. */
  private finish(x: PacketContext): void {
    this.icmp.fillChecksum();
    x.csumStart = 0;
  }
}
