/*
 * N-API glue for lvs_native: argument checking, JS errors, and the uv_poll readiness watcher.
 * The syscalls themselves live in syscalls.c. Every export is synchronous. Errors from the
 * kernel are thrown as Error with `code` (errno name), `errno` (negative, as Node does) and
 * `syscall`; bad arguments are thrown as TypeError / RangeError before any memory is touched.
 */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <uv.h>

#include "decap.h"
#include "encap.h"
#include "steer.h"
#include "syscalls.h"

#define MAX_ARGS 6

/* ---- errors ------------------------------------------------------------------------------- */

/* Throw the failure of an N-API call itself, unless a JS exception is already pending. */
static void throw_napi_failure(napi_env env, const char *call) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof(msg), "lvs_native: %s failed: %s", call,
           info != NULL && info->error_message != NULL ? info->error_message : "unknown N-API error");
  napi_throw_error(env, NULL, msg);
}

#define NAPI_CHECK(env, call)            \
  do {                                   \
    if ((call) != napi_ok) {             \
      throw_napi_failure((env), #call);  \
      return NULL;                       \
    }                                    \
  } while (0)

/* Build `Error("<what> failed: <strerror>")` with code, errno and syscall set. Returns NULL on failure. */
static napi_value make_errno_error(napi_env env, int err, const char *syscall, const char *what) {
  char name_buf[16];
  char text_buf[128];
  char msg[256];
  const char *name = lvs_errno_name(err, name_buf, sizeof(name_buf));
  snprintf(msg, sizeof(msg), "%s failed: %s", what, lvs_strerror(err, text_buf, sizeof(text_buf)));

  napi_value code, message, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok ||
      napi_create_int32(env, -err, &errno_value) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_value) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_value) != napi_ok) {
    return NULL;
  }
  return error;
}

/* Throw a positive errno as a system error. Always returns NULL, for `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  napi_value error = make_errno_error(env, err, syscall, what);
  if (error == NULL) {
    throw_napi_failure(env, "creating an Error");
  } else {
    napi_throw(env, error);
  }
  return NULL;
}

static napi_value throw_type(napi_env env, const char *what, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof(msg), "The \"%s\" argument must be %s", what, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* ---- argument helpers: each returns false with a JS exception thrown ---------------------- */

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi_failure(env, "napi_get_cb_info");
    return false;
  }
  if (argc < want) {
    char msg[64];
    snprintf(msg, sizeof(msg), "Expected %zu arguments, got %zu", want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

/* An integer in [min, max]. */
static bool get_integer(napi_env env, napi_value v, const char *what, double min, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number) {
    throw_type(env, what, "of type number");
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!isfinite(d) || d != floor(d) || d < min || d > max) {
    char msg[160];
    snprintf(msg, sizeof(msg), "The value of \"%s\" is out of range. It must be an integer >= %.0f and <= %.0f. Received %g",
             what, min, max, d);
    throw_range(env, msg);
    return false;
  }
  *out = d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, int *fd) {
  double d;
  if (!get_integer(env, v, "fd", 0, INT_MAX, &d)) return false;
  *fd = (int)d;
  return true;
}

static bool get_u32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  double d;
  if (!get_integer(env, v, what, 0, UINT32_MAX, &d)) return false;
  *out = (uint32_t)d;
  return true;
}

static bool get_buffer(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer) {
    throw_type(env, what, "an instance of Buffer");
    return false;
  }
  void *ptr = NULL;
  if (napi_get_buffer_info(env, v, &ptr, len) != napi_ok) {
    throw_napi_failure(env, "napi_get_buffer_info");
    return false;
  }
  *data = ptr;
  return true;
}

static bool get_u32_array(napi_env env, napi_value v, const char *what, uint32_t **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok || type != napi_uint32_array) {
    throw_type(env, what, "an instance of Uint32Array");
    return false;
  }
  *data = ptr;
  return true;
}

static bool check_function(napi_env env, napi_value v, const char *what) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_function) {
    throw_type(env, what, "of type function");
    return false;
  }
  return true;
}

static napi_value make_u32(napi_env env, uint32_t n) {
  napi_value v;
  NAPI_CHECK(env, napi_create_uint32(env, n, &v));
  return v;
}

/* ---- TUN ---------------------------------------------------------------------------------- */

/*
 * An interface name argument: a string shorter than IFNAMSIZ without NUL, copied into `name`.
 * `label` starts the RangeError messages ("TUN device name", "interface name").
 */
