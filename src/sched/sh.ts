// Source hashing (ip_vs_sh.c): a static, weighted map from the client's address (and, with
// sh-port, its port) to a dest, so one client keeps reaching the same real server without any
// per-client state.
//
// Table: 256 buckets (IP_VS_SH_TAB_BITS = 8), filled by walking svc.dests in list order and giving
// each dest `weight` consecutive buckets before moving to the next, wrapping to the list head after
// the last dest, until all 256 are filled. A dest of weight 0 still takes one bucket per round (the
// kernel moves on once its count reaches the weight, and the count is 1 after the first bucket).
// Weights A=3, B=1 give A A A B A A A B ..., 192 buckets for A and 64 for B. A weight of 256 or
// more gives the first dest every bucket. No dests: every bucket is empty. The table is rebuilt
// from scratch by initService, addDest, delDest and updDest (a weight change moves buckets).
//
// Hash: bucket = (offset + hash_32(addr + port, 8)) mod 256, hash_32 being include/linux/hash.h's
// multiply by GOLDEN_RATIO_32 (0x61c88647) modulo 2^32 keeping the top 8 bits. The kernel adds
// ntohs(port) to ntohl(addr) in u32 arithmetic (so 255.255.255.255 + port 1 wraps to 0); our
// host-order address and port are those same values. `port` is the source port when the service
// has sh-port (SVC_F_SCHED2) and the protocol is TCP, UDP or SCTP, otherwise 0. `offset` is 0 for
// the first lookup. (Kernels before the switch to hash_32, e.g. 4.6, used the low 8 bits of
// (addr + port) * 2654435761, which depend on the last octet and the port only.)
//
// Schedule: the dest in the bucket if it is usable (weight > 0, not overloaded). Otherwise:
//   - without sh-fallback (SVC_F_SCHED1): null;
//   - with sh-fallback: the kernel retries with offsets roffset = (k + h) mod 256 for
//     k = 0..255, h being the first bucket, i.e. it probes buckets (2h + k) mod 256: the scan
//     starts at bucket 2h (not h + 1) and takes the first usable dest; null if none is usable.
// The kernel hashes the destination address and port instead when scheduling for a packet seen in
// reverse (an ICMP error about a flow, ip_vs_iph_inverse); the engine always schedules on the
// forward packet, so that case does not arise here.

import type { Dest, PktInfo, Scheduler, Service } from '../ip-vs';
import { destUsable, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, SVC_F_SCHED1, SVC_F_SCHED2 } from '../ip-vs';
import { nextDest } from './list-walk';

/** IP_VS_SH_TAB_BITS and the table size and mask it gives. */
export const SH_TAB_BITS = 8;
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
const SH_TAB_MASK = SH_TAB_SIZE - 1;

/** `ipvsadm -b` aliases of the generic scheduler flags. */
export const SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT = SVC_F_SCHED2;

/** GOLDEN_RATIO_32 of include/linux/hash.h. */
const GOLDEN_RATIO_32 = 0x61c88647;

/**
 * The bucket of a host-order IPv4 source address and host-order port (0 without sh-port):
 * (offset + hash_32(addr + port, SH_TAB_BITS)) mod SH_TAB_SIZE. Math.imul reduces the sum modulo
 * 2^32 first, as the kernel's u32 addition does.
 */
export function shHashKey(addr: number, port: number, offset = 0): number {
  return (offset + (Math.imul(addr + port, GOLDEN_RATIO_32) >>> (32 - SH_TAB_BITS))) & SH_TAB_MASK;
}

interface ShState {
  /** SH_TAB_SIZE entries; null only while the service has no dests. */
  buckets: (Dest | null)[];
}

function shState(svc: Service): ShState {
  return svc.schedData as ShState;
}

/**
 * Refills every bucket from the dests in list order, `weight` buckets each (at least one), skipping
 * `leaving` (delDest runs while the dest is still in the list; the kernel rebuilds after unlinking
 * it).
 */
function reassign(svc: Service, s: ShState, leaving: Dest | null): void {
  const dests = svc.dests;
  const n = dests.length;
  const b = s.buckets;
  if (n === 0 || (n === 1 && dests[0] === leaving)) {
    b.fill(null);
    return;
  }
  // The cursor walks the list cyclically from its head; at least one dest is not `leaving`.
  let i = nextDest(dests, -1, leaving);
  let count = 0;
  for (let k = 0; k < SH_TAB_SIZE; k++) {
    const d = dests[i];
    b[k] = d;
    if (++count >= d.weight) {
      i = nextDest(dests, i, leaving);
      count = 0;
    }
  }
}

/** The buckets of a service using sh, in bucket order (for inspection and tests). */
export function shBuckets(svc: Service): readonly (Dest | null)[] {
  return shState(svc).buckets;
}

export const sh: Scheduler = {
  name: 'sh',

  initService(svc: Service): void {
    const s: ShState = { buckets: new Array<Dest | null>(SH_TAB_SIZE).fill(null) };
    svc.schedData = s;
    reassign(svc, s, null);
  },

  doneService(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    reassign(svc, shState(svc), null);
  },

  delDest(svc: Service, dest: Dest): void {
    reassign(svc, shState(svc), dest);
  },

  updDest(svc: Service): void {
    reassign(svc, shState(svc), null);
  },

  schedule(svc: Service, pkt: PktInfo): Dest | null {
    const b = shState(svc).buckets;
    const flags = svc.flags;
    const proto = pkt.protocol;
    const port =
      (flags & SVC_F_SCHED_SH_PORT) !== 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP)
        ? pkt.sport
        : 0;
    const h = shHashKey(pkt.saddr, port);
    const d = b[h];
    if (d === null) return null;
    if (destUsable(d)) return d;
    if ((flags & SVC_F_SCHED_SH_FALLBACK) === 0) return null;

    // shHashKey(addr, port, (k + h) mod 256) is (k + 2h) mod 256: probe from bucket 2h onwards.
    const start = h << 1;
    for (let k = 0; k < SH_TAB_SIZE; k++) {
      const c = b[(start + k) & SH_TAB_MASK];
      if (c === null) return null;
      if (destUsable(c)) return c;
    }
    return null;
  },
};
