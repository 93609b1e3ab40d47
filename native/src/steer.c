/*
 * Queue steering for a multi-queue TUN (TUNSETSTEERINGEBPF): a socket-filter eBPF program the
 * kernel runs for every packet it sends into the TUN, whose return value (modulo the number of
 * queues) picks the queue. It hashes the address and port of the flow's client side, which both
 * directions of a NAT connection share:
 *
 *   request   client:cport -> VIP:vport       the destination is a VIP: the client is the source
 *   NAT reply RIP:rport    -> client:cport    the destination is no VIP: the client is the destination
 *
 * The VIPs are the keys of a BPF hash map that lvsd keeps. An ICMP error is steered by the packet
 * it quotes (that packet went the other way: the client is its destination when its source is a
 * VIP, else its source). Fragments carry no ports after the first, so every fragment, the first
 * included, is steered by the address alone; so is anything else without ports, and everything
 * while the map holds the key 0.0.0.0 (never a VIP), whose value then masks the address:
 * persistence needs all the connections of a client's network (the service's netmask) on the
 * engine that holds its template. IPv6 goes to queue 0 (one engine forwards IPv6 so far). The same
 * function in TypeScript (src/native/steer.ts) must agree bit for bit; the netns test compares.
 *
 * The program is assembled here, instruction by instruction; no compiler or libbpf is needed.
 */
#include "steer.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bpf-asm.h"

/* Labels: the program is built in one pass with forward jumps patched at the end. */
enum {
  L_OUTER_ADDR_ONLY,
  L_ICMP,
  L_OUTER_PORTS,
  L_INNER_NO_PORTS,
  L_INNER_CHOOSE,
  L_CLIENT_SRC,
  L_HASH,
  L_COUNT
};

/* Stack slots (r10 is the frame pointer). */
#define S_SADDR (-4)
#define S_DADDR (-8)
#define S_SPORT (-12)
#define S_DPORT (-16)
#define S_ADDR (-20)
#define S_PORT (-24)
#define S_ZERO (-28)

/* The map lookup of the u32 at stack slot `slot`: r0 = value pointer or 0. Clobbers r1-r5. */
static void emit_is_vip(bpf_prog *p, int map_fd, int slot) { emit_map_lookup(p, map_fd, slot); }

/* r1, r2 = the destination's address and port (the client's), then on to the hash. */
static void emit_client_dst(bpf_prog *p) {
  emit(p, LDX_W(BPF_REG_1, BPF_REG_10, S_DADDR));
  emit(p, LDX_W(BPF_REG_2, BPF_REG_10, S_DPORT));
  emit_jump(p, JA(0), L_HASH);
}

/*
 * The client is the source (L_CLIENT_SRC) when the address at `vip_slot` is a VIP and
 * `vip_means_source`, or when it is none and not `vip_means_source`; else the destination.
 */
static void emit_choose(bpf_prog *p, int map_fd, int vip_slot, int vip_means_source) {
  emit_is_vip(p, map_fd, vip_slot);
  emit_jump(p, vip_means_source ? JNE_IMM(BPF_REG_0, 0, 0) : JEQ_IMM(BPF_REG_0, 0, 0), L_CLIENT_SRC);
  emit_client_dst(p);
}