static bool get_ifname(napi_env env, napi_value v, const char *label, char name[LVS_IFNAMSIZ]) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string) {
    throw_type(env, "name", "of type string");
    return false;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_napi_failure(env, "napi_get_value_string_utf8");
    return false;
  }
  char msg[96];
  if (len >= LVS_IFNAMSIZ) {
    snprintf(msg, sizeof(msg), "%s is too long: at most 15 bytes (IFNAMSIZ - 1)", label);
    throw_range(env, msg);
    return false;
  }
  if (napi_get_value_string_utf8(env, v, name, LVS_IFNAMSIZ, &len) != napi_ok) {
    throw_napi_failure(env, "napi_get_value_string_utf8");
    return false;
  }
  if (memchr(name, '\0', len) != NULL) {
    snprintf(msg, sizeof(msg), "%s must not contain NUL", label);
    throw_range(env, msg);
    return false;
  }
  return true;
}

/* A boolean argument. */
static bool get_bool(napi_env env, napi_value v, const char *what, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    throw_type(env, what, "of type boolean");
    return false;
  }
  return true;
}

/*
 * tunOpen(name, offload[, queues]) -> { fd, fds, name, vnetHdr }. With queues > 1 the device is
 * multi-queue and `fds` holds one fd per queue (`fd` is the first); else `fds` is [fd].
 */
#define MAX_TUN_QUEUES 256
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi_failure(env, "napi_get_cb_info");
    return NULL;
  }
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "Expected 2 arguments, got fewer");
    return NULL;
  }
  char name[LVS_IFNAMSIZ];
  bool offload;
  double queues = 1;
  if (!get_ifname(env, argv[0], "TUN device name", name) || !get_bool(env, argv[1], "offload", &offload)) return NULL;
  if (argc >= 3 && !get_integer(env, argv[2], "queues", 1, MAX_TUN_QUEUES, &queues)) return NULL;

  int fds[MAX_TUN_QUEUES] = {-1};
  int n = (int)queues;
  char actual[LVS_IFNAMSIZ];
  const char *failed_call = "open";
  for (int q = 0; q < n; q++) {
    /* The first open names (or creates) the device; the others attach to it by its name. */
    int fd = lvs_tun_open(q == 0 ? name : actual, offload, n > 1, actual, &failed_call);
    if (fd < 0) {
      for (int k = 0; k < q; k++) lvs_fd_close(fds[k]);
      return throw_errno(env, -fd, failed_call,
                         strcmp(failed_call, "open") == 0 ? "open /dev/net/tun" : "ioctl TUNSETIFF");
    }
    fds[q] = fd;
  }

  napi_value result, fd_value, fds_value, name_value, vnet_value;
  bool ok = napi_create_object(env, &result) == napi_ok && napi_create_int32(env, fds[0], &fd_value) == napi_ok &&
            napi_set_named_property(env, result, "fd", fd_value) == napi_ok &&
            napi_create_array_with_length(env, (size_t)n, &fds_value) == napi_ok &&
            napi_set_named_property(env, result, "fds", fds_value) == napi_ok &&
            napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &name_value) == napi_ok &&
            napi_set_named_property(env, result, "name", name_value) == napi_ok &&
            napi_create_int32(env, offload ? LVS_VNET_HDR : 0, &vnet_value) == napi_ok &&
            napi_set_named_property(env, result, "vnetHdr", vnet_value) == napi_ok;
  for (int q = 0; ok && q < n; q++) {
    napi_value v;
    ok = napi_create_int32(env, fds[q], &v) == napi_ok && napi_set_element(env, fds_value, (uint32_t)q, v) == napi_ok;
  }
  if (!ok) {
    for (int q = 0; q < n; q++) lvs_fd_close(fds[q]);
    throw_napi_failure(env, "building the tunOpen result");
    return NULL;
  }
  return result;
}

/* ---- queue steering (steer.c) ------------------------------------------------------------- */

/* steerMapCreate(maxVips) -> fd */
static napi_value steer_map_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  double max;
  if (!get_args(env, info, 1, argv) || !get_integer(env, argv[0], "maxVips", 1, 1 << 24, &max)) return NULL;
  int fd = lvs_steer_map_create((uint32_t)max);
  if (fd < 0) return throw_errno(env, -fd, "bpf", "bpf BPF_MAP_CREATE");
  return make_u32(env, (uint32_t)fd);
}

