// The TCP reset a kernel director's own stack sends for a segment to a virtual address that
// IPVS lets through: no connection and not a SYN it may schedule (the virtual address is local
// there, and no socket listens on it), e.g. a segment of a connection that expired or whose
// dest was deleted with expire_nodest_conn. Built as Linux's tcp_v4_send_reset does (RFC 793):
// an incoming ACK is answered by RST with seq = its ack; otherwise RST|ACK with seq 0 and
// ack = its seq + payload + SYN + FIN. A RST is never answered. From the virtual address, TTL 64.
// writeTcpSegment builds such a segment; the SYN proxy (core/syn-proxy.ts) builds its own with it.

import { IPPROTO_TCP } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import { checksum, pseudoHeaderSum } from '../wire/checksum';
import { IPV4_DF, writeIpv4Header } from '../wire/ipv4';
import { TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp';
import type { PacketContext } from './packet-context';

const RESET_TTL = 64;

/** TCP header bytes with the MSS option (writeTcpSegment with an `mss`). */
export const TCP_MSS_HEADER = TCP.MIN_HEADER + 4;

/**
 * Write at buf[off] an IPv4 packet (DF, identification 0, TTL 64, as Linux sends from no
 * connected socket) carrying a TCP segment without data: with the MSS option when `mss` is not
 * 0. Returns its length.
 */
export function writeTcpSegment(
  buf: Buffer,
  off: number,
  src: number,
  sport: number,
  dst: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  mss = 0,
): number {
  const r = off + 20;
  const len = mss !== 0 ? TCP_MSS_HEADER : TCP.MIN_HEADER;
  buf.writeUInt16BE(sport, r + TCP.SRC_PORT);
  buf.writeUInt16BE(dport, r + TCP.DST_PORT);
  buf.writeUInt32BE(seq >>> 0, r + TCP.SEQ);
  buf.writeUInt32BE(ack >>> 0, r + TCP.ACK);
  buf[r + TCP.DATA_OFF] = (len >> 2) << 4;
  buf[r + TCP.FLAGS] = flags;
  buf.writeUInt16BE(window, r + TCP.WINDOW);
  buf.writeUInt16BE(0, r + TCP.CHECKSUM);
  buf.writeUInt16BE(0, r + TCP.URGENT);
  if (mss !== 0) {
    buf[r + 20] = 2;
    buf[r + 21] = 4;
    buf.writeUInt16BE(mss, r + 22);
  }
  buf.writeUInt16BE(checksum(buf, r, len, pseudoHeaderSum(src, dst, IPPROTO_TCP, len)), r + TCP.CHECKSUM);
  writeIpv4Header(buf, off, 0, 20 + len, 0, IPV4_DF, RESET_TTL, IPPROTO_TCP, src, dst);
  return 20 + len;
}

/** Queue a reset for the current TCP segment (parsed and checked). False when none is due. */
export function sendTcpReset(x: PacketContext): boolean {
  const ip = x.ip;
  const buf = ip.buf;
  const t = ip.payloadOffset;
  const flags = buf[t + TCP.FLAGS];
  if ((flags & TCP_RST) !== 0) return false;
  const sport = buf.readUInt16BE(t + TCP.DST_PORT);
  const dport = buf.readUInt16BE(t + TCP.SRC_PORT);
  const off = x.genSlot();
  let len: number;
  if ((flags & TCP_ACK) !== 0) {
    len = writeTcpSegment(buf, off, ip.dstAddr, sport, ip.srcAddr, dport, buf.readUInt32BE(t + TCP.ACK), 0, TCP_RST, 0);
  } else {
    const dataLen = ip.payloadLen - ((buf[t + TCP.DATA_OFF] >> 4) << 2);
    const span = dataLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
    const ack = (buf.readUInt32BE(t + TCP.SEQ) + span) >>> 0;
    len = writeTcpSegment(buf, off, ip.dstAddr, sport, ip.srcAddr, dport, 0, ack, TCP_RST | TCP_ACK, 0);
  }
  return x.queue(off, len, TX_DEV_RAW);
}
