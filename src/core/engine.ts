// The packet engine: one batch at a time from a PacketIo, each packet parsed once in place,
// routed to a hook, rewritten in place and queued; the batch's output leaves in one send.
//
// Which hook handles a packet (checked in this order):
//
//   | the packet                                      | hook              | result                        |
//   |-------------------------------------------------|-------------------|-------------------------------|
//   | malformed IPv4 / TCP / UDP header               | -                 | drop, counted by wire verdict |
//   | a fragment                                      | defragment        | held; the whole datagram is   |
//   |                                                 |                   | then decided as one packet    |
//   | matches a connection's client tuple             | inHook            | conn's transmitter, in        |
//   | matches a connection's real-server reply tuple  | outHook           | conn's transmitter, out       |
//   | to a service, may schedule (TCP SYN, any UDP)    | inHook (new conn) | scheduler → new conn → xmit   |
//   | to a service, may not schedule                   | -                 | drop no_conn                  |
//   | to a virtual IP, no service / other protocol    | -                 | drop no_service               |
//   | anything else                                   | bypass            | forwarded unchanged           |
//
// TCP that is dropped as no_conn or no_service is answered with a reset (tcp-reset.ts), as the
// local stack of a kernel director, which owns the virtual address, would answer it.
//
// With TUN offloads each packet's virtio_net_hdr is read first (partial checksum, GSO size) and
// an unusable one drops the packet as bad_offload; the transmitters act on it (xmit/common.ts).