/* steerMapSet(mapFd, addr, value, present) */
static napi_value steer_map_set(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint32_t addr, value;
  bool present;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd) || !get_u32(env, argv[1], "addr", &addr) ||
      !get_u32(env, argv[2], "value", &value) || !get_bool(env, argv[3], "present", &present)) {
    return NULL;
  }
  int rc = lvs_steer_map_set(fd, addr, value, present);
  if (rc < 0) return throw_errno(env, -rc, "bpf", present ? "bpf BPF_MAP_UPDATE_ELEM" : "bpf BPF_MAP_DELETE_ELEM");
  return NULL;
}

/*
 * What one of the eBPF attach calls needs (steer.c, encap.c, decap.c); `attach` runs it with a
 * verifier log and returns an fd, 0 or -errno.
 */
typedef struct {
  int fd, map_fd, count_fd, ifindex;
  bool client_is_source;
  int (*attach)(const void *self, char *log, size_t log_len, const char **failed_call);
} bpf_attach_args;

/*
 * Run `a->attach` with a verifier log, printed to stderr when the verifier refused the program.
 * Returns its result, or throws (`attach_what` names the attach step) and returns -1.
 */
static int bpf_attach_call(napi_env env, const bpf_attach_args *a, const char *attach_what) {
  enum { LOG_LEN = 16384 };
  char *log = malloc(LOG_LEN);
  const char *failed_call = "bpf";
  int rc = a->attach(a, log, log != NULL ? LOG_LEN : 0, &failed_call);
  bool verifier = strcmp(failed_call, "bpf") == 0;
  if (rc < 0 && log != NULL && verifier && log[0] != '\0') fprintf(stderr, "lvs_native: BPF verifier log:\n%s\n", log);
  free(log);
  if (rc < 0) {
    throw_errno(env, -rc, failed_call, verifier ? "bpf BPF_PROG_LOAD" : attach_what);
    return -1;
  }
  return rc;
}

static int steer_attach_fn(const void *self, char *log, size_t log_len, const char **failed_call) {
  const bpf_attach_args *a = self;
  return lvs_steer_attach(a->fd, a->map_fd, a->client_is_source, log, log_len, failed_call);
}

/* steerAttach(tunFd, mapFd, clientIsSource) */
static napi_value steer_attach(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  bpf_attach_args a = {.attach = steer_attach_fn};
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &a.fd) || !get_fd(env, argv[1], &a.map_fd) ||
      !get_bool(env, argv[2], "clientIsSource", &a.client_is_source)) {
    return NULL;
  }
  bpf_attach_call(env, &a, "ioctl TUNSETSTEERINGEBPF");
  return NULL;
}

/* The fd of a tcx link made by bpf_attach_call, or NULL (thrown). */
static napi_value tcx_link_value(napi_env env, const bpf_attach_args *a) {
  int fd = bpf_attach_call(env, a, "bpf BPF_LINK_CREATE (tcx ingress)");
  napi_value result;
  if (fd < 0 || napi_create_int32(env, fd, &result) != napi_ok) return NULL;
  return result;
}

/* An interface's index into `a`, or false (thrown). */
static bool get_ifindex(napi_env env, napi_value v, bpf_attach_args *a) {
  char name[LVS_IFNAMSIZ];
  if (!get_ifname(env, v, "interface name", name)) return false;
  a->ifindex = (int)if_nametoindex(name);
  if (a->ifindex == 0) {
    throw_errno(env, errno, "if_nametoindex", name);
    return false;
  }
  return true;
}

/* ---- IP-in-IP segmentation by the kernel (encap.c) ---------------------------------------- */

static int encap_attach_fn(const void *self, char *log, size_t log_len, const char **failed_call) {
  return lvs_encap_attach(((const bpf_attach_args *)self)->ifindex, log, log_len, failed_call);
}

/* ipipGsoAttach(ifname) -> link fd */
static napi_value ipip_gso_attach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bpf_attach_args a = {.attach = encap_attach_fn};
  if (!get_args(env, info, 1, argv) || !get_ifindex(env, argv[0], &a)) return NULL;
  return tcx_link_value(env, &a);
}

/* ---- IP-in-IP decapsulation in the kernel, for lvs-realserver (decap.c) -------------------- */

/* decapMapsCreate() -> {vips, counts} */
static napi_value decap_maps_create(napi_env env, napi_callback_info info) {
  (void)info;
  int vips, counts;
  int rc = lvs_decap_maps_create(&vips, &counts);
  if (rc < 0) return throw_errno(env, -rc, "bpf", "bpf BPF_MAP_CREATE");
  napi_value result, v, c;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, vips, &v) != napi_ok ||
      napi_set_named_property(env, result, "vips", v) != napi_ok || napi_create_int32(env, counts, &c) != napi_ok ||
      napi_set_named_property(env, result, "counts", c) != napi_ok) {
    return NULL;
  }
  return result;
}

