// lblc and lblcr across engines. Their state is a table of destination addresses, each with the
// dest (lblc) or the set of dests (lblcr) its connections go to; the kernel keeps one per
// service, which every CPU reads and changes under the service's scheduler lock. Here each
// engine keeps its own copy (sched/lblc.ts, sched/lblcr.ts), and the copies are kept equal by a
// log of what each engine did to its copy, on shared memory behind a spin lock: before each
// pick an engine replays what the others logged since its last pick, picks, and logs what its
// pick changed (an entry pointed at a dest, a set member added or removed) or only that the entry
// was used (its idle clock restarts). So every engine sends a destination address where the
// others do, as one kernel table would.
//
// The log is a ring of LOCALITY_SLOTS records. An engine that fell further behind (idle while
// the others made more changes) replays the last LOCALITY_SLOTS only: an entry changed before
// that may still point elsewhere in its copy, until its next pick for that address re-points it
// and logs it (the kernel's table has no such window). A restarted engine replays the ring to
// start from the others' recent state. Dests are named by id (the same in every engine); a
// record about a dest this engine no longer has is skipped. Times are never shared: each
// engine's clock has its own origin, so a replayed change or use counts as now.

import type { Dest, PktInfo, Scheduler, Service } from '../ip-vs';
import type { LocalityTable } from '../sched/lblc';

const LOCK = 0;
const SEQ = 1;
const RING = 2;
/** Records in a service's log. */
export const LOCALITY_SLOTS = 4096;
const SLOT_INTS = 3;
/** Int32 slots of a service's shared locality log. */
export const LOCALITY_INTS = RING + LOCALITY_SLOTS * SLOT_INTS;
/** Spins before a pick goes ahead without the lock (a thread that died holding it). */
const MAX_SPINS = 1 << 20;

/** The entry was used: its idle clock restarts. */
const OP_USED = 1;
/** lblc: the entry points at the dest (made if missing). */
const OP_POINT = 2;
/** lblcr: the entry was made with the dest alone in its set. */
const OP_NEW = 3;
/** lblcr: the dest joined the entry's set (at its head). */
const OP_ADD = 4;
/** lblcr: the dest left the entry's set. */
const OP_DEL = 5;

/** The schedulers whose state is a table of destination addresses: their engines share it. */
export function sharesLocality(name: string): boolean {
  return name === 'lblc' || name === 'lblcr';
}

interface LblcEntry {
  dest: Dest;
  lastuse: number;
}

interface LblcrEntry {
  set: Dest[];
  lastmod: number;
  lastuse: number;
}

function lock(sh: Int32Array): boolean {
  for (let i = 0; i < MAX_SPINS; i++) if (Atomics.compareExchange(sh, LOCK, 0, 1) === 0) return true;
  return false;
}

function destById(svc: Service, id: number): Dest | undefined {
  const dests = svc.dests;
  for (let i = 0; i < dests.length; i++) if (dests[i]!.id === id) return dests[i];
  return undefined;
}

/**
 * Apply one logged record to this engine's table (lblc's or, with `isLblcr`, lblcr's): a use
 * restarts the entry's idle clock; a change about a dest this engine no longer has is skipped.
 */
function replay(svc: Service, isLblcr: boolean, op: number, daddr: number, id: number, now: number): void {
  const entries = (svc.schedData as LocalityTable<LblcEntry | LblcrEntry>).entries;
  const e = entries.get(daddr);
  if (op === OP_USED) {
    if (e !== undefined) e.lastuse = now;
    return;
  }
  const dest = destById(svc, id);
  if (dest === undefined) return;
  if (!isLblcr) {
    entries.set(daddr, { dest, lastuse: now });
    return;
  }
  if (op === OP_NEW || e === undefined) {
    if (op !== OP_DEL) entries.set(daddr, { set: [dest], lastmod: now, lastuse: now });
    return;
  }
  const r = e as LblcrEntry;
  const i = r.set.indexOf(dest);
  if (op === OP_ADD && i < 0) r.set.unshift(dest);
  else if (op === OP_DEL && i >= 0) r.set.splice(i, 1);
  r.lastmod = now;
  r.lastuse = now;
}

