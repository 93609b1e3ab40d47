// Weighted least connection (ip_vs_wlc.c), the default scheduler: the usable dest with the
// smallest overhead / weight. The ratios are compared by cross-multiplication,
// loh * dest.weight > doh * least.weight, so no division happens. The products are exact JS
// numbers while they stay below 2^53: at the maximum weight 65535 that is over 2^29 active
// connections on one dest. Ties keep the earlier dest in list order.

import { type Dest, destOverhead, destUsable, type Scheduler, type Service } from '../ip-vs';

export const wlc: Scheduler = {
  name: 'wlc',

  schedule(svc: Service): Dest | null {
    const dests = svc.dests;
    const n = dests.length;
    let i = 0;
    while (i < n && !destUsable(dests[i])) i++;
    if (i === n) return null;

    let least = dests[i];
    let loh = destOverhead(least);
    for (i++; i < n; i++) {
      const d = dests[i];
      if (!destUsable(d)) continue;
      const doh = destOverhead(d);
      if (loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
