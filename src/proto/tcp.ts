// TCP for the data path (ip_vs_proto_tcp): scheduling on SYN, the state machine of
// tcp-states.ts with IPVS's direction handling, and NAT through the TCP header view
// (nat-ports.ts, shared with UDP).

import { CONN_F_NOOUTPUT, IPPROTO_TCP } from '../ip-vs';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpView } from '../wire/tcp';
import { V_OK } from '../wire/verdict';
import { dnatPorts, natAddrWord, snatPorts } from './nat-ports';
import { DIR_OUT, type PacketMeta, type ProtoHandler } from './proto';
import {
  DEFAULT_TCP_TIMEOUTS,
  TCP_DIR_INPUT,
  TCP_DIR_INPUT_ONLY,
  TCP_DIR_OUTPUT,
  TCP_S_CLOSE,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_NONE,
  TCP_S_TIME_WAIT,
  TCP_STATE_NAMES,
  tcpNextState,
} from './tcp-states';

const view = new TcpView();

export const tcp: ProtoHandler = {
  protocol: IPPROTO_TCP,
  name: 'TCP',
  stateNames: TCP_STATE_NAMES,
  defaultTimeouts: DEFAULT_TCP_TIMEOUTS,
  activeState: TCP_S_ESTABLISHED,
  initialState: TCP_S_NONE,

  parse(buf: Buffer, off: number, len: number, pkt: PacketMeta): number {
    view.reset(buf, off, len);
    const v = view.checkLen();
    if (v !== V_OK) return v;
    pkt.sport = view.srcPort;
    pkt.dport = view.dstPort;
    pkt.tcpFlags = view.flags;
    return V_OK;
  },

  // A connection is created by a SYN without RST (tcp_conn_schedule). SYN+ACK is allowed too:
  // active FTP's data connection is opened from the real server's side.
  canSchedule(pkt: PacketMeta, sloppy: boolean): boolean {
    // sloppy_tcp: a flow that arrives mid-way (moved here by ECMP, or after a failover without
    // its sync copy) is scheduled from its first packet; a reset never starts one.
    if (sloppy) return (pkt.tcpFlags & TCP_RST) === 0;
    return (pkt.tcpFlags & (TCP_SYN | TCP_RST)) === TCP_SYN;
  },

  opensConn(pkt: PacketMeta): boolean {
    return (pkt.tcpFlags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST)) === TCP_SYN;
  },

  // is_new_conn_expected: a fresh SYN on a tuple whose connection is in TIME_WAIT or CLOSE starts
  // a new connection (rescheduled) instead of reviving the old one; with bit 2 of the mode also
  // FIN_WAIT, for connections whose replies never pass the director (DR/TUN).
  reusesConn(state: number, connFlags: number, mode: number): boolean {
    return (
      state === TCP_S_TIME_WAIT ||
      state === TCP_S_CLOSE ||
      ((mode & 2) !== 0 && state === TCP_S_FIN_WAIT && (connFlags & CONN_F_NOOUTPUT) !== 0)
    );
  },

  // IPVS picks the table by direction; a connection flagged NOOUTPUT (DR/TUN: the replies never
  // pass the director) uses INPUT_ONLY until an OUTPUT packet is seen, which clears the flag.
  transition(conns, c, dir, pkt, secure): number {
    let off = dir === DIR_OUT ? TCP_DIR_OUTPUT : TCP_DIR_INPUT;
    if (conns.flags[c] & CONN_F_NOOUTPUT) {
      if (off === TCP_DIR_OUTPUT) conns.flags[c] &= ~CONN_F_NOOUTPUT;
      else off = TCP_DIR_INPUT_ONLY;
    }
    return tcpNextState(conns.state[c], off, pkt.tcpFlags, secure);
  },

  dnat(oldAddr: number, newAddr: number, port: number, partial: boolean): void {
    dnatPorts(view, oldAddr, newAddr, port, partial);
  },

  snat(oldAddr: number, newAddr: number, port: number, partial: boolean): void {
    snatPorts(view, oldAddr, newAddr, port, partial);
  },

  natAddr(oldWord: number, newWord: number, partial: boolean): void {
    natAddrWord(view, oldWord, newWord, partial);
  },
};
