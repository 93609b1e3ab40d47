// Weighted overflow (ip_vs_ovf.c): the usable dest with the highest weight, among those whose active
// connections do not exceed their weight. The kernel skips a dest only when activeConns > weight,
// so a dest of weight w still takes a connection at exactly w active ones and overflows to the
// next weight once it holds w + 1. Inactive connections are not counted (the kernel notes the
// scheduler therefore suits TCP, not UDP). Among equal weights the earliest in list order wins.
// There is no fallback: when every usable dest is over its weight, no dest is returned.

import { type Dest, destUsable, type Scheduler, type Service } from '../ip-vs';

export const ovf: Scheduler = {
  name: 'ovf',

  schedule(svc: Service): Dest | null {
    let best: Dest | null = null;
    let bw = 0;
    const dests = svc.dests;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i];
      if (!destUsable(d) || d.activeConns > d.weight) continue;
      if (d.weight > bw) {
        best = d;
        bw = d.weight;
      }
    }
    return best;
  },
};
