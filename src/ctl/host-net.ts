// What the control plane needs from the host's network configuration, as one narrow interface:
// steer a virtual address into the TUN (and answer ARP for it), and steer a NAT real server's
// replies into the TUN. lvsd uses IpRouteNet (routing.ts); tests and --no-routes use NoHostNet.

export interface HostNet {
  /** The first service on a virtual address was added. */
  addVip(addr: number): Promise<void>;
  /** The last service on a virtual address was deleted. */
  delVip(addr: number): Promise<void>;
  /** The first NAT dest with this real-server address was added. */
  addNatServer(addr: number): Promise<void>;
  /** The last NAT dest with this real-server address went away. */
  delNatServer(addr: number): Promise<void>;
}

/** Leaves the host alone (routing is the operator's job, or there is no host: tests). */
export class NoHostNet implements HostNet {
  async addVip(): Promise<void> {}
  async delVip(): Promise<void> {}
  async addNatServer(): Promise<void> {}
  async delNatServer(): Promise<void> {}
}