import { FtpHelper, type FtpHost } from '../app/ftp-helper';
import { SEQ_IN, SEQ_OUT } from '../app/seq-adjust';
import { ConnTable, NIL } from '../conn/conn-table';
import {
  CONN_F_APP,
  CONN_F_BACKUP_MASK,
  CONN_F_BACKUP_UPD_MASK,
  CONN_F_FWD_MASK,
  CONN_F_IN_SEQ,
  CONN_F_INACTIVE,
  CONN_F_NO_CPORT,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_OUT_SEQ,
  CONN_F_SYNC,
  CONN_F_TEMPLATE,
  DEST_F_AVAILABLE,
  type Dest,
  destActivity,
  destBind,
  destUnbind,
  FWD_MASQ,
  IPPROTO_ICMP,
  IPPROTO_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  newDest,
  newService,
  newStats,
  type Service,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../ip-vs';
import type { PacketIo } from '../native/packet-io';
import { DIR_IN, DIR_OUT, type PacketMeta, type ProtoHandler } from '../proto/proto';
import { tcp } from '../proto/tcp';
import {
  TCP_S_CLOSE,
  TCP_S_CLOSE_WAIT,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_LISTEN,
  TCP_S_TIME_WAIT,
} from '../proto/tcp-states';
import { udp } from '../proto/udp';
import { checksum, update32 } from '../wire/checksum';
import {
  ICMP,
  ICMP_DEST_UNREACH,
  ICMP_EXC_FRAGTIME,
  ICMP_PORT_UNREACH,
  ICMP_QUOTED_L4_LEN,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
} from '../wire/icmp';
import { IPV4, Ipv4View } from '../wire/ipv4';
import { FRAG_COMPLETE, FRAG_HELD, Reassembler } from '../wire/reassembly';
import type { SyncConn } from '../wire/sync';
import { TCP } from '../wire/tcp';
import { UDP } from '../wire/udp';
import { V_BAD_CHECKSUM, V_OK } from '../wire/verdict';
import { VNET, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_HDR_LEN } from '../wire/vnet';
import { bypass } from '../xmit/bypass';
import type { XmitContext } from '../xmit/common';
import { completeChecksum, sendRouted } from '../xmit/common';
import { answerEcho } from '../xmit/icmp-echo';
import { mayAnswer, sendIcmpError } from '../xmit/icmp-error';
import { TRANSMITTERS } from '../xmit/index';
import { sendTcpReset } from '../xmit/tcp-reset';
import {
  D_BAD_OFFLOAD,
  D_DEFENSE,
  D_DEST_UNAVAILABLE,
  D_FRAG_BAD,
  D_FRAG_DUPLICATE,
  D_FRAG_NO_MEMORY,
  D_FRAG_OVERLAP,
  D_FRAG_TOO_BIG,
  D_NO_CONN,
  D_NO_DEST,
  D_NO_SERVICE,
  D_TABLE_FULL,
  D_TX_FAILED,
  TX,
  TX_HELD,
  TX_QUEUED,
  VERDICT_COUNT,
} from '../xmit/verdict';
import { Defense } from './defense';
import { IcmpRateLimit } from './icmp-rate';
import { DestRegistry, FTP_PORT, ServiceTable } from './services';

/** Seconds on a monotonic clock. */
export type Clock = () => number;

/** persistTemplate's "table full" result (NIL means "no dest"). */
const TABLE_FULL = -2;
/**
 * The kernel's sync_threshold default "3 50": a connection is synced when its client packet
 * count modulo SYNC_PERIOD equals SYNC_THRESHOLD (and on TCP state changes).
 */
export const SYNC_THRESHOLD = 3;
export const SYNC_PERIOD = 50;
/** TCP states worth syncing (ip_vs_sync_conn_needed); a change into one but ESTABLISHED syncs at once. */
const TCP_SYNC_STATES =
  (1 << TCP_S_ESTABLISHED) |
  (1 << TCP_S_FIN_WAIT) |
  (1 << TCP_S_CLOSE) |
  (1 << TCP_S_CLOSE_WAIT) |
  (1 << TCP_S_TIME_WAIT);
/** Template states a sync message may carry (IP_VS_CTPL_S_NONE, _ASSURED). */
const TEMPLATE_STATES = 2;

/** Drop reason by reassembly outcome (FRAG_DUPLICATE.. in wire/reassembly.ts). */
const FRAG_DROPS: readonly number[] = [
  0,
  0,
  D_FRAG_DUPLICATE,
  D_FRAG_OVERLAP,
  D_FRAG_TOO_BIG,
  D_FRAG_BAD,
  D_FRAG_NO_MEMORY,
];

/** Where a master sync daemon takes the connections to send (src/ctl/sync-daemon.ts). */
export interface SyncSink {
  add(c: number): void;
}

const monotonicSeconds: Clock = () => performance.now() / 1000;

/** Connections tracked at most unless lvsd --max-conns says otherwise. */
export const DEFAULT_MAX_CONNS = 1 << 22;

export interface EngineOptions {
  clock?: Clock;
  /** Upper bound of tracked connections (beyond it new connections are dropped, counted). */
  maxConns?: number;
  /** Batches handled per readiness callback before yielding to the event loop. */
  maxBatchesPerWakeup?: number;
}

/** The FTP data port: with an FTP service, TCP to it or to an unprivileged port finds that service. */
const FTP_DATA_PORT = 20;

export class Engine implements XmitContext, FtpHost {
  readonly ip = new Ipv4View();
  readonly conns: ConnTable;
  readonly services = new ServiceTable();
  readonly dests = new DestRegistry();
  /** Handlers by IP protocol number. */
  readonly protos: (ProtoHandler | undefined)[] = new Array(256).fill(undefined);
  /** Timeouts (seconds) by IP protocol number and state. */
  readonly timeouts: number[][] = [];
  readonly stats = newStats();
  /** Drops by reason (index = verdict; index 0 unused). */
  readonly drops = new Float64Array(VERDICT_COUNT);
  /** Packets handed to the kernel; packets read, and the batches they came in. */
  txPackets = 0;
  rxPackets = 0;
  batches = 0;
  /** Offload TUN: packets read with a partial checksum, and GSO packets among them. */
  readonly offload = { partial: 0, gso: 0 };
  /** Current time, whole seconds on the engine clock (refreshed once per batch). */
  now: number;

  l4: ProtoHandler = tcp;
  /** Placeholder until the first connection's dest is set (never transmitted to). */
  dest: Dest;
  outOff = 0;
  outLen = 0;
  outDev = 0;
  readonly vnetHdr: number;
  /** Firewall mark of the current packet (that of the device it was read from; 0: none). */
  mark = 0;
  /** Fragments waiting for the rest of their datagram (bounded: wire/reassembly.ts defaults). */
  readonly frags = new Reassembler({ onExpire: (buf, off, len) => this.fragmentsTimedOut(buf, off, len) });
  /** The current packet was reassembled (it sits in the slab's big slot). */
  reassembled = false;
  /** The director's smallest link MTU (lvsd keeps it current; xmit/common.ts says why). */
  replyMtu = 0xffff;
  /** The big slot holds a packet queued in this batch. */
  private bigQueued = false;
  /** The FTP helper, bound to NAT connections of services on its ports. */
  readonly ftp = new FtpHelper();
  /** Connections waiting for their client port (FTP passive data connections). */
  private noCportConns = 0;

  gsoSize = 0;
  csumStart = 0;
  csumOffset = 0;
  // IPVS settings (the kernel's /proc/sys/net/ipv4/vs/*, set through src/ctl/sysctl.ts).
  /** conn_reuse_mode: bit 1 reschedules a SYN on a finished connection, bit 2 also on FIN_WAIT (DR/TUN). */
  connReuseMode = 1;
  /** expire_nodest_conn: a connection whose dest was deleted is expired and its packet rescheduled. */
  expireNodestConn = 0;
  /** expire_quiescent_template: a template whose dest has weight 0 is dropped (and rescheduled). */
  expireQuiescentTemplate = 0;
  /** The defense strategies (drop_entry, drop_packet, secure_tcp; defense.ts). */
  readonly defense = new Defense();
  /** The master sync daemon's sink, or null when no master runs. */
  syncSink: SyncSink | null = null;
  /** Connections created and updated from sync messages (a backup's work). */
  readonly synced = { created: 0, updated: 0, ignored: 0 };
  /** The kernel's limits on the ICMP errors the director originates (icmp-rate.ts), on the engine clock. */
  readonly icmpRate = new IcmpRateLimit(() => this.clock() * 1000);
  /** Outputs queued in the current batch, and generated-packet slots used. */
  private tx = 0;
  private gen = 0;
  private ipId = 0;

  private readonly pkt: PacketMeta = { protocol: 0, saddr: 0, daddr: 0, sport: 0, dport: 0, tcpFlags: 0 };
  private readonly clock: Clock;
  private readonly maxBatches: number;

  constructor(
    readonly io: PacketIo,
    opts: EngineOptions = {},
  ) {
    this.clock = opts.clock ?? monotonicSeconds;
    this.maxBatches = opts.maxBatchesPerWakeup ?? 16;
    this.vnetHdr = io.slab.vnetHdr;
    this.now = Math.floor(this.clock());
    this.conns = new ConnTable(this.now, 1024, undefined, opts.maxConns ?? DEFAULT_MAX_CONNS);
    this.ipId = (Math.random() * 0x10000) >>> 0;
    this.dest = newDest(newService(), 0, 0);
    for (const h of [tcp, udp]) {
      this.protos[h.protocol] = h;
      this.timeouts[h.protocol] = [...h.defaultTimeouts];
    }
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
    this.now = Math.floor(this.clock());
    this.tx = 0;
    this.gen = 0;
    this.batches++;
    this.rxPackets += n;
    const marks = slab.rxMark;
    for (let i = 0; i < n; i++) {
      this.mark = marks[i];
      const v = this.process(slab.buf, slab.rxOffset(i), slab.rxLen[i]);
      if (v === TX) this.queue(this.outOff, this.outLen, this.outDev);
      else if (v > 0) drops[v]++;
    }
    this.flush();
  }

  /** Send what the batch queued. */
  private flush(): void {
    const tx = this.tx;
    this.bigQueued = false;
    if (tx === 0) return;
    this.tx = 0;
    const sent = this.io.send(tx);
    this.txPackets += sent;
    if (sent < tx) this.drops[D_TX_FAILED] += tx - sent;
  }

  queue(off: number, len: number, dev: number): boolean {
    const slab = this.io.slab;
    const tx = this.tx;
    if (tx === slab.txOff.length) return false;
    slab.txOff[tx] = off;
    slab.txLen[tx] = len;
    slab.txDev[tx] = dev;
    this.tx = tx + 1;
    return true;
  }

  genSlot(): number {
    const slab = this.io.slab;
    if (this.gen === slab.genSlots) {
      // Every gen slot in use is queued (the XmitContext contract): send them, start over.
      this.flush();
      this.gen = 0;
    }
    return slab.genOffset(this.gen++);
  }

  get slotCapacity(): number {
    return this.io.slab.genCapacity;
  }

  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  /** Decide one packet. Returns TX (with outOff/outLen/outDev set) or a drop reason. */
  process(buf: Buffer, off: number, len: number): number {
    const ip = this.ip;
    ip.reset(buf, off, len);
    const v = ip.checkLen();
    if (v !== V_OK) return v;
    if (this.vnetHdr !== 0) {
      const ov = this.readVnetHdr(buf, off - VNET_HDR_LEN);
      if (ov !== V_OK) return ov;
    }
    if (ip.isFragment) return this.defragment(buf, off, len);
    const daddr = ip.dstAddr;
    const h = this.protos[ip.protocol];
    if (h === undefined) {
      if (this.services.isVip(daddr)) return ip.protocol === IPPROTO_ICMP ? this.icmpToVip() : D_NO_SERVICE;
      if (ip.protocol === IPPROTO_ICMP) return this.icmpFromRealServer();
      return bypass(this);
    }
    const pkt = this.pkt;
    const pv = h.parse(ip, pkt);
    if (pv !== V_OK) return pv;
    const protocol = h.protocol;
    const saddr = ip.srcAddr;
    pkt.protocol = protocol;
    pkt.saddr = saddr;
    pkt.daddr = daddr;
    this.l4 = h;
    const conns = this.conns;

    let c = conns.lookupIn(protocol, saddr, pkt.sport, daddr, pkt.dport);
    if (c === NIL && this.noCportConns !== 0) c = this.fillCport(protocol, saddr, pkt.sport, daddr, pkt.dport);
    if (c !== NIL) {
      if (!((this.expireNodestConn !== 0 || h.opensConn(pkt)) && this.retires(c, h))) return this.inHook(c, h);
      // Retire the old entry and schedule this packet afresh.
      this.retire(c);
    } else {
      c = conns.lookupOut(protocol, saddr, pkt.sport, daddr, pkt.dport);
      if (c !== NIL) return this.outHook(c, h);
    }

    // A marked packet finds its firewall-mark service first, as ip_vs_service_find does.
    const mark = this.mark;
    const svc =
      (mark !== 0 ? this.services.findMark(mark) : undefined) ??
      this.services.find(protocol, daddr, pkt.dport) ??
      this.ftpDataService(protocol, daddr, pkt.dport);
    if (svc !== undefined) {
      if (!h.canSchedule(pkt)) {
        if (protocol === IPPROTO_TCP) sendTcpReset(this);
        return D_NO_CONN;
      }
      if (this.defense.dropNew()) return D_DEFENSE;
      let t = NIL;
      let dest: Dest | null;
      if ((svc.flags & SVC_F_PERSISTENT) !== 0) {
        t = this.persistTemplate(svc);
        if (t < 0) return t === NIL ? this.noDest() : D_TABLE_FULL;
        dest = this.dests.get(conns.dest[t])!;
      } else {
        dest = svc.sched.schedule(svc, pkt, this.now);
        if (dest === null) return this.noDest();
      }
      c = this.newConn(svc, dest, h);
      if (c === NIL) return D_TABLE_FULL;
      if (t !== NIL) {
        conns.control[c] = t;
        conns.nControl[t]++;
      }
      if ((svc.flags & SVC_F_ONEPACKET) !== 0 && protocol === IPPROTO_UDP) return this.onePacket(c, h);
      return this.inHook(c, h);
    }
    if (this.services.isVip(daddr)) {
      if (protocol === IPPROTO_TCP) sendTcpReset(this);
      return D_NO_SERVICE;
    }
    return bypass(this);
  }

  /**
   * A fragment (IPVS sees only whole datagrams: the kernel director reassembles before it). Kept
   * until its datagram is complete; the datagram is then copied into the slab's big slot and
   * decided as any packet, so all its fragments go the same way. Going out it is fragmented
   * again where it exceeds the MTU (xmit/common.ts).
   */
  private defragment(buf: Buffer, off: number, len: number): number {
    const r = this.frags;
    const status = r.add(buf, off, len, this.now);
    if (status === FRAG_HELD) return TX_HELD;
    if (status !== FRAG_COMPLETE) return FRAG_DROPS[status]!;
    const slab = this.io.slab;
    // The big slot may still be queued from this batch: send that first.
    if (this.bigQueued) this.flush();
    const big = slab.bigOffset;
    const n = r.copyComplete(slab.buf, big);
    if (this.vnetHdr !== 0) slab.buf.fill(0, big - VNET_HDR_LEN, big);
    this.reassembled = true;
    const v = this.process(slab.buf, big, n);
    this.reassembled = false;
    if (v === TX) {
      // Queued here, so the big slot's use is known to flush() before it is reused.
      this.queue(this.outOff, this.outLen, this.outDev);
      this.bigQueued = true;
      return TX_HELD;
    }
    if (v === TX_QUEUED) this.bigQueued = true;
    return v;
  }

  /**
   * A connection expected without a client port (FTP passive data) for this packet's tuple: its
   * client port is filled in now (ip_vs_conn_fill_cport), or NIL.
   */
  private fillCport(protocol: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    const conns = this.conns;
    const c = conns.lookupIn(protocol, caddr, 0, vaddr, vport);
    if (c === NIL || (conns.flags[c] & CONN_F_NO_CPORT) === 0) return NIL;
    conns.setCport(c, cport);
    conns.flags[c] &= ~CONN_F_NO_CPORT;
    this.noCportConns--;
    return c;
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

  // FtpHost: what the FTP helper needs of the engine.
  completeChecksum(): void {
    completeChecksum(this);
  }

  packetRoom(): number {
    return this.reassembled ? 0xffff : Math.min(0xffff, this.io.slab.maxPacket);
  }

  /**
   * An FTP data connection the helper expects (ip_vs_conn_new + ip_vs_control_add): NAT to
   * control connection c's dest, controlled by c, waiting in LISTEN; cport 0 for "any".
   */
  expectConn(c: number, caddr: number, cport: number, vport: number, daddr: number, dport: number): void {
    const conns = this.conns;
    const vaddr = conns.vaddr[c];
    const dest = this.dests.get(conns.dest[c]);
    if (dest === undefined || conns.lookupIn(IPPROTO_TCP, caddr, cport, vaddr, vport) !== NIL) return;
    const n = conns.insert(
      IPPROTO_TCP,
      caddr,
      cport,
      vaddr,
      vport,
      daddr,
      dport,
      dest.id,
      FWD_MASQ,
      FWD_MASQ | CONN_F_INACTIVE | (cport === 0 ? CONN_F_NO_CPORT : 0),
      TCP_S_LISTEN,
      this.timeouts[IPPROTO_TCP][TCP_S_LISTEN],
      this.now,
    );
    if (n === NIL) {
      this.drops[D_TABLE_FULL]++;
      return;
    }
    destBind(dest, CONN_F_INACTIVE);
    conns.control[n] = c;
    conns.nControl[c]++;
    if (cport === 0) this.noCportConns++;
  }

  /**
   * Take the offload state of the current packet from its virtio_net_hdr at buf[h]: a partial
   * checksum must be TCP's or UDP's own field (or lie inside the packet for other protocols), a
   * GSO packet must be TCPv4 with a partial checksum and not a fragment.
   */
  private readVnetHdr(buf: Buffer, h: number): number {
    const ip = this.ip;
    this.gsoSize = 0;
    this.csumStart = 0;
    if ((buf[h + VNET.FLAGS]! & VNET_F_NEEDS_CSUM) !== 0) {
      const start = buf.readUInt16LE(h + VNET.CSUM_START);
      const offset = buf.readUInt16LE(h + VNET.CSUM_OFFSET);
      const p = ip.protocol;
      // A partial checksum cannot be finished on a fragment (it covers the whole datagram).
      if (ip.isFragment) return D_BAD_OFFLOAD;
      if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
        if (start !== ip.headerLen || offset !== (p === IPPROTO_TCP ? TCP.CHECKSUM : UDP.CHECKSUM))
          return D_BAD_OFFLOAD;
      } else if (start < ip.headerLen || (p === IPPROTO_ICMP && (start !== ip.headerLen || offset !== ICMP.CHECKSUM))) {
        return D_BAD_OFFLOAD;
      }
      if (start + offset + 2 > ip.totalLen) return D_BAD_OFFLOAD;
      this.offload.partial++;
      if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) {
        // Nothing rewrites these through a partial sum (ICMP errors are relayed with whole
        // checksums): finish it now, as the device would have.
        const at = ip.off + start;
        buf.writeUInt16BE(checksum(buf, at, ip.totalLen - start), at + offset);
      } else {
        this.csumStart = start;
        this.csumOffset = offset;
      }
    }
    const gsoType = buf[h + VNET.GSO_TYPE]!;
    if (gsoType !== VNET_GSO_NONE) {
      const size = buf.readUInt16LE(h + VNET.GSO_SIZE);
      if (
        gsoType !== VNET_GSO_TCPV4 ||
        this.csumStart === 0 ||
        size === 0 ||
        ip.protocol !== IPPROTO_TCP ||
        ip.isFragment
      ) {
        return D_BAD_OFFLOAD;
      }
      this.gsoSize = size;
      this.offload.gso++;
    }
    return V_OK;
  }

  /**
   * Is the current ICMP message an error IPVS relays (dest unreachable, source quench, time
   * exceeded) quoting enough of a TCP/UDP packet? Sets quotedAt (the quoted IPv4 header) and
   * quotedL4 (its L4 header) when it is.
   */
  private quotedFlow(): boolean {
    const ip = this.ip;
    const buf = ip.buf;
    const icmp = ip.payloadOffset;
    const len = ip.payloadLen;
    const type = buf[icmp]!;
    if (
      len < ICMP.HEADER + IPV4.MIN_HEADER + ICMP_QUOTED_L4_LEN ||
      (type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED)
    ) {
      return false;
    }
    const inner = icmp + ICMP.HEADER;
    const ihl = (buf[inner]! & 0x0f) << 2;
    const protocol = buf[inner + IPV4.PROTOCOL]!;
    if (buf[inner]! >> 4 !== 4 || ihl < IPV4.MIN_HEADER || len < ICMP.HEADER + ihl + ICMP_QUOTED_L4_LEN) return false;
    if (protocol !== IPPROTO_TCP && protocol !== IPPROTO_UDP) return false;
    this.quotedAt = inner;
    this.quotedL4 = inner + ihl;
    return true;
  }

  private quotedAt = 0;
  private quotedL4 = 0;

  /** Rewrite the quoted packet's address at `at` and port at `portAt`, then the ICMP checksum. */
  private rewriteQuoted(at: number, addr: number, portAt: number, port: number): void {
    const buf = this.ip.buf;
    const inner = this.quotedAt;
    const old = buf.readUInt32BE(at);
    buf.writeUInt32BE(addr >>> 0, at);
    buf.writeUInt16BE(update32(buf.readUInt16BE(inner + IPV4.CHECKSUM), old, addr), inner + IPV4.CHECKSUM);
    buf.writeUInt16BE(port, portAt);
    const icmp = this.ip.payloadOffset;
    buf.writeUInt16BE(0, icmp + ICMP.CHECKSUM);
    buf.writeUInt16BE(checksum(buf, icmp, this.ip.payloadLen), icmp + ICMP.CHECKSUM);
    // The checksum is whole now, whatever the offload header said.
    this.csumStart = 0;
  }

  /**
   * ICMP to a virtual address (ip_vs_in_icmp): an echo request is answered; an error about a
   * packet a real server sent to a client through us goes on to that real server, through the
   * connection's method (NAT: to the real server's address, quoting its own packet).
   */
  private icmpToVip(): number {
    if (!this.quotedFlow()) return answerEcho(this);
    const buf = this.ip.buf;
    const inner = this.quotedAt;
    const l4 = this.quotedL4;
    const protocol = buf[inner + IPV4.PROTOCOL]!;
    const vaddr = buf.readUInt32BE(inner + IPV4.SRC);
    const client = buf.readUInt32BE(inner + IPV4.DST);
    const conns = this.conns;
    const c = conns.lookupIn(protocol, client, buf.readUInt16BE(l4 + 2), vaddr, buf.readUInt16BE(l4));
    if (c === NIL) return D_NO_CONN;
    const dest = this.dests.get(conns.dest[c]);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    this.dest = dest;
    if (conns.xmit[c] !== FWD_MASQ) return TRANSMITTERS[conns.xmit[c]]!.in(this, c);
    const rip = conns.daddr[c];
    this.rewriteQuoted(inner + IPV4.SRC, rip, l4, conns.dport[c]);
    this.ip.setDstAddrWithChecksumUpdate(rip);
    return sendRouted(this, true);
  }

  /**
   * An ICMP error about a packet of one of our NAT connections, from the real server itself or
   * from a router between us and it (ip_vs_out_icmp): the quoted packet went from the client to
   * the real server, so to the client the error must come from the virtual address and quote
   * the packet it sent to the virtual service, or its TCP could not match it (a router's
   * "fragmentation needed" would be lost: a PMTU black hole). Rewritten here (outer source,
   * quoted destination address and port, both IP header checksums, the ICMP checksum; the
   * quoted L4 checksum is left alone, as IPVS leaves it); one with a bad ICMP checksum is
   * dropped, as the kernel drops it; anything else passes.
   */
  private icmpFromRealServer(): number {
    if (!this.quotedFlow()) return bypass(this);
    const ip = this.ip;
    const buf = ip.buf;
    const inner = this.quotedAt;
    const l4 = this.quotedL4;
    const protocol = buf[inner + IPV4.PROTOCOL]!;
    const client = buf.readUInt32BE(inner + IPV4.SRC);
    const rip = buf.readUInt32BE(inner + IPV4.DST);
    const conns = this.conns;
    const c = conns.lookupOut(protocol, rip, buf.readUInt16BE(l4 + 2), client, buf.readUInt16BE(l4));
    if (c === NIL || conns.xmit[c] !== FWD_MASQ) return bypass(this);
    if (this.csumStart === 0 && checksum(buf, ip.payloadOffset, ip.payloadLen) !== 0) return V_BAD_CHECKSUM;
    const vaddr = conns.vaddr[c];
    this.rewriteQuoted(inner + IPV4.DST, vaddr, l4 + 2, conns.vport[c]);
    ip.setSrcAddrWithChecksumUpdate(vaddr);
    return sendRouted(this, true);
  }

  /**
   * No dest for a new connection (ip_vs_leave): the client is told with ICMP port unreachable,
   * TCP or UDP alike, within icmp_send's rate limits (icmp-rate.ts).
   */
  private noDest(): number {
    if (mayAnswer(this.ip) && this.icmpRate.allow(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, this.ip.srcAddr)) {
      sendIcmpError(this, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0);
    }
    return D_NO_DEST;
  }

  /**
   * A datagram to a virtual address timed out incomplete (its first fragment at buf[off]): its
   * sender gets ICMP time exceeded, "fragment reassembly time exceeded", as from a director that
   * owns the address (ip_expire). Queued here; tick() sends it.
   */
  private fragmentsTimedOut(buf: Buffer, off: number, len: number): void {
    if (len < IPV4.MIN_HEADER || !this.services.isVip(buf.readUInt32BE(off + IPV4.DST))) return;
    const slab = this.io.slab;
    const big = slab.bigOffset;
    buf.copy(slab.buf, big, off, off + len);
    const ip = this.ip;
    ip.reset(slab.buf, big, len);
    if (ip.checkLen() !== V_OK || !mayAnswer(ip)) return;
    if (this.icmpRate.allow(ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, ip.srcAddr)) {
      sendIcmpError(this, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, 0);
    }
  }

  /**
   * Does the current packet retire its connection c and get scheduled anew (ip_vs_in)? With
   * conn_reuse_mode, a new connection's SYN on a finished connection not controlled by a
   * template, whatever its dest (even deleted); with expire_nodest_conn, a SYN when c's dest has
   * weight 0, and any packet when the dest is gone. The reuse check comes first, as in ip_vs_in:
   * a client reusing a port of a connection whose real server was deleted starts afresh.
   */
  private retires(c: number, h: ProtoHandler): boolean {
    const conns = this.conns;
    const dest = this.dests.get(conns.dest[c]);
    const mode = this.connReuseMode;
    if (mode !== 0 && h.opensConn(this.pkt)) {
      if (this.expireNodestConn !== 0 && dest !== undefined && dest.weight === 0) return true;
      if (conns.control[c] === NIL && h.reusesConn(conns.state[c], conns.flags[c], mode)) return true;
    }
    return this.expireNodestConn !== 0 && (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0);
  }

  /**
   * The persistence template for the current packet's client (ip_vs_sched_persist): found and
   * still valid, its timer restarts; otherwise a dest is scheduled and a new template made for
   * it. Keys, as IPVS: <protocol, client & netmask, 0, vaddr, vport> with vport 0 for an
   * "any port" service and for FTP (port 21, so the data connections stick too), and
   * <IPPROTO_IP, client & netmask, 0, fwmark, 0> for a firewall-mark service. Returns the
   * template, NIL when no dest is available, or TABLE_FULL.
   */
  private persistTemplate(svc: Service): number {
    const pkt = this.pkt;
    const conns = this.conns;
    const caddr = (pkt.saddr & svc.netmask) >>> 0;
    const byMark = svc.fwmark !== 0;
    const protocol = byMark ? IPPROTO_IP : pkt.protocol;
    const vaddr = byMark ? svc.fwmark : pkt.daddr;
    const anyPort = byMark || svc.port === 0 || svc.port === FTP_PORT;
    const vport = anyPort ? 0 : pkt.dport;
    let t = conns.lookupTemplate(protocol, caddr, vaddr, vport);
    if (t !== NIL) {
      const dest = this.dests.get(conns.dest[t]);
      // ip_vs_check_template: a deleted dest, or a quiescent one when expire_quiescent_template
      // is set, invalidates the template (it lives on for the connections it still controls).
      if (
        dest !== undefined &&
        (dest.flags & DEST_F_AVAILABLE) !== 0 &&
        !(this.expireQuiescentTemplate !== 0 && dest.weight === 0)
      ) {
        conns.touch(t, this.now);
        return t;
      }
      conns.invalidateTemplate(t);
    }
    const dest = svc.sched.schedule(svc, pkt, this.now);
    if (dest === null) return NIL;
    t = conns.insert(
      protocol,
      caddr,
      0,
      vaddr,
      vport,
      dest.addr,
      anyPort ? 0 : dest.port,
      dest.id,
      dest.fwd,
      CONN_F_TEMPLATE | dest.fwd,
      0,
      svc.timeout,
      this.now,
    );
    if (t === NIL) return TABLE_FULL;
    destBind(dest, CONN_F_TEMPLATE);
    return t;
  }

  /**
   * One-packet scheduling (--ops, UDP only): the datagram is forwarded by a connection that is
   * gone again right after, so the next one is scheduled afresh (IPVS never hashes such a
   * connection; it is counted in the stats but never listed, and replies find none).
   */
  private onePacket(c: number, h: ProtoHandler): number {
    const v = this.inHook(c, h);
    this.removeConn(c);
    return v;
  }

  /** A client's packet of connection c. */
  private inHook(c: number, h: ProtoHandler): number {
    const conns = this.conns;
    const dest = this.dests.get(conns.dest[c]) ?? this.bindSyncedDest(c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    this.dest = dest;
    const bytes = this.ip.totalLen;
    const ds = dest.stats;
    ds.inPkts++;
    ds.inBytes += bytes;
    const ss = dest.svc.stats;
    ss.inPkts++;
    ss.inBytes += bytes;
    const gs = this.stats;
    gs.inPkts++;
    gs.inBytes += bytes;
    this.setState(c, h, dest, h.transition(conns, c, DIR_IN, this.pkt, this.defense.secureTcpOn));
    const pkts = ++conns.inPkts[c];
    if (this.syncSink !== null) this.syncConn(c, pkts);
    if ((conns.flags[c] & CONN_F_APP) !== 0) this.ftp.in(this, c);
    return TRANSMITTERS[conns.xmit[c]].in(this, c);
  }

  /** A real server's reply of connection c (only NAT connections have replies to handle). */
  private outHook(c: number, h: ProtoHandler): number {
    const conns = this.conns;
    if (conns.xmit[c] !== FWD_MASQ) return bypass(this);
    const dest = this.dests.get(conns.dest[c]) ?? this.bindSyncedDest(c);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return D_DEST_UNAVAILABLE;
    this.dest = dest;
    const bytes = this.ip.totalLen;
    const ds = dest.stats;
    ds.outPkts++;
    ds.outBytes += bytes;
    const ss = dest.svc.stats;
    ss.outPkts++;
    ss.outBytes += bytes;
    const gs = this.stats;
    gs.outPkts++;
    gs.outBytes += bytes;
    this.setState(c, h, dest, h.transition(conns, c, DIR_OUT, this.pkt, this.defense.secureTcpOn));
    if ((conns.flags[c] & CONN_F_APP) !== 0) this.ftp.out(this, c);
    return TRANSMITTERS[conns.xmit[c]].out(this, c);
  }

  /**
   * Move connection c to `state`, keeping the dest's ActiveConn/InActConn as IPVS counts them
   * (active only in the protocol's active state), and restart its timer with the new timeout.
   */
  private setState(c: number, h: ProtoHandler, dest: Dest, state: number): void {
    const conns = this.conns;
    if (state !== conns.state[c]) {
      const inactive = (conns.flags[c] & CONN_F_INACTIVE) !== 0;
      if (!inactive && state !== h.activeState) {
        destActivity(dest, true);
        conns.flags[c] |= CONN_F_INACTIVE;
      } else if (inactive && state === h.activeState) {
        destActivity(dest, false);
        conns.flags[c] &= ~CONN_F_INACTIVE;
      }
      conns.state[c] = state;
      conns.timeout[c] = this.timeouts[h.protocol][state];
    }
    conns.touch(c, this.now);
  }

  /**
   * Offer connection c (whose client packet count is now `pkts`) and the template controlling
   * it to the master sync daemon, when ip_vs_sync_conn would send them: TCP in a state worth
   * syncing, at once when it changed into one other than ESTABLISHED, otherwise (and for UDP)
   * on every SYNC_PERIOD-th packet from the SYNC_THRESHOLD-th on; a template each time a
   * connection it controls is offered. One-packet connections are never sent.
   */
  private syncConn(c: number, pkts: number): void {
    const conns = this.conns;
    const sink = this.syncSink!;
    for (;;) {
      if ((conns.flags[c] & CONN_F_ONE_PACKET) === 0 && this.syncNeeded(c, pkts)) sink.add(c);
      const t = conns.control[c];
      if (t === NIL) return;
      c = t;
      pkts = (conns.flags[c] & CONN_F_TEMPLATE) !== 0 ? ++conns.inPkts[c] : SYNC_THRESHOLD;
    }
  }

  private syncNeeded(c: number, pkts: number): boolean {
    const conns = this.conns;
    const state = conns.state[c];
    if ((conns.flags[c] & CONN_F_TEMPLATE) === 0) {
      if (conns.protocol[c] === IPPROTO_TCP) {
        if (((1 << state) & TCP_SYNC_STATES) === 0) return false;
        if (state !== conns.syncedState[c] && state !== TCP_S_ESTABLISHED) {
          conns.syncedState[c] = state;
          return true;
        }
      }
      if (pkts % SYNC_PERIOD !== SYNC_THRESHOLD) return false;
    }
    conns.syncedState[c] = state;
    return true;
  }

  /**
   * A connection from a backup's sync message (ip_vs_proc_conn): created with CONN_F_SYNC,
   * bound to the matching dest when this director has the service, or updated (state, timeout,
   * active/inactive) when it exists. A connection whose copy here goes to another real server
   * is replaced, unless the message is about the old, finished one.
   */
  syncedConn(e: SyncConn): void {
    const conns = this.conns;
    let flags = (e.flags & CONN_F_BACKUP_MASK) | CONN_F_SYNC;
    const template = (flags & CONN_F_TEMPLATE) !== 0;
    const h = this.protos[e.protocol];
    if (template ? e.state >= TEMPLATE_STATES : h === undefined || e.state >= h.stateNames.length) {
      this.synced.ignored++;
      return;
    }
    let c: number;
    if (!template) {
      c = conns.lookupIn(e.protocol, e.caddr, e.cport, e.vaddr, e.vport);
      if (c !== NIL && (conns.daddr[c] !== e.daddr || conns.dport[c] !== e.dport)) {
        if ((flags & CONN_F_INACTIVE) !== 0) {
          this.synced.ignored++;
          return;
        }
        this.retire(c);
        c = NIL;
      }
    } else {
      c = conns.lookupTemplate(e.protocol, e.caddr, e.vaddr, e.vport);
    }
    const timeout =
      e.timeout !== 0 ? e.timeout : template || h === undefined ? 3 * 60 : this.timeouts[e.protocol][e.state];
    if (c !== NIL) {
      const old = conns.flags[c];
      const dest = this.dests.get(conns.dest[c]);
      if (((old ^ flags) & CONN_F_INACTIVE) !== 0 && !template && dest !== undefined) {
        destActivity(dest, (flags & CONN_F_INACTIVE) !== 0);
      }
      flags = (flags & CONN_F_BACKUP_UPD_MASK) | (old & ~CONN_F_BACKUP_UPD_MASK);
      conns.flags[c] = flags;
      if (dest === undefined) this.bindSyncedDest(c);
      this.synced.updated++;
    } else {
      c = conns.insert(
        e.protocol,
        e.caddr,
        e.cport,
        e.vaddr,
        e.vport,
        e.daddr,
        e.dport,
        NIL,
        flags & CONN_F_FWD_MASK,
        flags,
        e.state,
        timeout,
        this.now,
      );
      if (c === NIL) {
        this.drops[D_TABLE_FULL]++;
        return;
      }
      this.bindSyncedDest(c, e.fwmark);
      this.synced.created++;
    }
    if (e.hasSeq) {
      if ((flags & CONN_F_IN_SEQ) !== 0)
        this.ftp.seq.load(c, SEQ_IN, e.inSeq.initSeq, e.inSeq.delta, e.inSeq.previousDelta);
      if ((flags & CONN_F_OUT_SEQ) !== 0)
        this.ftp.seq.load(c, SEQ_OUT, e.outSeq.initSeq, e.outSeq.delta, e.outSeq.previousDelta);
    }
    conns.inPkts[c] = SYNC_THRESHOLD;
    conns.state[c] = e.state;
    conns.syncedState[c] = e.state;
    conns.timeout[c] = timeout;
    conns.touch(c, this.now);
  }

  /**
   * Bind synced connection c to its dest, found as ip_vs_find_dest does: the service by
   * firewall mark or by <protocol, vaddr, vport> (a template of a mark service carries the mark
   * as its vaddr), then the dest by address and port (port 0 matching any). Undefined while
   * this director has no such service or dest.
   */
  private bindSyncedDest(c: number, fwmark = 0): Dest | undefined {
    const conns = this.conns;
    if (!conns.isLive(c) || conns.dest[c] !== NIL) return undefined;
    const protocol = conns.protocol[c];
    const mark = fwmark !== 0 ? fwmark : protocol === IPPROTO_IP ? conns.vaddr[c] : 0;
    const svc =
      mark !== 0 ? this.services.findMark(mark) : this.services.find(protocol, conns.vaddr[c], conns.vport[c]);
    if (svc === undefined) return undefined;
    const daddr = conns.daddr[c];
    const dport = conns.dport[c];
    let dest: Dest | undefined;
    for (const d of svc.dests) {
      if (d.addr === daddr && (d.port === dport || dport === 0 || d.port === 0)) {
        dest = d;
        if (d.port === dport) break;
      }
    }
    if (dest === undefined) return undefined;
    const flags = conns.flags[c];
    conns.dest[c] = dest.id;
    // A synced connection takes its method from the dest here, as ip_vs_bind_dest does.
    conns.xmit[c] = dest.fwd;
    const app =
      dest.fwd === FWD_MASQ &&
      protocol === IPPROTO_TCP &&
      (flags & CONN_F_TEMPLATE) === 0 &&
      this.ftp.ports.has(svc.port)
        ? CONN_F_APP
        : 0;
    conns.flags[c] =
      (flags & ~(CONN_F_FWD_MASK | CONN_F_NOOUTPUT)) | dest.fwd | (dest.fwd !== FWD_MASQ ? CONN_F_NOOUTPUT : 0) | app;
    destBind(dest, flags);
    return dest;
  }

  private newConn(svc: Service, dest: Dest, h: ProtoHandler): number {
    const pkt = this.pkt;
    // The FTP helper binds to NAT TCP connections of a service on one of its ports.
    const app = dest.fwd === FWD_MASQ && pkt.protocol === IPPROTO_TCP && this.ftp.ports.has(svc.port) ? CONN_F_APP : 0;
    const flags = dest.fwd | CONN_F_INACTIVE | (dest.fwd !== FWD_MASQ ? CONN_F_NOOUTPUT : 0) | app;
    // The dest's port stands for the service port; another port (an FTP data connection found
    // through the FTP service, a port-0 service) is kept.
    const dport = dest.port !== 0 && (pkt.dport === svc.port || svc.port === 0) ? dest.port : pkt.dport;
    const state = h.initialState;
    const c = this.conns.insert(
      pkt.protocol,
      pkt.saddr,
      pkt.sport,
      pkt.daddr,
      pkt.dport,
      dest.addr,
      dport,
      dest.id,
      dest.fwd,
      flags,
      state,
      this.timeouts[h.protocol][state],
      this.now,
    );
    if (c === NIL) return NIL;
    if (app !== 0) this.ftp.reset(c);
    destBind(dest, flags);
    dest.stats.conns++;
    svc.stats.conns++;
    this.stats.conns++;
    return c;
  }

  /**
   * End connection c now (ip_vs_conn_expire_now), so a new one may take its tuple: out of the
   * table at once, unless it controls others (an FTP control connection with expected data
   * connections), which it must outlive: then it only times out now, is kept while it controls,
   * and the new connection, hashed in front of it, is the one lookups find.
   */
  private retire(c: number): void {
    if (this.conns.nControl[c] === 0) this.removeConn(c);
    else this.conns.expires[c] = this.now;
  }

  /** Take connection c out of the table and off its dest's counters. */
  private removeConn(c: number): void {
    this.connGone(c);
    this.conns.unlink(c);
  }

  private connGone(c: number): void {
    const conns = this.conns;
    const t = conns.control[c];
    if (t !== NIL) conns.nControl[t]--;
    if ((conns.flags[c] & CONN_F_NO_CPORT) !== 0) this.noCportConns--;
    const dest = this.dests.get(conns.dest[c]);
    if (dest === undefined) return;
    destUnbind(dest, conns.flags[c]);
    this.dests.connGone(dest);
  }

  private readonly onExpire = (c: number): boolean => {
    const conns = this.conns;
    // A connection outlives its timeout while it still controls others (expire_later): a
    // template its connections, an FTP control connection its data connections.
    if (conns.nControl[c] !== 0) {
      conns.touch(c, this.now);
      return false;
    }
    this.connGone(c);
    return true;
  };

  private readonly removeDropped = (c: number): void => this.removeConn(c);

  /** Expire what is due; call once a second. Returns the number of connections expired. */
  tick(): number {
    this.now = Math.floor(this.clock());
    this.gen = 0;
    this.frags.expire(this.now);
    this.flush();
    if (this.defense.dropEntryOn) this.defense.sweep(this.conns, this.now, this.removeDropped);
    return this.conns.tick(this.now, this.onExpire);
  }
}
