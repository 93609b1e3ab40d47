// The transmitter of the two forwarding methods lvs-ts has none for (xmit/index.ts): LOCALNODE
// (the kernel's ip_vs_null_xmit hands the packet to the director's own stack, which serves it;
// lvs-ts serves nothing locally) and BYPASS as a connection's method (lvs-ts bypasses packet by
// packet, xmit/bypass.ts, never through a connection). No dest lvsd creates has either, but a
// connection may still carry one (a sync message from a kernel director): its packets are
// dropped and counted as fwd_unsupported, never mis-sent.

import type { Transmitter } from './common';
import { D_FWD_UNSUPPORTED } from './verdict';

export const unsupported: Transmitter = {
  in: () => D_FWD_UNSUPPORTED,
  out: () => D_FWD_UNSUPPORTED,
};
