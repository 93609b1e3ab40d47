/*
 * Thin syscall helpers for the lvs_native addon. Pure C, no Node headers: every function returns
 * a non-negative result or -errno, and never allocates. The N-API glue (addon.c) validates
 * arguments (bounds, lengths) before calling in here; these helpers trust what they are given.
 */
#ifndef LVS_SYSCALLS_H
#define LVS_SYSCALLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Size of a network interface name including the terminating NUL (IFNAMSIZ). */
#define LVS_IFNAMSIZ 16

/* Packets handed to one sendmmsg() / recvmmsg() call; larger batches go in chunks of this size. */
#define LVS_SEND_CHUNK 256

/* An Ethernet header: two MAC addresses and the EtherType. A frame shorter than this is not sent. */
#define LVS_ETH_HDR 14
#define LVS_ETH_ALEN 6

/* Smallest IPv4 header, and where the destination address sits in it. */
#define LVS_IPV4_MIN_HDR 20
#define LVS_IPV4_DST_OFF 16

/* Size of the virtio_net_hdr that IFF_VNET_HDR / PACKET_VNET_HDR put in front of each packet. */
#define LVS_VNET_HDR 10

/*
 * Open /dev/net/tun (non-blocking, close-on-exec) and attach it to TUN device `name`
 * (IFF_TUN | IFF_NO_PI), creating the device if it does not exist. `name` must be shorter than
 * LVS_IFNAMSIZ; it may end in "%d" or be empty to let the kernel choose. With `offload`, the
 * device also gets IFF_VNET_HDR (a LVS_VNET_HDR-byte virtio_net_hdr in front of every packet
 * read or written) and the offloads TUN_F_CSUM | TUN_F_TSO4: the kernel may hand over TCP
 * segments of up to 64 KiB and packets whose L4 checksum is left partial. On success returns the
 * fd and writes the kernel's device name to `out_name`. On failure returns -errno and points
 * `*failed_call` at the syscall that failed ("open" or "ioctl"). With `multi_queue`
 * (IFF_MULTI_QUEUE) the fd is one queue of the device; opening the same name again with the same
 * flags adds a queue (the kernel spreads what it sends into the device over the queues).
 */
int lvs_tun_open(const char *name, int offload, int multi_queue, char out_name[LVS_IFNAMSIZ],
                 const char **failed_call);

/*
 * Read up to `max_count` packets from a non-blocking fd. Packet i lands at
 * `base + i * slot_size + headroom` (at most `slot_size - headroom` bytes) and its length is
 * stored in lens[i]; a `vnet_len`-byte header read in front of it (IFF_VNET_HDR) lands in the
 * `vnet_len` bytes before that and is not counted (vnet_len <= headroom). Stops at EAGAIN;
 * retries EINTR. Returns the number of packets read, or -errno if the very first read failed
 * with anything but EAGAIN (a later error ends the batch and is reported by the next call). A
 * packet longer than the slot is truncated by the kernel; its stored length is clamped to the
 * slot so the caller never reads past it.
 */
int lvs_tun_read_batch(int fd, uint8_t *base, size_t slot_size, size_t headroom, size_t vnet_len, uint32_t max_count,
                       uint32_t *lens);

/*
 * write() packets (base + offs[i], lens[i]) for i in [0, count) into a TUN fd, one write each
 * (a TUN takes one packet per write). A per-packet error (EINVAL, EIO, ...) skips that packet;
 * EAGAIN / ENOBUFS / ENOMEM end the batch; EBADF / EFAULT end it and are returned as -errno
 * when nothing was written yet. Returns how many packets the kernel accepted.
 */
int lvs_tun_write_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count);

/* write() the whole of one packet, retrying EINTR. Returns bytes written or -errno. */
ssize_t lvs_fd_write(int fd, const uint8_t *data, size_t len);

/*
 * Open a raw IPv4 socket for sending complete IP packets: AF_INET, SOCK_RAW, IPPROTO_RAW
 * (which implies IP_HDRINCL), non-blocking, close-on-exec. Tries to raise the send buffer to
 * 4 MiB (SO_SNDBUFFORCE, then SO_SNDBUF; failure is ignored). Returns the fd or -errno.
 */
int lvs_raw_open(void);

