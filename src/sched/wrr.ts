// Weighted round robin (ip_vs_wrr.c), the classic LVS gcd/max-weight interleaving.
//
//   di = gcd of the positive weights (1 when there are none)
//   mw = max weight - (di - 1)
//   cw = the weight a dest needs to be picked in the current pass
//
// The walk goes down the list from the remembered position and picks the first usable dest with
// weight >= cw. Each time it runs off the end of the list, cw drops by di; once it is 0 or less it
// starts again at mw. Because mw is one more than a multiple of di, every cycle of cw ends with
// a pass at cw = 1, which every usable dest passes. Weights 4,3,2 (in list order) give
// A A B A B C A B C; weights 3,1 give A A A B.
//
// initService starts at cw = mw. Any dest change (add, delete, weight/threshold update) recomputes
// di and mw, moves the position back to the list head, and keeps cw in range: cw > mw or cw == 0
// restarts at mw; otherwise, with di > 1, cw is rounded up to the form k * di + 1 so the cycle
// still ends at cw = 1. A service built dest by dest therefore starts wherever the
// additions left cw: adding weights 2, then 3, then 4 leaves cw = 1 (a lone weight 2 gives gcd 2,
// mw 1), so one pass A B C comes before the first A A B A B C A B C.

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

interface WrrState {
  /** Index in svc.dests of the last dest picked, or HEAD. */
  pos: number;
  /** Current weight. */
  cw: number;
  /** Max weight - (di - 1); 0 when every weight is 0. */
  mw: number;
  /** Decreasing interval: gcd of the weights > 0. */
  di: number;
}

const HEAD = -1;

function wrrState(svc: Service): WrrState {
  return svc.schedData as WrrState;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * Sets di and mw from the weights of the dests other than `leaving` (delDest runs while the dest
 * is still in the list; the kernel recomputes after unlinking it) and moves the position to the
 * list head.
 */
function recompute(svc: Service, s: WrrState, leaving: Dest | null): void {
  let g = 0;
  let max = 0;
  for (const d of svc.dests) {
    if (d === leaving) continue;
    const w = d.weight;
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > max) max = w;
  }
  s.di = g > 0 ? g : 1;
  s.mw = max - (s.di - 1);
  s.pos = HEAD;
}

function destChanged(svc: Service, leaving: Dest | null): void {
  const s = wrrState(svc);
  recompute(svc, s, leaving);
  if (s.cw > s.mw || s.cw === 0) s.cw = s.mw;
  else if (s.di > 1) s.cw = Math.floor(s.cw / s.di) * s.di + 1;
}

export const wrr: Scheduler = {
  name: 'wrr',

  initService(svc: Service): void {
    const s: WrrState = { pos: HEAD, cw: 0, mw: 0, di: 1 };
    recompute(svc, s, null);
    s.cw = s.mw;
    svc.schedData = s;
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    destChanged(svc, null);
  },

  delDest(svc: Service, dest: Dest): void {
    destChanged(svc, dest);
  },

  updDest(svc: Service): void {
    destChanged(svc, null);
  },

  schedule(svc: Service): Dest | null {
    const s = wrrState(svc);
    const dests = svc.dests;
    const n = dests.length;
    if (s.mw <= 0 || n === 0) return null;

    // Without a usable dest the walk below would only cycle cw: answer that case up front.
    let anyUsable = false;
    for (let i = 0; i < n; i++) {
      if (destUsable(dests[i])) {
        anyUsable = true;
        break;
      }
    }
    if (!anyUsable) return null;

    let pos = s.pos < n ? s.pos : HEAD;
    let cw = s.cw;
    // One full cycle of cw (mw/di passes) plus a pass at each end reaches every usable dest; the
    // bound only guards against weights edited without updDest (it is never hit otherwise).
    const maxSteps = n * (Math.floor(s.mw / s.di) + 2);
    for (let step = 0; step < maxSteps; step++) {
      pos++;
      if (pos >= n) {
        pos = 0;
        cw -= s.di;
        if (cw <= 0) cw = s.mw;
      }
      const d = dests[pos];
      if (destUsable(d) && d.weight >= cw) {
        s.pos = pos;
        s.cw = cw;
        return d;
      }
    }
    s.pos = pos;
    s.cw = cw;
    return null;
  },
};