/* decapVipAdd(vipsFd, addr) */
static napi_value decap_vip_add(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  uint32_t addr;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) || !get_u32(env, argv[1], "addr", &addr)) return NULL;
  int rc = lvs_decap_vip_add(fd, addr);
  if (rc < 0) return throw_errno(env, -rc, "bpf", "bpf BPF_MAP_UPDATE_ELEM");
  return NULL;
}

/* decapCount(countsFd) -> number */
static napi_value decap_count(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  uint64_t n = 0;
  int rc = lvs_decap_count(fd, &n);
  if (rc < 0) return throw_errno(env, -rc, "bpf", "bpf BPF_MAP_LOOKUP_ELEM");
  napi_value result;
  if (napi_create_double(env, (double)n, &result) != napi_ok) return NULL;
  return result;
}

static int decap_attach_fn(const void *self, char *log, size_t log_len, const char **failed_call) {
  const bpf_attach_args *a = self;
  return lvs_decap_attach(a->ifindex, a->map_fd, a->count_fd, log, log_len, failed_call);
}

/* decapAttach(ifname, vipsFd, countsFd) -> link fd */
static napi_value decap_attach(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  bpf_attach_args a = {.attach = decap_attach_fn};
  if (!get_args(env, info, 3, argv) || !get_ifindex(env, argv[0], &a) || !get_fd(env, argv[1], &a.map_fd) ||
      !get_fd(env, argv[2], &a.count_fd)) {
    return NULL;
  }
  return tcx_link_value(env, &a);
}

/*
 * The arguments of a batched read: (fd, slab, slotSize, headroom, maxCount, lens[, vnetLen,
 * firstSlot]), bounds-checked; vnetLen and firstSlot (tunRead only) default to 0. With
 * firstSlot the read fills slots firstSlot.. (and lens[firstSlot..]); `slab` and `lens` are
 * then advanced to it.
 */
typedef struct read_args {
  int fd;
  uint8_t *slab;
  uint32_t slot_size, headroom, max_count, *lens, vnet_len, first;
} read_args;

static bool get_read_args(napi_env env, napi_callback_info info, const char *fn, bool with_vnet, read_args *a) {
  napi_value argv[8];
  if (!get_args(env, info, with_vnet ? 8 : 6, argv)) return false;
  size_t slab_len, lens_len;
  a->vnet_len = 0;
  a->first = 0;
  if (!get_fd(env, argv[0], &a->fd) || !get_buffer(env, argv[1], "slab", &a->slab, &slab_len) ||
      !get_u32(env, argv[2], "slotSize", &a->slot_size) || !get_u32(env, argv[3], "headroom", &a->headroom) ||
      !get_u32(env, argv[4], "maxCount", &a->max_count) || !get_u32_array(env, argv[5], "lens", &a->lens, &lens_len) ||
      (with_vnet && (!get_u32(env, argv[6], "vnetLen", &a->vnet_len) || !get_u32(env, argv[7], "firstSlot", &a->first)))) {
    return false;
  }
  char msg[96];
  const char *problem = NULL;
  if (a->slot_size == 0 || a->headroom >= a->slot_size) {
    problem = "need 0 <= headroom < slotSize";
  } else if (a->vnet_len > a->headroom) {
    problem = "need vnetLen <= headroom";
  } else if ((uint64_t)a->first + a->max_count > lens_len) {
    problem = "firstSlot + maxCount exceeds lens.length";
  } else if (((uint64_t)a->first + a->max_count) * a->slot_size > slab_len) {
    problem = "(firstSlot + maxCount) * slotSize exceeds the slab";
  } else if (a->max_count > INT_MAX) {
    problem = "maxCount too large";
  }
  if (problem != NULL) {
    snprintf(msg, sizeof(msg), "%s: %s", fn, problem);
    throw_range(env, msg);
    return false;
  }
  a->slab += (size_t)a->first * a->slot_size;
  a->lens += a->first;
  return true;
}

/* tunRead(fd, slab, slotSize, headroom, maxCount, lens, vnetLen, firstSlot) -> count */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  read_args a;
  if (!get_read_args(env, info, "tunRead", true, &a)) return NULL;
  if (a.max_count == 0) return make_u32(env, 0);

  int n = lvs_tun_read_batch(a.fd, a.slab, a.slot_size, a.headroom, a.vnet_len, a.max_count, a.lens);
  if (n < 0) return throw_errno(env, -n, "read", "read from TUN");
  return make_u32(env, (uint32_t)n);
}