/*
 * Send packets (base + offs[i], lens[i]) for i in [0, count) on a raw IPv4 socket with
 * sendmmsg(), each addressed to its own IPv4 destination (header bytes 16..19).
 * - Packets shorter than an IPv4 header or not IPv4 are skipped (not sent).
 * - A per-packet error (ENETUNREACH, EHOSTUNREACH, EMSGSIZE, EPERM, EACCES, EINVAL, ...) skips
 *   that packet and the rest are still sent.
 * - EAGAIN / EWOULDBLOCK / ENOBUFS / ENOMEM (socket or device queue full) end the batch.
 * - A socket-level error (EBADF, ENOTSOCK, EFAULT) ends the batch; if nothing was sent yet it is
 *   returned as -errno.
 * Returns how many packets the kernel accepted.
 */
int lvs_raw_send_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count);

/*
 * Open an AF_PACKET socket for sending complete Ethernet frames on interface `ifname`:
 * SOCK_RAW, protocol 0 (so it receives nothing), non-blocking, close-on-exec, bound to the
 * interface's index. With `vnet_hdr` (PACKET_VNET_HDR) every frame sent must start with a
 * LVS_VNET_HDR-byte virtio_net_hdr, which can ask the kernel to finish a partial checksum or
 * segment a large TCP frame. Tries to raise the send buffer to 4 MiB (SO_SNDBUFFORCE, then SO_SNDBUF;
 * failure is ignored). `ifname` must be shorter than LVS_IFNAMSIZ. On success returns the fd and
 * writes the interface's index, MAC address and MTU. On failure returns -errno and points
 * `*failed_call` at the failing syscall ("socket", "ioctl" or "bind").
 */
int lvs_packet_open(const char *ifname, int vnet_hdr, int *ifindex, uint8_t mac[LVS_ETH_ALEN], int *mtu, const char **failed_call);

/*
 * Send frames (base + offs[i], lens[i]) for i in [0, count) with sendmmsg() on a packet socket
 * bound to its interface (lvs_packet_open): no destination address, each frame goes out as is.
 * Frames shorter than `min_len` (an Ethernet header, plus the virtio_net_hdr on a PACKET_VNET_HDR
 * socket) are skipped; errors are handled as in
 * lvs_raw_send_batch. Returns how many frames the kernel accepted, or -errno (socket-level error
 * before anything was sent).
 */
int lvs_packet_send_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count,
                          uint32_t min_len);

/*
 * Open a raw socket that receives IP protocol `protocol` (e.g. 4 for IP-in-IP): AF_INET (or with
 * `ipv6` AF_INET6), SOCK_RAW, non-blocking, close-on-exec. Each datagram read from an IPv4 one
 * starts with its IPv4 header; one read from an IPv6 one starts after the IPv6 header and its
 * extension headers (the kernel strips them: for protocol 41, the inner packet). Tries to raise
 * the receive buffer to 4 MiB (SO_RCVBUFFORCE, then SO_RCVBUF; failure is ignored). Returns the
 * fd or -errno.
 */
int lvs_raw_open_proto(int protocol, int ipv6);

/*
 * Receive up to `max_count` datagrams from a non-blocking socket with recvmmsg(MSG_DONTWAIT).
 * Datagram i lands at `base + i * slot_size + headroom` (at most `slot_size - headroom` bytes)
 * and its length is stored in lens[i]; a datagram that did not fit (MSG_TRUNC) is reported with
 * length 0 so the caller drops it. Retries EINTR. Returns the number of datagrams received (0
 * when none is waiting), or -errno if the very first receive failed with anything but EAGAIN (a
 * later error ends the batch and is reported by the next call).
 */
int lvs_recv_batch(int fd, uint8_t *base, size_t slot_size, size_t headroom, uint32_t max_count, uint32_t *lens);

/*
 * The calling thread's network namespace cookie (SO_NETNS_COOKIE on a throw-away AF_UNIX
 * socket, Linux 5.14+): a 64-bit number the kernel never gives to another namespace while it
 * runs, unlike the namespace's inode number, which a later namespace may reuse. Returns 0 or
 * -errno (ENOPROTOOPT on older kernels).
 */
int lvs_netns_cookie(uint64_t *cookie);

/* close() an fd. EINTR counts as closed (Linux always releases the fd). Returns 0 or -errno. */
int lvs_fd_close(int fd);

/* Symbolic name of a positive errno value ("ENOENT"); unknown values are written as "E<n>" into buf. */
const char *lvs_errno_name(int err, char *buf, size_t buf_len);

/* Thread-safe strerror() for a positive errno value. */
const char *lvs_strerror(int err, char *buf, size_t buf_len);

#endif /* LVS_SYSCALLS_H */
