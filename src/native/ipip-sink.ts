// A receive-only raw socket for IP protocol 4 on the director. Its one purpose: when a router
// on the way to a TUN real server answers a too-big tunnel packet with ICMP "fragmentation
// needed", the kernel hands that error to the raw sockets of the quoted protocol, and in doing
// so records the path MTU towards the real server (ipv4_sk_update_pmtu). Without a protocol-4
// socket (and with no ipip module) the kernel would drop the error and never learn the MTU.
// lvsd then reads the learnt MTU from the route (`ip route get`). Whatever arrives is discarded.

import { loadNative, type WatchHandle } from './addon';

const DRAIN_BATCH = 16;
const DRAIN_SLOT = 2048;

export class IpipSink {
  private readonly slab = Buffer.alloc(DRAIN_BATCH * DRAIN_SLOT);
  private readonly lens = new Uint32Array(DRAIN_BATCH);
  private readonly watcher: WatchHandle;
  private closed = false;

  private constructor(private readonly fd: number) {
    const native = loadNative();
    this.watcher = native.watch(
      fd,
      () => {
        while (native.recvBatch(fd, this.slab, DRAIN_SLOT, 0, DRAIN_BATCH, this.lens) === DRAIN_BATCH) {}
      },
      () => {},
    );
  }

  static open(): IpipSink {
    return new IpipSink(loadNative().rawOpenProto(4));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const native = loadNative();
    native.unwatch(this.watcher);
    native.close(this.fd);
  }
}
