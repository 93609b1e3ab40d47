/* Thin syscall helpers; see syscalls.h for the contract of each function. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg, recvmmsg, GNU strerror_r */
#endif

#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define LVS_SOCK_BUF (4 * 1024 * 1024)

int lvs_tun_open(const char *name, int offload, int multi_queue, char out_name[LVS_IFNAMSIZ],
                 const char **failed_call) {
  size_t name_len = strlen(name);
  if (name_len >= LVS_IFNAMSIZ) {
    /* The kernel would silently truncate it; the glue rejects this first, this is a backstop. */
    *failed_call = "ioctl";
    return -EINVAL;
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *failed_call = "open";
    return -errno;
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) | (multi_queue ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, name_len);
  *failed_call = "ioctl";
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
  if (offload) {
    int hdr_len = LVS_VNET_HDR;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) goto fail;
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) < 0) goto fail;
  }

  memcpy(out_name, ifr.ifr_name, LVS_IFNAMSIZ);
  out_name[LVS_IFNAMSIZ - 1] = '\0';
  return fd;

fail:;
  int err = errno;
  close(fd);
  return -err;
}

int lvs_tun_read_batch(int fd, uint8_t *base, size_t slot_size, size_t headroom, size_t vnet_len, uint32_t max_count,
                       uint32_t *lens) {
  const size_t cap = slot_size - headroom;
  uint32_t count = 0;

  while (count < max_count) {
    ssize_t n = read(fd, base + (size_t)count * slot_size + headroom - vnet_len, cap + vnet_len);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      return count > 0 ? (int)count : -err;
    }
    /* TUN reports the full packet length even when it only copied `cap` bytes. */
    size_t len = (size_t)n > vnet_len ? (size_t)n - vnet_len : 0;
    lens[count++] = len > cap ? (uint32_t)cap : (uint32_t)len;
  }
  return (int)count;
}

ssize_t lvs_fd_write(int fd, const uint8_t *data, size_t len) {
  for (;;) {
    ssize_t n = write(fd, data, len);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

/* The socket or the device queue is full: stop here, the caller drops or retries the rest. */
static int send_error_is_backpressure(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ENOMEM;
}

/* The socket itself is unusable: no later packet can succeed either. */
static int send_error_is_fatal(int err) {
  return err == EBADF || err == ENOTSOCK || err == EFAULT;
}

int lvs_tun_write_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count) {
  int accepted = 0;
  for (uint32_t i = 0; i < count; i++) {
    ssize_t n = lvs_fd_write(fd, base + offs[i], lens[i]);
    if (n >= 0) {
      accepted++;
      continue;
    }
    int err = (int)-n;
    if (send_error_is_backpressure(err)) return accepted;
    if (send_error_is_fatal(err)) return accepted > 0 ? accepted : -err;
  }
  return accepted;
}

/* Raise a socket buffer to LVS_SOCK_BUF; without CAP_NET_ADMIN take what net.core.[rw]mem_max allows. */
static void raise_sock_buf(int fd, int force_opt, int opt) {
  int size = LVS_SOCK_BUF;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) < 0) {
    (void)setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
  }
}

int lvs_raw_open(void) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return -errno;
  raise_sock_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  return fd;
}

int lvs_raw_open_proto(int protocol, int ipv6) {
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -errno;
  raise_sock_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  return fd;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* Linux 5.14; older C library headers lack it */
#endif

int lvs_netns_cookie(uint64_t *cookie) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  socklen_t len = sizeof(*cookie);
  int r = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len);
  int err = r < 0 ? errno : 0;
  close(fd);
  return -err;
}

int lvs_packet_open(const char *ifname, int vnet_hdr, int *ifindex, uint8_t mac[LVS_ETH_ALEN], int *mtu, const char **failed_call) {
  size_t name_len = strlen(ifname);
  if (name_len >= LVS_IFNAMSIZ) {
    /* The glue rejects this first; this is a backstop against a silently truncated name. */
    *failed_call = "ioctl";
    return -EINVAL;
  }

  /* Protocol 0: no receive hook is registered, so the socket never queues a received frame. */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failed_call = "socket";
    return -errno;
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, ifname, name_len);
  *failed_call = "ioctl";
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) goto fail;
  *ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) goto fail;
  memcpy(mac, ifr.ifr_hwaddr.sa_data, LVS_ETH_ALEN);
  if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) goto fail;
  *mtu = ifr.ifr_mtu;

  if (vnet_hdr) {
    int on = 1;
    *failed_call = "setsockopt";
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof(on)) < 0) goto fail;
  }

  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof(sll));
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;
  sll.sll_ifindex = *ifindex;
  *failed_call = "bind";
  if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) goto fail;

  raise_sock_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  return fd;

fail:;
  int err = errno;
  close(fd);
  return -err;
}

