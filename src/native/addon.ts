// Typed loader for the lvs_native addon (native/src/addon.c): a thin, synchronous syscall layer.
// The .node file is resolved by an explicit path from the repository root (REPO_ROOT). The
// addon is loaded on first use, so importing this module never needs a built addon.
//
// Errors from the kernel are thrown as `NativeError` (code = errno name, syscall = the failing
// call); bad arguments as TypeError / RangeError before any memory is touched.

import { existsSync } from 'node:fs';
import * as path from 'node:path';

/**
 * The checkout: the nearest folder above this module with a package.json (src/native in tests,
 * dist/native when built, dist-bench/src/native in the benchmark's build).
 */
export const REPO_ROOT = ((): string => {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
export const ADDON_PATH = path.join(REPO_ROOT, 'native', 'build', 'Release', 'lvs_native.node');

/** What the addon throws for a failed syscall. */
export interface NativeError extends Error {
  /** errno name, e.g. 'EPERM', 'EBUSY'; 'E<n>' for unnamed values. */
  code: string;
  /** Negative errno, as in Node's own system errors. */
  errno: number;
  /** The failing call: 'open', 'ioctl', 'bind', 'read', 'write', 'socket', 'sendmmsg', 'recvmmsg', 'close', 'uv_poll_init', ... */
  syscall: string;
}

/** Opaque handle returned by `watch`. */
export interface WatchHandle {
  readonly __lvsWatchHandle: never;
}

export interface TunDevice {
  /** The first queue's fd (the only one of a single-queue device). */
  fd: number;
  /** One fd per queue; [fd] for a single-queue device. */
  fds: number[];
  /** The kernel's name for the device (differs from the request when it ended in `%d` or was empty). */
  name: string;
  /** Bytes of virtio_net_hdr in front of every packet read or written: 10 with offloads, else 0. */
  vnetHdr: number;
}

/** A send-only AF_PACKET socket bound to one interface (`packetOpen`). */
export interface PacketSocket {
  fd: number;
  /** The interface's index (SIOCGIFINDEX). */
  ifindex: number;
  /** The interface's hardware address, 6 bytes (all zero on loopback). */
  mac: Buffer;
  /** The interface's MTU: the largest IP packet a frame on it carries. */
  mtu: number;
}

export interface LvsNative {
  /**
   * Open /dev/net/tun and attach/create TUN `name` (IFF_TUN | IFF_NO_PI, O_NONBLOCK, O_CLOEXEC).
   * With `offload`: IFF_VNET_HDR (a 10-byte virtio_net_hdr in front of every packet read and
   * written) and TUN_F_CSUM | TUN_F_TSO4, so the kernel hands over TCP segments of up to 64 KiB
   * and packets with a partial L4 checksum. With `queues` > 1 (at most 256) the device is
   * multi-queue (IFF_MULTI_QUEUE) and `fds` has one fd per queue.
   */
  tunOpen(name: string, offload: boolean, queues?: number): TunDevice;
  /** A BPF hash map for up to `maxVips` virtual addresses, for steerAttach. Returns its fd. */
  steerMapCreate(maxVips: number): number;
  /**
   * Add (`present`, with `value`) or remove the host-order address `addr` in the map `mapFd`.
   * Address 0 is the address-only switch; its value masks the client address.
   */
  steerMapSet(mapFd: number, addr: number, value: number, present: boolean): void;
  /**
   * Load the queue-steering program (native/src/steer.c, mirrored by src/wire/steer-hash.ts) over
   * map `mapFd` and attach it to the multi-queue TUN of `tunFd` (TUNSETSTEERINGEBPF). A verifier
   * failure prints the verifier's log to stderr.
   */
  steerAttach(tunFd: number, mapFd: number, clientIsSource: boolean): void;
  /**
   * Attach lvsd's IP-in-IP segmentation program (native/src/encap.c) at the ingress of
   * interface `ifname` (a tcx link): encapsulated TCP GSO packets written into it are marked as
   * IP-in-IP for the kernel's GSO layer. Returns the link's fd; closing it detaches.
   */
  ipipGsoAttach(ifname: string): number;
  /**
   * lvs-realserver's kernel decapsulation (native/src/decap.c): the VIP map and the counter
   * map its program uses; a VIP (host order) into the map; the datagrams decapsulated so far;
   * the program attached at the ingress of `ifname` (a tcx link: returns its fd).
   */
  decapMapsCreate(): { vips: number; counts: number };
  decapVipAdd(vipsFd: number, addr: number): void;
  decapCount(countsFd: number): number;
  decapAttach(ifname: string, vipsFd: number, countsFd: number): number;
  /**
   * Read packets until EAGAIN or `maxCount`: packet i at `(firstSlot + i) * slotSize + headroom`,
   * length in `lens[firstSlot + i]` (clamped to `slotSize - headroom`), its `vnetLen`-byte
   * virtio_net_hdr (0 without offloads) in the bytes just before it. Returns the count; 0 when
   * nothing is waiting.
   */
  tunRead(
    fd: number,
    slab: Buffer,
    slotSize: number,
    headroom: number,
    maxCount: number,
    lens: Uint32Array,
    vnetLen: number,
    firstSlot: number,
  ): number;
  /** Write one packet into the TUN (the kernel receives it as if from the wire). Returns bytes written. */
  tunWrite(fd: number, buf: Buffer, offset: number, length: number): number;
  /**
   * Write packets `slab[offs[i], offs[i] + lens[i])` for i < count into the TUN, one write each
   * (each starts with its virtio_net_hdr on an offload TUN). Returns how many the kernel accepted;
   * per-packet errors skip the packet, EAGAIN/ENOBUFS end the batch early.
   */
  tunWriteBatch(fd: number, slab: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number;
  /** Raw IPv4 socket (IPPROTO_RAW, header included), non-blocking, send buffer raised to 4 MiB if allowed. */
  rawOpen(): number;
  /**
   * sendmmsg packets `slab[offs[i], offs[i] + lens[i])` for i < count, each to its own IPv4
   * destination. Returns how many the kernel accepted: per-packet errors skip the packet,
   * EAGAIN/ENOBUFS end the batch early.
   */
  sendBatch(fd: number, slab: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number;
  /**
   * AF_PACKET socket (SOCK_RAW, protocol 0: it receives nothing) bound to interface `ifname`, for
   * sending whole Ethernet frames with `sendFrames`. With `vnetHdr` (PACKET_VNET_HDR) every frame
   * sent starts with a 10-byte virtio_net_hdr (partial checksum, TCP segmentation). Non-blocking;
   * send buffer raised to 4 MiB if allowed. Throws ENODEV (syscall 'ioctl') for an unknown interface.
   */
  packetOpen(ifname: string, vnetHdr: boolean): PacketSocket;
  /**
   * sendmmsg complete frames `slab[offs[i], offs[i] + lens[i])` for i < count on a packet socket
   * from `packetOpen` (no address: each goes out on its bound interface as is). `vnetLen` is 10
   * for a PACKET_VNET_HDR socket, else 0. Frames shorter than `vnetLen` + an Ethernet header
   * (14 bytes) are skipped. Same error policy as `sendBatch`.
   */
  sendFrames(fd: number, slab: Buffer, offs: Uint32Array, lens: Uint32Array, count: number, vnetLen: number): number;
  /**
   * Raw socket that receives IP protocol `protocol` (e.g. 4, IP-in-IP), non-blocking, receive
   * buffer raised to 4 MiB if allowed: IPv4, each datagram read starting with its IPv4 header; or
   * with `ipv6` IPv6, each starting after the IPv6 headers (protocol 41: the inner packet).
   */
  rawOpenProto(protocol: number, ipv6: boolean): number;
  /**
   * recvmmsg datagrams until EAGAIN or `maxCount`: datagram i at `i * slotSize + headroom`, length
   * in `lens[i]`; a datagram longer than `slotSize - headroom` is reported with length 0 (drop it).
   * Returns the count; 0 when nothing is waiting.
   */
  recvBatch(fd: number, slab: Buffer, slotSize: number, headroom: number, maxCount: number, lens: Uint32Array): number;
  /**
   * Call `onReadable` (on the default loop) whenever `fd` is readable. An exception thrown by
   * `onReadable` goes to `onError`; one thrown by `onError` is printed to stderr. Either way the
   * watcher keeps running. A poll error (POLLERR) is passed to `onError` and stops the watcher.
   */
  watch(fd: number, onReadable: () => void, onError: (err: unknown) => void): WatchHandle;
  /** Stop a watcher and release its callbacks. Idempotent. */
  unwatch(handle: WatchHandle): void;
  close(fd: number): void;
  /**
   * The network namespace's cookie (SO_NETNS_COOKIE), in decimal: unlike the namespace's inode
   * number, never given to another namespace while the machine runs (Linux 5.14+).
   */
  netnsCookie(): string;
}

let loaded: LvsNative | undefined;

/** The addon, loaded on first call. Throws a clear error when it has not been built. */
export function loadNative(): LvsNative {
  if (loaded === undefined) {
    try {
      loaded = require(ADDON_PATH) as LvsNative;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'MODULE_NOT_FOUND' || code === 'ENOENT') {
        throw new Error(`lvs_native addon is not built (no ${ADDON_PATH}): run npm run build:native`, { cause: err });
      }
      throw new Error(`lvs_native addon at ${ADDON_PATH} failed to load: ${(err as Error).message}`, { cause: err });
    }
  }
  return loaded;
}
