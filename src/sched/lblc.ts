// Locality-based least connection (ip_vs_lblc.c), for cache clusters: a packet's destination IP
// (not its source) is remembered together with the dest it was sent to, so later connections to
// the same destination IP land on the same server while it copes.
//
// Per packet:
// - If the destination IP has an entry, its idle clock restarts (lastuse = now), and its dest is
//   kept when it is usable (weight > 0, not flagged DEST_F_OVERLOAD) and not "overloaded" in the
//   LBLC sense (see isOverloaded: activeConns > weight while some dest of the service has
//   activeConns * 2 < weight).
// - Otherwise the WLC dest is picked (the same walk as ip_vs_wlc.c, so wlc.schedule is reused) and
//   the entry is created or re-pointed at it. With no WLC dest the answer is null and an existing
//   entry is left as it was.
//
// Ageing. The kernel runs a timer every CHECK_EXPIRE_INTERVAL (60 s) from service creation; here
// the ticks are anchored at the first schedule() call and run lazily, each at its own tick time,
// before the lookup of the first packet that comes after them. A tick does one of three things:
// - every COUNT_FOR_FULL_EXPIRATION-th tick (a counter starting at 1, so ticks 30, 60, ...: about
//   every 30 min) is a full check, dropping every entry idle for at least the expiration
//   (DEFAULT_EXPIRATION, 24 h; the kernel's lblc_expiration sysctl);
// - while the table holds at most MAX_ENTRIES (1024 buckets * 16 = 16384) entries, nothing else:
//   the 6-minute ENTRY_TIMEOUT does NOT apply to a table of that size;
// - above that, a trim: goal = min((entries - MAX_ENTRIES) * 4/3, MAX_ENTRIES / 2); hash buckets
//   are walked from the one after `rover`, every entry idle for at least ENTRY_TIMEOUT (6 min) in a
//   walked bucket is dropped, and the walk stops after the bucket that met the goal (or after all
//   1024); rover is left on the last bucket walked. Such a tick does not advance the counter, so
//   full checks wait while the table stays over the limit.
// Entries live in a Map keyed by the uint32 address; the kernel's bucket of an address is computed
// only to reproduce which entries a trim reaches first.
//
// Differences from the kernel, both about dests that stop being schedulable:
// - A deleted dest: the kernel keeps the entry (with a reference) and rejects its dest as not
//   AVAILABLE, and reuses it if the same dest is re-added from the trash. Here delDest drops the
//   entries pointing at it, so a removed dest is never returned (a re-added dest is a new object).
// - The kernel keeps a cached dest that carries DEST_F_OVERLOAD (upper threshold reached); lvs-ts
//   schedulers never pick such a dest, so here it is replaced like a weight-0 one.

import { type Dest, destUsable, type PktInfo, type Scheduler, type Service } from '../ip-vs';
import { wlc } from './wlc';

/** Seconds between two garbage-collection ticks (CHECK_EXPIRE_INTERVAL, 60*HZ). */
export const CHECK_EXPIRE_INTERVAL = 60;
/** Idle seconds after which a trim may drop an entry (ENTRY_TIMEOUT, 6*60*HZ). */
export const ENTRY_TIMEOUT = 6 * 60;
/** Idle seconds after which a full check drops an entry (DEFAULT_EXPIRATION, 24*60*60*HZ). */
export const DEFAULT_EXPIRATION = 24 * 60 * 60;
/** Every this many ticks, a full check instead of a trim (COUNT_FOR_FULL_EXPIRATION). */
export const COUNT_FOR_FULL_EXPIRATION = 30;
/** Hash bits of the kernel table (CONFIG_IP_VS_LBLC_TAB_BITS / LBLCR_TAB_BITS default). */
export const TAB_BITS = 10;
export const TAB_SIZE = 1 << TAB_BITS;
const TAB_MASK = TAB_SIZE - 1;
/** Entries above which a tick trims (max_size = TAB_SIZE * 16). */
export const MAX_ENTRIES = TAB_SIZE * 16;

/**
 * True when `dest` has more active connections than its weight while some dest of the service
 * (any dest in the list, whatever its flags) has fewer than half its weight: activeConns * 2 <
 * weight. Inactive connections do not count here. The kernel's `is_overloaded` of lblc and lblcr.
 */
export function isOverloaded(dest: Dest, svc: Service): boolean {
  if (dest.activeConns <= dest.weight) return false;
  const dests = svc.dests;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i];
    if (d.activeConns * 2 < d.weight) return true;
  }
  return false;
}

/** What the ageing table needs of an entry: when it was last looked up (engine seconds). */
export interface AgedEntry {
  lastuse: number;
}

/**
 * The per-service table of lblc and lblcr: entries by destination address, aged by the kernel's
 * periodic check (see the file header), driven by `age(now)` instead of a timer.
 */
export class LocalityTable<E extends AgedEntry> {
  readonly entries = new Map<number, E>();
  /** Time of the next tick; NaN until the first age() call anchors the ticks. */
  private nextTick = Number.NaN;
  /** Ticks since the last full check, starting at 1 (tbl->counter). */
  private counter = 1;
  /** Last bucket a trim walked (tbl->rover). */
  private rover = 0;
  /** Stale entries per position of the trim walk (reused). */
  private readonly staleAt = new Uint32Array(TAB_SIZE);

