// An IP-in-IP (TUN) real server (REFERENCE.md §1.3, DESIGN.md "Real servers") on a kernel with no
// `ipip` module: a local TUN device (with virtio_net_hdr, for partial checksums) owns the VIPs,
// and decap-loop.ts writes each decapsulated packet into it, so the local stack receives it as if from a wire and answers the client directly,
// from the VIP, through its normal routes.

import type { TunDevice } from '../native/addon';
import { hideVipsFromArp } from './dr-setup';
import { type HostChanges, type HostLog, type HostOps, ipv4ConfPath } from './host-changes';

/** The native calls this needs (openTun / closeFd from src/native/native-io.ts). */
export interface TunNative {
  openTun(name: string): Pick<TunDevice, 'fd' | 'name'>;
  closeFd(fd: number): void;
}

/** Create TUN device `dev`, bring it up and give it the VIPs. Returns its fd. */
export async function setupTun(
  changes: HostChanges,
  ops: HostOps,
  log: HostLog,
  native: TunNative,
  dev: string,
  vips: readonly string[],
): Promise<number> {
  // An existing device of that name is someone else's: attaching to it (a persistent TUN) and
  // later tearing it down would break them.
  let exists = true;
  try {
    await ops.ip(['link', 'show', 'dev', dev]);
  } catch {
    exists = false;
  }
  if (exists) throw new Error(`device ${dev} already exists; choose another with --dev`);

  const tun = native.openTun(dev);
  changes.recordTun(tun.name, () => native.closeFd(tun.fd));
  // Nothing reads from the device: what the stack sends into it (IPv6 link-local chatter) is
  // dropped when its queue is full.
  await ops.ip(['link', 'set', 'dev', tun.name, 'up']);
  log.info(`set ${tun.name} up`);

  // The decapsulated packets come in on the TUN with the client's source address, whose route
  // points out of another interface: reverse-path filtering would drop them. The kernel takes the
  // larger of conf/all and conf/<dev> (IN_DEV_RPFILTER is IN_DEV_MAXCONF), so both must be 0.
  changes.setSysctl(ipv4ConfPath(tun.name, 'rp_filter'), '0');
  changes.setSysctl(ipv4ConfPath('all', 'rp_filter'), '0');

  // A local address is answered for in ARP on every interface unless arp_ignore says otherwise:
  // on a LAN where the VIP is asked for (the director's own), this host would take the clients'
  // packets from the director, as a DR real server would without the same settings.
  hideVipsFromArp(changes);
  // The VIPs as /32 (IPv6: /128, without duplicate address detection, which would hold them
  // back) on the TUN: the local stack owns them (delivers what we write in) and replies from
  // them; a host prefix adds no subnet route, so nothing is routed into the TUN.
  for (const vip of vips) await changes.addAddress(`${vip}/${vip.includes(':') ? 128 : 32}`, tun.name);
  return tun.fd;
}
