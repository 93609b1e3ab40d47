/*
 * Queue steering for a multi-queue TUN (steer.c): an eBPF program that sends both directions of
 * a flow to one queue, by the client's address and port, and the map of virtual addresses it
 * consults. Pure C, no Node headers; every function returns -errno on failure.
 */
#ifndef LVS_STEER_H
#define LVS_STEER_H

#include <stddef.h>
#include <stdint.h>

/* A BPF hash map for up to `max_vips` virtual addresses (u32 keys, host order). Returns its fd. */
int lvs_steer_map_create(uint32_t max_vips);

/*
 * Add (present, with `value`) or remove virtual address `addr` (host order) in map `map_fd`.
 * Returns 0. The address 0 is a switch: while present, every packet is steered by the client's
 * address alone, masked with its value.
 */
int lvs_steer_map_set(int map_fd, uint32_t addr, uint32_t value, int present);

/*
 * Load the steering program over `map_fd` and attach it to the multi-queue TUN of `tun_fd`
 * (TUNSETSTEERINGEBPF). With `client_is_source` every packet's client is its source (an input
 * device that only carries requests, such as a firewall-mark device) and the map is not read.
 * On failure `log` holds the verifier's log (when one was given) and `*failed_call` the call
 * that failed ("bpf" or "ioctl").
 */
int lvs_steer_attach(int tun_fd, int map_fd, int client_is_source, char *log, size_t log_len,
                     const char **failed_call);

#endif
