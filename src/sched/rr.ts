// Round robin (ip_vs_rr.c). The scheduler remembers the dest it picked last; the next pick is the
// first usable dest after it in list order, wrapping past the end. Before the first pick the
// position is the list head, so the rotation starts at dests[0] (the most recently added dest).
//
// The kernel keeps a pointer to a list node; we keep its index in `svc.dests` and move the index
// when the control plane inserts or removes a dest in front of it (see addDest/delDest).

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

/** Position of the rotation: the index of the last dest picked, or HEAD before any pick. */
interface RrState {
  pos: number;
}

const HEAD = -1;

function rrState(svc: Service): RrState {
  return svc.schedData as RrState;
}

export const rr: Scheduler = {
  name: 'rr',

  initService(svc: Service): void {
    const s: RrState = { pos: HEAD };
    svc.schedData = s;
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  /** Called after `dest` was inserted: if it went in at or before the remembered dest, shift. */
  addDest(svc: Service, dest: Dest): void {
    const s = rrState(svc);
    const i = svc.dests.indexOf(dest);
    if (i >= 0 && i <= s.pos) s.pos++;
  },

  /**
   * Called while `dest` is still in the list. A dest before the remembered one shifts it down by
   * one; removing the remembered dest itself moves the position to its predecessor (HEAD when it
   * was dests[0]), so the rotation resumes with the dest that followed it.
   */
  delDest(svc: Service, dest: Dest): void {
    const s = rrState(svc);
    const i = svc.dests.indexOf(dest);
    if (i >= 0 && i <= s.pos) s.pos--;
  },

  schedule(svc: Service): Dest | null {
    const s = rrState(svc);
    const dests = svc.dests;
    const n = dests.length;
    // A position past the end can only mean the list shrank without delDest: restart at the head.
    const last = s.pos < n ? s.pos : HEAD;
    // n candidates: the dests after `last`, then from the head up to and including `last` itself.
    for (let k = 1; k <= n; k++) {
      let i = last + k;
      if (i >= n) i -= n;
      const d = dests[i];
      if (destUsable(d)) {
        s.pos = i;
        return d;
      }
    }
    return null;
  },
};
