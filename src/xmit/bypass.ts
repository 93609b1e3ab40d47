// Bypass: a packet in the TUN that matches no service and no connection (for example a NAT real
// server's own outbound traffic, which the reply rule also steers into the TUN) is forwarded
// unchanged.

import { TX_DEV_RAW } from '../native/packet-io';
import { completeChecksum, sendRouted } from './common';
import type { PacketContext } from './packet-context';
import { TX } from './verdict';

export function bypass(x: PacketContext): number {
  return sendRouted(x, false);
}

/**
 * A packet to a virtual address that is also the director's own, and not its services' (a
 * reassembled datagram, an ICMP error about the host's own traffic): handed to the local stack
 * whole, through the raw socket (the kernel loops it back on lo, whose MTU takes any datagram).
 */
export function bypassLocal(x: PacketContext): number {
  if (x.csumStart !== 0) completeChecksum(x);
  x.outOff = x.ip.off;
  x.outLen = x.ip.totalLen;
  x.outDev = TX_DEV_RAW;
  return TX;
}
