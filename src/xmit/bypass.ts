// Bypass: a packet in the TUN that matches no service and no connection (for example a NAT real
// server's own outbound traffic, which the reply rule also steers into the TUN) is forwarded
// unchanged.

import { sendRouted } from './common';
import type { PacketContext } from './packet-context';

export function bypass(x: PacketContext): number {
  return sendRouted(x, false);
}
