// UDP has no state machine in IPVS (ip_vs_proto_udp.c): every connection sits in one state, shown
// as "UDP", with a single timeout.

/** The only UDP connection state. */
export const UDP_S_NORMAL = 0;

/** State names as /proc/net/ip_vs_conn prints them, indexed by state. */
export const UDP_STATE_NAMES: readonly string[] = ['UDP'];

/** Default UDP connection timeout, seconds (`ipvsadm --set` third value). */
export const DEFAULT_UDP_TIMEOUT = 300;
