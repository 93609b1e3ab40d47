// A direct-routing (DR) real server (REFERENCE.md §1.3, DESIGN.md "Real servers"): the director
// sends the client's packet unchanged, only framed for this host's MAC, so this host must accept
// packets for the VIP (own it) while never claiming the VIP on the LAN (the director does).

import { type HostChanges, ipv4ConfPath } from './host-changes';

/** The interface that holds the VIPs: never one that answers ARP on the LAN. */
export const DR_VIP_DEV = 'lo';

export async function setupDr(changes: HostChanges, vips: readonly string[]): Promise<void> {
  hideVipsFromArp(changes);
  // An IPv6 VIP on lo needs nothing more: the kernel answers a neighbour solicitation only for an
  // address of the interface it came in on, and never picks one on lo as the source of its own.
  for (const vip of vips) await changes.addAddress(`${vip}/${vip.includes(':') ? 128 : 32}`, DR_VIP_DEV);
}

/**
 * Never claim a VIP on a LAN (DR; TUN real servers on a LAN where clients or routers ask for
 * the VIP, as on the director's own): the VIP's packets must come through the director.
 */
export function hideVipsFromArp(changes: HostChanges): void {
  // The kernel takes the larger of conf/all and conf/<dev> for both arp_ignore and arp_announce
  // (IN_DEV_ARP_IGNORE / IN_DEV_ARP_ANNOUNCE are IN_DEV_MAXCONF in include/linux/inetdevice.h), so
  // setting them on `all` covers every interface, present and future; the per-interface copies
  // the LVS-DR HOWTO also sets (on lo, eth0) add nothing. A higher (stricter) value is kept.
  //   arp_ignore=1    answer an ARP request only for an address configured on the interface it
  //                   came in on: the VIP is on lo, so no LAN interface answers for it.
  //   arp_announce=2  use the best address of the outgoing interface as the source of our own ARP
  //                   requests, never the VIP, so neighbours never learn "VIP is at our MAC".
  // Both are set before the VIP exists: there is no moment in which this host answers for it.
  changes.raiseSysctl(ipv4ConfPath('all', 'arp_ignore'), 1);
  changes.raiseSysctl(ipv4ConfPath('all', 'arp_announce'), 2);
}
