/*
 * A tiny eBPF assembler and loader for lvs-ts's hand-assembled programs (steer.c, encap.c,
 * decap.c): instruction macros, a program buffer with forward-jump labels patched at the end,
 * and the bpf(2) calls that load a program and attach it (tcx). No compiler or libbpf needed.
 */
#ifndef LVS_BPF_ASM_H
#define LVS_BPF_ASM_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>

/* The tcx attach points (Linux 6.6); older uapi headers lack the names. */
#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46
#endif

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define MOV32_IMM(d, i) INSN(BPF_ALU | BPF_MOV | BPF_K, d, 0, 0, i)
#define ALU32_IMM(op, d, i) INSN(BPF_ALU | (op) | BPF_K, d, 0, 0, i)
#define ALU32_REG(op, d, s) INSN(BPF_ALU | (op) | BPF_X, d, s, 0, 0)
#define ALU64_IMM(op, d, i) INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU64_REG(op, d, s) INSN(BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
/* r0 = the packet's big-endian byte/half/word at `off` (host order); r1-r5 are clobbered. */
#define LD_ABS(size, off) INSN(BPF_LD | (size) | BPF_ABS, 0, 0, 0, off)
/* r0 = the packet's value at src + off. */
#define LD_IND(size, s, off) INSN(BPF_LD | (size) | BPF_IND, 0, s, 0, off)
#define STX_W(d, off, s) INSN(BPF_STX | BPF_MEM | BPF_W, d, s, off, 0)
#define LDX_W(d, s, off) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, off, 0)
#define LDX_B(d, s, off) INSN(BPF_LDX | BPF_MEM | BPF_B, d, s, off, 0)
#define ST_W(d, off, i) INSN(BPF_ST | BPF_MEM | BPF_W, d, 0, off, i)
/* *(u64 *)(d + off) += s, atomically. */
#define ATOMIC_ADD_DW(d, off, s) INSN(BPF_STX | BPF_ATOMIC | BPF_DW, d, s, off, BPF_ADD)
#define JEQ_IMM(d, i, off) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, off, i)
#define JNE_IMM(d, i, off) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, off, i)
#define JGT_REG(d, s, off) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, off, 0)
#define JA(off) INSN(BPF_JMP | BPF_JA, 0, 0, off, 0)
#define CALL(fn) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, fn)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
/* r = the map of fd `fd`: a 64-bit immediate, two instructions (emit_map_fd emits both). */
#define LD_MAP_FD(d, fd) INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd)

enum { BPF_ASM_MAX_INSNS = 192, BPF_ASM_MAX_LABELS = 16, BPF_ASM_MAX_FIXES = 48 };

/* A program being assembled in one pass; jumps to labels placed later are patched by resolve. */
typedef struct {
  struct bpf_insn insn[BPF_ASM_MAX_INSNS];
  int n;
  int label[BPF_ASM_MAX_LABELS];
  struct {
    int at, label;
  } fix[BPF_ASM_MAX_FIXES];
  int nfix;
} bpf_prog;

static inline void emit(bpf_prog *p, struct bpf_insn i) { p->insn[p->n++] = i; }
static inline void place(bpf_prog *p, int label) { p->label[label] = p->n; }
/* A jump to `label` (placed later): its offset is patched by resolve(). */
static inline void emit_jump(bpf_prog *p, struct bpf_insn i, int label) {
  p->fix[p->nfix].at = p->n;
  p->fix[p->nfix].label = label;
  p->nfix++;
  emit(p, i);
}
static inline void emit_map_fd(bpf_prog *p, int reg, int fd) {
  emit(p, LD_MAP_FD(reg, fd));
  emit(p, INSN(0, 0, 0, 0, 0));
}
/* r0 = bpf_map_lookup_elem(map `fd`, fp + key_off): the value's address, or 0. Clobbers r1-r5. */
static inline void emit_map_lookup(bpf_prog *p, int fd, int key_off) {
  emit_map_fd(p, BPF_REG_1, fd);
  emit(p, MOV64_REG(BPF_REG_2, BPF_REG_10));
  emit(p, ALU64_IMM(BPF_ADD, BPF_REG_2, key_off));
  emit(p, CALL(BPF_FUNC_map_lookup_elem));
}
/*
 * r0 = helper `fn`(skb in r6, 0, fp + fp_off, len, last): bpf_skb_load_bytes, _store_bytes
 * (last: flags) or _load_bytes_relative (last: the start header). Clobbers r1-r5.
 */
static inline void emit_skb_bytes(bpf_prog *p, int fn, int fp_off, int len, int last) {
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, 0));
  emit(p, MOV64_REG(BPF_REG_3, BPF_REG_10));
  emit(p, ALU64_IMM(BPF_ADD, BPF_REG_3, fp_off));
  emit(p, MOV64_IMM(BPF_REG_4, len));
  emit(p, MOV64_IMM(BPF_REG_5, last));
  emit(p, CALL(fn));
}
/* r0 = bpf_skb_adjust_room(skb in r6, len_diff, BPF_ADJ_ROOM_MAC, flags). Clobbers r1-r5. */
static inline void emit_adjust_room_mac(bpf_prog *p, int len_diff, int flags) {
  emit(p, MOV64_REG(BPF_REG_1, BPF_REG_6));
  emit(p, MOV64_IMM(BPF_REG_2, len_diff));
  emit(p, MOV64_IMM(BPF_REG_3, BPF_ADJ_ROOM_MAC));
  emit(p, MOV64_IMM(BPF_REG_4, flags));
  emit(p, CALL(BPF_FUNC_skb_adjust_room));
}
static inline void resolve(bpf_prog *p) {
  for (int k = 0; k < p->nfix; k++) p->insn[p->fix[k].at].off = (int16_t)(p->label[p->fix[k].label] - p->fix[k].at - 1);
}

long lvs_sys_bpf(int cmd, union bpf_attr *attr);

/* A BPF map (`flags`: map_flags, e.g. BPF_F_NO_PREALLOC). Returns its fd or -errno. */
int lvs_bpf_map_create(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries, uint32_t flags,
                       const char *name);

/*
 * Load program `p` (resolved) of `type`, named `name`, for `expected_attach` (0 for none).
 * Returns its fd or -errno; `log` gets the verifier's log when one is given.
 */
int lvs_bpf_load(const bpf_prog *p, uint32_t type, uint32_t expected_attach, const char *name, char *log,
                 size_t log_len);

/*
 * Load `p` as a tc program and attach it at the ingress of `ifindex` with a tcx link. Returns
 * the link's fd (closing it detaches) or -errno, `*failed_call` naming the call that failed.
 */
int lvs_bpf_tcx_ingress(const bpf_prog *p, const char *name, int ifindex, char *log, size_t log_len,
                        const char **failed_call);

#endif
