// Shortest expected delay (ip_vs_sed.c): the usable dest with the smallest (activeConns + 1) / weight.
// The + 1 counts the connection being scheduled, so the cost is the delay it would see if it joined
// that dest's queue. Unlike wlc, inactive connections do not count at all, and idle dests do not
// all tie at 0: among idle dests the heaviest wins. The ratios are compared by cross-multiplication,
// loh * dest.weight > doh * least.weight, as in wlc.ts; at weight 65535 the products stay exact
// below 2^53 up to 2^37 active connections. Ties keep the earlier dest in list order.

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

export const sed: Scheduler = {
  name: 'sed',

  schedule(svc: Service): Dest | null {
    const dests = svc.dests;
    const n = dests.length;
    let i = 0;
    while (i < n && !destUsable(dests[i])) i++;
    if (i === n) return null;

    let least = dests[i];
    let loh = least.activeConns + 1;
    for (i++; i < n; i++) {
      const d = dests[i];
      if (!destUsable(d)) continue;
      const doh = d.activeConns + 1;
      if (loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
