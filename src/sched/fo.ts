// Weighted failover (ip_vs_fo.c): every new connection goes to the usable dest with the highest
// weight; connection counts play no part. The walk replaces its pick only on a strictly higher
// weight, so among equal top weights the earliest in list order (the most recently added) wins.
// When that dest is removed, quiesced (weight 0) or overloaded, the next highest takes over, and
// it hands back as soon as the first is usable again.

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

export const fo: Scheduler = {
  name: 'fo',

  schedule(svc: Service): Dest | null {
    let best: Dest | null = null;
    let bw = 0;
    const dests = svc.dests;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i];
      if (!destUsable(d)) continue;
      if (d.weight > bw) {
        best = d;
        bw = d.weight;
      }
    }
    return best;
  },
};
