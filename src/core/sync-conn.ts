// The engine's side of connection sync (ip_vs_sync.c): which connections a master offers its
// sync daemon as packets pass (ip_vs_sync_conn's conditions), and how a synced connection,
// which arrives naming only addresses, is bound to this director's dest (ip_vs_find_dest,
// ip_vs_bind_dest). Applying a received message is sync-apply.ts.

import { SEQ_IN, SEQ_OUT, type SeqAdjust } from '../app/seq-adjust';
import { type ConnTable, NIL } from '../conn/conn-table';
import {
  A6_DEST,
  A6_VIRTUAL,
  ADDR6_WORDS,
  AF_INET,
  AF_INET6,
  CONN_F_APP,
  CONN_F_FWD_MASK,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_PROXY_WAIT,
  CONN_F_SEQ_MASK,
  CONN_F_TEMPLATE,
  type Dest,
  destBind,
  FWD_MASQ,
  IPPROTO_IP,
  IPPROTO_TCP,
} from '../ip-vs';
import { TCP_S_CLOSE, TCP_S_CLOSE_WAIT, TCP_S_ESTABLISHED, TCP_S_FIN_WAIT, TCP_S_TIME_WAIT } from '../proto/tcp-states';
import { newSyncConn, type SyncConn } from '../wire/sync';
import type { Engine } from './engine';

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

/** Where a master sync daemon takes the connections to send (src/sync/daemon.ts). */
export interface SyncSink {
  /** Connection `e`, in a record reused for the next (encode it now, keep no reference). */
  add(e: SyncConn): void;
}

/** Four words at `w[off]` are the address `a` (an IPv6 dest's). */
function sameWords(a: Uint32Array | null, w: Uint32Array, off: number): boolean {
  return a !== null && a[0] === w[off] && a[1] === w[off + 1] && a[2] === w[off + 2] && a[3] === w[off + 3];
}

/** The record every offered connection is described in. */
const entry = newSyncConn();

/**
 * Describe connection c in `out` as a sync message carries it: its addresses, state, flags
 * without lvs-ts's own CONN_F_APP and CONN_F_PROXY_WAIT, the sequence fix-ups (FTP's, the SYN
 * proxy's) when it has them, and the firewall
 * mark (a mark service's template carries it as its address, its connections by their service).
 */
export function describeConn(e: Engine, t: ConnTable, c: number, out: SyncConn): SyncConn {
  const flags = t.flags[c] & ~(CONN_F_APP | CONN_F_PROXY_WAIT);
  // An IPv6 connection (of the wide table): its full addresses beside the folds.
  out.af = t.wide ? AF_INET6 : AF_INET;
  if (t.wide) out.addr6.set(t.addr6.subarray(c * ADDR6_WORDS, (c + 1) * ADDR6_WORDS));
  out.protocol = t.protocol[c];
  out.flags = flags;
  if ((flags & CONN_F_SEQ_MASK) !== 0) {
    const s = e.ftp.seq;
    copySeq(s, c * 2 + SEQ_IN, out.inSeq);
    copySeq(s, c * 2 + SEQ_OUT, out.outSeq);
  }
  out.state = t.state[c];
  out.caddr = t.caddr[c];
  out.cport = t.cport[c];
  out.vaddr = t.vaddr[c];
  out.vport = t.vport[c];
  out.daddr = t.daddr[c];
  out.dport = t.dport[c];
  out.fwmark = out.protocol === IPPROTO_IP ? out.vaddr : (e.dests.get(t.dest[c])?.svc.fwmark ?? 0);
  out.timeout = t.timeout[c];
  return out;
}

function copySeq(s: SeqAdjust, i: number, q: SyncConn['inSeq']): void {
  q.initSeq = s.initSeq[i] ?? 0;
  q.delta = (s.delta[i] ?? 0) >>> 0;
  q.previousDelta = (s.previousDelta[i] ?? 0) >>> 0;
}

/**
 * Offer connection c (whose client packet count is now `pkts`) and the template controlling
 * it to the master's sink, when ip_vs_sync_conn would send them: TCP in a state worth syncing,
 * at once when it changed into one other than ESTABLISHED, otherwise (and for UDP) on every
 * SYNC_PERIOD-th packet from the SYNC_THRESHOLD-th on; a template each time a connection it
 * controls is offered. One-packet connections are never sent.
 */
export function syncConn(e: Engine, conns: ConnTable, sink: SyncSink, c: number, pkts: number): void {
  for (;;) {
    if ((conns.flags[c] & CONN_F_ONE_PACKET) === 0 && syncNeeded(conns, c, pkts)) {
      sink.add(describeConn(e, conns, c, entry));
    }
    const t = conns.control[c];
    if (t === NIL) return;
    c = t;
    pkts = (conns.flags[c] & CONN_F_TEMPLATE) !== 0 ? ++conns.inPkts[c] : SYNC_THRESHOLD;
  }
}

function syncNeeded(conns: ConnTable, c: number, pkts: number): boolean {
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
 * Bind synced connection c to its dest, found as ip_vs_find_dest does: the service by
 * firewall mark or by <protocol, vaddr, vport> (a template of a mark service carries the mark
 * as its vaddr), then the dest by address and port (port 0 matching any). Undefined while
 * this director has no such service or dest (the connection forwards nothing until then).
 */
export function bindSyncedDest(e: Engine, conns: ConnTable, c: number, fwmark = 0): Dest | undefined {
  if (!conns.isLive(c) || conns.dest[c] !== NIL) return undefined;
  const protocol = conns.protocol[c];
  const v6 = conns.wide;
  const a = c * ADDR6_WORDS;
  const mark =
    fwmark !== 0 ? fwmark : protocol === IPPROTO_IP ? (v6 ? conns.addr6[a + A6_VIRTUAL] : conns.vaddr[c]) : 0;
  const services = e.services;
  const svc =
    mark !== 0
      ? services.findMark(mark, v6 ? AF_INET6 : AF_INET)
      : v6
        ? services.find6(protocol, conns.addr6, a + A6_VIRTUAL, conns.vport[c])
        : services.find(protocol, conns.vaddr[c], conns.vport[c]);
  if (svc === undefined) return undefined;
  const daddr = conns.daddr[c];
  const dport = conns.dport[c];
  let dest: Dest | undefined;
  for (const d of svc.dests) {
    if (
      d.addr === daddr &&
      (!v6 || sameWords(d.addr6, conns.addr6, a + A6_DEST)) &&
      (d.port === dport || dport === 0 || d.port === 0)
    ) {
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
    dest.fwd === FWD_MASQ && protocol === IPPROTO_TCP && (flags & CONN_F_TEMPLATE) === 0 && e.ftp.ports.has(svc.port)
      ? CONN_F_APP
      : 0;
  conns.flags[c] =
    (flags & ~(CONN_F_FWD_MASK | CONN_F_NOOUTPUT)) | dest.fwd | (dest.fwd !== FWD_MASQ ? CONN_F_NOOUTPUT : 0) | app;
  destBind(dest, flags);
  return dest;
}
