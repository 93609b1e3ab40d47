// Bypass: a packet in the TUN that matches no service and no connection (for example a NAT real
// server's own outbound traffic, which the reply rule also steers into the TUN) is forwarded
// unchanged.

import { sendRouted, type XmitContext } from './common';

export function bypass(x: XmitContext): number {
  return sendRouted(x, false);
}
