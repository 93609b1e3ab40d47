// The packet engine: one batch at a time from a PacketIo, each packet parsed once in place into
// the reused packet context (xmit/packet-context.ts), routed to a hook, rewritten in place and
// queued; the batch's output leaves in one send (xmit/tx-batch.ts).
//
// Which hook handles a packet (checked in this order):
//
//   | the packet                                      | hook              | result                        |
//   |-------------------------------------------------|-------------------|-------------------------------|
//   | IPv6 (version nibble 6)                         | path6.ts          | its own table of the same     |
//   | malformed IPv4 / TCP / UDP header               | -                 | drop, counted by wire verdict |
//   | a fragment                                      | defragment        | held; the whole datagram is   |
//   |                                                 |                   | then decided as one packet    |
//   | ICMP to a virtual IP                            | IcmpRelay.toVip   | error relayed, echo answered  |
//   | other ICMP (from real servers' side)            | IcmpRelay.fromRS  | error translated, or bypass   |
//   | matches a connection's client tuple             | inHook            | conn's transmitter, in        |
//   | matches a connection's real-server reply tuple  | outHook           | conn's transmitter, out       |
//   | TCP SYN to a NAT service under a SYN flood      | SynProxy          | cookie SYN-ACK, no connection |
//   | TCP ACK bringing a SYN cookie back              | SynProxy          | scheduler → new conn → SYN    |
//   | to a service, may schedule (TCP SYN, any UDP)    | inHook (new conn) | scheduler → new conn → xmit   |
//   | to a service, may not schedule                   | -                 | drop no_conn                  |
//   | to a virtual IP, no service / other protocol    | -                 | drop no_service               |
//   | anything else                                   | bypass            | forwarded unchanged           |
//
// TCP that is dropped as no_conn or no_service is answered with a reset (tcp-reset.ts), as the
// local stack of a kernel director, which owns the virtual address, would answer it.
//
// With TUN offloads each packet's virtio_net_hdr is read first (wire/vnet.ts: partial checksum,
// GSO size) and an unusable one drops the packet as bad_offload; the transmitters act on it
// (xmit/common.ts). Where the rest lives: persistence templates conn/templates.ts, ICMP relay
// proto/icmp.ts, FTP expectations core/ftp-expect.ts, sync decisions core/sync-conn.ts (and
// applying received messages core/sync-apply.ts), the ICMP rate limit core/icmp-rate.ts.

