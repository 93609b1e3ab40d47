// What every transmitter works with, and the rules they share.
//
// Who changes which field of a forwarded packet:
//   nat.ts  in:  IPv4 daddr → RIP, L4 dport → RS port; IP and L4 checksums updated incrementally
//           out: IPv4 saddr → VIP, L4 sport → virtual port; likewise
//   bypass.ts:   nothing
// TTL: a packet read from the TUN has already been forwarded once by the director's kernel,
// which decremented its TTL (and answered an expiring one with ICMP time exceeded). Sending it
// on the raw socket is not another hop, so transmitters leave the TTL alone: a real server sees
// the same TTL as behind a kernel IPVS director, which decrements once.

import type { ConnTable } from '../conn/conn-table';
import type { ProtoHandler } from '../proto/proto';
import { TX_DEV_RAW } from '../native/packet-io';
import type { Ipv4View } from '../wire/ipv4';
import { TX } from './verdict';

export interface XmitContext {
  readonly ip: Ipv4View;
  readonly conns: ConnTable;
  /** The current packet's protocol handler, its view pointed at the L4 header. */
  l4: ProtoHandler;
  /** Set by a transmitter returning TX: the bytes to send and the device (txDev) to send them on. */
  outOff: number;
  outLen: number;
  outDev: number;
}

/** A forwarding method: one per IP_VS_CONN_F_FWD_MASK value, bound to a connection at creation. */
export interface Transmitter {
  /** A client's packet (client → virtual service). Returns TX or a drop reason. */
  in(x: XmitContext, c: number): number;
  /** A real server's reply (only NAT sees them). Returns TX or a drop reason. */
  out(x: XmitContext, c: number): number;
}

/** Queue the current IPv4 packet, as it now is, for the raw IPv4 socket. */
export function sendAsIs(x: XmitContext): number {
  x.outOff = x.ip.off;
  x.outLen = x.ip.totalLen;
  x.outDev = TX_DEV_RAW;
  return TX;
}
