// SYN cookies for NAT services under a SYN flood (lvs-ts's own, setting syn_proxy; DPVS calls
// the same defence its SYN proxy). Kernel IPVS has none: it forwards every SYN to a real server
// inline in the kernel's softirq, cheaply enough to outlast a flood, and the real server's own
// SYN cookies absorb it. lvsd pays a TUN crossing and a socket send per packet, twice per
// spoofed SYN (the SYN in, the real server's SYN-ACK back), and a flood at the rate kernel NAT
// survives fills its queues. With the proxy engaged the director answers a SYN itself with a
// SYN-ACK whose sequence number is a cookie, and makes no connection; a spoofed SYN costs one
// read and one send, and never reaches a real server.
//
// A client that completes the handshake (its ACK carries cookie + 1, which the director checks)
// gets its connection: scheduled then, as a SYN would have been, and opened to the real server
// by a SYN the director sends in the client's name (the client's address, port and initial
// sequence number, and its MSS as the cookie kept it). The connection waits (CONN_F_PROXY_WAIT)
// for the real server's SYN-ACK; the data segments the client sends meanwhile are kept (up to
// KEPT_SEGMENTS per connection; later ones the client sends again), and any client packet
// re-sends the SYN. The SYN-ACK is answered with the ACK the
// client already sent us, the kept data follows, and from then on the real server's sequence
// numbers are shifted into the cookie's space: a constant offset, kept as the FTP helper keeps
// its fix-ups (seq-adjust.ts: an OUT_SEQ record whose delta and previous delta are both the
// offset), so a backup director's synced copy carries it too. A reset from the real server
// instead of its SYN-ACK is passed on to the client. Every other connection is untouched.
//
// What it costs a proxied connection: the SYN-ACK offers the MSS only (one of four values the
// cookie encodes), so neither end uses window scaling, SACK or timestamps (the director's SYN
// to the real server offers none either); and one round trip to the real server before the
// client's first data reaches it. Which services: TCP ones whose every dest is NAT and that no
// application helper serves (FTP rewrites payloads under its own fix-ups); DR and TUN real
// servers answer the client themselves, with sequence numbers the director cannot shift.
//
// When (syn_proxy): 0 never; 1 always; N >= 2 (default 1024) while this engine holds N or more
// half-open TCP connections (SYN_RECV), which a flood of spoofed SYNs makes within
// milliseconds and a busy director's real clients do not. Cookies are checked for two periods
// of 64 s after the last one was sent, so a client answering just before the proxy disengaged
// still gets in.
//
// The cookie: 32 bits = H1(tuple, client ISN) + (t << 24) + ((H2(tuple, t) + mss index) mod
// 2^24), with t the 64-second period (8 bits), H1/H2 keyed 32-bit hashes of the 4-tuple under
// a secret drawn when the engine starts (each engine has its own; both directions of a flow
// and its handshake reach one engine). A restarted engine forgets its secret: a handshake in
// flight then fails and the client's retransmitted SYN starts again.

import { randomFillSync } from 'node:crypto';
import { SEQ_OUT } from '../app/seq-adjust';
import { CONN_F_OUT_SEQ, CONN_F_PROXY_WAIT, type Dest, FWD_MASQ, IPPROTO_TCP, type Service } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import { TCP_S_CLOSE, TCP_S_ESTABLISHED, TCP_S_SYN_RECV } from '../proto/tcp-states';
import { Ipv4View } from '../wire/ipv4';
import { TCP, TCP_ACK, TCP_RST, TCP_SYN, TcpView } from '../wire/tcp';
import type { PacketContext } from '../xmit/packet-context';
import { TCP_MSS_HEADER, writeTcpSegment } from '../xmit/tcp-reset';
import { D_NO_CONN, D_NO_ROUTE, TX, TX_QUEUED } from '../xmit/verdict';
import type { Engine } from './engine';

