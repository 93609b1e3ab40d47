/*
 * IP-in-IP segmentation by the kernel (encap.c): a tcx ingress program on lvsd's TUN that marks
 * the encapsulated TCP GSO packets lvsd writes back into it as IP-in-IP for the GSO layer. Pure
 * C, no Node headers.
 */
#ifndef LVS_ENCAP_H
#define LVS_ENCAP_H

#include <stddef.h>

/*
 * Load the program and attach it at the ingress of interface `ifindex` (a tcx link). Returns
 * the link's fd (closing it detaches the program) or -errno; on failure `log` holds the
 * verifier's log (when one was given) and `*failed_call` the call that failed.
 */
int lvs_encap_attach(int ifindex, char *log, size_t log_len, const char **failed_call);

#endif
