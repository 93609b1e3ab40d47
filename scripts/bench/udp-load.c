// udp-load: the small-packet UDP generator and sink of `npm run bench` (bench/net.ts compiles
// it with gcc at run time; nothing is installed). Node cannot pace 300k packets per second.
//
//   udp-load send DST PORT PPS SECONDS PAYLOAD MAX_PACKETS
//       send PAYLOAD-byte datagrams from one socket (one flow) to DST:PORT for SECONDS but at most
//       MAX_PACKETS, paced at PPS (0 = as fast as sendmmsg goes), then print one JSON line:
//       {"sent":N,"errors":E,"seconds":S}
//       Pacing: the number of packets due by now (elapsed * PPS) is sent in sendmmsg batches of at
//       most BATCH; when none is due the sender sleeps until the next one is (timer slack 1 ns).
//   udp-load sink PORT MAX_SECONDS
//       count datagrams arriving on PORT (any local address, so a VIP on lo or on a TUN too);
//       print "ready" once bound, and "count N" (the running total) on every SIGUSR1; exit on
//       SIGTERM/SIGINT or after MAX_SECONDS.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_PAYLOAD 1472

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static int do_send(const char *dst, int port, double pps, double seconds, int payload, uint64_t max_packets) {
  if (payload < 1 || payload > MAX_PAYLOAD) {
    fprintf(stderr, "udp-load: payload must be 1..%d\n", MAX_PAYLOAD);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int sz = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, dst, &sa.sin_addr) != 1) {
    fprintf(stderr, "udp-load: bad address %s\n", dst);
    return 2;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("connect");
    return 1;
  }
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  static char buf[MAX_PAYLOAD];
  memset(buf, 'x', sizeof buf);
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = buf;
    iov[i].iov_len = (size_t)payload;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t sent = 0, errors = 0;
  const double start = now_s();
  const double end = start + seconds;
  for (;;) {
    double t = now_s();
    if (t >= end || sent >= max_packets) break;
    int n = BATCH;
    if (max_packets - sent < (uint64_t)n) n = (int)(max_packets - sent);
    if (pps > 0) {
      uint64_t due = (uint64_t)((t - start) * pps) + 1;
      if (due <= sent) {
        double next = start + (double)sent / pps;
        sleep_until(next < end ? next : end);
        continue;
      }
      if (due - sent < (uint64_t)n) n = (int)(due - sent);
    }
    int r = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (r < 0) {
      // ENOBUFS and friends: the packet is lost before leaving; count it as offered and lost.
      errors++;
      sent++;
      continue;
    }
    sent += (uint64_t)r;
  }
  double elapsed = now_s() - start;
  printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.6f}\n", (unsigned long long)sent,
         (unsigned long long)errors, elapsed);
  return 0;
}

static volatile sig_atomic_t report_flag = 0, stop_flag = 0;
static void on_usr1(int s) {
  (void)s;
  report_flag = 1;
}
static void on_stop(int s) {
  (void)s;
  stop_flag = 1;
}

static int do_sink(int port, double max_seconds) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int sz = 16 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
  // Wake up at least every 50 ms, so a report or a stop never waits for a packet.
  struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = INADDR_ANY};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("bind");
    return 1;
  }
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_handler = on_usr1; // no SA_RESTART: recvmmsg returns EINTR
  sigaction(SIGUSR1, &act, NULL);
  act.sa_handler = on_stop;
  sigaction(SIGTERM, &act, NULL);
  sigaction(SIGINT, &act, NULL);

  static char bufs[BATCH][2048];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  printf("ready\n");
  fflush(stdout);
  uint64_t count = 0;
  const double end = now_s() + max_seconds;
  while (!stop_flag) {
    int r = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (r > 0) count += (uint64_t)r;
    if (report_flag) {
      report_flag = 0;
      printf("count %llu\n", (unsigned long long)count);
      fflush(stdout);
    }
    if (now_s() >= end) break;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "send") == 0)
    return do_send(argv[2], atoi(argv[3]), atof(argv[4]), atof(argv[5]), atoi(argv[6]),
                   strtoull(argv[7], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "sink") == 0) return do_sink(atoi(argv[2]), atof(argv[3]));
  fprintf(stderr,
          "usage: udp-load send DST PORT PPS SECONDS PAYLOAD MAX_PACKETS\n"
          "       udp-load sink PORT MAX_SECONDS\n");
  return 2;
}
