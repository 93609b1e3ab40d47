// One batch of output. While the engine decides a batch of input, every packet to send (a
// rewritten input packet in its receive slot, or one built in a generated-packet slot: ICMP
// errors, fragments, resets, GSO segments) is queued here as a descriptor; the batch leaves in
// one call at the end (sendmmsg on each socket). Generated-packet slots are few: when they run
// out mid-batch, what is queued is sent first and the slots are reused.

import type { PacketIo } from '../native/packet-io';
import { D_TX_FAILED } from './verdict';

export class TxBatch {
  /** Descriptors queued in this batch. */
  private count = 0;
  /** Generated-packet slots handed out since the last flush. */
  private gen = 0;
  private ipId = (Math.random() * 0x10000) >>> 0;
  /** The slab's big slot (a reassembled datagram) holds a packet queued in this batch. */
  bigQueued = false;
  /** Packets the kernel accepted. */
  sent = 0;

  /** `drops` is the engine's drop counter array (packets the kernel refused: tx_failed). */
  constructor(
    private readonly io: PacketIo,
    private readonly drops: Float64Array,
  ) {}

  /** A batch of input begins: no descriptor queued, every generated slot free. */
  begin(): void {
    this.count = 0;
    this.gen = 0;
  }

  /** Queue bytes slab[off, off + len) for device `dev`. False when the batch is full. */
  queue(off: number, len: number, dev: number): boolean {
    const slab = this.io.slab;
    const n = this.count;
    if (n === slab.txOff.length) return false;
    slab.txOff[n] = off;
    slab.txLen[n] = len;
    slab.txDev[n] = dev;
    this.count = n + 1;
    return true;
  }

  /**
   * Offset of a free slot for a generated packet (headroom before it). When all are in use the
   * queued output is sent first and the slots reused, so queue each slot before asking for the next.
   */
  genSlot(): number {
    const slab = this.io.slab;
    if (this.gen === slab.genSlots) {
      this.flush();
      this.gen = 0;
    }
    return slab.genOffset(this.gen++);
  }

  /** Largest packet a generated slot holds. */
  get slotCapacity(): number {
    return this.io.slab.genCapacity;
  }

  /** The next IPv4 identification for a header this director originates. */
  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  /** Send what is queued; what the kernel refuses is counted as tx_failed. */
  flush(): void {
    const n = this.count;
    this.bigQueued = false;
    if (n === 0) return;
    this.count = 0;
    const sent = this.io.send(n);
    this.sent += sent;
    if (sent < n) this.drops[D_TX_FAILED] += n - sent;
  }
}
