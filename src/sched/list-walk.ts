// Walking a service's dest list as the kernel walks its circular list_head: the shared step of
// the bucket-table schedulers (dh, sh), which rebuild their tables while a leaving dest is still
// in svc.dests (delDest runs before the control plane unlinks it).

import type { Dest } from '../ip-vs';

/** The index after `i` in list order, wrapping at the end and passing over `skip`. */
export function nextDest(dests: readonly Dest[], i: number, skip: Dest | null): number {
  const n = dests.length;
  do {
    i = i + 1 === n ? 0 : i + 1;
  } while (dests[i] === skip);
  return i;
}
