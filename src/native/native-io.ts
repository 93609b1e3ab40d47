// NativeIo: the production PacketIo. Packets come in from a TUN device (read in batches into the
// slab) and go out on one raw IPv4 socket (sendmmsg, the kernel routes each packet by its
// destination), as complete Ethernet frames on the AF_PACKET socket of a frame device (DR: the
// packet framed for the real server's MAC), or back into the TUN (offloads: 64 KiB segments the
// kernel forwards and segments itself). Opening the TUN is all the native layer does to
// the device: bringing it up, addresses and routes are set by lvsd with `ip`, by the device name
// this class reports.

import { type LvsNative, loadNative, type PacketSocket, type TunDevice, type WatchHandle } from './addon';
import { type PacketIo, Slab, TX_DEV_RAW, TX_DEV_TUN } from './packet-io';

/** Firewall-mark input TUNs are named <prefix><N> by the kernel. */
export const MARK_DEV_PREFIX = 'lvsm';

/** Frame devices are numbered 1..MAX_FRAME_DEVS (txDev is a byte; 0 is the raw socket, 255 the TUN). */
export const MAX_FRAME_DEVS = 254;

/** What a transmitter needs to know about a frame device: its own MAC (frame source) and MTU. */
export interface FrameDevInfo {
  readonly ifname: string;
  readonly ifindex: number;
  /** 6 bytes. */
  readonly mac: Buffer;
  readonly mtu: number;
}

/** An input TUN for one firewall mark. */
interface MarkDev {
  readonly mark: number;
  readonly fd: number;
  readonly name: string;
  watch: WatchHandle | null;
}

/** An open frame device: its packet socket and its share of the batch being sent. */
interface FrameDev extends FrameDevInfo {
  readonly fd: number;
  /** Offsets and lengths of this device's packets in the current batch, sized like slab.txOff. */
  readonly off: Uint32Array;
  readonly len: Uint32Array;
  count: number;
}

export interface NativeIoOptions {
  /** TUN device to attach to or create; may end in `%d` to let the kernel pick the number. */
  tunName: string;
  /**
   * Open the TUN with offloads (IFF_VNET_HDR, TUN_F_CSUM | TUN_F_TSO4): 64 KiB TCP segments and
   * partial checksums come in. The slab must then be one with `vnetHdr` 10 (Slab.forOffload).
   */
  offload?: boolean;
  /** Slab to read into and send from; a default-sized one is allocated when omitted. */
  slab?: Slab;
}

/**
 * Open (or create) TUN device `name` with IFF_VNET_HDR (every packet written into it starts with
 * a 10-byte virtio_net_hdr) and return its fd and the kernel's name for it, for callers that run
 * their own I/O on it (lvs-realserver's decapsulation TUN, which passes partial checksums on).
 * Close it with `closeFd`.
 */
export function openTun(name: string): TunDevice {
  return loadNative().tunOpen(name, true);
}

/**
 * Attach the IP-in-IP segmentation program (native/src/encap.c) at the ingress of TUN `name`, so
 * TUN mode may write whole encapsulated GSO packets back into it. Returns the link's fd (close it
 * with `closeFd` to detach); throws where the kernel cannot (no tcx: before Linux 6.6).
 */
export function attachIpipGso(name: string): number {
  return loadNative().ipipGsoAttach(name);
}

/** Close an fd returned by `openTun`. */
export function closeFd(fd: number): void {
  loadNative().close(fd);
}

function closedError(): Error {
  return Object.assign(new Error('NativeIo is closed'), { code: 'EBADF' });
}

export class NativeIo implements PacketIo {
  private watchHandle: WatchHandle | null = null;
  private closed = false;
  /** Open frame devices by txDev number; index 0 (the raw socket) is unused. */
  private readonly frameDevs: (FrameDev | undefined)[] = [undefined];
  private readonly frameDevByName = new Map<string, number>();
  /** The raw-socket and TUN shares of a mixed batch, sized like slab.txOff. */
  private readonly rawOff: Uint32Array;
  private readonly rawLen: Uint32Array;
  private readonly tunOff: Uint32Array;
  private readonly tunLen: Uint32Array;
  /** Packets queued with a txDev no frame device was opened for (an engine bug): dropped. */
  droppedNoDev = 0;
  /** Input TUNs of firewall-mark services. */
  private readonly markDevs: MarkDev[] = [];
  /** The readiness callbacks given to start(), for devices opened later. */
  private readable: (() => void) | null = null;
  private readError: ((err: unknown) => void) | null = null;

  private constructor(
    private readonly native: LvsNative,
    readonly slab: Slab,
    /** The kernel's name for the TUN device: what `ip link set <tunName> up` needs. */
    readonly tunName: string,
    readonly tunFd: number,
    private readonly rawFd: number,
  ) {
    this.rawOff = new Uint32Array(slab.txOff.length);
    this.rawLen = new Uint32Array(slab.txOff.length);
    this.tunOff = new Uint32Array(slab.txOff.length);
    this.tunLen = new Uint32Array(slab.txOff.length);
  }

