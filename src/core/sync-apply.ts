// A backup applies what a master's sync message says of one connection (ip_vs_proc_conn): a
// connection it has not seen is created with CONN_F_SYNC and bound to the matching dest when
// this director has the service; one it has is updated (state, timeout, active/inactive). A
// connection whose copy here goes to another real server is replaced, unless the message is
// about the old, finished one. A message the backup cannot take (an unknown protocol or state)
// is counted and ignored. IPv6 entries go to the IPv6 table (path6.ts).

import { SEQ_IN, SEQ_OUT } from '../app/seq-adjust';
import { type ConnTable, NIL, newConnInit } from '../conn/conn-table';
import {
  A6_DEST,
  ADDR6_WORDS,
  AF_INET,
  AF_INET6,
  CONN_F_BACKUP_MASK,
  CONN_F_BACKUP_UPD_MASK,
  CONN_F_FWD_MASK,
  CONN_F_IN_SEQ,
  CONN_F_INACTIVE,
  CONN_F_OUT_SEQ,
  CONN_F_SYNC,
  CONN_F_TEMPLATE,
  destActivity,
} from '../ip-vs';
import type { SyncConn } from '../wire/sync';
import { D_TABLE_FULL } from '../xmit/verdict';
import type { Engine } from './engine';
import { bindSyncedDest, SYNC_THRESHOLD } from './sync-conn';

/** Template states a sync message may carry (IP_VS_CTPL_S_NONE, _ASSURED). */
const TEMPLATE_STATES = 2;
/** A template's timeout when the message gives none (the kernel's 3 minutes). */
const TEMPLATE_TIMEOUT = 3 * 60;

const init = newConnInit();

/** Connection c goes to the dest `s` names (an IPv6 one: all four words of its address). */
function sameDest(conns: ConnTable, c: number, s: SyncConn): boolean {
  if (conns.daddr[c] !== s.daddr) return false;
  if (!conns.wide) return true;
  const at = c * ADDR6_WORDS + A6_DEST;
  for (let i = 0; i < 4; i++) if (conns.addr6[at + i] !== s.addr6[A6_DEST + i]) return false;
  return true;
}

/** Apply sync entry `s` to `engine`'s connection table. */
export function applySyncConn(engine: Engine, s: SyncConn): void {
  // An IPv6 entry goes to the IPv6 table, keyed by its full addresses (s.addr6, the table's layout).
  const v6 = s.af === AF_INET6;
  if (!v6 && s.af !== AF_INET) {
    engine.synced.ignored++;
    return;
  }
  const conns = v6 ? engine.v6.conns : engine.conns;
  const a6 = s.addr6;
  let flags = (s.flags & CONN_F_BACKUP_MASK) | CONN_F_SYNC;
  const template = (flags & CONN_F_TEMPLATE) !== 0;
  const h = engine.protos[s.protocol];
  if (template ? s.state >= TEMPLATE_STATES : h === undefined || s.state >= h.stateNames.length) {
    engine.synced.ignored++;
    return;
  }
  let c: number;
  if (!template) {
    c = v6
      ? conns.lookupIn6(s.protocol, a6, s.cport, s.vport)
      : conns.lookupIn(s.protocol, s.caddr, s.cport, s.vaddr, s.vport);
    if (c !== NIL && (conns.dport[c] !== s.dport || !sameDest(conns, c, s))) {
      if ((flags & CONN_F_INACTIVE) !== 0) {
        engine.synced.ignored++;
        return;
      }
      (v6 ? engine.v6.life : engine.life).retire(c);
      c = NIL;
    }
  } else {
    c = v6
      ? conns.lookupTemplate6(s.protocol, a6, s.vport)
      : conns.lookupTemplate(s.protocol, s.caddr, s.vaddr, s.vport);
  }
  const timeout =
    s.timeout !== 0 ? s.timeout : template || h === undefined ? TEMPLATE_TIMEOUT : engine.timeouts[s.protocol][s.state];
  if (c !== NIL) {
    const old = conns.flags[c];
    const dest = engine.dests.get(conns.dest[c]);
    if (((old ^ flags) & CONN_F_INACTIVE) !== 0 && !template && dest !== undefined) {
      destActivity(dest, (flags & CONN_F_INACTIVE) !== 0);
    }
    flags = (flags & CONN_F_BACKUP_UPD_MASK) | (old & ~CONN_F_BACKUP_UPD_MASK);
    conns.flags[c] = flags;
    if (dest === undefined) bindSyncedDest(engine, conns, c);
    engine.synced.updated++;
  } else {
    init.protocol = s.protocol;
    init.caddr = s.caddr;
    init.cport = s.cport;
    init.vaddr = s.vaddr;
    init.vport = s.vport;
    init.daddr = s.daddr;
    init.dport = s.dport;
    init.dest = NIL;
    init.xmit = flags & CONN_F_FWD_MASK;
    init.flags = flags;
    init.state = s.state;
    init.timeout = timeout;
    c = v6 ? conns.insert6(init, a6, engine.now) : conns.insert(init, engine.now);
    if (c === NIL) {
      engine.drops[D_TABLE_FULL]++;
      return;
    }
    bindSyncedDest(engine, conns, c, s.fwmark);
    engine.synced.created++;
  }
  // Sequence fix-ups are the IPv4 FTP helper's (over IPv6 it rewrites nothing).
  if (s.hasSeq && !v6) {
    const seq = engine.ftp.seq;
    if ((flags & CONN_F_IN_SEQ) !== 0) seq.load(c, SEQ_IN, s.inSeq.initSeq, s.inSeq.delta, s.inSeq.previousDelta);
    if ((flags & CONN_F_OUT_SEQ) !== 0) seq.load(c, SEQ_OUT, s.outSeq.initSeq, s.outSeq.delta, s.outSeq.previousDelta);
  }
  conns.inPkts[c] = SYNC_THRESHOLD;
  conns.state[c] = s.state;
  conns.syncedState[c] = s.state;
  conns.timeout[c] = timeout;
  conns.touch(c, engine.now);
}
