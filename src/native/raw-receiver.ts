// A receive-only raw socket for one IP protocol, read in batches whenever it is readable; each
// datagram (an IPv4 one with its IPv4 header; an IPv6 one without its IPv6 headers, as IPv6 raw
// sockets hand them over) is handed to `onPacket` as a view into a reused slab. lvsd uses one for
// ICMP and one for ICMPv6, to learn path MTUs towards TUN real servers from routers' errors.

import { loadNative, type WatchHandle } from './addon';

const BATCH = 32;
const SLOT = 2048;

export class RawReceiver {
  private readonly slab = Buffer.alloc(BATCH * SLOT);
  private readonly lens = new Uint32Array(BATCH);
  private readonly watcher: WatchHandle;
  private closed = false;

  /** `onPacketShared(buf, off, len)`: buf is reused for the next datagram; copy what you keep. */
  constructor(
    protocol: number,
    onPacketShared: (buf: Buffer, off: number, len: number) => void,
    onError: (err: unknown) => void,
    ipv6 = false,
  ) {
    const native = loadNative();
    const fd = native.rawOpenProto(protocol, ipv6);
    this.fd = fd;
    this.watcher = native.watch(
      fd,
      () => {
        for (let round = 0; round < 8; round++) {
          const n = native.recvBatch(fd, this.slab, SLOT, 0, BATCH, this.lens);
          for (let i = 0; i < n; i++) if (this.lens[i] > 0) onPacketShared(this.slab, i * SLOT, this.lens[i]);
          if (n < BATCH) return;
        }
      },
      onError,
    );
  }

  private readonly fd: number;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const native = loadNative();
    native.unwatch(this.watcher);
    native.close(this.fd);
  }
}
