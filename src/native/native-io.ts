// NativeIo: the production PacketIo. Packets come in from a TUN device (read in batches into the
// slab) and go out on one raw IPv4 socket (sendmmsg, the kernel routes each packet by its
// destination). Opening the TUN is all the native layer does to the device: bringing it up,
// addresses and routes are set by lvsd with `ip`, by the device name this class reports.

import { type LvsNative, loadNative, type TunDevice, type WatchHandle } from './addon';
import { type PacketIo, Slab } from './packet-io';

export interface NativeIoOptions {
  /** TUN device to attach to or create; may end in `%d` to let the kernel pick the number. */
  tunName: string;
  /** Slab to read into and send from; a default-sized one is allocated when omitted. */
  slab?: Slab;
}

/**
 * Open (or create) TUN device `name` and return its fd and the kernel's name for it, for callers
 * that run their own I/O on it (e.g. lvs-realserver's decapsulation TUN). Close it with `closeFd`.
 */
export function openTun(name: string): TunDevice {
  return loadNative().tunOpen(name);
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

  private constructor(
    private readonly native: LvsNative,
    readonly slab: Slab,
    /** The kernel's name for the TUN device: what `ip link set <tunName> up` needs. */
    readonly tunName: string,
    readonly tunFd: number,
    private readonly rawFd: number,
  ) {}

  /** Open the TUN device and the raw IPv4 socket. Needs CAP_NET_ADMIN and CAP_NET_RAW. */
  static open(opts: NativeIoOptions): NativeIo {
    const native = loadNative();
    const slab = opts.slab ?? new Slab();
    const tun = native.tunOpen(opts.tunName);
    let rawFd: number;
    try {
      rawFd = native.rawOpen();
    } catch (err) {
      native.close(tun.fd);
      throw err;
    }
    return new NativeIo(native, slab, tun.name, tun.fd, rawFd);
  }

  recv(): number {
    if (this.closed) throw closedError();
    const s = this.slab;
    return this.native.tunRead(this.tunFd, s.buf, s.slotSize, s.headroom, s.rxSlots, s.rxLen);
  }

  send(count: number): number {
    if (this.closed) throw closedError();
    if (count === 0) return 0;
    const s = this.slab;
    return this.native.sendBatch(this.rawFd, s.buf, s.txOff, s.txLen, count);
  }

  openFrameDev(ifname: string): number {
    throw new Error(`frame devices are not supported yet (${ifname})`);
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
  }

  /** Inject one packet into the TUN, as if it had arrived on the device (tests, diagnostics). */
  inject(buf: Buffer): void {
    if (this.closed) throw closedError();
    this.native.tunWrite(this.tunFd, buf, 0, buf.length);
  }

  /** Stop watching and close both fds. The TUN device goes away with its last fd unless persistent. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchHandle !== null) {
      this.native.unwatch(this.watchHandle);
      this.watchHandle = null;
    }
    try {
      this.native.close(this.tunFd);
    } finally {
      this.native.close(this.rawFd);
    }
  }
}
