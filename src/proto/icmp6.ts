// ICMPv6 errors about connections (ip_vs_core.c's IPv6 halves of ip_vs_in_icmp and
// ip_vs_out_icmp, and ip_vs_nat_icmp_v6): what proto/icmp.ts does for IPv4, for the three
// errors IPVS relays over IPv6 (destination unreachable, packet too big, time exceeded). Packet
// too big is the one that matters most: routers never fragment IPv6, so a path MTU beyond the
// director is found only if the client (or the real server) gets the router's message in a
// form it can match to its own socket.
//
//   toVip           an error to a virtual address about a packet a real server sent a client
//                   through us (quoted: VIP:vport → client): on to that real server, quoting
//                   its own packet (RIP:rport → client); an echo request is answered.
//   fromRealServer  an error about a packet we sent a NAT real server (quoted: client → RIP:rport),
//                   from the server or a router before it, addressed to the client: from the VIP,
//                   quoting the client's own packet (client → VIP:vport). Anything else passes
//                   unchanged.
//
// The quoted L4 checksum is left alone, as IPVS leaves it; the ICMPv6 checksum, which covers the
// pseudo-header, is recomputed whole.

import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, NIL } from '../conn/conn-table';
import type { DestLookup } from '../conn/templates';
import { DEST_F_AVAILABLE, FWD_MASQ, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../ip-vs';
import { checksum } from '../wire/checksum';
import { ICMP, ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED } from '../wire/icmp';
import { Ipv6View } from '../wire/ipv6';
import { V_BAD_CHECKSUM, V_OK } from '../wire/verdict';
import { answerEcho6, bypass6, sendRouted6, TRANSMITTERS6 } from '../xmit/ipv6';
import type { PacketContext } from '../xmit/packet-context';
import { D_DEST_UNAVAILABLE, D_NO_CONN } from '../xmit/verdict';

/** Offsets of the ports in the quoted TCP/UDP header. */
const SPORT = 0;
const DPORT = 2;

export class Icmp6Relay {
  /** The IPv6 packet the error quotes, and its ports. */
  private readonly quoted = new Ipv6View();
  private sport = 0;
  private dport = 0;
  /** The quoted packet's addresses as the connection table takes them. */
  private readonly key = new Uint32Array(ADDR6_WORDS);

  constructor(private readonly dests: DestLookup) {}

  /** ICMPv6 to a virtual address (ip_vs_in_icmp_v6). */
  toVip(x: PacketContext): number {
    if (!this.quotesFlow(x)) return answerEcho6(x);
    const q = this.quoted;
    const key = this.key;
    const conns = x.conns6;
    // The quoted packet went VIP:vport → client:cport: its reverse is the connection's client tuple.
    for (let i = 0; i < 4; i++) {
      key[A6_CLIENT + i] = q.dstWord(i);
      key[A6_VIRTUAL + i] = q.srcWord(i);
    }
    const c = conns.lookupIn6(q.protocol, key, this.dport, this.sport);
    if (c === NIL) return D_NO_CONN;
    const dest = this.dests.get(conns.dest[c]);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    x.dest = dest;
    if (conns.xmit[c] !== FWD_MASQ) return TRANSMITTERS6[conns.xmit[c]].in(x, c);
    const a = conns.addr6;
    const rip = c * ADDR6_WORDS + A6_DEST;
    const ip = x.ip6;
    for (let i = 0; i < 4; i++) {
      q.setSrcWord(i, a[rip + i]);
      ip.setDstWord(i, a[rip + i]);
    }
    q.buf.writeUInt16BE(conns.dport[c], q.off + q.l4Offset + SPORT);
    this.finish(x);
    return sendRouted6(x, true);
  }

  /** ICMPv6 about a packet to a NAT real server, from it or a router before it (ip_vs_out_icmp_v6). */
  fromRealServer(x: PacketContext): number {
    if (!this.quotesFlow(x)) return bypass6(x);
    const q = this.quoted;
    const key = this.key;
    const conns = x.conns6;
    // The quoted packet went client:cport → RIP:rport: its reverse is the connection's reply tuple.
    for (let i = 0; i < 4; i++) {
      key[A6_CLIENT + i] = q.srcWord(i);
      key[A6_DEST + i] = q.dstWord(i);
    }
    const c = conns.lookupOut6(q.protocol, key, this.dport, this.sport);
    if (c === NIL || conns.xmit[c] !== FWD_MASQ) return bypass6(x);
    const ip = x.ip6;
    const at = ip.off + ip.l4Offset;
    if (checksum(ip.buf, at, ip.l4Len, ip.pseudoHeaderSum(IPPROTO_ICMPV6, ip.l4Len)) !== 0) return V_BAD_CHECKSUM;
    const a = conns.addr6;
    const vip = c * ADDR6_WORDS + A6_VIRTUAL;
    for (let i = 0; i < 4; i++) {
      q.setDstWord(i, a[vip + i]);
      ip.setSrcWord(i, a[vip + i]);
    }
    q.buf.writeUInt16BE(conns.vport[c], q.off + q.l4Offset + DPORT);
    this.finish(x);
    return sendRouted6(x, true);
  }

  /**
   * Is the current packet (ICMPv6, not a fragment) an error IPVS relays, quoting an IPv6 packet
   * with the ports of its TCP or UDP header? Points the quoted view at it and reads the ports.
   */
  private quotesFlow(x: PacketContext): boolean {
    const ip = x.ip6;
    if (ip.isFragment || ip.l4Len < ICMP.HEADER) return false;
    const buf = ip.buf;
    const icmp = ip.off + ip.l4Offset;
    const type = buf[icmp + ICMP.TYPE];
    if (type !== ICMPV6_DEST_UNREACH && type !== ICMPV6_PKT_TOOBIG && type !== ICMPV6_TIME_EXCEED) return false;
    const q = this.quoted;
    q.reset(buf, icmp + ICMP.HEADER, ip.l4Len - ICMP.HEADER);
    if (q.checkQuoted() !== V_OK || q.isFragment) return false;
    const p = q.protocol;
    if ((p !== IPPROTO_TCP && p !== IPPROTO_UDP) || q.l4Offset + 4 > q.len) return false;
    this.sport = buf.readUInt16BE(q.off + q.l4Offset + SPORT);
    this.dport = buf.readUInt16BE(q.off + q.l4Offset + DPORT);
    return true;
  }

  /** The message was rewritten: its checksum is recomputed over the new pseudo-header. */
  private finish(x: PacketContext): void {
    const ip = x.ip6;
    const at = ip.off + ip.l4Offset;
    const buf = ip.buf;
    buf.writeUInt16BE(0, at + ICMP.CHECKSUM);
    buf.writeUInt16BE(checksum(buf, at, ip.l4Len, ip.pseudoHeaderSum(IPPROTO_ICMPV6, ip.l4Len)), at + ICMP.CHECKSUM);
    x.csumStart = 0;
  }
}
