// The engine's IPv6 path: what Engine.process does for IPv4, for a packet whose version nibble
// is 6. It has its own connection table (a wide ConnTable: folds in the address columns, the
// full addresses beside them) and its own ConnLife over it, and shares everything else with the
// IPv4 path: the services and dests, the schedulers (which hash the folds, as the kernel's fold
// an IPv6 address), the timeouts, the stats and the settings.
//
//   | the packet                                   | result                                   |
//   |----------------------------------------------|------------------------------------------|
//   | malformed IPv6 / TCP / UDP header            | drop, counted by wire verdict            |
//   | to a multicast or link-local address         | drop link_local (the kernel's own MLD)   |
//   | a fragment                                   | held; the whole datagram is then decided |
//   |                                              | as one packet, and leaves in fragments   |
//   | ICMPv6 error about a connection's packet     | relayed, translated (proto/icmp6.ts)     |
//   | ICMPv6 echo request to a virtual address     | answered                                 |
//   | other ICMPv6 to a virtual address            | drop no_service (no_conn: an error)      |
//   | matches a connection's client tuple          | its transmitter, in                      |
//   | matches a connection's real-server tuple     | its transmitter, out (NAT)               |
//   | to a service, may schedule                   | scheduler (or template) → new conn → in  |
//   | to a service, may not schedule               | drop no_conn                             |
//   | to a virtual address, no service             | drop no_service                          |
//   | anything else                                | forwarded unchanged                      |
//
// FTP control connections of NAT services get the FTP helper (EPSV, EPRT: app/ftp-helper.ts in6,
// out6), their expected data connections core/ftp-expect.ts FtpExpectations6.
// Connections are offered to a master sync daemon and bound to their dest when synced as the
// IPv4 path's are (sync-conn.ts, sync-apply.ts, over this table).
// Not yet for IPv6 (ARCHITECTURE.md lists them): SYN cookies, DR/TUN FTP data connections
// found through the FTP service.

