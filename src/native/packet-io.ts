// The seam between the engine and packet I/O. The engine sees only this interface: NativeIo
// (TUN + raw socket through the addon) in lvsd, MemoryIo in tests and the engine benchmark.
//
// Slab layout: one Buffer, `rxSlots` slots of `slotSize` bytes, then `genSlots` slots of
// `genSlotSize` bytes, then one big slot for a whole IPv4 datagram (a reassembled one). Each slot starts with `headroom` free bytes so a transmitter can prepend an
// outer header (IPIP: 20, Ethernet: 14, virtio_net_hdr: 10) without copying. Received packet i
// sits at `rxOffset(i)` with length `rxLen[i]`; with offloads (`vnetHdr` = 10) the TUN's
// virtio_net_hdr for it sits in the 10 bytes before. The engine queues output packets as
// (txOff[k], txLen[k], txDev[k]) pointing into the same slab: rewritten in place for forwarded
// packets, in a gen slot for packets the engine builds itself (ICMP, software segments). What is
// queued is exactly what the device gets, so TX_DEV_TUN entries and frames for a packet socket
// with PACKET_VNET_HDR start with their virtio_net_hdr.

export const DEFAULT_BATCH = 64;
export const DEFAULT_SLOT_SIZE = 2048;
export const DEFAULT_HEADROOM = 64;
/** An rx slot with offloads on: a 64 KiB TCP segment (IPv4 total length <= 65535) after the headroom. */
export const OFFLOAD_SLOT_SIZE = 65536 + 128;
/** A gen slot with offloads on: room for one segment of a 9000-byte MTU plus an outer header. */
export const OFFLOAD_GEN_SLOT_SIZE = 9216 + 128;

/** The big slot: the largest IPv4 datagram after the headroom. */
export const BIG_SLOT_SIZE = 65536 + 128;

/** txDev value: send on the raw IPv4 socket (the kernel routes by destination address). */
export const TX_DEV_RAW = 0;
/**
 * txDev value: write into the TUN (virtio_net_hdr first), so the kernel forwards the packet
 * itself: how a 64 KiB segment leaves, segmented by the kernel or the next device's TSO.
 */
export const TX_DEV_TUN = 255;

export class Slab {
  readonly buf: Buffer;
  readonly rxLen: Uint32Array;
  /** Firewall mark of each received packet: that of the mark device it came from, else 0. */
  readonly rxMark: Uint32Array;
  readonly txOff: Uint32Array;
  readonly txLen: Uint32Array;
  /** Output device of each queued packet: TX_DEV_RAW, TX_DEV_TUN or a frame device from `openFrameDev`. */
  readonly txDev: Uint8Array;

  constructor(
    readonly rxSlots = DEFAULT_BATCH,
    readonly slotSize = DEFAULT_SLOT_SIZE,
    readonly headroom = DEFAULT_HEADROOM,
    readonly genSlots = DEFAULT_BATCH,
    readonly genSlotSize = slotSize,
    /** Bytes of virtio_net_hdr before each received packet: 10 with TUN offloads, else 0. */
    readonly vnetHdr = 0,
  ) {
    if (vnetHdr > headroom) throw new RangeError(`Slab: vnetHdr ${vnetHdr} exceeds the headroom ${headroom}`);
    this.buf = Buffer.alloc(rxSlots * slotSize + genSlots * genSlotSize + BIG_SLOT_SIZE);
    this.rxLen = new Uint32Array(rxSlots);
    this.rxMark = new Uint32Array(rxSlots);
    this.txOff = new Uint32Array(rxSlots + genSlots);
    this.txLen = new Uint32Array(rxSlots + genSlots);
    this.txDev = new Uint8Array(rxSlots + genSlots);
  }

  /** A slab for a TUN with offloads: 64 KiB rx slots, a virtio_net_hdr before each packet. */
  static forOffload(rxSlots = DEFAULT_BATCH): Slab {
    return new Slab(rxSlots, OFFLOAD_SLOT_SIZE, DEFAULT_HEADROOM, DEFAULT_BATCH, OFFLOAD_GEN_SLOT_SIZE, 10);
  }

  /** Offset of received packet i (after the headroom). */
  rxOffset(i: number): number {
    return i * this.slotSize + this.headroom;
  }

  /** Offset of generated-packet slot g (after the headroom). */
  genOffset(g: number): number {
    return this.rxSlots * this.slotSize + g * this.genSlotSize + this.headroom;
  }

  /** Offset of the big slot (after the headroom): room for 65535 bytes. */
  get bigOffset(): number {
    return this.rxSlots * this.slotSize + this.genSlots * this.genSlotSize + this.headroom;
  }

  /** Largest packet an rx slot holds after its headroom. */
  get maxPacket(): number {
    return this.slotSize - this.headroom;
  }

  /** Largest packet a gen slot holds after its headroom. */
  get genCapacity(): number {
    return this.genSlotSize - this.headroom;
  }
}

export interface PacketIo {
  readonly slab: Slab;
  /** Read up to `slab.rxSlots` packets into the slab; returns how many. Never blocks. */
  recv(): number;
  /**
   * Send packets `slab.txOff/txLen/txDev[0..count)`: TX_DEV_RAW ones on the raw IPv4 socket (the
   * kernel routes each by its IPv4 destination), TX_DEV_TUN ones written back into the TUN
   * (virtio_net_hdr first), the others as complete Ethernet frames on the packet socket of their
   * frame device (virtio_net_hdr first when the slab has one). Returns how many the kernel
   * accepted (the rest are dropped).
   */
  send(count: number): number;
  /**
   * Open (or return the already open) AF_PACKET socket on interface `ifname` for sending whole
   * frames (with PACKET_VNET_HDR when `slab.vnetHdr` is set); returns its txDev number (1..254).
   */
  openFrameDev(ifname: string): number;
  /**
   * Open an input device for firewall mark `mark` (firewall-mark services): packets read from it
   * get slab.rxMark = mark. Returns the device's name, for the host to route marked packets into.
   */
  openMarkDev(mark: number): string;
  /** Close the input device of `mark` (no-op when none is open). */
  closeMarkDev(mark: number): void;
  /** Start calling `onReadable` whenever input is waiting; `onError` gets what it throws. */
  start(onReadable: () => void, onError: (err: unknown) => void): void;
  close(): void;
}
