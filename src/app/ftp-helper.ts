// The FTP application helper for NAT services (ip_vs_ftp.c over ip_vs_app.c, REFERENCE.md §1.8).
// It is bound to the NAT connections of services on an FTP port (21 unless lvsd --ftp-ports
// says otherwise) and sees each of their packets before the NAT rewrite:
//
//   client -> server (in):  "PASV"/"EPSV" marks the
//                           connection passive (until the next command); "PORT h1,..,p2" / "EPRT |1|a.b.c.d|p|" makes the
//                           connection the real server opens from port 20 back to the client
//                           expected: <client:p, VIP:20 -> RIP:20>, translated to come from the VIP.
//   server -> client (out): on a passive connection
//                           "227 ...(h1,..,p2)" has the real server's address rewritten to the VIP
//                           (a length change is recorded for the sequence fix-ups: seq-adjust.ts)
//                           and "229 ...(|||p|)" kept; either makes the client's data connection
//                           expected: <client:any, VIP:p -> RIP:p> (no client port yet).
//   over IPv6 (in6, out6):  EPSV and EPRT |2|...| only, as ip_vs_ftp takes them; no rewrite.
//
// Expected data connections are controlled by the control connection (it lives while they do)
// and are listed by -L -c like any other. Only ESTABLISHED control connections are inspected.
// GSO packets (never FTP commands in practice) pass unchanged; a packet with a partial checksum
// has it completed first, since a resized payload needs a full one. The sequence numbers and
// acks of the packet are fixed for the resizes afterwards, by the engine (seq-adjust.ts
// shiftSeqIn/shiftSeqOut), as for any connection with fix-ups.

import { A6_CLIENT, A6_DEST, ADDR6_WORDS, CONN_F_OUT_SEQ } from '../ip-vs';
import { TCP_S_ESTABLISHED } from '../proto/tcp-states';
import { IPV4 } from '../wire/ipv4';
import { TcpView } from '../wire/tcp';
import { completeChecksum } from '../xmit/common';
import { completeChecksum6 } from '../xmit/ipv6';
import type { PacketContext } from '../xmit/packet-context';
import {
  FTP_NOT_PASSIVE,
  FtpMatch,
  find227,
  find229,
  findEprt,
  findEprt6,
  findPort,
  isPasv,
  rewriteAddrPort,
} from './ftp';
import { SEQ_OUT, SeqAdjust } from './seq-adjust';

export const DEFAULT_FTP_PORTS: readonly number[] = [21];

/** What the helper needs of the engine. */
/** Where the helper's expected data connections are made (the engine's, core/ftp-expect.ts). */
export interface FtpExpect {
  /**
   * Expect a data connection <caddr:cport, vaddr:vport -> daddr:dport> controlled by c, bound
   * to c's dest; cport 0 means "any client port" (filled in by the first packet).
   */
  expectConn(c: number, caddr: number, cport: number, vport: number, daddr: number, dport: number): void;
}

/** Where the helper's expected data connections of IPv6 control connections are made. */
export interface FtpExpect6 {
  /** FtpExpect's expectConn with IPv6 addresses: four words each at caddr[cOff], daddr[dOff]. */
  expectConn(
    c: number,
    caddr: Uint32Array,
    cOff: number,
    cport: number,
    vport: number,
    daddr: Uint32Array,
    dOff: number,
    dport: number,
  ): void;
}

export class FtpHelper {
  constructor(
    /** Virtual ports whose NAT connections the helper is bound to (an IPv6 helper shares the IPv4 one's). */
    readonly ports = new Set<number>(DEFAULT_FTP_PORTS),
  ) {}

  readonly seq = new SeqAdjust();
  /** Per connection: a PASV/EPSV command was seen and its reply is awaited. */
  private passive = new Uint8Array(1024);
  private readonly tcp = new TcpView();
  private readonly match = new FtpMatch();
  /** Commands and replies acted on. */
  readonly counts = { port: 0, eprt: 0, pasv: 0, epsv: 0 };

  /** A connection slot starts afresh (new connection). */
  reset(c: number): void {
    this.seq.clear(c);
    if (c < this.passive.length) this.passive[c] = 0;
  }

  /** A client's packet of FTP control connection c. */
  in(x: PacketContext, c: number, expect: FtpExpect): void {
    if (x.gsoSize !== 0) return;
    const conns = x.conns;
    const tcp = this.pointAt(x);
    const len = tcp.payloadLen;
    if (len === 0 || conns.state[c] !== TCP_S_ESTABLISHED) return;
    const buf = x.ip.buf;
    const off = tcp.payloadOffset;
    // The reply to PASV/EPSV came (or never will): the next command ends the passive wait.
    const pasv = isPasv(buf, off, len) !== FTP_NOT_PASSIVE;
    this.setPassive(c, pasv ? 1 : 0);
    if (pasv) return;
    const m = this.match;
    if (findPort(buf, off, len, m)) this.counts.port++;
    else if (findEprt(buf, off, len, m)) this.counts.eprt++;
    else return;
    // The real server connects from its port 20 (the control port - 1) to the client's address.
    expect.expectConn(c, m.addr, m.port, conns.vport[c] - 1, conns.daddr[c], conns.dport[c] - 1);
  }