import {
  A6_CLIENT,
  A6_DEST,
  A6_VIRTUAL,
  ADDR6_WORDS,
  type ConnInit,
  type ConnTable,
  NIL,
  newConnInit,
} from '../conn/conn-table';
import {
  AF_INET6,
  CONN_F_APP,
  CONN_F_TEMPLATE,
  DEST_F_AVAILABLE,
  type Dest,
  destBind,
  FTP_PORT,
  FWD_MASQ,
  IPPROTO_ICMPV6,
  IPPROTO_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv6FoldWords,
  type Service,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../ip-vs';
import { Icmp6Relay } from '../proto/icmp6';
import { DIR_IN, DIR_OUT, type ProtoHandler } from '../proto/proto';
import { ICMPV6_DEST_UNREACH, ICMPV6_EXC_FRAGTIME, ICMPV6_PORT_UNREACH, ICMPV6_TIME_EXCEED } from '../wire/icmp';
import { FRAG_COMPLETE, FRAG_HELD } from '../wire/reassembly';
import { Reassembler6 } from '../wire/reassembly6';
import { V_OK } from '../wire/verdict';
import { readVnetHdr6, VNET_HDR_LEN } from '../wire/vnet';
import { bypass6, mayAnswer6, sendIcmp6Error, TRANSMITTERS6 } from '../xmit/ipv6';
import type { PacketContext } from '../xmit/packet-context';
import {
  D_BAD_OFFLOAD,
  D_DEFENSE,
  D_DEST_UNAVAILABLE,
  D_FRAG_BAD,
  D_LINK_LOCAL,
  D_NO_CONN,
  D_NO_DEST,
  D_NO_SERVICE,
  D_TABLE_FULL,
  TX_HELD,
} from '../xmit/verdict';
import { ConnLife } from './conn-life';
import { FRAG_DROPS } from './defrag';
import type { Engine } from './engine';
import { bindSyncedDest, syncConn } from './sync-conn';

/** Word `i` of the mask of an IPv6 prefix of `plen` bits. */
function prefixWord(plen: number, i: number): number {
  const bits = Math.max(0, Math.min(32, plen - 32 * i));
  return bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

export class Path6 {
  /** The IPv6 connections and persistence templates. */
  readonly conns: ConnTable;
  readonly life: ConnLife;
  /** The current packet's addresses as the table takes them (A6_CLIENT, A6_VIRTUAL, A6_DEST). */
  private readonly key = new Uint32Array(ADDR6_WORDS);
  /** A persistence template's key: the client's masked address, the virtual one, the dest's. */
  private readonly tkey = new Uint32Array(ADDR6_WORDS);
  private readonly templateInit: ConnInit = newConnInit();
  private readonly icmp: Icmp6Relay;
  /** Fragments waiting for the rest of their datagram (wire/reassembly6.ts). */
  readonly frags = new Reassembler6({ onExpire: (buf, off, len) => this.timedOut(buf, off, len) });

  constructor(
    private readonly e: Engine,
    private readonly x: PacketContext,
  ) {
    this.conns = x.conns6;
    this.life = new ConnLife(e, this.conns, e.ftp6, e.expect6, this.key);
    this.icmp = new Icmp6Relay(e.dests);
  }

  /** Decide one IPv6 packet (Engine.process's contract). */
  process(buf: Buffer, off: number, len: number): number {
    const e = this.e;
    const x = this.x;
    const ip = x.ip6;
    ip.reset(buf, off, len);
    const v = ip.checkLen();
    if (v !== V_OK) return v;
    if (x.vnetHdr === 0) x.gsoSize = 0;
    else if (!readVnetHdr6(buf, off - VNET_HDR_LEN, ip, x, e.offload)) return D_BAD_OFFLOAD;
    const dst0 = ip.dstWord(0);
    if (dst0 >>> 24 === 0xff || dst0 >>> 22 === 0x3fa) return D_LINK_LOCAL;
    const key = this.key;
    for (let i = 0; i < 4; i++) {
      key[A6_CLIENT + i] = ip.srcWord(i);
      key[A6_VIRTUAL + i] = ip.dstWord(i);
    }
    const services = e.services;
    const protocol = ip.protocol;
    if (ip.isFragment) return this.fragment(buf, off, ip.totalLen);
    const h = e.protos[protocol];
    if (h === undefined) {
      const vip = services.isVip6(key, A6_VIRTUAL);
      if (protocol === IPPROTO_ICMPV6) return vip ? this.icmp.toVip(x) : this.icmp.fromRealServer(x);
      return vip ? D_NO_SERVICE : bypass6(x);
    }
    const pkt = x.meta;
    const pv = h.parse(buf, off + ip.l4Offset, ip.l4Len, pkt);
    if (pv !== V_OK) return pv;
    pkt.protocol = protocol;
    pkt.saddr = ipv6FoldWords(key, A6_CLIENT);
    pkt.daddr = ipv6FoldWords(key, A6_VIRTUAL);
    x.l4 = h;
    const conns = this.conns;

    let c = conns.lookupIn6(protocol, key, pkt.sport, pkt.dport);
    if (c === NIL && e.expect6.waitingForPort !== 0) c = e.expect6.fillCport(protocol, key, pkt.sport, pkt.dport);
    if (c !== NIL) {
      if (!((e.expireNodestConn !== 0 || h.opensConn(pkt)) && this.life.retires(c, h, pkt))) return this.inHook(c, h);
      this.life.retire(c);
    } else {
      // A reply: from the real server (the source, in the dest's place) to the client.
      for (let i = 0; i < 4; i++) {
        key[A6_DEST + i] = key[A6_CLIENT + i];
        key[A6_CLIENT + i] = key[A6_VIRTUAL + i];
      }
      c = conns.lookupOut6(protocol, key, pkt.sport, pkt.dport);
      if (c !== NIL) return this.outHook(c, h);
      for (let i = 0; i < 4; i++) {
        key[A6_VIRTUAL + i] = key[A6_CLIENT + i];
        key[A6_CLIENT + i] = key[A6_DEST + i];
      }
    }

    const svc =
      (x.mark !== 0 ? services.findMark(x.mark, AF_INET6) : undefined) ??
      services.find6(protocol, key, A6_VIRTUAL, pkt.dport);
    if (svc !== undefined) return this.schedule(svc, h);
    if (!services.isVip6(key, A6_VIRTUAL)) return bypass6(x);
    return D_NO_SERVICE;
  }

  /**
   * A fragment (nf_defrag_ipv6 before IPVS): held until its datagram is whole, which is then
   * decided as one packet from the slab's big slot and leaves in fragments again no larger than
   * it came in (x.fragSize6; xmit/ipv6.ts sendFragments6).
   */
  private fragment(buf: Buffer, off: number, len: number): number {
    const e = this.e;
    const x = this.x;
    // A fragment inside a reassembled datagram: nothing a sender makes.
    if (x.reassembled) return D_FRAG_BAD;
    const r = this.frags;
    const status = r.add(buf, off, len, x.ip6.fragOffset, e.now);
    if (status === FRAG_HELD) return TX_HELD;
    if (status !== FRAG_COMPLETE) return FRAG_DROPS[status];
    const slab = e.io.slab;
    // The big slot may still be queued from this batch: send that first.
    if (x.tx.bigQueued) x.tx.flush();
    x.fragSize6 = r.completeFragSize;
    const n = r.copyComplete(slab.buf, slab.bigOffset);
    const v = e.decideReassembled(n);
    x.fragSize6 = 0;
    return v;
  }

  /**
   * A datagram timed out incomplete (its first fragment, or its first bytes, at buf[off]): when
   * it was to a virtual address, its sender gets time exceeded (fragment reassembly), within
   * icmp_send's rate limits, as the director's own stack would answer.
   */
  private timedOut(buf: Buffer, off: number, len: number): void {
    const e = this.e;
    const x = this.x;
    const slab = e.io.slab;
    const big = slab.bigOffset;
    buf.copy(slab.buf, big, off, off + len);
    const ip = x.ip6;
    ip.reset(slab.buf, big, len);
    if (ip.checkQuoted() !== V_OK) return;
    for (let i = 0; i < 4; i++) this.key[A6_VIRTUAL + i] = ip.dstWord(i);
    if (!e.services.isVip6(this.key, A6_VIRTUAL) || !mayAnswer6(ip, ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME)) return;
    const src = ip.srcWord(0) ^ ip.srcWord(1) ^ ip.srcWord(2) ^ ip.srcWord(3);
    if (e.icmpRate.allow(ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME, src >>> 0)) {
      sendIcmp6Error(x, ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME, 0);
    }
  }

  /** Engine.schedule for IPv6 (no SYN cookies yet). */
  private schedule(svc: Service, h: ProtoHandler): number {
    const e = this.e;
    const pkt = this.x.meta;
    if (!h.canSchedule(pkt, pkt.protocol === IPPROTO_TCP && e.sloppyTcp !== 0)) return D_NO_CONN;
    if (e.defense.dropNew()) return D_DEFENSE;
    const conns = this.conns;
    let t = NIL;
    let dest: Dest | null;
    if ((svc.flags & SVC_F_PERSISTENT) !== 0) {
      t = this.template(svc);
      if (t < 0) return t === NIL ? this.noDest() : D_TABLE_FULL;
      dest = e.dests.get(conns.dest[t])!;
    } else {
      dest = svc.sched.schedule(svc, pkt, e.now);
      if (dest === null) return this.noDest();
    }
    const c = this.life.create(svc, dest, h, pkt);
    if (c === NIL) return D_TABLE_FULL;
    if (t !== NIL) {
      conns.control[c] = t;
      conns.nControl[t]++;
    }
    if ((svc.flags & SVC_F_ONEPACKET) !== 0 && pkt.protocol === IPPROTO_UDP) {
      const v = this.inHook(c, h);
      this.life.remove(c);
      return v;
    }
    return this.inHook(c, h);
  }

  /**
   * The persistence template of the current packet (PersistTemplates.find for IPv6): the client's
   * address cut to the service's prefix length (its netmask field), found and still valid, or
   * made for a newly scheduled dest. The template, NIL (no dest) or -2 (table full).
   */
  private template(svc: Service): number {
    const e = this.e;
    const pkt = this.x.meta;
    const conns = this.conns;
    const key = this.key;
    const tkey = this.tkey;
    const byMark = svc.fwmark !== 0;
    const plen = svc.netmask;
    for (let i = 0; i < 4; i++) {
      tkey[A6_CLIENT + i] = (key[A6_CLIENT + i] & prefixWord(plen, i)) >>> 0;
      // A firewall-mark service's templates carry the mark as their virtual address's first word.
      tkey[A6_VIRTUAL + i] = byMark ? (i === 0 ? svc.fwmark : 0) : key[A6_VIRTUAL + i];
    }
    const protocol = byMark ? IPPROTO_IP : pkt.protocol;
    const anyPort = byMark || svc.port === 0 || svc.port === FTP_PORT;
    const vport = anyPort ? 0 : pkt.dport;
    let t = conns.lookupTemplate6(protocol, tkey, vport);
    if (t !== NIL) {
      const dest = e.dests.get(conns.dest[t]);
      if (
        dest !== undefined &&
        (dest.flags & DEST_F_AVAILABLE) !== 0 &&
        !(e.expireQuiescentTemplate !== 0 && dest.weight === 0)
      ) {
        conns.touch(t, e.now);
        return t;
      }
      conns.invalidateTemplate(t);
    }
    const dest = svc.sched.schedule(svc, pkt, e.now);
    if (dest === null) return NIL;
    tkey.set(dest.addr6!, A6_DEST);
    const n = this.templateInit;
    n.protocol = protocol;
    n.cport = 0;
    n.vport = vport;
    n.dport = anyPort ? 0 : dest.port;
    n.dest = dest.id;
    n.xmit = dest.fwd;
    n.flags = CONN_F_TEMPLATE | dest.fwd;
    n.state = 0;
    n.timeout = svc.timeout;
    t = conns.insert6(n, tkey, e.now);
    if (t === NIL) return -2;
    destBind(dest, CONN_F_TEMPLATE);
    return t;
  }

  /** No dest for a new connection (ip_vs_leave): ICMPv6 port unreachable to the client. */
  private noDest(): number {
    const x = this.x;
    const ip = x.ip6;
    if (
      mayAnswer6(ip, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH) &&
      this.e.icmpRate.allow(ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, this.x.meta.saddr)
    ) {
      sendIcmp6Error(x, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0);
    }
    return D_NO_DEST;
  }

  /** A client's packet of connection c. */
  private inHook(c: number, h: ProtoHandler): number {
    const e = this.e;
    const conns = this.conns;
    const dest = e.dests.get(conns.dest[c]) ?? bindSyncedDest(e, conns, c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    const x = this.x;
    x.dest = dest;
    e.countPacket(dest, false, x.ip6.totalLen);
    this.life.setState(c, h, dest, h.transition(conns, c, DIR_IN, x.meta, e.defense.secureTcpOn));
    const pkts = ++conns.inPkts[c];
    if (e.syncSink !== null) syncConn(e, conns, e.syncSink, c, pkts);
    if ((conns.flags[c] & CONN_F_APP) !== 0) e.ftp6.in6(x, c, e.expect6);
    return TRANSMITTERS6[conns.xmit[c]].in(x, c);
  }

  /** A real server's reply of connection c (only NAT connections have replies to handle). */
  private outHook(c: number, h: ProtoHandler): number {
    const e = this.e;
    const conns = this.conns;
    const x = this.x;
    if (conns.xmit[c] !== FWD_MASQ) return bypass6(x);
    const dest = e.dests.get(conns.dest[c]) ?? bindSyncedDest(e, conns, c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    x.dest = dest;
    e.countPacket(dest, true, x.ip6.totalLen);
    this.life.setState(c, h, dest, h.transition(conns, c, DIR_OUT, x.meta, e.defense.secureTcpOn));
    if ((conns.flags[c] & CONN_F_APP) !== 0) e.ftp6.out6(x, c, e.expect6);
    return TRANSMITTERS6[conns.xmit[c]].out(x, c);
  }

  /** Expire fragments (in the engine's tick, inside a batch: time exceeded may be sent). */
  expireFragments(now: number): void {
    this.frags.expire(now);
  }

  /** Expire what is due (Engine.tick). */
  tick(now: number): number {
    return this.conns.tick(now, this.life.expire);
  }
}
