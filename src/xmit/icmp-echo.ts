// An echo request to a virtual address is answered, as a kernel director (which owns the VIP)
// answers it: the same packet turned round in place, type 0, from the VIP, TTL 64, no DF. A
// request with IP options is left unanswered (the header would change size), one with a bad
// checksum is dropped as the kernel's icmp_rcv drops it.

import { IPPROTO_ICMP } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import { checksum, update16 } from '../wire/checksum';
import { ICMP, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from '../wire/icmp';
import { IPV4, writeIpv4Header } from '../wire/ipv4';
import { V_BAD_CHECKSUM } from '../wire/verdict';
import type { PacketContext } from './packet-context';
import { D_NO_SERVICE, TX } from './verdict';

const ECHO_TTL = 64;

/** Answer the current packet if it is an ICMP echo request; else D_NO_SERVICE. */
export function answerEcho(x: PacketContext): number {
  const ip = x.ip;
  const buf = ip.buf;
  const icmp = ip.payloadOffset;
  const len = ip.payloadLen;
  if (ip.protocol !== IPPROTO_ICMP || ip.headerLen !== IPV4.MIN_HEADER || len < ICMP.HEADER) return D_NO_SERVICE;
  if (buf[icmp + ICMP.TYPE] !== ICMP_ECHO_REQUEST || buf[icmp + ICMP.CODE] !== 0) return D_NO_SERVICE;
  if (checksum(buf, icmp, len) !== 0) return V_BAD_CHECKSUM;
  buf[icmp + ICMP.TYPE] = ICMP_ECHO_REPLY;
  const csum = buf.readUInt16BE(icmp + ICMP.CHECKSUM);
  buf.writeUInt16BE(update16(csum, ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8), icmp + ICMP.CHECKSUM);
  const client = ip.srcAddr;
  const vip = ip.dstAddr;
  writeIpv4Header(buf, ip.off, ip.tos, IPV4.MIN_HEADER + len, x.nextIpId(), 0, ECHO_TTL, IPPROTO_ICMP, vip, client);
  x.outOff = ip.off;
  x.outLen = IPV4.MIN_HEADER + len;
  x.outDev = TX_DEV_RAW;
  return TX;
}
