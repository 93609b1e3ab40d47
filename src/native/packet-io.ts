// The seam between the engine and packet I/O. The engine sees only this interface: NativeIo
// (TUN + raw socket through the addon) in lvsd, MemoryIo in tests and the engine benchmark.
//
// Slab layout: one Buffer, `rxSlots + genSlots` slots of `slotSize` bytes. Each slot starts with
// `headroom` free bytes so a transmitter can prepend an outer header (IPIP: 20, Ethernet: 14)
// without copying. Received packet i sits at `rxOffset(i)` with length `rxLen[i]`. The engine
// queues output packets as (txOff[k], txLen[k]) pairs pointing into the same slab: rewritten in
// place for forwarded packets, in a gen slot for packets the engine builds itself (ICMP).

export const DEFAULT_BATCH = 64;
export const DEFAULT_SLOT_SIZE = 2048;
export const DEFAULT_HEADROOM = 64;

/** txDev value: send on the raw IPv4 socket (the kernel routes by destination address). */
export const TX_DEV_RAW = 0;

export class Slab {
  readonly buf: Buffer;
  readonly rxLen: Uint32Array;
  readonly txOff: Uint32Array;
  readonly txLen: Uint32Array;
  /** Output device of each queued packet: TX_DEV_RAW, or a frame device from `openFrameDev`. */
  readonly txDev: Uint8Array;

  constructor(
    readonly rxSlots = DEFAULT_BATCH,
    readonly slotSize = DEFAULT_SLOT_SIZE,
    readonly headroom = DEFAULT_HEADROOM,
    readonly genSlots = DEFAULT_BATCH,
  ) {
    this.buf = Buffer.alloc((rxSlots + genSlots) * slotSize);
    this.rxLen = new Uint32Array(rxSlots);
    this.txOff = new Uint32Array(rxSlots + genSlots);
    this.txLen = new Uint32Array(rxSlots + genSlots);
    this.txDev = new Uint8Array(rxSlots + genSlots);
  }

  /** Offset of received packet i (after the headroom). */
  rxOffset(i: number): number {
    return i * this.slotSize + this.headroom;
  }

  /** Offset of generated-packet slot g (after the headroom). */
  genOffset(g: number): number {
    return (this.rxSlots + g) * this.slotSize + this.headroom;
  }

  /** Largest packet a slot holds after its headroom. */
  get maxPacket(): number {
    return this.slotSize - this.headroom;
  }
}

export interface PacketIo {
  readonly slab: Slab;
  /** Read up to `slab.rxSlots` packets into the slab; returns how many. Never blocks. */
  recv(): number;
  /**
   * Send packets `slab.txOff/txLen/txDev[0..count)`: TX_DEV_RAW ones on the raw IPv4 socket (the
   * kernel routes each by its IPv4 destination), the others as complete Ethernet frames on the
   * packet socket of their frame device. Returns how many the kernel accepted (the rest are dropped).
   */
  send(count: number): number;
  /**
   * Open (or return the already open) AF_PACKET socket on interface `ifname` for sending whole
   * frames; returns its txDev number (1..255).
   */
  openFrameDev(ifname: string): number;
  /** Start calling `onReadable` whenever input is waiting; `onError` gets what it throws. */
  start(onReadable: () => void, onError: (err: unknown) => void): void;
  close(): void;
}
