// What every transmitter works with, and the rules they share.
//
// Who changes which field of a forwarded packet:
//   nat.ts  in:  IPv4 daddr → RIP, L4 dport → RS port; IP and L4 checksums updated incrementally
//           out: IPv4 saddr → VIP, L4 sport → virtual port; likewise
//   dr.ts        nothing at L3/L4; a 14-byte Ethernet header (RS MAC) is prepended in the headroom
//   tunnel.ts    nothing in the inner packet; a 20-byte outer IPv4 header (protocol 4, director →
//                RIP, inner TOS, DF and TTL) is prepended in the headroom
//   bypass.ts:   nothing
// Packets over the path MTU with DF set are answered with ICMP fragmentation needed (icmp-error.ts).
// TTL: a packet read from the TUN has already been forwarded once by the director's kernel,
// which decremented its TTL (and answered an expiring one with ICMP time exceeded). Sending it
// on the raw socket is not another hop, so transmitters leave the TTL alone: a real server sees
// the same TTL as behind a kernel IPVS director, which decrements once.

import type { ConnTable } from '../conn/conn-table';
import type { Dest } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import type { ProtoHandler } from '../proto/proto';
import { checksum } from '../wire/checksum';
import { IPV4, type Ipv4View } from '../wire/ipv4';
import { TX } from './verdict';

export interface XmitContext {
  readonly ip: Ipv4View;
  readonly conns: ConnTable;
  /** The dest of the connection being transmitted. */
  dest: Dest;
  /** The current packet's protocol handler, its view pointed at the L4 header. */
  l4: ProtoHandler;
  /** Set by a transmitter returning TX: the bytes to send and the device (txDev) to send them on. */
  outOff: number;
  outLen: number;
  outDev: number;
  /** Queue one more output packet now (generated ICMP, fragments). False when the batch is full. */
  queue(off: number, len: number, dev: number): boolean;
  /** Offset of a free slot for a generated packet (headroom before it), or -1 when none is left. */
  genSlot(): number;
  /** Largest packet a slot holds. */
  readonly slotCapacity: number;
  /** The next IPv4 identification for a header this director originates. */
  nextIpId(): number;
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

/**
 * Write a 20-byte IPv4 header (no options) at buf[off] and fill its checksum. `flagsFrag` is the
 * 16-bit flags + fragment-offset field (offset in 8-byte units).
 */
export function writeIpv4Header(
  buf: Buffer,
  off: number,
  tos: number,
  totalLen: number,
  id: number,
  flagsFrag: number,
  ttl: number,
  protocol: number,
  src: number,
  dst: number,
): void {
  buf[off + IPV4.VER_IHL] = 0x45;
  buf[off + IPV4.TOS] = tos;
  buf.writeUInt16BE(totalLen, off + IPV4.TOTAL_LEN);
  buf.writeUInt16BE(id & 0xffff, off + IPV4.ID);
  buf.writeUInt16BE(flagsFrag, off + IPV4.FLAGS_FRAG);
  buf[off + IPV4.TTL] = ttl;
  buf[off + IPV4.PROTOCOL] = protocol;
  buf.writeUInt16BE(0, off + IPV4.CHECKSUM);
  buf.writeUInt32BE(src >>> 0, off + IPV4.SRC);
  buf.writeUInt32BE(dst >>> 0, off + IPV4.DST);
  buf.writeUInt16BE(checksum(buf, off, IPV4.MIN_HEADER), off + IPV4.CHECKSUM);
}