  /** Open the TUN device and the raw IPv4 socket. Needs CAP_NET_ADMIN and CAP_NET_RAW. */
  static open(opts: NativeIoOptions): NativeIo {
    const native = loadNative();
    const offload = opts.offload ?? false;
    const slab = opts.slab ?? (offload ? Slab.forOffload() : new Slab());
    const want = offload ? 10 : 0;
    if (slab.vnetHdr !== want) {
      throw new RangeError(
        `NativeIo.open: a TUN ${offload ? 'with' : 'without'} offloads needs a slab with vnetHdr ${want}`,
      );
    }
    const tun = native.tunOpen(opts.tunName, offload);
    let rawFd: number;
    try {
      rawFd = native.rawOpen();
    } catch (err) {
      native.close(tun.fd);
      throw err;
    }
    return new NativeIo(native, slab, tun.name, tun.fd, rawFd);
  }

  /**
   * A NativeIo on one queue of a multi-queue TUN that another thread opened (`tunFd`, by number:
   * fds belong to the process). It opens its own raw socket; close() leaves the queue's fd open
   * for its owner.
   */
  static onQueue(tunFd: number, tunName: string, slab: Slab): NativeIo {
    const native = loadNative();
    const io = new NativeIo(native, slab, tunName, tunFd, native.rawOpen());
    io.ownsTun = false;
    return io;
  }

  /**
   * The sockets this NativeIo opened itself: the raw socket and the frame devices' packet
   * sockets (not the TUN or mark devices it was given). For an owner that must close them when
   * the thread using them is gone without closing them.
   */
  socketFds(): number[] {
    const fds = [this.rawFd];
    for (let d = 1; d < this.frameDevs.length; d++) fds.push(this.frameDevs[d]!.fd);
    return fds;
  }

  /** close() closes the TUN fd (false: another thread owns it). */
  private ownsTun = true;

  /**
   * Read firewall mark `mark`'s packets from `fd` (the device openMarkDev opened, or one queue of
   * a multi-queue mark device opened elsewhere); closeMarkDev closes it.
   */
  addMarkDev(mark: number, fd: number, name: string): void {
    if (this.closed) throw closedError();
    if (this.markDevs.some((m) => m.mark === mark)) return;
    const dev: MarkDev = { mark, fd, name, watch: null };
    if (this.readable !== null) dev.watch = this.native.watch(fd, this.readable, this.readError!);
    this.markDevs.push(dev);
  }

  recv(): number {
    if (this.closed) throw closedError();
    const s = this.slab;
    let n = this.native.tunRead(this.tunFd, s.buf, s.slotSize, s.headroom, s.rxSlots, s.rxLen, s.vnetHdr, 0);
    const marks = this.markDevs;
    if (marks.length === 0) return n;
    // Firewall-mark devices fill the rest of the batch; each packet carries its device's mark.
    s.rxMark.fill(0, 0, n);
    for (let i = 0; i < marks.length && n < s.rxSlots; i++) {
      const m = marks[i]!;
      const k = this.native.tunRead(m.fd, s.buf, s.slotSize, s.headroom, s.rxSlots - n, s.rxLen, s.vnetHdr, n);
      s.rxMark.fill(m.mark, n, n + k);
      n += k;
    }
    return n;
  }

  /**
   * A TUN device for firewall mark `mark` (kernel-named lvsm<N>, same offloads as the main one):
   * the host routes packets with that mark into it, and recv() tags what it reads from it.
   */
  openMarkDev(mark: number): string {
    if (this.closed) throw closedError();
    const known = this.markDevs.find((m) => m.mark === mark);
    if (known !== undefined) return known.name;
    const tun = this.native.tunOpen(`${MARK_DEV_PREFIX}%d`, this.slab.vnetHdr > 0);
    this.addMarkDev(mark, tun.fd, tun.name);
    return tun.name;
  }

  closeMarkDev(mark: number): void {
    const i = this.markDevs.findIndex((m) => m.mark === mark);
    if (i < 0) return;
    const [dev] = this.markDevs.splice(i, 1);
    if (dev!.watch !== null) this.native.unwatch(dev!.watch);
    this.native.close(dev!.fd);
  }

  send(count: number): number {
    if (this.closed) throw closedError();
    if (count === 0) return 0;
    const s = this.slab;
    const dev = s.txDev;
    let i = 0;
    while (i < count && dev[i] === TX_DEV_RAW) i++;
    // The common case: everything goes out on the raw socket, straight from the slab's arrays.
    if (i === count) return this.native.sendBatch(this.rawFd, s.buf, s.txOff, s.txLen, count);
    return this.sendMixed(count);
  }

