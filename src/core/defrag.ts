// Fragments (ip_defrag before IPVS: the kernel director reassembles before IPVS sees a packet,
// so IPVS only ever decides whole datagrams). Every fragment is held by the reassembler
// (wire/reassembly.ts: bounded bytes, datagrams, per-source count and age) until its datagram
// is whole; the datagram is then copied into the slab's big slot and decided as any packet, so
// all its fragments go the same way. Going out it is fragmented again where it exceeds the MTU
// (xmit/common.ts). A datagram to a virtual address that times out incomplete is answered with
// ICMP "fragment reassembly time exceeded", as the director's own stack would (ip_expire).

import { ICMP_EXC_FRAGTIME, ICMP_TIME_EXCEEDED } from '../wire/icmp';
import { IPV4 } from '../wire/ipv4';
import { FRAG_COMPLETE, FRAG_HELD, Reassembler } from '../wire/reassembly';
import { V_OK } from '../wire/verdict';
import { VNET_HDR_LEN } from '../wire/vnet';
import { mayAnswer, sendIcmpError } from '../xmit/icmp-error';
import type { PacketContext } from '../xmit/packet-context';
import type { TxBatch } from '../xmit/tx-batch';
import {
  D_FRAG_BAD,
  D_FRAG_DUPLICATE,
  D_FRAG_NO_MEMORY,
  D_FRAG_OVERLAP,
  D_FRAG_TOO_BIG,
  TX,
  TX_HELD,
  TX_QUEUED,
} from '../xmit/verdict';
import type { Engine } from './engine';

/** Drop reason by reassembly outcome (FRAG_DUPLICATE.. in wire/reassembly.ts). */
export const FRAG_DROPS: readonly number[] = [
  0,
  0,
  D_FRAG_DUPLICATE,
  D_FRAG_OVERLAP,
  D_FRAG_TOO_BIG,
  D_FRAG_BAD,
  D_FRAG_NO_MEMORY,
];

export class Defrag {
  /** Fragments waiting for the rest of their datagram (bounded: wire/reassembly.ts defaults). */
  readonly frags = new Reassembler({ onExpire: (buf, off, len) => this.timedOut(buf, off, len) });

  constructor(
    private readonly e: Engine,
    private readonly x: PacketContext,
    private readonly tx: TxBatch,
  ) {}

  /** The packet at buf[off, off + len) is a fragment: held, or its datagram decided whole. */
  fragment(buf: Buffer, off: number, len: number): number {
    const e = this.e;
    const r = this.frags;
    const status = r.add(buf, off, len, e.now);
    if (status === FRAG_HELD) return TX_HELD;
    if (status !== FRAG_COMPLETE) return FRAG_DROPS[status];
    const slab = e.io.slab;
    // The big slot may still be queued from this batch: send that first.
    if (this.tx.bigQueued) this.tx.flush();
    const big = slab.bigOffset;
    const n = r.copyComplete(slab.buf, big);
    // A firewall-mark device's datagram stays: the mark does not travel with it.
    if (e.handoff !== null && this.x.mark === 0 && e.handoff(slab.buf, big, n)) {
      e.handed.out++;
      return TX_HELD;
    }
    return this.decideWhole(n);
  }

  /**
   * Decide the whole datagram of `len` bytes in the slab's big slot (reassembled here, or by
   * another engine) as one packet; what it sends is queued here.
   */
  decideWhole(len: number): number {
    const e = this.e;
    const slab = e.io.slab;
    const x = this.x;
    const tx = this.tx;
    const big = slab.bigOffset;
    if (x.vnetHdr !== 0) slab.buf.fill(0, big - VNET_HDR_LEN, big);
    x.reassembled = true;
    const v = e.process(slab.buf, big, len);
    x.reassembled = false;
    if (v === TX) {
      // Queued here, so the big slot's use is known to flush() before it is reused.
      tx.queue(x.outOff, x.outLen, x.outDev);
      tx.bigQueued = true;
      return TX_HELD;
    }
    if (v === TX_QUEUED) tx.bigQueued = true;
    return v;
  }

  /**
   * A datagram timed out incomplete (its first fragment at buf[off]): when it was to a virtual
   * address, its sender gets time exceeded, within icmp_send's rate limits. Queued; the
   * engine's tick sends it.
   */
  private timedOut(buf: Buffer, off: number, len: number): void {
    const e = this.e;
    if (len < IPV4.MIN_HEADER || !e.services.isVip(buf.readUInt32BE(off + IPV4.DST))) return;
    const slab = e.io.slab;
    const big = slab.bigOffset;
    buf.copy(slab.buf, big, off, off + len);
    const ip = this.x.ip;
    ip.reset(slab.buf, big, len);
    if (ip.checkLen() !== V_OK || !mayAnswer(ip)) return;
    if (e.icmpRate.allow(ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, ip.srcAddr)) {
      sendIcmpError(this.x, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, 0);
    }
  }
}
