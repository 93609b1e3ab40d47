// The per-protocol handler interface (ip_vs_protocol): each supported L4 protocol exports one
// object implementing it, and the engine indexes them by IP protocol number. A handler owns one
// re-pointable header view: `parse` points it at the current packet, and the NAT helpers
// rewrite that packet through it.

import type { ConnTable } from '../conn/conn-table';
import type { PktInfo } from '../ip-vs';

/** The parsed fields of the current packet (one reused object). */
export interface PacketMeta extends PktInfo {
  /** TCP flags byte (0 for other protocols). */
  tcpFlags: number;
}

/** Direction of a packet relative to its connection. */
export const DIR_IN = 0;
export const DIR_OUT = 1;

export interface ProtoHandler {
  readonly protocol: number;
  /** Name as listings print it (TCP, UDP). */
  readonly name: string;
  readonly stateNames: readonly string[];
  readonly defaultTimeouts: readonly number[];
  /** The state counted as ActiveConn, or -1 when connections are always inactive. */
  readonly activeState: number;
  /** The state a new connection starts in. */
  readonly initialState: number;
  /**
   * Point the view at the L4 header at buf[off, off + len) (behind an IPv4 or IPv6 header), fill
   * ports and flags. Returns a wire verdict.
   */
  parse(buf: Buffer, off: number, len: number, pkt: PacketMeta): number;
  /** May this packet create a new connection? (`sloppy`: the protocol's sloppy_* setting is on.) */
  canSchedule(pkt: PacketMeta, sloppy: boolean): boolean;
  /** Is this packet the start of a new connection (a TCP SYN), for conn_reuse_mode? */
  opensConn(pkt: PacketMeta): boolean;
  /**
   * May a new connection take over the tuple of a connection in `state` (conn_reuse_mode
   * `mode`: bit 1 for finished connections, bit 2 also for FIN_WAIT ones that see no replies)?
   */
  reusesConn(state: number, connFlags: number, mode: number): boolean;
  /**
   * The connection's next state after this packet; may update the connection's flags. `secure`:
   * the secure_tcp defense is on (TCP's stricter table).
   */
  transition(conns: ConnTable, c: number, dir: number, pkt: PacketMeta, secure: boolean): number;
  /**
   * Destination port → `port`, and fix the checksum for the destination address change. With
   * `partial` the L4 checksum is an offload's partial one (the uncomplemented pseudo-header sum).
   */
  dnat(oldAddr: number, newAddr: number, port: number, partial: boolean): void;
  /** Source port → `port`, and fix the checksum for the source address change (`partial`: as dnat). */
  snat(oldAddr: number, newAddr: number, port: number, partial: boolean): void;
  /**
   * Fix the checksum for one more 32-bit word of a pseudo-header address changing (IPv6 NAT
   * rewrites four: dnat/snat take the first, this the other three).
   */
  natAddr(oldWord: number, newWord: number, partial: boolean): void;
}
