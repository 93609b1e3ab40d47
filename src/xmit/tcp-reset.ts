// The TCP reset a kernel director's own stack sends for a segment to a virtual address that
// IPVS lets through: no connection and not a SYN it may schedule (the virtual address is local
// there, and no socket listens on it), e.g. a segment of a connection that expired or whose
// dest was deleted with expire_nodest_conn. Built as Linux's tcp_v4_send_reset does (RFC 793):
// an incoming ACK is answered by RST with seq = its ack; otherwise RST|ACK with seq 0 and
// ack = its seq + payload + SYN + FIN. A RST is never answered. From the virtual address, TTL 64.

import { IPPROTO_TCP } from '../ip-vs';
import { TX_DEV_RAW } from '../native/packet-io';
import { checksum, pseudoHeaderSum } from '../wire/checksum';
import { IPV4_DF, writeIpv4Header } from '../wire/ipv4';
import { TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp';
import type { PacketContext } from './packet-context';

const RESET_TTL = 64;
const RST_LEN = TCP.MIN_HEADER;

/** Queue a reset for the current TCP segment (parsed and checked). False when none is due. */
export function sendTcpReset(x: PacketContext): boolean {
  const ip = x.ip;
  const buf = ip.buf;
  const t = ip.payloadOffset;
  const flags = buf[t + TCP.FLAGS];
  if ((flags & TCP_RST) !== 0) return false;
  const off = x.genSlot();
  const r = off + 20;
  buf.writeUInt16BE(buf.readUInt16BE(t + TCP.DST_PORT), r + TCP.SRC_PORT);
  buf.writeUInt16BE(buf.readUInt16BE(t + TCP.SRC_PORT), r + TCP.DST_PORT);
  if ((flags & TCP_ACK) !== 0) {
    buf.writeUInt32BE(buf.readUInt32BE(t + TCP.ACK), r + TCP.SEQ);
    buf.writeUInt32BE(0, r + TCP.ACK);
    buf[r + TCP.FLAGS] = TCP_RST;
  } else {
    const dataLen = ip.payloadLen - ((buf[t + TCP.DATA_OFF] >> 4) << 2);
    const span = dataLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
    buf.writeUInt32BE(0, r + TCP.SEQ);
    buf.writeUInt32BE((buf.readUInt32BE(t + TCP.SEQ) + span) >>> 0, r + TCP.ACK);
    buf[r + TCP.FLAGS] = TCP_RST | TCP_ACK;
  }
  buf[r + TCP.DATA_OFF] = (RST_LEN >> 2) << 4;
  buf.writeUInt16BE(0, r + TCP.WINDOW);
  buf.writeUInt16BE(0, r + TCP.CHECKSUM);
  buf.writeUInt16BE(0, r + TCP.URGENT);
  const src = ip.dstAddr;
  const dst = ip.srcAddr;
  buf.writeUInt16BE(checksum(buf, r, RST_LEN, pseudoHeaderSum(src, dst, IPPROTO_TCP, RST_LEN)), r + TCP.CHECKSUM);
  // DF and identification 0, as Linux sends a DF datagram from no connected socket.
  writeIpv4Header(buf, off, 0, 20 + RST_LEN, 0, IPV4_DF, RESET_TTL, IPPROTO_TCP, src, dst);
  return x.queue(off, 20 + RST_LEN, TX_DEV_RAW);
}