/*
 * sendmmsg() packets (base + offs[i], lens[i]) in chunks of LVS_SEND_CHUNK. With `by_ipv4_dst`
 * each packet is an IPv4 packet addressed to its own destination (raw IPv4 socket); otherwise it
 * is a complete frame for the interface the socket is bound to (packet socket), and carries no
 * address. Packets shorter than `min_len` (or, by destination, not IPv4) are skipped.
 */
static int send_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count,
                      uint32_t min_len, bool by_ipv4_dst) {
  struct mmsghdr msgs[LVS_SEND_CHUNK];
  struct iovec iovs[LVS_SEND_CHUNK];
  struct sockaddr_in addrs[LVS_SEND_CHUNK];
  uint32_t next = 0;
  int accepted = 0;

  while (next < count) {
    /* Fill one chunk with the sendable packets among the next ones. */
    unsigned int filled = 0;
    while (next < count && filled < LVS_SEND_CHUNK) {
      const uint8_t *pkt = base + offs[next];
      uint32_t len = lens[next];
      next++;
      if (len < min_len) continue;

      struct msghdr *hdr = &msgs[filled].msg_hdr;
      memset(hdr, 0, sizeof(*hdr));
      if (by_ipv4_dst) {
        if ((pkt[0] >> 4) != 4) continue;
        struct sockaddr_in *sin = &addrs[filled];
        memset(sin, 0, sizeof(*sin));
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr.s_addr, pkt + LVS_IPV4_DST_OFF, 4);
        hdr->msg_name = sin;
        hdr->msg_namelen = sizeof(*sin);
      }
      iovs[filled].iov_base = (void *)pkt;
      iovs[filled].iov_len = len;
      hdr->msg_iov = &iovs[filled];
      hdr->msg_iovlen = 1;
      msgs[filled].msg_len = 0;
      filled++;
    }

    /*
     * sendmmsg() stops at the first failing message: it returns the count sent before it, or -1
     * with that message's errno when it was the first. Resume after the sent ones; on a
     * per-packet error skip exactly that packet.
     */
    unsigned int done = 0;
    while (done < filled) {
      int n = sendmmsg(fd, msgs + done, filled - done, MSG_DONTWAIT);
      if (n > 0) {
        accepted += n;
        done += (unsigned int)n;
        continue;
      }
      int err = n == 0 ? EAGAIN : errno;
      if (err == EINTR) continue;
      if (send_error_is_backpressure(err)) return accepted;
      if (send_error_is_fatal(err)) return accepted > 0 ? accepted : -err;
      done++;
    }
  }
  return accepted;
}

int lvs_raw_send_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count) {
  return send_batch(fd, base, offs, lens, count, LVS_IPV4_MIN_HDR, true);
}

int lvs_packet_send_batch(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count,
                          uint32_t min_len) {
  return send_batch(fd, base, offs, lens, count, min_len, false);
}

int lvs_recv_batch(int fd, uint8_t *base, size_t slot_size, size_t headroom, uint32_t max_count, uint32_t *lens) {
  struct mmsghdr msgs[LVS_SEND_CHUNK];
  struct iovec iovs[LVS_SEND_CHUNK];
  const size_t cap = slot_size - headroom;
  uint32_t count = 0;

  while (count < max_count) {
    unsigned int want = max_count - count < LVS_SEND_CHUNK ? max_count - count : LVS_SEND_CHUNK;
    for (unsigned int i = 0; i < want; i++) {
      iovs[i].iov_base = base + (size_t)(count + i) * slot_size + headroom;
      iovs[i].iov_len = cap;
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }

    int n = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      return count > 0 ? (int)count : -err;
    }
    for (int i = 0; i < n; i++) {
      /* A truncated datagram is incomplete: length 0 tells the caller to drop it. */
      size_t len = msgs[i].msg_len;
      lens[count + (uint32_t)i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 ? 0 : (uint32_t)(len > cap ? cap : len);
    }
    count += (uint32_t)n;
    if ((unsigned int)n < want) break; /* the queue is drained */
  }
  return (int)count;
}

int lvs_fd_close(int fd) {
  if (close(fd) < 0 && errno != EINTR) return -errno;
  return 0;
}

const char *lvs_errno_name(int err, char *buf, size_t buf_len) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case EBADFD: return "EBADFD";
    case ENOTSOCK: return "ENOTSOCK";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EMSGSIZE: return "EMSGSIZE";
    case EPROTOTYPE: return "EPROTOTYPE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
    case ENETUNREACH: return "ENETUNREACH";
    case ENETRESET: return "ENETRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNRESET: return "ECONNRESET";
    case ENOBUFS: return "ENOBUFS";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTDOWN: return "EHOSTDOWN";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EALREADY: return "EALREADY";
    case EINPROGRESS: return "EINPROGRESS";
    default:
      snprintf(buf, buf_len, "E%d", err);
      return buf;
  }
}

const char *lvs_strerror(int err, char *buf, size_t buf_len) {
  /* GNU strerror_r: returns either buf or a static string. */
  return strerror_r(err, buf, buf_len);
}