/** `inner` (lblc or lblcr) for one service of one engine, its table kept equal to the others' through `sh`. */
export function withSharedLocality(inner: Scheduler, sh: Int32Array): Scheduler {
  const isLblcr = inner.name === 'lblcr';
  /** The last record this engine has applied (a new engine starts from the ring's oldest). */
  let applied = Math.max(0, Atomics.load(sh, SEQ) - LOCALITY_SLOTS);
  /** An lblcr set as it was before the pick (reused). */
  const before: Dest[] = [];

  function log(op: number, daddr: number, id: number): void {
    const seq = (Atomics.load(sh, SEQ) + 1) | 0;
    const at = RING + (seq % LOCALITY_SLOTS) * SLOT_INTS;
    Atomics.store(sh, at, op);
    Atomics.store(sh, at + 1, daddr | 0);
    Atomics.store(sh, at + 2, id);
    Atomics.store(sh, SEQ, seq);
    applied = seq;
  }

  function catchUp(svc: Service, now: number): void {
    const seq = Atomics.load(sh, SEQ);
    if (seq === applied) return;
    let from = applied + 1;
    if (seq - from >= LOCALITY_SLOTS) from = seq - LOCALITY_SLOTS + 1;
    for (let s = from; s <= seq; s++) {
      const at = RING + (s % LOCALITY_SLOTS) * SLOT_INTS;
      replay(svc, isLblcr, Atomics.load(sh, at), Atomics.load(sh, at + 1) >>> 0, Atomics.load(sh, at + 2), now);
    }
    applied = seq;
  }

  /** Log what the pick did to lblc entry `daddr` (before: its dest, or null when it had none). */
  function logLblc(svc: Service, daddr: number, was: Dest | null): void {
    const e = (svc.schedData as LocalityTable<LblcEntry>).entries.get(daddr);
    if (e === undefined) return;
    if (e.dest !== was) log(OP_POINT, daddr, e.dest.id);
    else log(OP_USED, daddr, 0);
  }

  /** Log what the pick did to lblcr entry `daddr` (before: its set in `before`, or `had` false). */
  function logLblcr(svc: Service, daddr: number, had: boolean): void {
    const e = (svc.schedData as LocalityTable<LblcrEntry>).entries.get(daddr);
    if (e === undefined) return;
    const set = e.set;
    if (!had) {
      if (set.length > 0) log(OP_NEW, daddr, set[0]!.id);
      return;
    }
    let changed = false;
    for (let i = 0; i < before.length; i++) {
      if (!set.includes(before[i]!)) {
        log(OP_DEL, daddr, before[i]!.id);
        changed = true;
      }
    }
    for (let i = set.length - 1; i >= 0; i--) {
      if (!before.includes(set[i]!)) {
        log(OP_ADD, daddr, set[i]!.id);
        changed = true;
      }
    }
    if (!changed) log(OP_USED, daddr, 0);
  }

  return {
    name: inner.name,
    initService(svc: Service): void {
      inner.initService?.(svc);
    },
    doneService(svc: Service): void {
      inner.doneService?.(svc);
    },
    addDest: inner.addDest,
    delDest: inner.delDest,
    updDest: inner.updDest,
    schedule(svc: Service, pkt: PktInfo, now: number): Dest | null {
      const locked = lock(sh);
      try {
        catchUp(svc, now);
        const daddr = pkt.daddr;
        if (isLblcr) {
          const e = (svc.schedData as LocalityTable<LblcrEntry>).entries.get(daddr);
          before.length = 0;
          if (e !== undefined) for (let i = 0; i < e.set.length; i++) before.push(e.set[i]!);
          const d = inner.schedule(svc, pkt, now);
          logLblcr(svc, daddr, e !== undefined);
          return d;
        }
        const e = (svc.schedData as LocalityTable<LblcEntry>).entries.get(daddr);
        const was = e?.dest ?? null;
        const d = inner.schedule(svc, pkt, now);
        logLblc(svc, daddr, was);
        return d;
      } finally {
        if (locked) Atomics.store(sh, LOCK, 0);
      }
    },
  };
}
