// Least connection (ip_vs_lc.c): the usable dest with the smallest overhead
// (activeConns * 256 + inactConns). Weights other than 0 do not matter; the first of equals wins.

import { type Dest, destOverhead, destUsable, type Scheduler, type Service } from '../ip-vs';

export const lc: Scheduler = {
  name: 'lc',

  schedule(svc: Service): Dest | null {
    let least: Dest | null = null;
    let loh = 0;
    const dests = svc.dests;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i];
      if (!destUsable(d)) continue;
      const doh = destOverhead(d);
      if (least === null || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
