/*
 * IP-in-IP segmentation by the kernel (tcx ingress on lvsd's TUN): lvsd writes a TCP GSO packet
 * of a tunnelled connection back into its TUN already encapsulated, the outer IPv4 header
 * (director -> real server, protocol 4) in front of the inner packet, with the inner packet's
 * virtio_net_hdr (gso TCPV4, csum_start at the inner TCP header). The kernel cannot tell from
 * that header that the packet is encapsulated, and would refuse to segment it; this program,
 * run on every packet lvsd writes into the TUN, marks such a packet as IP-in-IP for the GSO
 * layer: it keeps the outer header aside, removes it (bpf_skb_adjust_room, shrinking at the
 * network header, gso_size kept) and puts it back with BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, which
 * sets the inner headers, skb->encapsulation and SKB_GSO_IPXIP4. The kernel then forwards it
 * as a 64 KiB packet and cuts it (or the device does) into IP-in-IP segments, each with its
 * own outer header: ipip's GSO callbacks are built into the IPv4 stack even without the ipip
 * module. Everything else passes untouched: packets that are not GSO or not protocol 4.
 *
 * Assembled by hand like the steering program (steer.c); attached with a tcx link
 * (BPF_LINK_CREATE, BPF_TCX_INGRESS), which the kernel removes when its fd is closed.
 */
#include "encap.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The tcx attach point (Linux 6.6); older uapi headers lack the name. */
#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46
#endif

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define LDX_W(d, s, off) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, off, 0)
#define LDX_B(d, s, off) INSN(BPF_LDX | BPF_MEM | BPF_B, d, s, off, 0)
#define JEQ_IMM(d, i, off) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, off, i)
#define JNE_IMM(d, i, off) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, off, i)
#define JGT_REG(d, s, off) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, off, 0)
#define CALL(fn) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, fn)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Where the outer header waits on the stack while the room is adjusted (20 bytes, 8-aligned). */
#define SAVE (-24)
#define OUTER 20

enum { L_PASS, L_DROP, L_COUNT };

typedef struct {
  struct bpf_insn insn[64];
  int n;
  int label[L_COUNT];
  struct {
    int at, label;
  } fix[16];
  int nfix;
} prog_buf;

static void emit(prog_buf *p, struct bpf_insn i) { p->insn[p->n++] = i; }
static void emit_jump(prog_buf *p, struct bpf_insn i, int label) {
  p->fix[p->nfix].at = p->n;
  p->fix[p->nfix].label = label;
  p->nfix++;
  emit(p, i);
}

static void build(prog_buf *p) {
  memset(p, 0, sizeof(*p));
  /* r6 = the skb */
  emit(p, MOV64_REG(BPF_REG_6, BPF_REG_1));
  /* Only GSO packets. */
  emit(p, LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, gso_size)));
  emit_jump(p, JEQ_IMM(BPF_REG_2, 0, 0), L_PASS);
  /* An IPv4 header without options, protocol 4, within the linear data. */
  emit(p, LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, data)));
  emit(p, LDX_W(BPF_REG_3, BPF_REG_6, offsetof(struct __sk_buff, data_end)));
  emit(p, MOV64_REG(BPF_REG_4, BPF_REG_2));
  emit(p, ADD64_IMM(BPF_REG_4, OUTER));
  emit_jump(p, JGT_REG(BPF_REG_4, BPF_REG_3, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_4, BPF_REG_2, 0));
  emit_jump(p, JNE_IMM(BPF_REG_4, 0x45, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_4, BPF_REG_2, 9));
  emit_jump(p, JNE_IMM(BPF_REG_4, 4, 0), L_PASS);
  /* bpf_skb_load_bytes(skb, 0, fp + SAVE, 20): keep the outer header. */
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, 0));
  emit(p, MOV64_REG(BPF_REG_3, BPF_REG_10));
  emit(p, ADD64_IMM(BPF_REG_3, SAVE));
  emit(p, MOV64_IMM(BPF_REG_4, OUTER));
  emit(p, CALL(BPF_FUNC_skb_load_bytes));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_PASS);
  /* bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, FIXED_GSO): the outer header out. */
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, -OUTER));
  emit(p, MOV64_IMM(BPF_REG_3, BPF_ADJ_ROOM_MAC));
  emit(p, MOV64_IMM(BPF_REG_4, BPF_F_ADJ_ROOM_FIXED_GSO));
  emit(p, CALL(BPF_FUNC_skb_adjust_room));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  /* bpf_skb_adjust_room(skb, 20, BPF_ADJ_ROOM_MAC, FIXED_GSO | ENCAP_L3_IPV4): room for it, as an encapsulation. */
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, OUTER));
  emit(p, MOV64_IMM(BPF_REG_3, BPF_ADJ_ROOM_MAC));
  emit(p, MOV64_IMM(BPF_REG_4, BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4));
  emit(p, CALL(BPF_FUNC_skb_adjust_room));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  /* bpf_skb_store_bytes(skb, 0, fp + SAVE, 20, 0): the outer header back. */
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, 0));
  emit(p, MOV64_REG(BPF_REG_3, BPF_REG_10));
  emit(p, ADD64_IMM(BPF_REG_3, SAVE));
  emit(p, MOV64_IMM(BPF_REG_4, OUTER));
  emit(p, MOV64_IMM(BPF_REG_5, 0));
  emit(p, CALL(BPF_FUNC_skb_store_bytes));
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  p->label[L_PASS] = p->n;
  emit(p, MOV64_IMM(BPF_REG_0, TC_ACT_OK));
  emit(p, EXIT());
  p->label[L_DROP] = p->n;
  emit(p, MOV64_IMM(BPF_REG_0, TC_ACT_SHOT));
  emit(p, EXIT());
  for (int i = 0; i < p->nfix; i++) {
    struct bpf_insn *in = &p->insn[p->fix[i].at];
    in->off = (int16_t)(p->label[p->fix[i].label] - p->fix[i].at - 1);
  }
}

static long sys_bpf(int cmd, union bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

int lvs_encap_attach(int ifindex, char *log, size_t log_len, const char **failed_call) {
  prog_buf p;
  build(&p);
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  attr.expected_attach_type = BPF_TCX_INGRESS;
  attr.insns = (uint64_t)(uintptr_t)p.insn;
  attr.insn_cnt = (uint32_t)p.n;
  attr.license = (uint64_t)(uintptr_t)"GPL";
  if (log != NULL && log_len > 0) {
    log[0] = '\0';
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = (uint32_t)log_len;
    attr.log_level = 1;
  }
  memcpy(attr.prog_name, "lvs_ipip_gso", 13);
  *failed_call = "bpf";
  long prog = sys_bpf(BPF_PROG_LOAD, &attr);
  if (prog < 0 && errno == ENOSPC && log != NULL) {
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    prog = sys_bpf(BPF_PROG_LOAD, &attr);
  }
  if (prog < 0) return -errno;
  memset(&attr, 0, sizeof(attr));
  attr.link_create.prog_fd = (uint32_t)prog;
  attr.link_create.target_ifindex = (uint32_t)ifindex;
  attr.link_create.attach_type = BPF_TCX_INGRESS;
  *failed_call = "bpf link";
  long link = sys_bpf(BPF_LINK_CREATE, &attr);
  int err = errno;
  /* The link holds the program. */
  close((int)prog);
  return link < 0 ? -err : (int)link;
}