/* tunWrite(fd, buf, offset, length) -> bytes written */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;

  int fd;
  uint8_t *buf;
  size_t buf_len;
  uint32_t offset, length;
  if (!get_fd(env, argv[0], &fd) || !get_buffer(env, argv[1], "buf", &buf, &buf_len) ||
      !get_u32(env, argv[2], "offset", &offset) || !get_u32(env, argv[3], "length", &length)) {
    return NULL;
  }
  if ((uint64_t)offset + length > buf_len) return throw_range(env, "tunWrite: offset + length exceeds the buffer");

  ssize_t n = lvs_fd_write(fd, buf + offset, length);
  if (n < 0) return throw_errno(env, (int)-n, "write", "write to TUN");
  return make_u32(env, (uint32_t)n);
}

/* ---- raw IPv4 sockets --------------------------------------------------------------------- */

/* rawOpen() -> fd */
static napi_value raw_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = lvs_raw_open();
  if (fd < 0) return throw_errno(env, -fd, "socket", "socket AF_INET SOCK_RAW IPPROTO_RAW");
  return make_u32(env, (uint32_t)fd);
}

/* The arguments of a batched send: (fd, slab, offs, lens, count), every packet inside the slab (argv[0..4]). */
typedef struct send_args {
  int fd;
  uint8_t *slab;
  uint32_t *offs, *lens, count;
} send_args;

static bool get_send_argv(napi_env env, napi_value *argv, const char *fn, send_args *a) {
  size_t slab_len, offs_len, lens_len;
  if (!get_fd(env, argv[0], &a->fd) || !get_buffer(env, argv[1], "slab", &a->slab, &slab_len) ||
      !get_u32_array(env, argv[2], "offs", &a->offs, &offs_len) ||
      !get_u32_array(env, argv[3], "lens", &a->lens, &lens_len) || !get_u32(env, argv[4], "count", &a->count)) {
    return false;
  }
  char msg[128];
  if (a->count > offs_len || a->count > lens_len) {
    snprintf(msg, sizeof(msg), "%s: count exceeds offs.length or lens.length", fn);
    throw_range(env, msg);
    return false;
  }
  if (a->count > INT_MAX) {
    snprintf(msg, sizeof(msg), "%s: count too large", fn);
    throw_range(env, msg);
    return false;
  }
  for (uint32_t i = 0; i < a->count; i++) {
    if ((uint64_t)a->offs[i] + a->lens[i] > slab_len) {
      snprintf(msg, sizeof(msg), "%s: packet %u (offset %u, length %u) exceeds the slab (%zu bytes)", fn, i,
               a->offs[i], a->lens[i], slab_len);
      throw_range(env, msg);
      return false;
    }
  }
  return true;
}

static bool get_send_args(napi_env env, napi_callback_info info, const char *fn, send_args *a) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return false;
  return get_send_argv(env, argv, fn, a);
}

typedef int (*batch_sender)(int fd, const uint8_t *base, const uint32_t *offs, const uint32_t *lens, uint32_t count);

/* A batched send call (fd, slab, offs, lens, count) -> packets accepted, through `send`. */
static napi_value call_batch_sender(napi_env env, napi_callback_info info, const char *fn, batch_sender send,
                                    const char *syscall, const char *what) {
  send_args a;
  if (!get_send_args(env, info, fn, &a)) return NULL;
  if (a.count == 0) return make_u32(env, 0);

  int n = send(a.fd, a.slab, a.offs, a.lens, a.count);
  if (n < 0) return throw_errno(env, -n, syscall, what);
  return make_u32(env, (uint32_t)n);
}

/* tunWriteBatch(fd, slab, offs, lens, count) -> packets accepted */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  return call_batch_sender(env, info, "tunWriteBatch", lvs_tun_write_batch, "write", "write to TUN");
}

/* sendBatch(fd, slab, offs, lens, count) -> packets accepted */
static napi_value send_batch(napi_env env, napi_callback_info info) {
  return call_batch_sender(env, info, "sendBatch", lvs_raw_send_batch, "sendmmsg", "sendmmsg on raw socket");
}

/* rawOpenProto(protocol, ipv6) -> fd */
static napi_value raw_open_proto(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  double protocol;
  if (!get_integer(env, argv[0], "protocol", 0, 255, &protocol)) return NULL;
  bool ipv6;
  if (!get_bool(env, argv[1], "ipv6", &ipv6)) return NULL;

  int fd = lvs_raw_open_proto((int)protocol, ipv6 ? 1 : 0);
  if (fd < 0) {
    char what[64];
    snprintf(what, sizeof(what), "socket %s SOCK_RAW protocol %d", ipv6 ? "AF_INET6" : "AF_INET", (int)protocol);
    return throw_errno(env, -fd, "socket", what);
  }
  return make_u32(env, (uint32_t)fd);
}