/** The MSS values a cookie can carry (2 bits), as Linux's IPv4 cookies choose them. */
export const COOKIE_MSS = [536, 1300, 1440, 1460] as const;
/** syn_proxy's default: engage at this many half-open connections in one engine. */
export const SYN_PROXY_DEFAULT = 1024;
/** Seconds per cookie period (t). */
const PERIOD_SHIFT = 6;
/** The SYN-ACK's receive window (no scaling: the client's first flight, before the real server answers). */
const COOKIE_WINDOW = 29200;
/** Data segments kept per waiting connection. */
const KEPT_SEGMENTS = 8;
/** Bytes of client data kept across all waiting connections of an engine. */
const MAX_KEPT_BYTES = 4 << 20;

/** A connection waiting for its real server's SYN-ACK. */
interface Waiting {
  clientIsn: number;
  cookie: number;
  mss: number;
  window: number;
  /** The client's data segments so far, in arrival order (IPv4 packets; checksums may be partial). */
  data: Buffer[];
}

/** A keyed 32-bit hash of four words (murmur3's finalizer between the words). */
function hash4(k: Uint32Array, a: number, b: number, c: number, d: number): number {
  let h = (k[0] ^ a) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ b ^ k[1] ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ k[2] ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ d ^ k[3] ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The client's MSS option in the SYN at buf[t..] (a TCP header of `hlen` bytes), else 536. */
export function synMss(buf: Buffer, t: number, hlen: number): number {
  let i = t + TCP.MIN_HEADER;
  const end = t + hlen;
  while (i < end) {
    const kind = buf[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const len = buf[i + 1];
    if (len < 2 || i + len > end) break;
    if (kind === 2 && len === 4) return buf.readUInt16BE(i + 2);
    i += len;
  }
  return 536;
}

/** The index of the largest cookie MSS not above `mss` (0 when even 536 is). */
export function mssIndex(mss: number): number {
  for (let i = COOKIE_MSS.length - 1; i > 0; i--) if (COOKIE_MSS[i] <= mss) return i;
  return 0;
}

/** The cookie secret and arithmetic, apart from packets (unit-tested alone). */
export class CookieJar {
  /** H1's key, then H2's. */
  private readonly k1 = new Uint32Array(4);
  private readonly k2 = new Uint32Array(4);

  constructor(secret?: Uint32Array) {
    if (secret !== undefined) {
      this.k1.set(secret.subarray(0, 4));
      this.k2.set(secret.subarray(4, 8));
    } else {
      randomFillSync(this.k1);
      randomFillSync(this.k2);
    }
  }

  /** The cookie for a SYN (addresses, ports, client ISN) in period t with MSS index m. */
  make(saddr: number, daddr: number, ports: number, isn: number, t: number, m: number): number {
    const h1 = hash4(this.k1, saddr, daddr, ports, isn);
    const h2 = hash4(this.k2, saddr, daddr, ports, t & 0xff);
    return (h1 + ((t & 0xff) << 24) + ((h2 + m) & 0xffffff)) >>> 0;
  }

  /**
   * The MSS index a returning cookie carries, or -1 when it is not one of ours from period t or
   * the one before.
   */
  check(saddr: number, daddr: number, ports: number, isn: number, cookie: number, t: number): number {
    const v = (cookie - hash4(this.k1, saddr, daddr, ports, isn)) >>> 0;
    const ct = v >>> 24;
    if (((t - ct) & 0xff) > 1) return -1;
    const m = ((v & 0xffffff) - hash4(this.k2, saddr, daddr, ports, ct)) & 0xffffff;
    return m < COOKIE_MSS.length ? m : -1;
  }
}

export class SynProxy {
  /** syn_proxy: 0 never, 1 always, N >= 2 while N or more connections are half-open. */
  mode = SYN_PROXY_DEFAULT;
  /** TCP connections of this engine in SYN_RECV (conn-life.ts keeps it). */
  halfOpen = 0;
  readonly counts = { cookies: 0, accepted: 0, rejected: 0, resent: 0, reset: 0 };
  private readonly jar = new CookieJar();
  /** The period the last cookie was sent in (-2: none yet). */
  private lastPeriod = -2;
  private readonly waiting = new Map<number, Waiting>();
  private keptBytes = 0;

  constructor(private readonly e: Engine) {}

  /** Is the current SYN, to `svc`, answered with a cookie now? */
  engaged(svc: Service, x: PacketContext): boolean {
    const mode = this.mode;
    if (mode === 0 || (mode > 1 && this.halfOpen < mode)) return false;
    return fits(x) && this.eligible(svc);
  }

  /** May the current ACK carry one of our cookies (one was sent within two periods)? */
  cookiesLive(x: PacketContext): boolean {
    return this.mode !== 0 && (this.e.now >> PERIOD_SHIFT) - this.lastPeriod <= 1 && fits(x);
  }

  /** A TCP service whose every dest is NAT, without an application helper. */
  eligible(svc: Service): boolean {
    if (this.e.ftp.ports.has(svc.port) && svc.fwmark === 0) return false;
    const dests = svc.dests;
    if (dests.length === 0) return false;
    for (let i = 0; i < dests.length; i++) if (dests[i].fwd !== FWD_MASQ) return false;
    return true;
  }

  /** Answer the current SYN (parsed, to a service) with a cookie SYN-ACK, rewritten in place. */
  answerSyn(x: PacketContext): number {
    const ip = x.ip;
    const buf = ip.buf;
    const t = ip.payloadOffset;
    const hlen = (buf[t + TCP.DATA_OFF] >> 4) << 2;
    const saddr = ip.srcAddr;
    const daddr = ip.dstAddr;
    const ports = buf.readUInt32BE(t + TCP.SRC_PORT);
    const isn = buf.readUInt32BE(t + TCP.SEQ);
    const period = this.e.now >> PERIOD_SHIFT;
    const m = mssIndex(synMss(buf, t, hlen));
    const cookie = this.jar.make(saddr, daddr, ports, isn, period, m);
    this.lastPeriod = period;
    this.counts.cookies++;
    const ourMss = Math.min(COOKIE_MSS[COOKIE_MSS.length - 1], x.replyMtu - 40);
    const sport = ports >>> 16;
    const dport = ports & 0xffff;
    writeSegment(x, daddr, dport, saddr, sport, cookie, (isn + 1) >>> 0, TCP_SYN | TCP_ACK, COOKIE_WINDOW, ourMss);
    return TX;
  }

  /**
   * The MSS a client's ACK (no SYN, no RST) to a service brings back in a valid cookie, or -1.
   * Counts the ACKs that carry none.
   */
  checkAck(x: PacketContext): number {
    const ip = x.ip;
    const buf = ip.buf;
    const t = ip.payloadOffset;
    const isn = (buf.readUInt32BE(t + TCP.SEQ) - 1) >>> 0;
    const cookie = (buf.readUInt32BE(t + TCP.ACK) - 1) >>> 0;
    const m = this.jar.check(
      ip.srcAddr,
      ip.dstAddr,
      buf.readUInt32BE(t + TCP.SRC_PORT),
      isn,
      cookie,
      this.e.now >> PERIOD_SHIFT,
    );
    if (m < 0) this.counts.rejected++;
    return m < 0 ? -1 : COOKIE_MSS[m];
  }

  /**
   * Connection c was just made for the client's cookie ACK (the current packet): it waits for
   * its real server, which is sent the client's SYN now (the ACK rewritten in place).
   */
  open(x: PacketContext, c: number, mss: number): number {
    const ip = x.ip;
    const buf = ip.buf;
    const t = ip.payloadOffset;
    const e = this.e;
    const w: Waiting = {
      clientIsn: (buf.readUInt32BE(t + TCP.SEQ) - 1) >>> 0,
      cookie: (buf.readUInt32BE(t + TCP.ACK) - 1) >>> 0,
      mss,
      window: buf.readUInt16BE(t + TCP.WINDOW),
      data: [],
    };
    this.waiting.set(c, w);
    e.conns.flags[c] |= CONN_F_PROXY_WAIT;
    this.counts.accepted++;
    return this.toServer(x, c, w);
  }

  /** A client's packet of waiting connection c: its data kept, and the SYN sent again. */
  clientWhileWaiting(x: PacketContext, c: number): number {
    const w = this.waiting.get(c);
    if (w === undefined) return D_NO_CONN;
    const flags = x.meta.tcpFlags;
    if ((flags & TCP_RST) !== 0) {
      // The client gave up: so does the connection (the real server has at most a half-open one).
      this.forget(c);
      this.e.life.setState(c, this.e.protos[IPPROTO_TCP]!, x.dest, TCP_S_CLOSE);
      return D_NO_CONN;
    }
    this.counts.resent++;
    return this.toServer(x, c, w);
  }

  /** The real server's packet on waiting connection c: its SYN-ACK completes the connection. */
  serverWhileWaiting(x: PacketContext, c: number, dest: Dest): number {
    const w = this.waiting.get(c);
    if (w === undefined) return D_NO_CONN;
    const e = this.e;
    const conns = e.conns;
    const ip = x.ip;
    const buf = ip.buf;
    const t = ip.payloadOffset;
    const flags = buf[t + TCP.FLAGS];
    const h = e.protos[IPPROTO_TCP]!;
    if ((flags & TCP_RST) !== 0) {
      // Refused (nothing listens): the client, which believes itself connected, is reset.
      this.forget(c);
      e.life.setState(c, h, dest, TCP_S_CLOSE);
      this.counts.reset++;
      writeSegment(
        x,
        conns.vaddr[c],
        conns.vport[c],
        conns.caddr[c],
        conns.cport[c],
        (w.cookie + 1) >>> 0,
        0,
        TCP_RST,
        0,
      );
      return TX;
    }
    if (
      (flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK) ||
      buf.readUInt32BE(t + TCP.ACK) !== (w.clientIsn + 1) >>> 0
    ) {
      return D_NO_CONN;
    }
    const rsIsn = buf.readUInt32BE(t + TCP.SEQ);
    const delta = (w.cookie - rsIsn) | 0;
    e.ftp.seq.load(c, SEQ_OUT, rsIsn, delta, delta);
    this.forget(c);
    conns.flags[c] = (conns.flags[c] & ~CONN_F_PROXY_WAIT) | CONN_F_OUT_SEQ;
    e.life.setState(c, h, dest, TCP_S_ESTABLISHED);
    // The handshake's last ACK, as the client sent it to us, then the data it sent meanwhile.
    const caddr = conns.caddr[c];
    const daddr = conns.daddr[c];
    const cport = conns.cport[c];
    const dport = conns.dport[c];
    const rsNext = (rsIsn + 1) >>> 0;
    writeSegment(x, caddr, cport, daddr, dport, (w.clientIsn + 1) >>> 0, rsNext, TCP_ACK, w.window);
    x.queue(x.outOff, x.outLen, TX_DEV_RAW);
    for (const data of w.data) {
      if (data.length > x.slotCapacity) continue;
      const off = x.genSlot();
      data.copy(buf, off);
      // To the real server, its ACK in the server's sequence space.
      const d = off + ((data[0] & 0x0f) << 2);
      buf.writeUInt32BE(daddr >>> 0, off + 16);
      buf.writeUInt16BE(dport, d + TCP.DST_PORT);
      buf.writeUInt32BE(rsNext, d + TCP.ACK);
      finishChecksums(buf, off, data.length);
      x.queue(off, data.length, TX_DEV_RAW);
    }
    return TX_QUEUED;
  }

  /** Connection c leaves the table (conn-life.ts): its waiting record goes. */
  gone(c: number): void {
    if (this.waiting.size !== 0) this.forget(c);
  }

  /** Connections waiting for their real server now. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  private forget(c: number): void {
    const w = this.waiting.get(c);
    if (w === undefined) return;
    for (const d of w.data) this.keptBytes -= d.length;
    this.waiting.delete(c);
  }

  /** Keep the current packet's data for waiting connection c (within the limits), then send the SYN. */
  private toServer(x: PacketContext, c: number, w: Waiting): number {
    const ip = x.ip;
    const buf = ip.buf;
    const t = ip.payloadOffset;
    const dataLen = ip.payloadLen - ((buf[t + TCP.DATA_OFF] >> 4) << 2);
    if (
      dataLen > 0 &&
      x.gsoSize === 0 &&
      w.data.length < KEPT_SEGMENTS &&
      this.keptBytes + ip.totalLen <= MAX_KEPT_BYTES &&
      !keeps(w, buf.readUInt32BE(t + TCP.SEQ))
    ) {
      const copy = Buffer.allocUnsafe(ip.totalLen);
      buf.copy(copy, 0, ip.off, ip.off + ip.totalLen);
      // Its checksum may be partial (TUN offloads): the copy is completed when it is sent.
      w.data.push(copy);
      this.keptBytes += copy.length;
    }
    if (x.dest.noRoute) return D_NO_ROUTE;
    if (!fits(x)) return D_NO_CONN;
    const conns = this.e.conns;
    writeSegment(
      x,
      conns.caddr[c],
      conns.cport[c],
      conns.daddr[c],
      conns.dport[c],
      w.clientIsn,
      0,
      TCP_SYN,
      w.window,
      Math.min(w.mss, x.dest.mtu - 40),
    );
    return TX;
  }
}

/**
 * Has the current packet's buffer room for the SYN or SYN-ACK it is rewritten into (20 + 24
 * bytes)? Always in lvsd's slab; not where a buffer holds one packet exactly (the engine
 * benchmark's replayed packets).
 */
function fits(x: PacketContext): boolean {
  return x.ip.off + 20 + TCP_MSS_HEADER <= x.ip.buf.length;
}

/** Does `w` keep a segment with sequence number `seq` already (a retransmission)? */
function keeps(w: Waiting, seq: number): boolean {
  for (const d of w.data) if (d.readUInt32BE(((d[0] & 0x0f) << 2) + TCP.SEQ) === seq) return true;
  return false;
}

/**
 * Rewrite the current packet in place as a TCP segment without data for the raw socket: with
 * the MSS option when `mss` is not 0 (a SYN-ACK to a client, a SYN to a real server), else bare
 * (an ACK, a RST).
 */
function writeSegment(
  x: PacketContext,
  src: number,
  sport: number,
  dst: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  mss = 0,
): void {
  const off = x.ip.off;
  x.outLen = writeTcpSegment(x.ip.buf, off, src, sport, dst, dport, seq, ack, flags, window, mss);
  x.csumStart = 0;
  x.outOff = off;
  x.outDev = TX_DEV_RAW;
}

/** Views for recomputing a kept segment's checksums as it is sent (reused). */
const keptIp = new Ipv4View();
const keptTcp = new TcpView();

/** Recompute the IPv4 header checksum and the TCP checksum of the packet at buf[off, off + len). */
function finishChecksums(buf: Buffer, off: number, len: number): void {
  keptIp.reset(buf, off, len).fillChecksum();
  keptTcp.reset(buf, keptIp.payloadOffset, keptIp.payloadLen).fillChecksum(keptIp.srcAddr, keptIp.dstAddr);
}

/** The half-open count follows connection c from state `from` to `to` (conn-life.ts). */
export function countHalfOpen(p: SynProxy, from: number, to: number): void {
  if (from === TCP_S_SYN_RECV && p.halfOpen > 0) p.halfOpen--;
  if (to === TCP_S_SYN_RECV) p.halfOpen++;
}
