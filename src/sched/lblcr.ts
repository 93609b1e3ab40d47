// Locality-based least connection with replication (ip_vs_lblcr.c). Like lblc, the key is the
// packet's destination IP, but each one maps to a *set* of dests that grows while its members are
// overloaded and shrinks again once it has stayed unchanged for a long time.
//
// Per packet, for a destination IP with an entry (its lastuse becomes now):
// 1. The set's least loaded member is found: the usable member (weight > 0, not flagged
//    DEST_F_OVERLOAD) with the smallest overhead / weight, ties to the member added last.
// 2. If the set has more than one member and has not changed for longer than the expiration
//    (now > lastmod + 24 h, strictly; the kernel's lblcr_expiration sysctl, DEFAULT_EXPIRATION),
//    its most loaded member is removed: the largest overhead / weight among members of weight > 0,
//    whatever their flags, ties to the member added last; lastmod becomes now. At most one member
//    goes per packet, so the next removal waits another 24 h. As in the kernel, the removed member
//    may be the one found in step 1, and it is still returned by step 3.
// 3. That member is returned unless there is none, or it is "overloaded" in the LBLC sense
//    (isOverloaded in lblc.ts: activeConns > weight while some dest of the service has
//    activeConns * 2 < weight).
// 4. Otherwise the WLC dest of the whole service is returned and added to the set (at its head)
//    unless already in it; only a real addition sets lastmod. No WLC dest: null.
// A destination IP without an entry gets the WLC dest and a new entry whose set holds just it.
//
// The table ages exactly as lblc's (LocalityTable in lblc.ts: a 60 s tick, a full check dropping
// entries idle >= 24 h every 30 ticks, and a trim of entries idle >= 6 min only when the table
// holds more than 16384). The trim walks buckets of the lblcr hash, hash_32(addr, 10).
//
// A deleted dest leaves every set at delDest (the kernel keeps it as a member and skips it as not
// AVAILABLE when choosing, but may still pick it as the one to remove), so a removed dest is never
// returned. Its removal does not touch lastmod; a set left empty gets the WLC dest on its next use.

import { type Dest, destOverhead, destUsable, type PktInfo, type Scheduler, type Service } from '../ip-vs';
import { type AgedEntry, DEFAULT_EXPIRATION, isOverloaded, LocalityTable, TAB_BITS } from './lblc';
import { wlc } from './wlc';

/** GOLDEN_RATIO_32 of include/linux/hash.h. */
const GOLDEN_RATIO_32 = 0x61c88647;

/** The lblcr table's bucket: hash_32(addr, TAB_BITS), the top bits of addr * GOLDEN_RATIO_32. */
export function lblcrBucket(addr: number): number {
  return Math.imul(addr, GOLDEN_RATIO_32) >>> (32 - TAB_BITS);
}

interface LblcrEntry extends AgedEntry {
  /** The replication set, most recently added member first. */
  set: Dest[];
  /** When the set last gained or lost a member (engine seconds). */
  lastmod: number;
}

function lblcrTable(svc: Service): LocalityTable<LblcrEntry> {
  return svc.schedData as LocalityTable<LblcrEntry>;
}

/** The usable member with the least overhead / weight (the earlier one on ties), or null. */
function setMin(set: Dest[]): Dest | null {
  let least: Dest | null = null;
  let loh = 0;
  for (let i = 0; i < set.length; i++) {
    const d = set[i];
    if (!destUsable(d)) continue;
    const doh = destOverhead(d);
    if (least === null || loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

/** The member of weight > 0 with the most overhead / weight (the earlier one on ties), or null. */
function setMax(set: Dest[]): Dest | null {
  let most: Dest | null = null;
  let moh = 0;
  for (let i = 0; i < set.length; i++) {
    const d = set[i];
    if (d.weight <= 0) continue;
    const doh = destOverhead(d);
    if (most === null || moh * d.weight < doh * most.weight) {
      most = d;
      moh = doh;
    }
  }
  return most;
}

/** The replication set of destination address `daddr` (empty when none). Does not age the table. */
export function lblcrServerSet(svc: Service, daddr: number): readonly Dest[] {
  return lblcrTable(svc).entries.get(daddr)?.set ?? [];
}

/** How many destination addresses the service's table holds. */
export function lblcrEntryCount(svc: Service): number {
  return lblcrTable(svc).size;
}

export const lblcr: Scheduler = {
  name: 'lblcr',

  initService(svc: Service): void {
    svc.schedData = new LocalityTable<LblcrEntry>(lblcrBucket);
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  /** Called while `dest` is still listed: take it out of every set. */
  delDest(svc: Service, dest: Dest): void {
    for (const e of lblcrTable(svc).entries.values()) {
      const i = e.set.indexOf(dest);
      if (i >= 0) e.set.splice(i, 1);
    }
  },

  schedule(svc: Service, pkt: PktInfo, now: number): Dest | null {
    const table = lblcrTable(svc);
    table.age(now);
    const en = table.entries.get(pkt.daddr);
    if (en === undefined) {
      const dest = wlc.schedule(svc, pkt, now);
      if (dest !== null) table.entries.set(pkt.daddr, { set: [dest], lastmod: now, lastuse: now });
      return dest;
    }

    en.lastuse = now;
    const set = en.set;
    const least = setMin(set);
    if (set.length > 1 && now > en.lastmod + DEFAULT_EXPIRATION) {
      const most = setMax(set);
      if (most !== null) {
        set.splice(set.indexOf(most), 1);
        en.lastmod = now;
      }
    }
    if (least !== null && !isOverloaded(least, svc)) return least;

    const dest = wlc.schedule(svc, pkt, now);
    if (dest === null) return null;
    if (!set.includes(dest)) {
      set.unshift(dest);
      en.lastmod = now;
    }
    return dest;
  },
};