  /** A batch with frames or TUN writes in it: partition by txDev, then one native call per device. */
  private sendMixed(count: number): number {
    const s = this.slab;
    if (count > s.txOff.length) throw new RangeError(`send: count ${count} exceeds the slab's ${s.txOff.length} slots`);
    const devs = this.frameDevs;
    for (let d = 1; d < devs.length; d++) devs[d]!.count = 0;
    const { txOff, txLen, txDev } = s;
    const rawOff = this.rawOff;
    const rawLen = this.rawLen;
    let rawCount = 0;
    let tunCount = 0;
    for (let i = 0; i < count; i++) {
      const d = txDev[i]!;
      if (d === TX_DEV_RAW) {
        rawOff[rawCount] = txOff[i]!;
        rawLen[rawCount] = txLen[i]!;
        rawCount++;
        continue;
      }
      if (d === TX_DEV_TUN) {
        this.tunOff[tunCount] = txOff[i]!;
        this.tunLen[tunCount] = txLen[i]!;
        tunCount++;
        continue;
      }
      const f = devs[d];
      if (f === undefined) {
        this.droppedNoDev++;
        continue;
      }
      f.off[f.count] = txOff[i]!;
      f.len[f.count] = txLen[i]!;
      f.count++;
    }

    let accepted = rawCount > 0 ? this.native.sendBatch(this.rawFd, s.buf, rawOff, rawLen, rawCount) : 0;
    if (tunCount > 0) accepted += this.native.tunWriteBatch(this.tunFd, s.buf, this.tunOff, this.tunLen, tunCount);
    for (let d = 1; d < devs.length; d++) {
      const f = devs[d]!;
      if (f.count > 0) accepted += this.native.sendFrames(f.fd, s.buf, f.off, f.len, f.count, s.vnetHdr);
    }
    return accepted;
  }

  openFrameDev(ifname: string): number {
    if (this.closed) throw closedError();
    const known = this.frameDevByName.get(ifname);
    if (known !== undefined) return known;
    if (this.frameDevs.length > MAX_FRAME_DEVS) {
      throw new RangeError(`openFrameDev(${ifname}): at most ${MAX_FRAME_DEVS} frame devices`);
    }
    const sock: PacketSocket = this.native.packetOpen(ifname, this.slab.vnetHdr > 0);
    const slots = this.slab.txOff.length;
    const dev = this.frameDevs.length;
    this.frameDevs.push({
      ifname,
      ifindex: sock.ifindex,
      mac: sock.mac,
      mtu: sock.mtu,
      fd: sock.fd,
      off: new Uint32Array(slots),
      len: new Uint32Array(slots),
      count: 0,
    });
    this.frameDevByName.set(ifname, dev);
    return dev;
  }

  /** The interface behind a txDev number from `openFrameDev` (undefined for unknown numbers and the raw socket). */
  frameDevInfo(txDev: number): FrameDevInfo | undefined {
    const f = this.frameDevs[txDev];
    return f === undefined ? undefined : { ifname: f.ifname, ifindex: f.ifindex, mac: f.mac, mtu: f.mtu };
  }

  start(onReadable: () => void, onError: (err: unknown) => void): void {
    if (this.closed) throw closedError();
    if (this.watchHandle !== null) throw new Error('NativeIo.start: already started');
    // The addon already routes exceptions to onError; catching here as well keeps the common case
    // in JS and leaves the native path as the backstop (e.g. for a throwing onError).
    const guarded = (): void => {
      try {
        onReadable();
      } catch (err) {
        onError(err);
      }
    };
    this.watchHandle = this.native.watch(this.tunFd, guarded, onError);
    this.readable = guarded;
    this.readError = onError;
    for (const m of this.markDevs) m.watch = this.native.watch(m.fd, guarded, onError);
  }

  /**
   * Inject one IPv4 packet into the TUN, as if it had arrived on the device (tests, diagnostics);
   * on an offload TUN it goes with an all-zero virtio_net_hdr (nothing partial, no segmentation).
   */
  inject(buf: Buffer): void {
    if (this.closed) throw closedError();
    const vnet = this.slab.vnetHdr;
    const pkt = vnet === 0 ? buf : Buffer.concat([Buffer.alloc(vnet), buf]);
    this.native.tunWrite(this.tunFd, pkt, 0, pkt.length);
  }

  /**
   * Stop watching and close every fd: the TUN, the raw socket and the frame devices' packet
   * sockets. The TUN device goes away with its last fd unless persistent. Idempotent; if a close
   * fails the others are still closed and the first error is thrown.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchHandle !== null) {
      this.native.unwatch(this.watchHandle);
      this.watchHandle = null;
    }
    for (const m of this.markDevs) if (m.watch !== null) this.native.unwatch(m.watch);
    const fds = [this.rawFd, ...this.markDevs.map((m) => m.fd)];
    if (this.ownsTun) fds.push(this.tunFd);
    this.markDevs.length = 0;
    for (let d = 1; d < this.frameDevs.length; d++) fds.push(this.frameDevs[d]!.fd);
    this.frameDevs.length = 1;
    this.frameDevByName.clear();
    let first: unknown;
    for (const fd of fds) {
      try {
        this.native.close(fd);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}