/* recvBatch(fd, slab, slotSize, headroom, maxCount, lens) -> count */
static napi_value recv_batch(napi_env env, napi_callback_info info) {
  read_args a;
  if (!get_read_args(env, info, "recvBatch", false, &a)) return NULL;
  if (a.max_count == 0) return make_u32(env, 0);

  int n = lvs_recv_batch(a.fd, a.slab, a.slot_size, a.headroom, a.max_count, a.lens);
  if (n < 0) return throw_errno(env, -n, "recvmmsg", "recvmmsg on socket");
  return make_u32(env, (uint32_t)n);
}

/* netnsCookie() -> string: the network namespace's cookie, in decimal (it needs 64 bits). */
static napi_value netns_cookie(napi_env env, napi_callback_info info) {
  (void)info;
  uint64_t cookie = 0;
  int r = lvs_netns_cookie(&cookie);
  if (r < 0) return throw_errno(env, -r, "getsockopt", "getsockopt SO_NETNS_COOKIE");
  char text[24];
  snprintf(text, sizeof(text), "%llu", (unsigned long long)cookie);
  napi_value out;
  NAPI_CHECK(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

/* ---- packet socket ------------------------------------------------------------------------ */

/* packetOpen(ifname, vnetHdr) -> { fd, ifindex, mac, mtu } */
static napi_value packet_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char name[LVS_IFNAMSIZ];
  bool vnet_hdr;
  if (!get_ifname(env, argv[0], "interface name", name) || !get_bool(env, argv[1], "vnetHdr", &vnet_hdr)) return NULL;

  int ifindex = 0, mtu = 0;
  uint8_t mac[LVS_ETH_ALEN];
  const char *failed_call = "socket";
  int fd = lvs_packet_open(name, vnet_hdr, &ifindex, mac, &mtu, &failed_call);
  if (fd < 0) {
    char what[64];
    if (strcmp(failed_call, "socket") == 0) {
      snprintf(what, sizeof(what), "socket AF_PACKET SOCK_RAW");
    } else {
      snprintf(what, sizeof(what), "%s on interface %s", failed_call, name);
    }
    return throw_errno(env, -fd, failed_call, what);
  }

  napi_value result, fd_value, ifindex_value, mac_value, mtu_value;
  void *mac_data = NULL;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_create_int32(env, ifindex, &ifindex_value) != napi_ok ||
      napi_set_named_property(env, result, "ifindex", ifindex_value) != napi_ok ||
      napi_create_buffer_copy(env, LVS_ETH_ALEN, mac, &mac_data, &mac_value) != napi_ok ||
      napi_set_named_property(env, result, "mac", mac_value) != napi_ok ||
      napi_create_int32(env, mtu, &mtu_value) != napi_ok ||
      napi_set_named_property(env, result, "mtu", mtu_value) != napi_ok) {
    lvs_fd_close(fd);
    throw_napi_failure(env, "building the packetOpen result");
    return NULL;
  }
  return result;
}

/* sendFrames(fd, slab, offs, lens, count, vnetLen) -> frames accepted */
static napi_value send_frames(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv)) return NULL;
  send_args a;
  uint32_t vnet_len;
  if (!get_send_argv(env, argv, "sendFrames", &a) || !get_u32(env, argv[5], "vnetLen", &vnet_len)) return NULL;
  if (vnet_len != 0 && vnet_len != LVS_VNET_HDR) return throw_range(env, "sendFrames: vnetLen must be 0 or 10");
  if (a.count == 0) return make_u32(env, 0);

  int n = lvs_packet_send_batch(a.fd, a.slab, a.offs, a.lens, a.count, LVS_ETH_HDR + vnet_len);
  if (n < 0) return throw_errno(env, -n, "sendmmsg", "sendmmsg on packet socket");
  return make_u32(env, (uint32_t)n);
}

/* close(fd) */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  int r = lvs_fd_close(fd);
  if (r < 0) return throw_errno(env, -r, "close", "close");
  return NULL;
}

/* ---- readiness watcher -------------------------------------------------------------------- */

/*
 * One uv_poll on the default loop per watched fd. The JS handle object wraps the struct; while
 * the watcher is active a strong reference keeps that object (and so the struct) alive. The
 * struct is freed once both the uv handle is closed and the JS object is collected.
 */
