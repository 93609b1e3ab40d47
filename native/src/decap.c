/*
 * IP-in-IP decapsulation in the kernel, for lvs-realserver in TUN mode: a tcx ingress program on
 * the real server's interfaces that takes the outer IPv4 header off a datagram from the
 * director (protocol 4) whose inner packet is for one of the VIPs, so the local stack receives
 * the inner packet as if it had come so, at softirq speed, with no copy to user space and back.
 * A GSO packet (IP-in-IP that crossed veths and switches whole, or a NIC's GRO of it) loses its
 * outer header the same way and reaches the stack whole.
 * What it leaves alone goes on to lvs-realserver's user-space decapsulator (src/realserver/
 * decap.ts) through its raw socket, which decides as before: outer headers with options,
 * fragments (the stack reassembles them first), outer ECN CE (RFC 6040's rules are applied
 * there), anything not IPv4 inside, and inner destinations that are no VIP (the
 * user-space side drops and counts them).
 *
 * The VIPs are the keys of a BPF hash map (network byte order, as they appear in the packet);
 * a one-slot array map counts the datagrams decapsulated here. Assembled by hand like the
 * other programs (steer.c, encap.c); attached with a tcx link per interface.
 */
#include "decap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/pkt_cls.h>
#include <string.h>
#include <unistd.h>

#include "bpf-asm.h"

/* The outer and inner IPv4 headers (20 bytes each) are copied to the stack at fp - 40. */
#define HDRS (-40)
#define INNER (HDRS + 20)
#define KEY0 (-44)

enum { L_PASS };

static void build(bpf_prog *p, int vips_fd, int count_fd) {
  memset(p, 0, sizeof(*p));
  emit(p, MOV64_REG(BPF_REG_6, BPF_REG_1));
  /* IPv4 only (skb->protocol is big-endian in a u32 field: 0x0800 reads as 0x0008 here). */
  emit(p, LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, protocol)));
  emit_jump(p, JNE_IMM(BPF_REG_2, (int32_t)htons(0x0800), 0), L_PASS);
  /* bpf_skb_load_bytes_relative(skb, 0, fp + HDRS, 40, BPF_HDR_START_NET) */
  emit_skb_bytes(p, BPF_FUNC_skb_load_bytes_relative, HDRS, 40, BPF_HDR_START_NET);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_PASS);
  /* Outer: no options, protocol 4, not a fragment, not CE. */
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, HDRS));
  emit_jump(p, JNE_IMM(BPF_REG_2, 0x45, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, HDRS + 9));
  emit_jump(p, JNE_IMM(BPF_REG_2, 4, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, HDRS + 6));
  emit(p, ALU64_IMM(BPF_AND, BPF_REG_2, 0x3f));
  emit_jump(p, JNE_IMM(BPF_REG_2, 0, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, HDRS + 7));
  emit_jump(p, JNE_IMM(BPF_REG_2, 0, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, HDRS + 1));
  emit(p, ALU64_IMM(BPF_AND, BPF_REG_2, 3));
  emit_jump(p, JEQ_IMM(BPF_REG_2, 3, 0), L_PASS);
  /* Inner: IPv4, to a VIP (the map's key is its destination as it stands in the packet). */
  emit(p, LDX_B(BPF_REG_2, BPF_REG_10, INNER));
  emit(p, ALU64_IMM(BPF_RSH, BPF_REG_2, 4));
  emit_jump(p, JNE_IMM(BPF_REG_2, 4, 0), L_PASS);
  emit_map_lookup(p, vips_fd, INNER + 16);
  emit_jump(p, JEQ_IMM(BPF_REG_0, 0, 0), L_PASS);
  /* bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, FIXED_GSO): the outer header out; a GSO
   * packet's segment size is the inner payload's and stays. */
  emit_adjust_room_mac(p, -20, BPF_F_ADJ_ROOM_FIXED_GSO);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_PASS);
  /* Count it: counts[0] += 1. */
  emit(p, ST_W(BPF_REG_10, KEY0, 0));
  emit_map_lookup(p, count_fd, KEY0);
  emit_jump(p, JEQ_IMM(BPF_REG_0, 0, 0), L_PASS);
  emit(p, MOV64_IMM(BPF_REG_1, 1));
  emit(p, ATOMIC_ADD_DW(BPF_REG_0, 0, BPF_REG_1));
  place(p, L_PASS);
  emit(p, MOV64_IMM(BPF_REG_0, TC_ACT_OK));
  emit(p, EXIT());
  resolve(p);
}

int lvs_decap_maps_create(int *vips_fd, int *count_fd) {
  int v = lvs_bpf_map_create(BPF_MAP_TYPE_HASH, 4, 4, 256, 0, "lvs_rs_vips");
  if (v < 0) return v;
  int c = lvs_bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, "lvs_rs_decap");
  if (c < 0) {
    close(v);
    return c;
  }
  *vips_fd = v;
  *count_fd = c;
  return 0;
}

int lvs_decap_vip_add(int vips_fd, uint32_t addr) {
  uint32_t key = htonl(addr), value = 1;
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = (uint32_t)vips_fd;
  attr.key = (uint64_t)(uintptr_t)&key;
  attr.value = (uint64_t)(uintptr_t)&value;
  attr.flags = BPF_ANY;
  return lvs_sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0 ? -errno : 0;
}

int lvs_decap_count(int count_fd, uint64_t *out) {
  uint32_t key = 0;
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = (uint32_t)count_fd;
  attr.key = (uint64_t)(uintptr_t)&key;
  attr.value = (uint64_t)(uintptr_t)out;
  return lvs_sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0 ? -errno : 0;
}

int lvs_decap_attach(int ifindex, int vips_fd, int count_fd, char *log, size_t log_len, const char **failed_call) {
  bpf_prog p;
  build(&p, vips_fd, count_fd);
  return lvs_bpf_tcx_ingress(&p, "lvs_rs_decap", ifindex, log, log_len, failed_call);
}
