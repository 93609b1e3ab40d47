// rr and wrr across engines. Their state is a position in the service's dest list (and wrr's
// current weight); the kernel keeps one per service, which every CPU advances under the
// service's scheduler lock. Here each engine has its own copy of the state, moved by the same
// dest changes in the same order (table-image.ts); what they share is the last pick: which dest
// (by id) and at which current weight, behind a spin lock, all in an Int32Array on shared
// memory. Before each pick an engine takes over the last pick of another engine, so the rotation
// is one per service, as the kernel's; but not a pick made on a table older than the last change
// to this service's dests (stamped with the table image's version): the change reset the state,
// and an engine that had not seen it yet picked from the old one.

import type { Dest, PktInfo, Scheduler, Service } from '../ip-vs';

const LOCK = 0;
const SEQ = 1;
const LAST = 2;
const CW = 3;
const VERSION = 4;
/** Int32 slots of a service's shared cursor. */
export const CURSOR_INTS = 5;
/** Spins before a pick goes ahead without the lock (a thread that died holding it). */
const MAX_SPINS = 1 << 20;

/** The schedulers whose state is a list position: their engines share it. */
export function sharesCursor(name: string): boolean {
  return name === 'rr' || name === 'wrr';
}

interface CursorState {
  pos: number;
  cw?: number;
  mw?: number;
}

function lock(sh: Int32Array): boolean {
  for (let i = 0; i < MAX_SPINS; i++) if (Atomics.compareExchange(sh, LOCK, 0, 1) === 0) return true;
  return false;
}

/**
 * `inner` (rr or wrr) for one service of one engine, sharing its last pick through `sh`;
 * `version()` is the version of the table image the engine has applied.
 */
export function withSharedCursor(inner: Scheduler, sh: Int32Array, version: () => number): Scheduler {
  /** The sequence number of the last pick this engine knows of. */
  let seq = 0;
  /** The table version of the last change to the service's dests. */
  let changedAt = version();
  const changed =
    (hook: ((svc: Service, d: Dest) => void) | undefined) =>
    (svc: Service, d: Dest): void => {
      hook?.call(inner, svc, d);
      changedAt = version();
    };
  return {
    name: inner.name,
    initService(svc: Service): void {
      inner.initService?.(svc);
      changedAt = version();
    },
    doneService(svc: Service): void {
      inner.doneService?.(svc);
    },
    addDest: changed(inner.addDest),
    delDest: changed(inner.delDest),
    updDest: changed(inner.updDest),
    schedule(svc: Service, pkt: PktInfo, now: number): Dest | null {
      const locked = lock(sh);
      try {
        const s = svc.schedData as CursorState;
        const dests = svc.dests;
        if (Atomics.load(sh, SEQ) !== seq && Atomics.load(sh, VERSION) >= changedAt) {
          // Another engine picked since: continue from its pick.
          const last = Atomics.load(sh, LAST);
          const i = dests.findIndex((d) => d.id === last);
          if (i >= 0) s.pos = i;
          if (s.cw !== undefined) {
            const cw = Atomics.load(sh, CW);
            s.cw = cw > 0 && cw <= (s.mw ?? 0) ? cw : s.cw;
          }
        }
        const d = inner.schedule(svc, pkt, now);
        Atomics.store(sh, VERSION, version());
        Atomics.store(sh, LAST, s.pos >= 0 && s.pos < dests.length ? dests[s.pos]!.id : -1);
        if (s.cw !== undefined) Atomics.store(sh, CW, s.cw);
        seq = (Atomics.load(sh, SEQ) + 1) | 0;
        Atomics.store(sh, SEQ, seq);
        return d;
      } finally {
        if (locked) Atomics.store(sh, LOCK, 0);
      }
    },
  };
}
