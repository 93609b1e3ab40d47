// The TCP state machine IPVS runs per connection (ip_vs_proto_tcp.c): its two transition tables,
// the normal one (tcp_states) and the one the secure_tcp defense switches to (tcp_states_dos),
// with the state names and default timeouts. Pure data plus two lookups (tcpStateIdx,
// tcpNextState). The TCP handler (tcp.ts) picks the direction's rows for a packet; the engine
// sets the state it returns, which moves the dest's active/inactive counts and re-arms the
// connection's timer from the timeout table.
//
// IPVS does not follow the endpoints' TCP state exactly: it sees one packet at a time, classifies
// it into one event (rst > syn > fin > ack) and looks up the next state by direction:
//   INPUT       client -> director, for NAT connections (the director also sees the replies)
//   OUTPUT      real server -> client, seen by the director only with NAT
//   INPUT_ONLY  client -> director while the connection has CONN_F_NOOUTPUT (DR/TUN dests)

/** Connection states, numbered as IP_VS_TCP_S_*. */
export const TCP_S_NONE = 0;
export const TCP_S_ESTABLISHED = 1;
export const TCP_S_SYN_SENT = 2;
export const TCP_S_SYN_RECV = 3;
export const TCP_S_FIN_WAIT = 4;
export const TCP_S_TIME_WAIT = 5;
export const TCP_S_CLOSE = 6;
export const TCP_S_CLOSE_WAIT = 7;
export const TCP_S_LAST_ACK = 8;
export const TCP_S_LISTEN = 9;
export const TCP_S_SYNACK = 10;
/** Number of states. */
export const TCP_S_LAST = 11;

/** State names as /proc/net/ip_vs_conn and `ipvsadm -Lc` print them, indexed by state. */
export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'SYNACK',
];

/** Row offsets of the three directions in the transition table (4 event rows each). */
export const TCP_DIR_INPUT = 0;
export const TCP_DIR_OUTPUT = 4;
export const TCP_DIR_INPUT_ONLY = 8;

/** Default timeout of each state, in seconds (tcp_timeouts[]), indexed by state. */
export const DEFAULT_TCP_TIMEOUTS: readonly number[] = [
  2, // NONE
  900, // ESTABLISHED
  120, // SYN_SENT
  60, // SYN_RECV
  120, // FIN_WAIT
  120, // TIME_WAIT
  10, // CLOSE
  60, // CLOSE_WAIT
  30, // LAST_ACK
  120, // LISTEN
  120, // SYNACK
];

// Flag bits of the TCP header's flags byte (RFC 9293).
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

/** Event rows within a direction. */
const EV_SYN = 0;
const EV_FIN = 1;
const EV_ACK = 2;
const EV_RST = 3;

/**
 * The event a packet's flags stand for: rst (3) over syn (0) over fin (1) over ack (2), or -1 when
 * none of those flags is set. `tcpFlags` is the header's flags byte; other bits are ignored.
 */
export function tcpStateIdx(tcpFlags: number): number {
  if (tcpFlags & RST) return EV_RST;
  if (tcpFlags & SYN) return EV_SYN;
  if (tcpFlags & FIN) return EV_FIN;
  if (tcpFlags & ACK) return EV_ACK;
  return -1;
}

// Short names for the tables. Neither leads to NONE; only the secure_tcp table uses SYNACK.
const sES = TCP_S_ESTABLISHED;
const sSS = TCP_S_SYN_SENT;
const sSR = TCP_S_SYN_RECV;
const sFW = TCP_S_FIN_WAIT;
const sTW = TCP_S_TIME_WAIT;
const sCL = TCP_S_CLOSE;
const sCW = TCP_S_CLOSE_WAIT;
const sLA = TCP_S_LAST_ACK;
const sLI = TCP_S_LISTEN;
const sSA = TCP_S_SYNACK;

/**
 * Next state, indexed [direction offset + event][current state]. Rows 0-3 INPUT, 4-7 OUTPUT,
 * 8-11 INPUT_ONLY, each as syn, fin, ack, rst.
 */
// biome-ignore format: the table is laid out as a grid
const TCP_STATES: readonly (readonly number[])[] = [
  //         sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
  /* INPUT */
  /* syn */ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /* fin */ [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR],
  /* OUTPUT */
  /* syn */ [sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR],
  /* fin */ [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /* rst */ [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  /* INPUT_ONLY */
  /* syn */ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /* fin */ [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

/**
 * The secure_tcp table (tcp_states_dos): a client's ACK does not make a SYN_RECV connection
 * ESTABLISHED; only the real server's SYN-ACK (SYNACK) followed by the client's ACK does, and a
 * connection whose replies never pass the director starts in SYNACK. Half-open connections so
 * stay in states with short timeouts.
 */
// biome-ignore format: the table is laid out as a grid
const TCP_STATES_DOS: readonly (readonly number[])[] = [
  //         sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
  /* INPUT */
  /* syn */ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA],
  /* fin */ [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA],
  /* ack */ [sCL, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA],
  /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
  /* OUTPUT */
  /* syn */ [sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA],
  /* fin */ [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /* ack */ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /* rst */ [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  /* INPUT_ONLY */
  /* syn */ [sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA],
  /* fin */ [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */ [sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

/**
 * The state a connection in `state` moves to on a packet with `tcpFlags`, seen in the direction
 * whose row offset is `dirOffset` (TCP_DIR_*), by the normal table or (`secure`) secure_tcp's. A
 * packet with none of rst/syn/fin/ack moves it to CLOSE. `state` must be below TCP_S_LAST.
 */
export function tcpNextState(state: number, dirOffset: number, tcpFlags: number, secure = false): number {
  const ev = tcpStateIdx(tcpFlags);
  if (ev < 0) return TCP_S_CLOSE;
  return (secure ? TCP_STATES_DOS : TCP_STATES)[dirOffset + ev][state];
}