typedef struct lvs_watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref self;        /* strong reference to the JS handle while active */
  napi_ref on_readable;
  napi_ref on_error;
  napi_async_context async;
  bool active;          /* polling; unwatch() not yet called */
  bool in_callback;     /* inside on_poll: defer destroying `async` */
  bool handle_closed;   /* uv close callback has run, or the uv handle was never initialised */
  bool finalized;       /* the JS handle object was collected */
} lvs_watch;

static const napi_type_tag WATCH_TAG = {0x6c76735f6e617469ULL, 0x76655f7761746368ULL};

static void watch_maybe_free(lvs_watch *w) {
  if (w->handle_closed && w->finalized) free(w);
}

static void watch_on_close(uv_handle_t *handle) {
  lvs_watch *w = handle->data;
  w->handle_closed = true;
  watch_maybe_free(w);
}

/* Stop polling and close the uv handle. Touches no N-API state, so it is safe during teardown. */
static void watch_stop_uv(lvs_watch *w) {
  w->active = false;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, watch_on_close);
}

/* Release the JS references; only with a live env. */
static void watch_release_refs(lvs_watch *w) {
  napi_env env = w->env;
  if (w->on_readable != NULL) napi_delete_reference(env, w->on_readable);
  if (w->on_error != NULL) napi_delete_reference(env, w->on_error);
  if (w->self != NULL) napi_delete_reference(env, w->self);
  w->on_readable = w->on_error = w->self = NULL;
  if (w->async != NULL && !w->in_callback) {
    napi_async_destroy(env, w->async);
    w->async = NULL;
  }
}

/* The environment is going away (process or worker exit) with the watcher still active. */
static void watch_env_cleanup(void *arg) {
  lvs_watch *w = arg;
  if (w->active) watch_stop_uv(w);
}

static void watch_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  lvs_watch *w = data;
  /* Only reachable while active if the env is torn down before the cleanup hook ran. */
  if (w->active) watch_stop_uv(w);
  w->finalized = true;
  watch_maybe_free(w);
}

/* A JS exception escaped both callbacks: clear it and print it, the watcher keeps running. */
static void report_to_stderr(napi_env env, napi_value exception) {
  napi_value text = NULL, ignored;
  napi_valuetype type;
  bool pending = false;
  if (napi_typeof(env, exception, &type) == napi_ok && type == napi_object) {
    napi_value stack;
    if (napi_get_named_property(env, exception, "stack", &stack) == napi_ok &&
        napi_typeof(env, stack, &type) == napi_ok && type == napi_string) {
      text = stack;
    }
  }
  if (text == NULL && napi_coerce_to_string(env, exception, &text) != napi_ok) text = NULL;
  napi_is_exception_pending(env, &pending);
  if (pending) napi_get_and_clear_last_exception(env, &ignored);

  char buf[1024];
  size_t len = 0;
  if (text == NULL || napi_get_value_string_utf8(env, text, buf, sizeof(buf), &len) != napi_ok) {
    snprintf(buf, sizeof(buf), "(exception could not be converted to a string)");
  }
  fprintf(stderr, "lvs_native: watch onError callback threw: %s\n", buf);
  fflush(stderr);
}

/* Take the exception a callback left pending (or describe the failure) and clear it. */
static napi_value take_exception(napi_env env, napi_status status) {
  bool pending = false;
  napi_value exception = NULL;
  napi_is_exception_pending(env, &pending);
  if (pending && napi_get_and_clear_last_exception(env, &exception) == napi_ok) return exception;

  char msg[96];
  snprintf(msg, sizeof(msg), "lvs_native: calling the watch callback failed (napi_status %d)", (int)status);
  napi_value message;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, NULL, message, &exception) != napi_ok) {
    napi_get_undefined(env, &exception);
  }
  return exception;
}

/* Hand `error` to onError; if onError throws too, clear that and print it. */
static void deliver_error(lvs_watch *w, napi_value self, napi_value on_error, napi_value error) {
  napi_env env = w->env;
  napi_value result;
  napi_status status = napi_make_callback(env, w->async, self, on_error, 1, &error, &result);
  if (status != napi_ok) report_to_stderr(env, take_exception(env, status));
}

