// What the engine decides for each packet: send it (on which socket), or drop it for a counted
// reason. Reasons 0..WIRE_VERDICT_COUNT-1 are the wire parser's (0 = ok); the engine's follow.

import { WIRE_VERDICT_COUNT, WIRE_VERDICT_NAMES } from '../wire/verdict';

/** Send the packet at (outOff, outLen) on device outDev. */
export const TX = -1;
/** The transmitter queued its output itself (x.queue). */
export const TX_QUEUED = -2;
/** Kept by the engine for later (a fragment waiting for the rest of its datagram). */
export const TX_HELD = -3;

let next = WIRE_VERDICT_COUNT;
/** Addressed to a virtual IP, but no service matches the protocol and port. */
export const D_NO_SERVICE = next++;
/** A service packet that belongs to no connection and may not create one (e.g. TCP without SYN). */
export const D_NO_CONN = next++;
/** The scheduler found no usable dest. */
export const D_NO_DEST = next++;
/** The connection's dest has been deleted (expire_nodest_conn = 0: drop silently). */
export const D_DEST_UNAVAILABLE = next++;
/** A forwarding method this build does not transmit yet. */
export const D_FWD_UNSUPPORTED = next++;
/** The connection table is full. */
export const D_TABLE_FULL = next++;
/** The kernel refused the packet on output. */
export const D_TX_FAILED = next++;
/** DR: the real server's MAC is not known yet (resolution has been asked for). */
export const D_NEIGH_MISS = next++;
/** Over the path MTU with DF set: answered with ICMP fragmentation needed. */
export const D_FRAG_NEEDED = next++;
/** Over the path MTU and cannot be sent (no DF, but no room to fragment / DR). */
export const D_TOO_BIG = next++;
/** An offload TUN's virtio_net_hdr that lvs-ts cannot honour (unknown GSO type, bad offsets). */
export const D_BAD_OFFLOAD = next++;
/** Reassembly (wire/reassembly.ts): a resent fragment, dropped alone. */
export const D_FRAG_DUPLICATE = next++;
/** Reassembly: fragments overlapping; the whole datagram is discarded. */
export const D_FRAG_OVERLAP = next++;
/** Reassembly: a datagram beyond 65535 bytes; discarded. */
export const D_FRAG_TOO_BIG = next++;
/** Reassembly: malformed fragment (bad length or offset, conflicting ends); the datagram is discarded. */
export const D_FRAG_BAD = next++;
/** Reassembly: a memory, datagram-count or per-source limit reached. */
export const D_FRAG_NO_MEMORY = next++;
/** A new connection dropped by the drop_packet defense (memory is short). */
export const D_DEFENSE = next++;
/** The dest has no route from the director (yet); the control plane looks for one every second. */
export const D_NO_ROUTE = next++;
/**
 * IPv6 multicast or link-local traffic in the TUN: the kernel's own (MLD reports for the groups
 * a forwarding interface joins); nothing to forward.
 */
export const D_LINK_LOCAL = next++;
export const VERDICT_COUNT = next;

export const DROP_NAMES: readonly string[] = [
  ...WIRE_VERDICT_NAMES,
  'no_service',
  'no_conn',
  'no_dest',
  'dest_unavailable',
  'fwd_unsupported',
  'table_full',
  'tx_failed',
  'neigh_miss',
  'frag_needed',
  'too_big',
  'bad_offload',
  'frag_duplicate',
  'frag_overlap',
  'frag_too_big',
  'frag_bad',
  'frag_no_memory',
  'defense',
  'no_route',
  'link_local',
];