  /** A real server's packet of FTP control connection c. */
  out(x: PacketContext, c: number, expect: FtpExpect): void {
    if (x.gsoSize !== 0) return;
    const conns = x.conns;
    const tcp = this.pointAt(x);
    const seq = tcp.seq;
    const len = tcp.payloadLen;
    if (len === 0 || conns.state[c] !== TCP_S_ESTABLISHED || c >= this.passive.length || this.passive[c] === 0) {
      return;
    }
    const ip = x.ip;
    const buf = ip.buf;
    const off = tcp.payloadOffset;
    const m = this.match;
    // The passive wait lasts until the client's next command, so a retransmitted 227 is
    // rewritten like the first one (seq-adjust.ts ignores its second length change).
    if (find227(buf, off, len, m)) {
      this.counts.pasv++;
      expect.expectConn(c, conns.caddr[c], 0, m.port, m.addr, m.port);
      const room = x.packetRoom() - (off - ip.off);
      const newLen = rewriteAddrPort(buf, off, len, m, conns.vaddr[c], m.port, room);
      if (newLen < 0) return;
      const diff = newLen - len;
      if (diff !== 0) {
        const total = ip.totalLen + diff;
        buf.writeUInt16BE(total, ip.off + IPV4.TOTAL_LEN);
        ip.reset(buf, ip.off, total);
        ip.fillChecksum();
        if (this.seq.update(c, SEQ_OUT, seq, diff)) conns.flags[c] = conns.flags[c] | CONN_F_OUT_SEQ;
      }
      // The payload changed: a full checksum (the NAT rewrite then updates it incrementally).
      tcp.reset(buf, ip.payloadOffset, ip.payloadLen);
      tcp.fillChecksum(ip.srcAddr, ip.dstAddr);
    } else if (find229(buf, off, len, m)) {
      this.counts.epsv++;
      expect.expectConn(c, conns.caddr[c], 0, m.port, conns.daddr[c], m.port);
    }
  }

  /**
   * A client's packet of IPv6 FTP control connection c (ip_vs_ftp_in for AF_INET6): `EPSV`
   * marks it passive; `EPRT |2|addr|port|` expects the real server's data connection from its
   * port 20 to the client. Nothing is rewritten.
   */
  in6(x: PacketContext, c: number, expect: FtpExpect6): void {
    if (x.gsoSize !== 0) return;
    const conns = x.conns6;
    const tcp = this.pointAt6(x);
    const len = tcp.payloadLen;
    if (len === 0 || conns.state[c] !== TCP_S_ESTABLISHED) return;
    const buf = x.ip6.buf;
    const off = tcp.payloadOffset;
    const pasv = isPasv(buf, off, len, true) !== FTP_NOT_PASSIVE;
    this.setPassive(c, pasv ? 1 : 0);
    if (pasv) return;
    const m = this.match;
    if (!findEprt6(buf, off, len, m)) return;
    this.counts.eprt++;
    const at = c * ADDR6_WORDS;
    expect.expectConn(c, m.addr6, 0, m.port, conns.vport[c] - 1, conns.addr6, at + A6_DEST, conns.dport[c] - 1);
  }

  /**
   * A real server's packet of IPv6 FTP control connection c (ip_vs_ftp_out for AF_INET6): on a
   * passive connection, "229 ...(|||port|)" expects the client's data connection to that port.
   * The reply names no address, so it is left as it is.
   */
  out6(x: PacketContext, c: number, expect: FtpExpect6): void {
    if (x.gsoSize !== 0) return;
    const conns = x.conns6;
    const tcp = this.pointAt6(x);
    const len = tcp.payloadLen;
    if (len === 0 || conns.state[c] !== TCP_S_ESTABLISHED || c >= this.passive.length || this.passive[c] === 0) {
      return;
    }
    const m = this.match;
    if (!find229(x.ip6.buf, tcp.payloadOffset, len, m)) return;
    this.counts.epsv++;
    const at = c * ADDR6_WORDS;
    expect.expectConn(c, conns.addr6, at + A6_CLIENT, 0, m.port, conns.addr6, at + A6_DEST, m.port);
  }

  /** The TCP view on the current IPv6 packet, its checksum complete. */
  private pointAt6(x: PacketContext): TcpView {
    if (x.csumStart !== 0) completeChecksum6(x);
    const ip = x.ip6;
    this.tcp.reset(ip.buf, ip.off + ip.l4Offset, ip.l4Len);
    return this.tcp;
  }

  /** The TCP view on the current packet, its checksum complete. */
  private pointAt(x: PacketContext): TcpView {
    if (x.csumStart !== 0) completeChecksum(x);
    const ip = x.ip;
    this.tcp.reset(ip.buf, ip.payloadOffset, ip.payloadLen);
    return this.tcp;
  }

  private setPassive(c: number, v: number): void {
    if (c >= this.passive.length) {
      const grown = new Uint8Array(Math.max(c + 1, this.passive.length * 2));
      grown.set(this.passive);
      this.passive = grown;
    }
    this.passive[c] = v;
  }
}