import { FtpHelper } from '../app/ftp-helper';
import { shiftSeqIn, shiftSeqOut } from '../app/seq-adjust';
import { ConnTable, NIL } from '../conn/conn-table';
import { PersistTemplates } from '../conn/templates';
import {
  CONN_F_APP,
  CONN_F_PROXY_WAIT,
  CONN_F_SEQ_MASK,
  DEST_F_AVAILABLE,
  type Dest,
  FTP_PORT,
  FWD_MASQ,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  newDest,
  newService,
  newStats,
  type Service,
  type Stats,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../ip-vs';
import type { PacketIo } from '../native/packet-io';
import { IcmpRelay } from '../proto/icmp';
import { DIR_IN, DIR_OUT, type ProtoHandler } from '../proto/proto';
import { tcp } from '../proto/tcp';
import { TCP_S_SYN_RECV } from '../proto/tcp-states';
import { udp } from '../proto/udp';
import { ICMP_DEST_UNREACH, ICMP_PORT_UNREACH } from '../wire/icmp';
import type { Reassembler } from '../wire/reassembly';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../wire/tcp';
import { V_OK } from '../wire/verdict';
import { readVnetHdr, VNET_HDR_LEN } from '../wire/vnet';
import { bypass, bypassLocal } from '../xmit/bypass';
import { mayAnswer, sendIcmpError } from '../xmit/icmp-error';
import { TRANSMITTERS } from '../xmit/index';
import { PacketContext } from '../xmit/packet-context';
import { sendTcpReset } from '../xmit/tcp-reset';
import { TxBatch } from '../xmit/tx-batch';
import {
  D_BAD_OFFLOAD,
  D_DEFENSE,
  D_DEST_UNAVAILABLE,
  D_NO_CONN,
  D_NO_DEST,
  D_NO_SERVICE,
  D_TABLE_FULL,
  TX,
  VERDICT_COUNT,
} from '../xmit/verdict';
import { ConnLife } from './conn-life';
import { Defense } from './defense';
import { Defrag } from './defrag';
import { FtpExpectations, FtpExpectations6 } from './ftp-expect';
import { IcmpRateLimit } from './icmp-rate';
import { Path6 } from './path6';
import { DestRegistry, ServiceTable } from './services';
import { SynProxy } from './syn-proxy';
import { bindSyncedDest, type SyncSink, syncConn } from './sync-conn';

export type { SyncSink } from './sync-conn';
export { SYNC_PERIOD, SYNC_THRESHOLD } from './sync-conn';

/** Seconds on a monotonic clock. */
export type Clock = () => number;

const monotonicSeconds: Clock = () => performance.now() / 1000;

/** Connections tracked at most unless lvsd --max-conns says otherwise. */
export const DEFAULT_MAX_CONNS = 1 << 22;

export interface EngineOptions {
  clock?: Clock;
  /** Upper bound of tracked connections (beyond it new connections are dropped, counted). */
  maxConns?: number;
  /** Batches handled per readiness callback before yielding to the event loop. */
  maxBatchesPerWakeup?: number;
  /** The director's stats block to count into (one engine of several: its shared slice). */
  stats?: Stats;
}

/** The FTP data port: with an FTP service, TCP to it or to an unprivileged port finds that service. */
const FTP_DATA_PORT = 20;

/** Count one packet of `bytes` in, or out, on a stats block. */
function count(s: Stats, out: boolean, bytes: number): void {
  if (out) {
    s.outPkts++;
    s.outBytes += bytes;
  } else {
    s.inPkts++;
    s.inBytes += bytes;
  }
}

export class Engine {
  readonly conns: ConnTable;
  readonly services = new ServiceTable();
  readonly dests = new DestRegistry();
  /** Handlers by IP protocol number. */
  readonly protos: (ProtoHandler | undefined)[] = new Array(256).fill(undefined);
  /** Timeouts (seconds) by IP protocol number and state. */
  readonly timeouts: number[][] = [];
  readonly stats: Stats;
  /** Drops by reason (index = verdict; index 0 unused). */
  readonly drops = new Float64Array(VERDICT_COUNT);
  /** Packets read, and the batches they came in. */
  rxPackets = 0;
  batches = 0;
  /**
   * One engine of several: asked about every datagram reassembled here, it hands the datagram to
   * the engine that holds its flow and answers true (fragments are steered by address alone, the
   * rest of a flow by address and port), or answers false: this engine decides it.
   */
  handoff: ((buf: Buffer, off: number, len: number) => boolean) | null = null;
  /** Reassembled datagrams handed to another engine, and taken from one. */
  readonly handed = { out: 0, in: 0 };
  /** Offload TUN: packets read with a partial checksum, and GSO packets among them. */
  readonly offload = { partial: 0, gso: 0 };
  /** Current time, whole seconds on the engine clock (refreshed once per batch). */
  now: number;
  /** The FTP helper, bound to NAT connections of services on its ports. */
  readonly ftp = new FtpHelper();
  // IPVS settings (the kernel's /proc/sys/net/ipv4/vs/*, set through src/ctl/sysctl.ts).
  /** conn_reuse_mode: bit 1 reschedules a SYN on a finished connection, bit 2 also on FIN_WAIT (DR/TUN). */
  connReuseMode = 1;
  /** expire_nodest_conn: a connection whose dest was deleted is expired and its packet rescheduled. */
  expireNodestConn = 0;
  /** expire_quiescent_template: a template whose dest has weight 0 is dropped (and rescheduled). */
  expireQuiescentTemplate = 0;
  /** sloppy_tcp: any TCP packet without RST may start a connection, not only a SYN. */
  sloppyTcp = 0;
  /** sloppy_sctp: kept for SCTP, which lvs-ts does not forward yet. */
  sloppySctp = 0;
  /** The defense strategies (drop_entry, drop_packet, secure_tcp; defense.ts). */
  readonly defense = new Defense();
  /** SYN cookies for NAT services under a SYN flood (syn-proxy.ts). */
  readonly proxy = new SynProxy(this);
  /** syn_proxy (lvs-ts's own): 0 never, 1 always, N >= 2 at N half-open connections (syn-proxy.ts). */
  get synProxy(): number {
    return this.proxy.mode;
  }

  set synProxy(mode: number) {
    this.proxy.mode = mode;
  }

  /** The master sync daemon's sink, or null when no master runs. */
  syncSink: SyncSink | null = null;
  /** Connections created and updated from sync messages (a backup's work, sync-apply.ts). */
  readonly synced = { created: 0, updated: 0, ignored: 0 };
  /** The kernel's limits on the ICMP errors the director originates (icmp-rate.ts), on the engine clock. */
  readonly icmpRate = new IcmpRateLimit(() => this.clock() * 1000);

  /** The packet being decided, and the batch's output. */
  private readonly x: PacketContext;
  private readonly tx: TxBatch;
  private readonly templates: PersistTemplates;
  private readonly icmp: IcmpRelay;
  /** The FTP helper's expected data connections. */
  readonly expect = new FtpExpectations(this);
  /** The FTP helper of IPv6 control connections (the same ports), and their expected data connections. */
  readonly ftp6 = new FtpHelper(this.ftp.ports);
  readonly expect6 = new FtpExpectations6(this);
  /** Connections made, moved between states, retired and ended (conn-life.ts). */
  readonly life: ConnLife;
  /** The IPv6 path, with its own connection table (path6.ts). */
  readonly v6: Path6;
  private readonly defrag: Defrag;
  private readonly clock: Clock;
  private readonly maxBatches: number;

  constructor(
    readonly io: PacketIo,
    opts: EngineOptions = {},
  ) {
    this.clock = opts.clock ?? monotonicSeconds;
    this.stats = opts.stats ?? newStats();
    this.maxBatches = opts.maxBatchesPerWakeup ?? 16;
    this.now = Math.floor(this.clock());
    this.conns = new ConnTable(this.now, 1024, undefined, opts.maxConns ?? DEFAULT_MAX_CONNS);
    const conns6 = new ConnTable(this.now, 1024, undefined, opts.maxConns ?? DEFAULT_MAX_CONNS, true);
    this.life = new ConnLife(this, this.conns, this.ftp, this.expect);
    this.tx = new TxBatch(io, this.drops);
    const slab = io.slab;
    this.x = new PacketContext(
      this.conns,
      conns6,
      this.tx,
      slab.vnetHdr,
      slab.maxPacket,
      tcp,
      newDest(newService(), 0, 0),
    );
    this.v6 = new Path6(this, this.x);
    this.templates = new PersistTemplates(this.conns, this.dests);
    this.icmp = new IcmpRelay(this.dests);
    this.defrag = new Defrag(this, this.x, this.tx);
    for (const h of [tcp, udp]) {
      this.protos[h.protocol] = h;
      this.timeouts[h.protocol] = [...h.defaultTimeouts];
    }
  }

  /** Fragments waiting for the rest of their datagram (defrag.ts). */
  get frags(): Reassembler {
    return this.defrag.frags;
  }

  /** Packets handed to the kernel. */
  get txPackets(): number {
    return this.tx.sent;
  }

  /** The director's smallest link MTU (lvsd keeps it current; xmit/common.ts says why). */
  get replyMtu(): number {
    return this.x.replyMtu;
  }

  set replyMtu(mtu: number) {
    this.x.replyMtu = mtu;
  }

  /** TUN mode may hand GSO packets to the kernel to segment (xmit/tunnel.ts, native/src/encap.c). */
  get ipipGso(): boolean {
    return this.x.ipipGso;
  }

  set ipipGso(on: boolean) {
    this.x.ipipGso = on;
  }

  /** Drain the input: read and process batches until it is empty (bounded per call). */
  poll(): void {
    const io = this.io;
    for (let b = 0; b < this.maxBatches; b++) {
      const n = io.recv();
      if (n === 0) return;
      this.processBatch(n);
    }
  }

  /** Process `n` received packets of the slab and send what they produce in one batch. */
  processBatch(n: number): void {
    const slab = this.io.slab;
    const drops = this.drops;
    const x = this.x;
    const tx = this.tx;
    this.now = Math.floor(this.clock());
    tx.begin();
    this.batches++;
    this.rxPackets += n;
    const marks = slab.rxMark;
    for (let i = 0; i < n; i++) {
      x.mark = marks[i];
      const v = this.process(slab.buf, slab.rxOffset(i), slab.rxLen[i]);
      if (v === TX) tx.queue(x.outOff, x.outLen, x.outDev);
      else if (v > 0) drops[v]++;
    }
    tx.flush();
  }

  /** A datagram another engine reassembled and handed over (handoff): decided as one batch of its own. */
  processHanded(bytes: Uint8Array): void {
    const slab = this.io.slab;
    if (bytes.length > 65535) return;
    this.now = Math.floor(this.clock());
    this.handed.in++;
    this.tx.begin();
    slab.buf.set(bytes, slab.bigOffset);
    this.x.mark = 0;
    const v = this.defrag.decideWhole(bytes.length);
    if (v > 0) this.drops[v]++;
    this.tx.flush();
  }

  /** Decide one packet. Returns TX (with the context's outOff/outLen/outDev set) or a drop reason. */
  process(buf: Buffer, off: number, len: number): number {
    if (len !== 0 && buf[off] >>> 4 === 6) return this.v6.process(buf, off, len);
    const x = this.x;
    const ip = x.ip;
    ip.reset(buf, off, len);
    const v = ip.checkLen();
    if (v !== V_OK) return v;
    if (x.vnetHdr !== 0 && !readVnetHdr(buf, off - VNET_HDR_LEN, ip, x, this.offload)) return D_BAD_OFFLOAD;
    if (ip.isFragment) return this.defrag.fragment(buf, off, len);
    const daddr = ip.dstAddr;
    const h = this.protos[ip.protocol];
    if (h === undefined) {
      if (ip.protocol !== IPPROTO_ICMP) return this.toOther(daddr);
      if (!this.services.isVip(daddr)) return this.icmp.fromRealServer(x);
      return this.icmp.toVip(x, !this.services.isRemoteVip(daddr));
    }
    const pkt = x.meta;
    const pv = h.parse(buf, ip.payloadOffset, ip.payloadLen, pkt);
    if (pv !== V_OK) return pv;
    const protocol = h.protocol;
    const saddr = ip.srcAddr;
    pkt.protocol = protocol;
    pkt.saddr = saddr;
    pkt.daddr = daddr;
    x.l4 = h;
    const conns = this.conns;

    let c = conns.lookupIn(protocol, saddr, pkt.sport, daddr, pkt.dport);
    if (c === NIL && this.expect.waitingForPort !== 0)
      c = this.expect.fillCport(protocol, saddr, pkt.sport, daddr, pkt.dport);
    if (c !== NIL) {
      if (!((this.expireNodestConn !== 0 || h.opensConn(pkt)) && this.life.retires(c, h, pkt)))
        return this.inHook(c, h);
      // Retire the old entry and schedule this packet afresh.
      this.life.retire(c);
    } else {
      c = conns.lookupOut(protocol, saddr, pkt.sport, daddr, pkt.dport);
      if (c !== NIL) return this.outHook(c, h);
    }

    // A marked packet finds its firewall-mark service first, as ip_vs_service_find does.
    const svc =
      (x.mark !== 0 ? this.services.findMark(x.mark) : undefined) ??
      this.services.find(protocol, daddr, pkt.dport) ??
      this.ftpDataService(protocol, daddr, pkt.dport);
    if (svc !== undefined) return this.schedule(svc, h);
    if (this.services.isRemoteVip(daddr) && protocol === IPPROTO_TCP) sendTcpReset(x);
    return this.toOther(daddr);
  }

  /**
   * A packet for no service and no connection: to a virtual address dropped, unless that is
   * also a local address (then the local stack's); anything else forwarded unchanged.
   */
  private toOther(daddr: number): number {
    const services = this.services;
    if (!services.isVip(daddr)) return bypass(this.x);
    return services.isRemoteVip(daddr) ? D_NO_SERVICE : bypassLocal(this.x);
  }

  /**
   * A packet to service `svc` that belongs to no connection (ip_vs_schedule): a new connection
   * when it may make one, to the dest of the client's persistence template or the scheduler's.
   */
  private schedule(svc: Service, h: ProtoHandler): number {
    const x = this.x;
    const pkt = x.meta;
    // Under a SYN flood a SYN to a NAT service is answered with a cookie, and the ACK that
    // brings a cookie back is scheduled as its SYN would have been (syn-proxy.ts).
    let cookieMss = 0;
    if (pkt.protocol === IPPROTO_TCP && this.proxy.mode !== 0) {
      const proxy = this.proxy;
      const f = pkt.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST);
      if (f === TCP_SYN && proxy.engaged(svc, x)) return proxy.answerSyn(x);
      if (f === TCP_ACK && proxy.cookiesLive(x) && proxy.eligible(svc)) cookieMss = proxy.checkAck(x);
    }
    if (cookieMss <= 0 && !h.canSchedule(pkt, pkt.protocol === IPPROTO_TCP && this.sloppyTcp !== 0)) {
      if (pkt.protocol === IPPROTO_TCP) sendTcpReset(x);
      return D_NO_CONN;
    }
    if (this.defense.dropNew()) return D_DEFENSE;
    const conns = this.conns;
    let t = NIL;
    let dest: Dest | null;
    if ((svc.flags & SVC_F_PERSISTENT) !== 0) {
      t = this.templates.find(svc, pkt, this.now, this.expireQuiescentTemplate !== 0);
      if (t < 0) return t === NIL ? this.noDest() : D_TABLE_FULL;
      dest = this.dests.get(conns.dest[t])!;
    } else {
      dest = svc.sched.schedule(svc, pkt, this.now);
      if (dest === null) return this.noDest();
    }
    const c = this.life.create(svc, dest, h, pkt);
    if (c === NIL) return D_TABLE_FULL;
    if (t !== NIL) {
      conns.control[c] = t;
      conns.nControl[t]++;
    }
    if (cookieMss > 0) return this.openProxied(c, dest, h, cookieMss);
    if ((svc.flags & SVC_F_ONEPACKET) !== 0 && pkt.protocol === IPPROTO_UDP) return this.onePacket(c, h);
    return this.inHook(c, h);
  }

  /**
   * ip_vs_service_find's FTP fallback: TCP to the data port or to an unprivileged port of an
   * address with an FTP service belongs to that service (the data connections of DR/TUN FTP,
   * made persistent by the service's port-0 templates).
   */
  private ftpDataService(protocol: number, daddr: number, dport: number): Service | undefined {
    if (this.services.ftpServices === 0 || protocol !== IPPROTO_TCP || (dport !== FTP_DATA_PORT && dport < 1024)) {
      return undefined;
    }
    return this.services.find(protocol, daddr, FTP_PORT);
  }

  /**
   * No dest for a new connection (ip_vs_leave): the client is told with ICMP port unreachable,
   * TCP or UDP alike, within icmp_send's rate limits (icmp-rate.ts).
   */
  private noDest(): number {
    const x = this.x;
    if (mayAnswer(x.ip) && this.icmpRate.allow(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, x.ip.srcAddr)) {
      sendIcmpError(x, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0);
    }
    return D_NO_DEST;
  }

  /**
   * One-packet scheduling (--ops, UDP only): the datagram is forwarded by a connection that is
   * gone again right after, so the next one is scheduled afresh (IPVS never hashes such a
   * connection; it is counted in the stats but never listed, and replies find none).
   */
  private onePacket(c: number, h: ProtoHandler): number {
    const v = this.inHook(c, h);
    this.life.remove(c);
    return v;
  }

  /**
   * Connection c, made for a client's cookie ACK (the current packet): half-open until its real
   * server answers the SYN the proxy sends it now.
   */
  private openProxied(c: number, dest: Dest, h: ProtoHandler, mss: number): number {
    const conns = this.conns;
    const x = this.x;
    x.dest = dest;
    this.countPacket(dest, false);
    this.life.setState(c, h, dest, TCP_S_SYN_RECV);
    conns.inPkts[c]++;
    return this.proxy.open(x, c, mss);
  }

  /** A client's packet of connection c. */
  private inHook(c: number, h: ProtoHandler): number {
    const conns = this.conns;
    const dest = this.dests.get(conns.dest[c]) ?? bindSyncedDest(this, conns, c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    const x = this.x;
    x.dest = dest;
    this.countPacket(dest, false);
    if ((conns.flags[c] & CONN_F_PROXY_WAIT) !== 0) return this.proxy.clientWhileWaiting(x, c);
    this.life.setState(c, h, dest, h.transition(conns, c, DIR_IN, x.meta, this.defense.secureTcpOn));
    const pkts = ++conns.inPkts[c];
    if (this.syncSink !== null) syncConn(this, conns, this.syncSink, c, pkts);
    if ((conns.flags[c] & CONN_F_APP) !== 0) this.ftp.in(x, c, this.expect);
    if ((conns.flags[c] & CONN_F_SEQ_MASK) !== 0) shiftSeqIn(x, c, this.ftp.seq);
    return TRANSMITTERS[conns.xmit[c]].in(x, c);
  }

  /** A real server's reply of connection c (only NAT connections have replies to handle). */
  private outHook(c: number, h: ProtoHandler): number {
    const conns = this.conns;
    const x = this.x;
    if (conns.xmit[c] !== FWD_MASQ) return bypass(x);
    const dest = this.dests.get(conns.dest[c]) ?? bindSyncedDest(this, conns, c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    x.dest = dest;
    this.countPacket(dest, true);
    if ((conns.flags[c] & CONN_F_PROXY_WAIT) !== 0) return this.proxy.serverWhileWaiting(x, c, dest);
    this.life.setState(c, h, dest, h.transition(conns, c, DIR_OUT, x.meta, this.defense.secureTcpOn));
    // The helper first: it records a resize by the sender's own sequence number.
    if ((conns.flags[c] & CONN_F_APP) !== 0) this.ftp.out(x, c, this.expect);
    if ((conns.flags[c] & CONN_F_SEQ_MASK) !== 0) shiftSeqOut(x, c, this.ftp.seq);
    return TRANSMITTERS[conns.xmit[c]].out(x, c);
  }

  /**
   * The current packet, in (client → service) or out (real server → client), on every counter it
   * moves; `bytes`: its length (the IPv4 one's unless told: path6.ts gives the IPv6 one's).
   */
  countPacket(dest: Dest, out: boolean, bytes = this.x.ip.totalLen): void {
    count(dest.stats, out, bytes);
    count(dest.svc.stats, out, bytes);
    count(this.stats, out, bytes);
  }

  /**
   * Decide a datagram reassembled into the slab's big slot (`len` bytes) as one packet (Defrag's
   * decideWhole; path6.ts's IPv6 datagrams too, which process() sends back there).
   */
  decideReassembled(len: number): number {
    return this.defrag.decideWhole(len);
  }

  /** Expire what is due; call once a second. Returns the number of connections expired. */
  tick(): number {
    this.now = Math.floor(this.clock());
    this.tx.begin();
    this.frags.expire(this.now);
    this.v6.expireFragments(this.now);
    this.tx.flush();
    if (this.defense.dropEntryOn) {
      this.defense.sweep(this.conns, this.now, this.life.remove);
      this.defense.sweep(this.v6.conns, this.now, this.v6.life.remove);
    }
    return this.conns.tick(this.now, this.life.expire) + this.v6.tick(this.now);
  }
}
