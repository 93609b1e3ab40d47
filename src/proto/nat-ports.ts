// The NAT rewrite TCP and UDP share (ip_vs_proto_tcp's tcp_dnat_handler/tcp_snat_handler and
// ip_vs_proto_udp's twins): one port replaced, and the L4 checksum updated for it and for the
// address the IPv4 layer replaces in the pseudo-header. Written against the header views'
// "set with checksum update" methods, so each protocol's checksum rule stays in its view:
// TcpView's always-present checksum, UdpView's "0 means none, a computed 0 is sent as 0xffff".
// Per packet: no allocation, no closure; each handler passes its own module-level view.

/** What the rewrite needs of an L4 header view (TcpView and UdpView have it). */
export interface NatPortsView {
  srcPort: number;
  dstPort: number;
  setSrcPortWithChecksumUpdate(port: number): void;
  setDstPortWithChecksumUpdate(port: number): void;
  /** The pseudo-header's address changed: RFC 1624 update of a full checksum. */
  updateChecksumForAddr(oldAddr: number, newAddr: number): void;
  /** The same for an offload's partial checksum (the uncomplemented pseudo-header sum). */
  updatePartialChecksumForAddr(oldAddr: number, newAddr: number): void;
}

/**
 * Destination port → `port`, and the checksum fixed for that and for the destination address
 * going from `oldAddr` to `newAddr`. A `partial` checksum (offload) covers the ports only when the
 * device completes it, so only the address goes into it.
 */
export function dnatPorts(view: NatPortsView, oldAddr: number, newAddr: number, port: number, partial: boolean): void {
  if (partial) {
    view.dstPort = port;
    view.updatePartialChecksumForAddr(oldAddr, newAddr);
    return;
  }
  if (view.dstPort !== port) view.setDstPortWithChecksumUpdate(port);
  view.updateChecksumForAddr(oldAddr, newAddr);
}

/** dnatPorts for the source port and address. */
export function snatPorts(view: NatPortsView, oldAddr: number, newAddr: number, port: number, partial: boolean): void {
  if (partial) {
    view.srcPort = port;
    view.updatePartialChecksumForAddr(oldAddr, newAddr);
    return;
  }
  if (view.srcPort !== port) view.setSrcPortWithChecksumUpdate(port);
  view.updateChecksumForAddr(oldAddr, newAddr);
}

/** One more word of a pseudo-header address changed (IPv6's other three): the checksum follows. */
export function natAddrWord(view: NatPortsView, oldWord: number, newWord: number, partial: boolean): void {
  if (oldWord === newWord) return;
  if (partial) view.updatePartialChecksumForAddr(oldWord, newWord);
  else view.updateChecksumForAddr(oldWord, newWord);
}
