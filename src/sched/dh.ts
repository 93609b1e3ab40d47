// Destination hashing (ip_vs_dh.c): a static map from the packet's destination address to a dest,
// meant for cache clusters where one origin address should always land on the same cache.
//
// Table: 256 buckets (IP_VS_DH_TAB_BITS = 8), filled round robin over svc.dests in list order,
// one bucket per dest whatever its weight: bucket i holds dests[i mod n]. With dests A, B, C the
// buckets read A B C A B C ... and bucket 255 holds A (255 mod 3 = 0). No dests: every bucket is
// empty. The table is rebuilt from scratch by initService (a scheduler bound to a service that
// may already hold dests), addDest and delDest. The kernel gives dh no upd_dest hook: the fill
// ignores weights, so a weight change cannot move a bucket (weight 0 only makes its buckets
// answer null, see below).
//
// Hash: hash_32(daddr, 8) of include/linux/hash.h, the address times GOLDEN_RATIO_32 (0x61c88647)
// modulo 2^32, keeping the top 8 bits. The kernel applies ntohl to the network-order field before
// hashing; our addresses are already host order, so they are hashed as they are. (Kernels before
// the switch to hash_32, e.g. 4.6, used the low 8 bits of addr * 2654435761, which depend on the
// last octet only; current kernels do not.)
//
// Schedule: the dest in the bucket if it is usable (weight > 0, not overloaded), otherwise null.
// There is no fallback to another bucket: the engine handles the packet as for any service with
// no dest available (the kernel's cache_bypass, which would forward it to its original
// destination, is not implemented in lvs-ts). The kernel also rejects a bucket dest without DEST_F_AVAILABLE; here
// the table is rebuilt without a dest before it leaves the list, so no bucket ever holds one.

import type { Dest, PktInfo, Scheduler, Service } from '../ip-vs';
import { destUsable } from '../ip-vs';
import { nextDest } from './list-walk';

/** IP_VS_DH_TAB_BITS and the table size it gives. */
export const DH_TAB_BITS = 8;
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

/** GOLDEN_RATIO_32 of include/linux/hash.h. */
const GOLDEN_RATIO_32 = 0x61c88647;

/** The bucket of a host-order IPv4 destination address: hash_32(addr, DH_TAB_BITS). */
export function dhHashKey(addr: number): number {
  return Math.imul(addr, GOLDEN_RATIO_32) >>> (32 - DH_TAB_BITS);
}

interface DhState {
  /** DH_TAB_SIZE entries; null only while the service has no dests. */
  buckets: (Dest | null)[];
}

function dhState(svc: Service): DhState {
  return svc.schedData as DhState;
}

/**
 * Refills every bucket round robin over the dests in list order, skipping `leaving` (delDest
 * runs while the dest is still in the list; the kernel rebuilds after unlinking it).
 */
function reassign(svc: Service, s: DhState, leaving: Dest | null): void {
  const dests = svc.dests;
  const n = dests.length;
  const b = s.buckets;
  if (n === 0 || (n === 1 && dests[0] === leaving)) {
    b.fill(null);
    return;
  }
  // The cursor walks the list cyclically from its head; at least one dest is not `leaving`.
  let i = -1;
  for (let k = 0; k < DH_TAB_SIZE; k++) {
    i = nextDest(dests, i, leaving);
    b[k] = dests[i];
  }
}

/** The buckets of a service using dh, in bucket order (for inspection and tests). */
export function dhBuckets(svc: Service): readonly (Dest | null)[] {
  return dhState(svc).buckets;
}

export const dh: Scheduler = {
  name: 'dh',

  initService(svc: Service): void {
    const s: DhState = { buckets: new Array<Dest | null>(DH_TAB_SIZE).fill(null) };
    svc.schedData = s;
    reassign(svc, s, null);
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    reassign(svc, dhState(svc), null);
  },

  delDest(svc: Service, dest: Dest): void {
    reassign(svc, dhState(svc), dest);
  },

  schedule(svc: Service, pkt: PktInfo): Dest | null {
    const d = dhState(svc).buckets[dhHashKey(pkt.daddr)];
    return d !== null && destUsable(d) ? d : null;
  },
};
