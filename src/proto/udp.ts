// UDP for the data path (ip_vs_proto_udp): every datagram may schedule, one state, NAT through
// the UDP header view (nat-ports.ts, shared with TCP; a zero checksum means "none" and stays zero).

import { IPPROTO_UDP } from '../ip-vs';
import { UdpView } from '../wire/udp';
import { V_OK } from '../wire/verdict';
import { dnatPorts, natAddrWord, snatPorts } from './nat-ports';
import type { PacketMeta, ProtoHandler } from './proto';
import { DEFAULT_UDP_TIMEOUT, UDP_S_NORMAL, UDP_STATE_NAMES } from './udp-states';

const view = new UdpView();

export const udp: ProtoHandler = {
  protocol: IPPROTO_UDP,
  name: 'UDP',
  stateNames: UDP_STATE_NAMES,
  defaultTimeouts: [DEFAULT_UDP_TIMEOUT],
  activeState: -1,
  initialState: UDP_S_NORMAL,

  parse(buf: Buffer, off: number, len: number, pkt: PacketMeta): number {
    view.reset(buf, off, len);
    const v = view.checkLen();
    if (v !== V_OK) return v;
    pkt.sport = view.srcPort;
    pkt.dport = view.dstPort;
    pkt.tcpFlags = 0;
    return V_OK;
  },

  canSchedule(): boolean {
    return true;
  },

  opensConn(): boolean {
    return false;
  },

  reusesConn(): boolean {
    return false;
  },

  transition(): number {
    return UDP_S_NORMAL;
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