static void build(bpf_prog *p, int map_fd, int client_is_source) {
  memset(p, 0, sizeof(*p));
  /* r6 = the skb (LD_ABS/LD_IND need it there); r7 = IP header length. */
  emit(p, MOV64_REG(BPF_REG_6, BPF_REG_1));
  emit(p, LD_ABS(BPF_B, 0));
  /* IPv6: every packet to queue 0, whose engine alone forwards IPv6 so far. */
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_0));
  emit(p, ALU32_IMM(BPF_RSH, BPF_REG_1, 4));
  emit(p, JNE_IMM(BPF_REG_1, 6, 2));
  emit(p, MOV32_IMM(BPF_REG_0, 0));
  emit(p, EXIT());
  emit(p, ALU32_IMM(BPF_AND, BPF_REG_0, 0x0f));
  emit(p, ALU32_IMM(BPF_LSH, BPF_REG_0, 2));
  emit(p, MOV64_REG(BPF_REG_7, BPF_REG_0));
  /* The outer addresses. */
  emit(p, LD_ABS(BPF_W, 12));
  emit(p, STX_W(BPF_REG_10, S_SADDR, BPF_REG_0));
  emit(p, LD_ABS(BPF_W, 16));
  emit(p, STX_W(BPF_REG_10, S_DADDR, BPF_REG_0));
  emit(p, ST_W(BPF_REG_10, S_SPORT, 0));
  emit(p, ST_W(BPF_REG_10, S_DPORT, 0));
  /* r8 = protocol. A fragment (more-fragments flag or an offset): the addresses alone. */
  emit(p, LD_ABS(BPF_B, 9));
  emit(p, MOV64_REG(BPF_REG_8, BPF_REG_0));
  emit(p, LD_ABS(BPF_H, 6));
  emit(p, ALU32_IMM(BPF_AND, BPF_REG_0, 0x3fff));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_OUTER_ADDR_ONLY);
  emit_jump(p, JEQ_IMM(BPF_REG_8, 1, 0), L_ICMP);
  emit_jump(p, JEQ_IMM(BPF_REG_8, 6, 0), L_OUTER_PORTS);
  emit_jump(p, JEQ_IMM(BPF_REG_8, 17, 0), L_OUTER_PORTS);
  emit_jump(p, JEQ_IMM(BPF_REG_8, 132, 0), L_OUTER_PORTS);
  emit_jump(p, JA(0), L_OUTER_ADDR_ONLY);

  place(p, L_OUTER_PORTS);
  emit(p, LD_IND(BPF_H, BPF_REG_7, 0));
  emit(p, STX_W(BPF_REG_10, S_SPORT, BPF_REG_0));
  emit(p, LD_IND(BPF_H, BPF_REG_7, 2));
  emit(p, STX_W(BPF_REG_10, S_DPORT, BPF_REG_0));
  /* fall through */
  place(p, L_OUTER_ADDR_ONLY);
  /* The outer packet: the client is the source when the destination is a VIP. */
  if (client_is_source) {
    emit_jump(p, JA(0), L_CLIENT_SRC);
  } else {
    emit_choose(p, map_fd, S_DADDR, 1);
  }

  place(p, L_ICMP);
  /* Errors only (unreachable 3, source quench 4, redirect 5, time exceeded 11, parameter 12). */
  emit(p, LD_IND(BPF_B, BPF_REG_7, 0));
  emit(p, JEQ_IMM(BPF_REG_0, 3, 5));
  emit(p, JEQ_IMM(BPF_REG_0, 4, 4));
  emit(p, JEQ_IMM(BPF_REG_0, 5, 3));
  emit(p, JEQ_IMM(BPF_REG_0, 11, 2));
  emit(p, JEQ_IMM(BPF_REG_0, 12, 1));
  emit_jump(p, JA(0), L_OUTER_ADDR_ONLY);
  /* The quoted packet at r7 + 8: its addresses, r8 = its protocol, r9 = its L4 offset. */
  emit(p, LD_IND(BPF_W, BPF_REG_7, 8 + 12));
  emit(p, STX_W(BPF_REG_10, S_SADDR, BPF_REG_0));
  emit(p, LD_IND(BPF_W, BPF_REG_7, 8 + 16));
  emit(p, STX_W(BPF_REG_10, S_DADDR, BPF_REG_0));
  emit(p, LD_IND(BPF_B, BPF_REG_7, 8 + 9));
  emit(p, MOV64_REG(BPF_REG_8, BPF_REG_0));
  emit(p, LD_IND(BPF_B, BPF_REG_7, 8));
  emit(p, ALU32_IMM(BPF_AND, BPF_REG_0, 0x0f));
  emit(p, ALU32_IMM(BPF_LSH, BPF_REG_0, 2));
  emit(p, ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_7));
  emit(p, ALU64_IMM(BPF_ADD, BPF_REG_0, 8));
  emit(p, MOV64_REG(BPF_REG_9, BPF_REG_0));
  /* Its ports, unless it is a fragment or has none. */
  emit(p, LD_IND(BPF_H, BPF_REG_7, 8 + 6));
  emit(p, ALU32_IMM(BPF_AND, BPF_REG_0, 0x3fff));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_INNER_NO_PORTS);
  emit(p, JEQ_IMM(BPF_REG_8, 6, 3));
  emit(p, JEQ_IMM(BPF_REG_8, 17, 2));
  emit(p, JEQ_IMM(BPF_REG_8, 132, 1));
  emit_jump(p, JA(0), L_INNER_NO_PORTS);
  emit(p, LD_IND(BPF_H, BPF_REG_9, 0));
  emit(p, STX_W(BPF_REG_10, S_SPORT, BPF_REG_0));
  emit(p, LD_IND(BPF_H, BPF_REG_9, 2));
  emit(p, STX_W(BPF_REG_10, S_DPORT, BPF_REG_0));
  emit_jump(p, JA(0), L_INNER_CHOOSE);
  place(p, L_INNER_NO_PORTS);
  place(p, L_INNER_CHOOSE);
  /* The quoted packet went the other way: the client is its destination when its source is a VIP. */
  if (client_is_source) {
    emit_client_dst(p);
  } else {
    emit_choose(p, map_fd, S_SADDR, 0);
  }

  place(p, L_CLIENT_SRC);
  emit(p, LDX_W(BPF_REG_1, BPF_REG_10, S_SADDR));
  emit(p, LDX_W(BPF_REG_2, BPF_REG_10, S_SPORT));

  /*
   * With key 0 in the map (persistence: all of a client's connections on one engine) the port is
   * left out and the address masked with the key's value (the persistence netmask).
   */
  place(p, L_HASH);
  emit(p, STX_W(BPF_REG_10, S_ADDR, BPF_REG_1));
  emit(p, STX_W(BPF_REG_10, S_PORT, BPF_REG_2));
  emit(p, ST_W(BPF_REG_10, S_ZERO, 0));
  emit_is_vip(p, map_fd, S_ZERO);
  emit(p, LDX_W(BPF_REG_1, BPF_REG_10, S_ADDR));
  emit(p, LDX_W(BPF_REG_2, BPF_REG_10, S_PORT));
  emit(p, JEQ_IMM(BPF_REG_0, 0, 3));
  emit(p, LDX_W(BPF_REG_3, BPF_REG_0, 0));
  emit(p, ALU32_REG(BPF_AND, BPF_REG_1, BPF_REG_3));
  emit(p, MOV32_IMM(BPF_REG_2, 0));
  /* h = fmix32(addr ^ port * 0x9e3779b1), in 32-bit arithmetic. */
  emit(p, MOV64_REG(BPF_REG_0, BPF_REG_2));
  emit(p, ALU32_IMM(BPF_MUL, BPF_REG_0, (int32_t)0x9e3779b1));
  emit(p, ALU32_REG(BPF_XOR, BPF_REG_0, BPF_REG_1));
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_0));
  emit(p, ALU32_IMM(BPF_RSH, BPF_REG_1, 16));
  emit(p, ALU32_REG(BPF_XOR, BPF_REG_0, BPF_REG_1));
  emit(p, ALU32_IMM(BPF_MUL, BPF_REG_0, (int32_t)0x85ebca6b));
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_0));
  emit(p, ALU32_IMM(BPF_RSH, BPF_REG_1, 13));
  emit(p, ALU32_REG(BPF_XOR, BPF_REG_0, BPF_REG_1));
  emit(p, ALU32_IMM(BPF_MUL, BPF_REG_0, (int32_t)0xc2b2ae35));
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_0));
  emit(p, ALU32_IMM(BPF_RSH, BPF_REG_1, 16));
  emit(p, ALU32_REG(BPF_XOR, BPF_REG_0, BPF_REG_1));
  emit(p, EXIT());
  resolve(p);
}