static void watch_on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  lvs_watch *w = handle->data;
  if (!w->active) return;

  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  /* Locals keep the functions alive even if the callback calls unwatch(). */
  napi_value self, on_readable, on_error, result;
  if (napi_get_reference_value(env, w->self, &self) != napi_ok ||
      napi_get_reference_value(env, w->on_readable, &on_readable) != napi_ok ||
      napi_get_reference_value(env, w->on_error, &on_error) != napi_ok) {
    napi_close_handle_scope(env, scope);
    return;
  }

  w->in_callback = true;
  if (status < 0) {
    /* libuv has stopped this poll (POLLERR); report it, unwatch() still closes it. */
    napi_value error = make_errno_error(env, -status, "uv_poll", "poll on watched fd");
    if (error == NULL) error = take_exception(env, napi_generic_failure);
    deliver_error(w, self, on_error, error);
  } else {
    napi_status call_status = napi_make_callback(env, w->async, self, on_readable, 0, NULL, &result);
    if (call_status != napi_ok) deliver_error(w, self, on_error, take_exception(env, call_status));
  }
  w->in_callback = false;

  if (!w->active && w->async != NULL) {
    /* unwatch() ran inside a callback and left the async context for us. */
    napi_async_destroy(env, w->async);
    w->async = NULL;
  }
  napi_close_handle_scope(env, scope);
}

/* watch(fd, onReadable, onError) -> handle */
static napi_value watch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd) || !check_function(env, argv[1], "onReadable") ||
      !check_function(env, argv[2], "onError")) {
    return NULL;
  }

  uv_loop_t *loop = NULL;
  NAPI_CHECK(env, napi_get_uv_event_loop(env, &loop));

  lvs_watch *w = calloc(1, sizeof(*w));
  if (w == NULL) return throw_errno(env, ENOMEM, "calloc", "allocating a watcher");
  w->env = env;
  w->handle_closed = true; /* no uv handle yet */
  w->poll.data = w;

  napi_value handle, resource_name;
  if (napi_create_object(env, &handle) != napi_ok) {
    free(w);
    throw_napi_failure(env, "napi_create_object");
    return NULL;
  }
  if (napi_wrap(env, handle, w, watch_finalize, NULL, NULL) != napi_ok) {
    free(w);
    throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  /* From here on the finalizer owns `w`. */
  if (napi_type_tag_object(env, handle, &WATCH_TAG) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &w->on_readable) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &w->on_error) != napi_ok ||
      napi_create_string_utf8(env, "lvs_native.watch", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, handle, resource_name, &w->async) != napi_ok) {
    throw_napi_failure(env, "setting up the watcher");
    watch_release_refs(w);
    return NULL;
  }

  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    watch_release_refs(w);
    return throw_errno(env, -r, "uv_poll_init", "uv_poll_init on fd");
  }
  w->handle_closed = false;
  r = uv_poll_start(&w->poll, UV_READABLE, watch_on_poll);
  if (r < 0) {
    watch_stop_uv(w);
    watch_release_refs(w);
    return throw_errno(env, -r, "uv_poll_start", "uv_poll_start on fd");
  }
  w->active = true;

  if (napi_create_reference(env, handle, 1, &w->self) != napi_ok ||
      napi_add_env_cleanup_hook(env, watch_env_cleanup, w) != napi_ok) {
    throw_napi_failure(env, "setting up the watcher");
    watch_stop_uv(w);
    watch_release_refs(w);
    return NULL;
  }
  return handle;
}

/* unwatch(handle): stop polling, close the uv handle, release the callbacks. Idempotent. */
static napi_value unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;

  napi_valuetype type;
  bool tagged = false;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_object ||
      napi_check_object_type_tag(env, argv[0], &WATCH_TAG, &tagged) != napi_ok || !tagged) {
    return throw_type(env, "handle", "a handle returned by watch()");
  }
  void *data = NULL;
  NAPI_CHECK(env, napi_unwrap(env, argv[0], &data));
  lvs_watch *w = data;
  if (!w->active) return NULL;

  napi_remove_env_cleanup_hook(env, watch_env_cleanup, w);
  watch_stop_uv(w);
  watch_release_refs(w);
  return NULL;
}

/* ---- module ------------------------------------------------------------------------------- */

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunRead", NULL, tun_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWrite", NULL, tun_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWriteBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawOpen", NULL, raw_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendBatch", NULL, send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawOpenProto", NULL, raw_open_proto, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvBatch", NULL, recv_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFrames", NULL, send_frames, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netnsCookie", NULL, netns_cookie, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"steerMapCreate", NULL, steer_map_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"steerMapSet", NULL, steer_map_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"steerAttach", NULL, steer_attach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ipipGsoAttach", NULL, ipip_gso_attach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decapMapsCreate", NULL, decap_maps_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decapVipAdd", NULL, decap_vip_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decapCount", NULL, decap_count, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decapAttach", NULL, decap_attach, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) {
    throw_napi_failure(env, "napi_define_properties");
    return NULL;
  }
  return exports;
}
