/*
 * IP-in-IP decapsulation in the kernel for lvs-realserver (decap.c): a tcx ingress program that
 * takes the outer header off datagrams whose inner packet is for a VIP. Pure C, no Node headers;
 * every function returns -errno on failure.
 */
#ifndef LVS_DECAP_H
#define LVS_DECAP_H

#include <stddef.h>
#include <stdint.h>

/* The VIP map (hash) and the counter map (one u64) the program uses. */
int lvs_decap_maps_create(int *vips_fd, int *count_fd);

/* Add VIP `addr` (host order) to the map. */
int lvs_decap_vip_add(int vips_fd, uint32_t addr);

/* The datagrams decapsulated so far. */
int lvs_decap_count(int count_fd, uint64_t *out);

/*
 * Load the program over the maps and attach it at the ingress of interface `ifindex` (a tcx
 * link). Returns the link's fd (closing it detaches); on failure `log` holds the verifier's log
 * (when one was given) and `*failed_call` the call that failed.
 */
int lvs_decap_attach(int ifindex, int vips_fd, int count_fd, char *log, size_t log_len, const char **failed_call);

#endif