int lvs_steer_map_create(uint32_t max_vips) {
  return lvs_bpf_map_create(BPF_MAP_TYPE_HASH, 4, 4, max_vips, BPF_F_NO_PREALLOC, "lvs_vips");
}

int lvs_steer_map_set(int map_fd, uint32_t addr, uint32_t value, int present) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = (uint32_t)map_fd;
  attr.key = (uint64_t)(uintptr_t)&addr;
  if (present) {
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    return lvs_sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0 ? -errno : 0;
  }
  if (lvs_sys_bpf(BPF_MAP_DELETE_ELEM, &attr) < 0 && errno != ENOENT) return -errno;
  return 0;
}

int lvs_steer_attach(int tun_fd, int map_fd, int client_is_source, char *log, size_t log_len,
                     const char **failed_call) {
  bpf_prog *p = malloc(sizeof(*p));
  if (p == NULL) {
    *failed_call = "malloc";
    return -ENOMEM;
  }
  build(p, map_fd, client_is_source);
  *failed_call = "bpf";
  int prog = lvs_bpf_load(p, BPF_PROG_TYPE_SOCKET_FILTER, 0, "lvs_steer", log, log_len);
  free(p);
  if (prog < 0) return prog;
  *failed_call = "ioctl";
  int pfd = prog;
  int rc = ioctl(tun_fd, TUNSETSTEERINGEBPF, &pfd) < 0 ? -errno : 0;
  /* The TUN holds its own reference to the program. */
  close(pfd);
  return rc;
}
