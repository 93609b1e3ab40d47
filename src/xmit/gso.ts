// Software TCP segmentation (what a NIC's TSO does) for a TCP/IPv4 GSO packet from an offload
// TUN, where the output path cannot hand the kernel a 64 KiB segment: IP-in-IP from user space.
//
// Each segment is a complete packet in a generated-packet slot: the IPv4 header and TCP header
// (options included) repeated, at most x.gsoSize payload bytes, total length and identification
// (+1 per segment) and sequence number (+ payload offset) set, FIN and PSH only on the last
// segment, CWR only on the first, both checksums computed in full.

import { IPPROTO_TCP } from '../ip-vs';
import { checksum, pseudoHeaderSum } from '../wire/checksum';
import { IPV4 } from '../wire/ipv4';
import { TCP, TCP_CWR, TCP_FIN, TCP_PSH } from '../wire/tcp';
import { tcpHeaderLen } from './common';
import type { PacketContext } from './packet-context';
import { D_TOO_BIG, TX_QUEUED } from './verdict';

/** Takes one finished segment at buf[off, off + len) (headroom before it) and queues it. */
export type SegmentSink = (x: PacketContext, off: number, len: number) => number;

/**
 * Cut the current packet (x.gsoSize > 0) into segments and pass each to `sink`. Returns
 * TX_QUEUED, D_TOO_BIG when a segment does not fit a slot, or the first drop reason `sink`
 * returns (the segments before it are already queued).
 */
export function segmentTcp(x: PacketContext, sink: SegmentSink): number {
  const ip = x.ip;
  const buf = ip.buf;
  const ipOff = ip.off;
  const ihl = ip.headerLen;
  const thl = tcpHeaderLen(x);
  const hdrs = ihl + thl;
  const payload = ip.totalLen - hdrs;
  const mss = x.gsoSize;
  if (hdrs + Math.min(mss, payload) > x.slotCapacity) return D_TOO_BIG;
  const tcpOff = ipOff + ihl;
  const seq0 = buf.readUInt32BE(tcpOff + TCP.SEQ);
  const id0 = ip.id;
  const flags0 = buf[tcpOff + TCP.FLAGS];
  const saddr = ip.srcAddr;
  const daddr = ip.dstAddr;
  let done = 0;
  do {
    const chunk = Math.min(mss, payload - done);
    const last = done + chunk >= payload;
    const g = x.genSlot();
    buf.copy(buf, g, ipOff, ipOff + hdrs);
    buf.copy(buf, g + hdrs, ipOff + hdrs + done, ipOff + hdrs + done + chunk);
    const len = hdrs + chunk;
    buf.writeUInt16BE(len, g + IPV4.TOTAL_LEN);
    buf.writeUInt16BE((id0 + done / mss) & 0xffff, g + IPV4.ID);
    buf.writeUInt16BE(0, g + IPV4.CHECKSUM);
    buf.writeUInt16BE(checksum(buf, g, ihl), g + IPV4.CHECKSUM);
    const t = g + ihl;
    buf.writeUInt32BE((seq0 + done) >>> 0, t + TCP.SEQ);
    let flags = flags0;
    if (done !== 0) flags &= ~TCP_CWR;
    if (!last) flags &= ~(TCP_FIN | TCP_PSH);
    buf[t + TCP.FLAGS] = flags;
    buf.writeUInt16BE(0, t + TCP.CHECKSUM);
    buf.writeUInt16BE(
      checksum(buf, t, thl + chunk, pseudoHeaderSum(saddr, daddr, IPPROTO_TCP, thl + chunk)),
      t + TCP.CHECKSUM,
    );
    const v = sink(x, g, len);
    if (v !== TX_QUEUED) return v;
    done += chunk;
  } while (done < payload);
  return TX_QUEUED;
}
