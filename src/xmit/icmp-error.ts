// ICMP errors the director originates about a packet it cannot forward (icmp_send): built in a
// generated-packet slot and queued for the raw socket.
//
// As Linux does: the error goes to the packet's source, from its destination (the virtual
// address, which a kernel director owns), quotes as much of the packet as fits in 576 bytes,
// and carries TOS (tos & 0x1e) | 0xc0 (internetwork control).

import { IPPROTO_ICMP } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import { checksum } from '../wire/checksum';
import { ICMP, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, icmpTypeIsError } from '../wire/icmp';
import { IPV4, writeIpv4Header } from '../wire/ipv4';
import type { PacketContext } from './packet-context';

const MAX_ICMP_DATAGRAM = 576;
const ERROR_TTL = 64;

/**
 * Queue an ICMP error of `type`/`code` with the 32-bit `rest` field about the current packet.
 * False when there is no slot (or batch room) left; the caller still drops the packet.
 */
export function sendIcmpError(x: PacketContext, type: number, code: number, rest: number): boolean {
  const ip = x.ip;
  if (!mayAnswer(ip)) return false;
  const off = x.genSlot();
  if (off < 0) return false;
  const quoted = Math.min(ip.totalLen, MAX_ICMP_DATAGRAM - IPV4.MIN_HEADER - ICMP.HEADER, x.slotCapacity - 28);
  const total = IPV4.MIN_HEADER + ICMP.HEADER + quoted;
  const buf = x.ip.buf;
  const icmp = off + IPV4.MIN_HEADER;
  buf[icmp + ICMP.TYPE] = type;
  buf[icmp + ICMP.CODE] = code;
  buf.writeUInt16BE(0, icmp + ICMP.CHECKSUM);
  buf.writeUInt32BE(rest >>> 0, icmp + ICMP.REST);
  buf.copy(buf, icmp + ICMP.HEADER, ip.off, ip.off + quoted);
  buf.writeUInt16BE(checksum(buf, icmp, ICMP.HEADER + quoted), icmp + ICMP.CHECKSUM);
  writeIpv4Header(
    buf,
    off,
    (ip.tos & 0x1e) | 0xc0,
    total,
    x.nextIpId(),
    0,
    ERROR_TTL,
    IPPROTO_ICMP,
    ip.dstAddr,
    ip.srcAddr,
  );
  return x.queue(off, total, TX_DEV_RAW);
}

/**
 * icmp_send's rules (RFC 1122 3.2.2): never about an ICMP error, about a fragment other than the
 * first, or from a broadcast or multicast source. Checked before the rate limits (a packet never
 * answered spends no credit), and again when the error is built.
 */
export function mayAnswer(ip: PacketContext['ip']): boolean {
  if (ip.fragOffset !== 0) return false;
  const src = ip.srcAddr;
  if (src >>> 28 === 0xe || src === 0xffffffff || src === 0) return false;
  if (ip.protocol !== IPPROTO_ICMP) return true;
  if (ip.payloadLen < 1) return false;
  return !icmpTypeIsError(ip.buf[ip.payloadOffset]);
}

/** ICMP "fragmentation needed" with next-hop MTU `mtu` (RFC 1191) about the current packet. */
export function sendFragNeeded(x: PacketContext, mtu: number): boolean {
  return sendIcmpError(x, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xffff);
}
