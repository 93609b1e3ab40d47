/* Loading and attaching the hand-assembled eBPF programs (bpf-asm.h). */
#include "bpf-asm.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

long lvs_sys_bpf(int cmd, union bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

int lvs_bpf_map_create(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries, uint32_t flags,
                       const char *name) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_type = type;
  attr.key_size = key_size;
  attr.value_size = value_size;
  attr.max_entries = max_entries;
  attr.map_flags = flags;
  strncpy(attr.map_name, name, sizeof(attr.map_name) - 1);
  long fd = lvs_sys_bpf(BPF_MAP_CREATE, &attr);
  return fd < 0 ? -errno : (int)fd;
}

int lvs_bpf_load(const bpf_prog *p, uint32_t type, uint32_t expected_attach, const char *name, char *log,
                 size_t log_len) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = type;
  attr.expected_attach_type = expected_attach;
  attr.insns = (uint64_t)(uintptr_t)p->insn;
  attr.insn_cnt = (uint32_t)p->n;
  attr.license = (uint64_t)(uintptr_t)"GPL";
  if (log != NULL && log_len > 0) {
    log[0] = '\0';
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = (uint32_t)log_len;
    attr.log_level = 1;
  }
  strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
  long fd = lvs_sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd < 0 && errno == ENOSPC && log != NULL) {
    /* The log did not fit: load again without one, for the errno alone. */
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    fd = lvs_sys_bpf(BPF_PROG_LOAD, &attr);
  }
  return fd < 0 ? -errno : (int)fd;
}

int lvs_bpf_tcx_ingress(const bpf_prog *p, const char *name, int ifindex, char *log, size_t log_len,
                        const char **failed_call) {
  *failed_call = "bpf";
  int prog = lvs_bpf_load(p, BPF_PROG_TYPE_SCHED_CLS, BPF_TCX_INGRESS, name, log, log_len);
  if (prog < 0) return prog;
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_create.prog_fd = (uint32_t)prog;
  attr.link_create.target_ifindex = (uint32_t)ifindex;
  attr.link_create.attach_type = BPF_TCX_INGRESS;
  *failed_call = "bpf link";
  long link = lvs_sys_bpf(BPF_LINK_CREATE, &attr);
  int err = errno;
  /* The link holds the program. */
  close(prog);
  return link < 0 ? -err : (int)link;
}
