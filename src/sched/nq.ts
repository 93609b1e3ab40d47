// Never queue (ip_vs_nq.c): a two-speed variant of sed. Walking the list in order, the first usable
// dest with no active connection is returned at once, whatever its weight (an idle slow server
// beats a queue on a fast one). When no usable dest is idle, the choice is sed's: the smallest
// (activeConns + 1) / weight, by cross-multiplication, ties keeping the earlier dest. Inactive
// connections never count, so a dest holding only inactive connections is idle here.

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

export const nq: Scheduler = {
  name: 'nq',

  schedule(svc: Service): Dest | null {
    let least: Dest | null = null;
    let loh = 0;
    const dests = svc.dests;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i];
      if (!destUsable(d)) continue;
      if (d.activeConns === 0) return d;
      const doh = d.activeConns + 1;
      if (least === null || loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
