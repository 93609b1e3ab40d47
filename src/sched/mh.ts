// Maglev hashing (ip_vs_mh.c). Each dest owns a permutation of a prime-sized lookup table (4093
// slots by default), placed by hashing its address and port; the table is populated from those
// permutations (maglev.ts) and a new connection goes to the dest owning the slot its source address
// hashes to. The same source therefore keeps landing on the same dest, and a dest change moves
// only about its own share of sources.
//
//   offset(dest) = hsiphash(K1, addr + port) mod M        K1, K2: the kernel's fixed keys
//   skip(dest)   = hsiphash(K2, addr + port) mod (M - 1) + 1
//   slot(pkt)    = hsiphash(K1, saddr + sport) mod M      sport only with mh-port, else 0
//
// The table is rebuilt whenever the dest set or a weight changes (initService, addDest, delDest,
// updDest), from the dests in list order (newest first, as the kernel's list). Weights enter as
// in the kernel: divided by their gcd, shifted down when large, one turn at least (maglev.ts).
//
// Quiescing. The table is built from each dest's last non-zero weight (the kernel's last_weight:
// the weight given when the dest was added, then every later non-zero weight), so setting a weight
// to 0 keeps the dest's slots and moves nobody else. Its sources then get null, or with
// mh-fallback (SVC_F_SCHED1) the next usable dest found by the kernel's probe sequence: for
// i = 0, 1, ..., M - 1 the slot hsiphash(K1, ((slot(pkt) + i) mod M) + saddr + sport) mod M. An
// overloaded dest is treated the same way. A dest added with weight 0 gets no slots at all.
//
// mh-port (SVC_F_SCHED2) adds the source port to the packet hash for TCP, UDP and SCTP; other
// protocols hash with port 0, as the kernel does.
//
// Deviations from the kernel: (1) the kernel keeps last_weight on the dest, across scheduler
// changes; we track it from the moment mh is bound, so a dest already at weight 0 when
// initService runs counts as weight 0 (no slots). (2) ICMP-error scheduling of the inverse
// direction (hash the destination address and port) is not modelled: PktInfo has no such flag.
// (3) The kernel refuses more dests than slots (EINVAL); here the table simply fills up and the
// extra dests get no slot. The hash is the kernel's 64-bit hsiphash (SipHash-1-3), see maglev.ts.

import {
  type Dest,
  destUsable,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type PktInfo,
  type Scheduler,
  type Service,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
} from '../ip-vs';
import {
  hsiphash32,
  MH_KEY_OFFSET,
  MH_TAB_INDEX_DEFAULT,
  mhTabSize,
  offsetFor,
  populateTable,
  skipFor,
  weightTurns,
} from './maglev';

/** mh-fallback: move on from an unusable dest instead of failing. */
export const SVC_F_MH_FALLBACK = SVC_F_SCHED1;
/** mh-port: hash the source port too. */
export const SVC_F_MH_PORT = SVC_F_SCHED2;

interface MhState {
  size: number;
  /** slot -> index into `dests`, or -1 when no dest has a positive (last) weight. */
  table: Int32Array;
  /** The dests the table indexes: svc.dests at the last rebuild, minus a dest being deleted. */
  dests: Dest[];
  /** The kernel's last_weight: each dest's latest non-zero weight (or its weight when added). */
  lastWeight: Map<Dest, number>;
}

function mhState(svc: Service): MhState {
  return svc.schedData as MhState;
}

/** Rebuilds the table from svc.dests without `leaving` (delDest runs before the dest is unlinked). */
function rebuild(svc: Service, s: MhState, leaving: Dest | null): void {
  const dests: Dest[] = [];
  for (const d of svc.dests) if (d !== leaving) dests.push(d);
  const n = dests.length;
  const size = s.size;
  const offsets = new Int32Array(n);
  const skips = new Int32Array(n);
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = dests[i];
    const seed = (d.addr + d.port) >>> 0;
    offsets[i] = offsetFor(size, seed);
    skips[i] = skipFor(size, seed);
    weights[i] = s.lastWeight.get(d) ?? d.weight;
  }
  populateTable(size, offsets, skips, weightTurns(size, weights), s.table);
  s.dests = dests;
}

/** The table slot of (addr, port) probed at `offset` (0 for the first choice). */
function slotOf(size: number, addr: number, port: number, offset: number): number {
  return hsiphash32(MH_KEY_OFFSET, (offset + port + addr) >>> 0) % size;
}

function hasPorts(protocol: number): boolean {
  return protocol === IPPROTO_TCP || protocol === IPPROTO_UDP || protocol === IPPROTO_SCTP;
}

/** An mh scheduler whose tables have mhTabSize(tabIndex) slots (CONFIG_IP_VS_MH_TAB_INDEX). */
export function createMh(tabIndex: number = MH_TAB_INDEX_DEFAULT): Scheduler {
  const size = mhTabSize(tabIndex);
  return {
    name: 'mh',

    initService(svc: Service): void {
      const s: MhState = { size, table: new Int32Array(size), dests: [], lastWeight: new Map() };
      for (const d of svc.dests) s.lastWeight.set(d, d.weight);
      svc.schedData = s;
      rebuild(svc, s, null);
    },

    doneService(svc: Service): void {
      svc.schedData = null;
    },

    addDest(svc: Service, dest: Dest): void {
      const s = mhState(svc);
      s.lastWeight.set(dest, dest.weight);
      rebuild(svc, s, null);
    },

    delDest(svc: Service, dest: Dest): void {
      const s = mhState(svc);
      s.lastWeight.delete(dest);
      rebuild(svc, s, dest);
    },

    updDest(svc: Service, dest: Dest): void {
      const s = mhState(svc);
      if (dest.weight !== 0 || !s.lastWeight.has(dest)) s.lastWeight.set(dest, dest.weight);
      rebuild(svc, s, null);
    },

    schedule(svc: Service, pkt: PktInfo): Dest | null {
      const s = mhState(svc);
      const { table, dests } = s;
      const addr = pkt.saddr;
      const port = (svc.flags & SVC_F_MH_PORT) !== 0 && hasPorts(pkt.protocol) ? pkt.sport : 0;
      const first = slotOf(size, addr, port, 0);
      let idx = table[first];
      if (idx < 0) return null;
      let d = dests[idx];
      if (destUsable(d)) return d;
      if ((svc.flags & SVC_F_MH_FALLBACK) === 0) return null;
      for (let i = 0; i < size; i++) {
        let probe = first + i;
        if (probe >= size) probe -= size;
        idx = table[slotOf(size, addr, port, probe)];
        if (idx < 0) break;
        d = dests[idx];
        if (destUsable(d)) return d;
      }
      return null;
    },
  };
}

/** The mh scheduler with the kernel's default table size, 4093. */
export const mh: Scheduler = createMh();