  /** @param bucketOf the kernel's hash bucket (0..TAB_SIZE-1) of an address */
  constructor(private readonly bucketOf: (addr: number) => number) {}

  get size(): number {
    return this.entries.size;
  }

  /** Runs every tick due by `now`, each at its own time. The first call only anchors the ticks. */
  age(now: number): void {
    if (!(now >= this.nextTick)) {
      if (Number.isNaN(this.nextTick)) this.nextTick = now + CHECK_EXPIRE_INTERVAL;
      return;
    }
    let ticks = Math.floor((now - this.nextTick) / CHECK_EXPIRE_INTERVAL) + 1;
    let t = this.nextTick;
    this.nextTick += ticks * CHECK_EXPIRE_INTERVAL;
    while (ticks > 0) {
      if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
        this.fullCheck(t);
        this.counter = 1;
        t += CHECK_EXPIRE_INTERVAL;
        ticks--;
      } else if (this.entries.size <= MAX_ENTRIES) {
        // Quiet ticks only count up to the next full check. An empty table cannot change during
        // the catch-up, and its counter comes back to the same value every 30 ticks.
        if (this.entries.size === 0) ticks %= COUNT_FOR_FULL_EXPIRATION;
        const n = Math.min(ticks, COUNT_FOR_FULL_EXPIRATION - this.counter);
        this.counter += n;
        t += n * CHECK_EXPIRE_INTERVAL;
        ticks -= n;
      } else {
        this.trim(t);
        t += CHECK_EXPIRE_INTERVAL;
        ticks--;
      }
    }
  }

  /** Drops every entry idle for DEFAULT_EXPIRATION or more. Walks all buckets: rover is unchanged. */
  private fullCheck(t: number): void {
    for (const [addr, e] of this.entries) {
      if (t >= e.lastuse + DEFAULT_EXPIRATION) this.entries.delete(addr);
    }
  }

  /**
   * The over-limit pass: whole buckets, in walk order from the one after `rover`, lose their
   * entries idle for ENTRY_TIMEOUT or more, until `goal` entries are gone or every bucket was seen.
   */
  private trim(t: number): void {
    const goal = Math.min(Math.floor(((this.entries.size - MAX_ENTRIES) * 4) / 3), MAX_ENTRIES / 2);
    const staleAt = this.staleAt;
    staleAt.fill(0);
    const first = this.rover + 1;
    for (const [addr, e] of this.entries) {
      if (t >= e.lastuse + ENTRY_TIMEOUT) staleAt[(this.bucketOf(addr) - first) & TAB_MASK] += 1;
    }
    let last = 0;
    let dropped = staleAt[0];
    while (dropped < goal && last < TAB_MASK) dropped += staleAt[++last];
    for (const [addr, e] of this.entries) {
      if (t >= e.lastuse + ENTRY_TIMEOUT && ((this.bucketOf(addr) - first) & TAB_MASK) <= last) {
        this.entries.delete(addr);
      }
    }
    this.rover = (first + last) & TAB_MASK;
  }
}

/** The lblc table's bucket: (addr * 2654435761) & mask (ip_vs_lblc_hashkey). */
export function lblcBucket(addr: number): number {
  return Math.imul(addr, 2654435761) & TAB_MASK;
}

interface LblcEntry extends AgedEntry {
  dest: Dest;
}

function lblcTable(svc: Service): LocalityTable<LblcEntry> {
  return svc.schedData as LocalityTable<LblcEntry>;
}

/** The dest cached for destination address `daddr`, or null. Read-only: does not age the table. */
export function lblcCached(svc: Service, daddr: number): Dest | null {
  return lblcTable(svc).entries.get(daddr)?.dest ?? null;
}

/** How many destination addresses the service's table holds. */
export function lblcEntryCount(svc: Service): number {
  return lblcTable(svc).size;
}

export const lblc: Scheduler = {
  name: 'lblc',

  initService(svc: Service): void {
    svc.schedData = new LocalityTable<LblcEntry>(lblcBucket);
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  /** Called while `dest` is still listed: forget every destination address cached on it. */
  delDest(svc: Service, dest: Dest): void {
    const entries = lblcTable(svc).entries;
    for (const [addr, e] of entries) {
      if (e.dest === dest) entries.delete(addr);
    }
  },

  schedule(svc: Service, pkt: PktInfo, now: number): Dest | null {
    const table = lblcTable(svc);
    table.age(now);
    const en = table.entries.get(pkt.daddr);
    if (en !== undefined) {
      en.lastuse = now;
      if (destUsable(en.dest) && !isOverloaded(en.dest, svc)) return en.dest;
    }
    const dest = wlc.schedule(svc, pkt, now);
    if (dest === null) return null;
    if (en !== undefined) en.dest = dest;
    else table.entries.set(pkt.daddr, { dest, lastuse: now });
    return dest;
  },
};
