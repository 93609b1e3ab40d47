// Host routing for lvsd (DESIGN.md "Ingress"), done with iproute2 and /proc/sys:
//
//   (net.ipv6.conf.<tun>.disable_ipv6=1 and rp_filter=2 first)
//   (accept_local=1, ip addr add 169.254.76.83/32 dev <tun> scope host: NAT replies from a local VIP)
//   ip link set <tun> up mtu 1500 txqueuelen 10000
//   ip route add default dev <tun> table <T>              NAT replies go into the TUN ...
//   ip route add blackhole default table <T> metric max   (... dropped, not delivered, if lvsd dies)
//   ip rule add from <RIP> iif <dev> lookup <T> pref <P>  ... one rule per NAT real server
//   ip rule add iif <dev> ipproto icmp lookup <T> pref <P> ... and routers' ICMP errors from beyond
//                                                          it (one rule per interface of such servers)
//   ip route add <VIP>/32 dev <tun>                        virtual addresses go into the TUN
//   ip neigh add proxy <VIP> dev <lan>                     the director answers ARP for the VIP
//   ip neigh replace <RIP> dev <dev> managed               the kernel keeps a DR server's MAC resolved
//     (only while the VIP is not a local address: the kernel answers ARP for a local one)
//   ip rule add fwmark <N> lookup <T+k> (before local)     marked packets (fwmark services) ...
//   ip route add default dev <lvsm..> table <T+k>          ... into the mark's own input TUN
//                                                          (-f N -6: ip -6 rule and route)
//   nft table ip lvs<T>, ip rule add fwmark <M> lookup <T> (before local)
//                                                          services' packets to a VIP that is
//                                                          also a local address (intercept.ts)
//   net.ipv4.ip_forward=1, net.ipv4.neigh.<lan>.proxy_delay=0
//
// IPv6, from the first IPv6 virtual address or real server on (ensureIpv6):
//   net.ipv6.conf.<tun>.addr_gen_mode=1, disable_ipv6=0      IPv6 on the TUN, no link-local address
//   net.ipv6.conf.all.forwarding=1
//   ip -6 route add default dev <tun> table <T> (+ blackhole) as for IPv4
//   ip -6 rule add from <RIP>/128 iif <dev> lookup <T>        NAT replies
//   ip -6 rule add iif <dev> ipproto 58 lookup <T>            routers' ICMPv6 errors from beyond it
//   ip -6 route add <VIP>/128 dev <tun>
//   ip -6 neigh add proxy <VIP> dev <lan>, net.ipv6.conf.<lan>.proxy_ndp=1, neigh proxy_delay=0
//                                                          the director answers neighbour
//                                                          solicitations for the VIP
//
// Everything added is recorded in a state file (written atomically) so that `teardown` removes
// exactly that, and a later lvsd can remove the leftovers of one that was killed. Routes via the
// TUN vanish with the device; rules, proxy entries and sysctls do not.

import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { type NetnsId, recordOrigin } from '../run-dir';
import { ipToU32, isValidIpv4, u32ToIp } from '../wire/addr';
import { ipv6Words, isIpv6Text, parseIpv6 } from '../wire/addr6';
import { type DestPath, type HostAddr, type HostNet, hostAddrText } from './host-net';
import {
  addRuleBeforeLocal,
  delRule,
  interceptRule,
  interceptRuleset,
  nft,
  nftTableName,
  repairLocalRule,
  serviceElements,
} from './intercept';
import { findProgram, ip, ipQuiet } from './ip-cmd';

export const DEFAULT_TABLE = 19542;
/** The TUN's own address (host scope, link-local range; see setup()). */
export const TUN_ADDR = '169.254.76.83/32';
export const DEFAULT_RULE_PREF = 19542;

export interface RoutingOptions {
  tun: string;
  table: number;
  rulePref: number;
  /** Where announce() keeps VIP routes for a routing daemon (--announce-table), if anywhere. */
  announceTable?: number;
  stateFile: string;
  /** The network namespace lvsd runs in (recorded, so a later start knows where the record belongs). */
  netns: NetnsId;
  /** Interface that answers ARP for virtual addresses; default: the one whose subnet holds the VIP. */
  vipDev?: string;
  log: (msg: string) => void;
}

interface HostState {
  /** Where the changes were made (absent in records of older versions). */
  netns?: NetnsId;
  tun: string;
  table: number;
  rulePref: number;
  /** NAT reply rules; each interface among them also has a rule for its forwarded ICMP. */
  rules: { addr: string; dev: string }[];
  proxies: { addr: string; dev: string }[];
  /** Managed neighbour entries lvsd created for DR real servers. */
  neighbours: { addr: string; dev: string }[];
  /** sysctl path → value before lvsd changed it. */
  sysctls: Record<string, string>;
  /** Firewall marks routed into their input devices, each through its own table (`v6`: IPv6's). */
  marks?: { mark: number; table: number; v6?: boolean }[];
  /** The nftables table and the rule before `local` that take services' packets (intercept.ts). */
  intercept?: boolean;
}

function readSysctl(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function writeSysctl(path: string, value: string): void {
  writeFileSync(path, `${value}\n`);
}

function readState(file: string): HostState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as HostState;
  } catch {
    return undefined;
  }
}

/** Undo what a state file records (rules, proxy entries, sysctls, the reply table). */
async function undo(state: HostState): Promise<void> {
  for (const r of state.rules) await ipQuiet(...natRule(r.addr, r.dev, state.table, 'del'));
  for (const r of state.rules) await ipQuiet(...icmpRule(isIpv6Text(r.addr), r.dev, state.table, 'del'));
  // Rules of ours that the state file missed (killed between adding and recording).
  for (const family of ['-4', '-6']) {
    while (await ipQuiet(family, 'rule', 'del', 'lookup', String(state.table), 'pref', String(state.rulePref))) {}
  }
  for (const m of state.marks ?? []) {
    const family = m.v6 ? '-6' : '-4';
    await delRule(['fwmark', String(m.mark), 'lookup', String(m.table)], family);
    await ipQuiet(family, 'route', 'flush', 'table', String(m.table));
    if (m.v6) await repairLocalRule('-6');
  }
  if (state.intercept) {
    await delRule(interceptRule(state.table));
    await nft(`delete table ip ${nftTableName(state.table)}\n`).catch(() => {});
    await repairLocalRule();
  }
  for (const p of state.proxies) await ipQuiet('neigh', 'del', 'proxy', p.addr, 'dev', p.dev);
  for (const n of state.neighbours ?? []) await ipQuiet('neigh', 'del', n.addr, 'dev', n.dev);
  await ipQuiet('route', 'flush', 'table', String(state.table));
  await ipQuiet('-6', 'route', 'flush', 'table', String(state.table));
  for (const [path, value] of Object.entries(state.sysctls)) {
    try {
      writeSysctl(path, value);
    } catch {
      // the interface may be gone
    }
  }
}

/** `ip rule` arguments of a NAT server's reply rule (IPv4 or IPv6 by the address's text). */
function natRule(addr: string, dev: string, table: number, verb: 'add' | 'del', pref?: number): string[] {
  const v6 = isIpv6Text(addr);
  const args = [
    v6 ? '-6' : '-4',
    'rule',
    verb,
    'from',
    `${addr}/${v6 ? 128 : 32}`,
    'iif',
    dev,
    'lookup',
    String(table),
  ];
  return pref === undefined ? args : [...args, 'pref', String(pref)];
}

/** `ip rule` arguments of the rule for routers' ICMP (or ICMPv6) errors forwarded from `dev`. */
function icmpRule(v6: boolean, dev: string, table: number, verb: 'add' | 'del', pref?: number): string[] {
  const args = [v6 ? '-6' : '-4', 'rule', verb, 'iif', dev, 'ipproto', v6 ? '58' : 'icmp', 'lookup', String(table)];
  return pref === undefined ? args : [...args, 'pref', String(pref)];
}

/** `addr` lies in `prefix`/`plen` (IPv6 bytes). */
function inPrefix6(addr: Uint8Array, prefix: Uint8Array, plen: number): boolean {
  for (let i = 0; i < 16; i++) {
    const keep = plen - 8 * i;
    if (keep <= 0) return true;
    const mask = keep >= 8 ? 0xff : (0xff00 >>> keep) & 0xff;
    if ((addr[i] & mask) !== (prefix[i] & mask)) return false;
  }
  return true;
}

export class IpRouteNet implements HostNet {
  readonly resolves = true;

  get announces(): boolean {
    return this.opts.announceTable !== undefined;
  }
  private readonly state: HostState;
  /** The virtual addresses (addVip), each with whether it was a local address when last seen. */
  private readonly vips = new Map<number, boolean>();
  /** Addresses keepalived places (virtual_ipaddress): never routed or proxied by lvsd. */
  private managed: ReadonlySet<number> = new Set();

  constructor(private readonly opts: RoutingOptions) {
    this.state = {
      netns: opts.netns,
      tun: opts.tun,
      table: opts.table,
      rulePref: opts.rulePref,
      rules: [],
      proxies: [],
      neighbours: [],
      sysctls: {},
    };
  }

  /**
   * Remove what a previous lvsd with this state file left behind (it was killed). Only a record
   * made in this network namespace is undone. One from a namespace that no longer exists is
   * discarded: its changes went with it. One from a namespace that still exists (a shared
   * --socket) is refused with an error, and left alone.
   */
  static async cleanupLeftovers(stateFile: string, netns: NetnsId, log: (msg: string) => void): Promise<void> {
    const old = readState(stateFile);
    if (old === undefined) return;
    const origin = recordOrigin(old.netns, netns);
    if (origin === 'elsewhere') {
      throw new Error(
        `${stateFile} records what an lvsd changed in another network namespace (net:[${old.netns?.inode}]), ` +
          'which still exists: stop or clean up that lvsd there, or give this one another --socket',
      );
    }
    if (origin === 'gone') {
      log(`discarding ${stateFile}: its network namespace no longer exists, and its changes went with it`);
    } else {
      log(`removing leftovers of a previous run recorded in ${stateFile}`);
      await undo(old);
    }
    unlinkSync(stateFile);
  }

  private save(): void {
    const tmp = `${this.opts.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(tmp, this.opts.stateFile);
  }

  private setSysctl(path: string, value: string): void {
    if (!existsSync(path)) return;
    const old = readSysctl(path);
    if (old === value) return;
    if (!(path in this.state.sysctls)) this.state.sysctls[path] = old;
    this.save();
    writeSysctl(path, value);
  }

  /** Bring the TUN up and install the reply table; enable forwarding. */
  async setup(): Promise<void> {
    const { tun, table } = this.opts;
    this.save();
    // No IPv6 on the TUN: the engine forwards IPv4, and link-local chatter would only be dropped.
    // Off before the link goes up, or its first router solicitation is already on its way in.
    this.setSysctl(`/proc/sys/net/ipv6/conf/${tun}/disable_ipv6`, '1');
    // Packets the engine writes back into the TUN (offloads: 64 KiB segments the kernel forwards)
    // come from clients, virtual and real-server addresses: loose mode, whatever `all` says
    // (the kernel uses the larger of `all` and the device's value, so 0 could still mean strict).
    this.setSysctl(`/proc/sys/net/ipv4/conf/${tun}/rp_filter`, '2');
    // ... and from a VIP that is also a local address (NAT replies): not a martian source, and
    // the reverse-path check needs the device to have an address of its own (without one, any
    // rp_filter drops them): one of host scope, never a source towards anyone.
    this.setSysctl(`/proc/sys/net/ipv4/conf/${tun}/accept_local`, '1');
    await ip('addr', 'replace', TUN_ADDR, 'dev', tun, 'scope', 'host');
    await ip('link', 'set', 'dev', tun, 'up', 'mtu', '1500', 'txqueuelen', '10000');
    await ip('route', 'replace', 'default', 'dev', tun, 'table', String(table));
    // Behind it, a blackhole: if lvsd dies, the TUN and the route through it go, and what the
    // rules still send here (a local VIP's service packets, NAT replies) is dropped rather than
    // delivered locally, where a VIP's stack would reset the clients' connections before
    // keepalived has moved the VIP away (the next lvsd, or teardown, flushes the table).
    await ip('route', 'replace', 'blackhole', 'default', 'table', String(table), 'metric', '4294967295');
    this.setSysctl('/proc/sys/net/ipv4/ip_forward', '1');
    // Services' packets to a VIP that is also a local address (intercept.ts).
    if (findProgram('nft') === undefined) {
      this.opts.log('nft (nftables) is not installed: a VIP that is also a local address gets none of its packets');
      return;
    }
    this.state.intercept = true;
    this.save();
    await nft(interceptRuleset(table, tun));
    await addRuleBeforeLocal(interceptRule(table));
  }

  async teardown(): Promise<void> {
    await undo(this.state);
    this.state.rules = [];
    this.state.proxies = [];
    this.state.neighbours = [];
    this.state.sysctls = {};
    this.state.marks = [];
    try {
      unlinkSync(this.opts.stateFile);
    } catch {
      // already gone
    }
  }

  /** The interface whose IPv4 or IPv6 subnet contains `addr` (not the TUN, not loopback). */
  private async lanDevFor(addr: HostAddr): Promise<string | undefined> {
    if (this.opts.vipDev) return this.opts.vipDev;
    const v6 = typeof addr === 'string' ? parseIpv6(addr) : null;
    const links = JSON.parse(await ip('-j', v6 !== null ? '-6' : '-4', 'addr', 'show')) as {
      ifname: string;
      addr_info?: { local: string; prefixlen: number; scope?: string }[];
    }[];
    for (const link of links) {
      if (link.ifname === this.opts.tun || link.ifname === 'lo') continue;
      for (const a of link.addr_info ?? []) {
        if (v6 !== null) {
          const local = parseIpv6(a.local);
          if (a.scope !== 'link' && local !== null && inPrefix6(v6, local, a.prefixlen)) return link.ifname;
          continue;
        }
        const mask = a.prefixlen === 0 ? 0 : (0xffffffff << (32 - a.prefixlen)) >>> 0;
        if ((ipToU32(a.local) & mask) >>> 0 === ((addr as number) & mask) >>> 0) return link.ifname;
      }
    }
    return undefined;
  }

  /** IPv6 through the TUN: on from the first IPv6 virtual address or real server. */
  private ipv6 = false;

  private async ensureIpv6(): Promise<void> {
    if (this.ipv6) return;
    this.ipv6 = true;
    const { tun, table } = this.opts;
    // No link-local address: the kernel then sends nothing of its own into the TUN but the odd
    // MLD report (the engine drops those), and answers no neighbour discovery on it.
    this.setSysctl(`/proc/sys/net/ipv6/conf/${tun}/addr_gen_mode`, '1');
    this.setSysctl(`/proc/sys/net/ipv6/conf/${tun}/disable_ipv6`, '0');
    this.setSysctl('/proc/sys/net/ipv6/conf/all/forwarding', '1');
    await ip('-6', 'route', 'replace', 'default', 'dev', tun, 'table', String(table));
    await ip('-6', 'route', 'replace', 'blackhole', 'default', 'table', String(table), 'metric', '4294967295');
  }

  /** Addresses keepalived's VRRP places: lvsd serves them only where they are local. */
  manage(addrs: ReadonlySet<number>): void {
    this.managed = addrs;
  }

  async addVip(addr: HostAddr): Promise<void> {
    if (typeof addr === 'string') {
      await this.ensureIpv6();
      await ip('-6', 'route', 'replace', `${addr}/128`, 'dev', this.opts.tun);
      await this.addProxy(addr);
      return;
    }
    const vip = u32ToIp(addr);
    if (this.managed.has(addr)) {
      // Only for its fragments and ICMP errors (intercept.ts); no route, no proxy ARP.
      if (this.state.intercept) await nft(`add element ip ${nftTableName(this.opts.table)} vips { ${vip} }\n`);
      return;
    }
    const local = this.localAddrs().has(addr);
    this.vips.set(addr, local);
    await ip('route', 'replace', `${vip}/32`, 'dev', this.opts.tun);
    if (this.state.intercept) await nft(`add element ip ${nftTableName(this.opts.table)} vips { ${vip} }\n`);
    // A local VIP: the kernel answers ARP for it.
    if (!local) await this.addProxy(addr);
  }

  /**
   * Answer ARP (IPv6: neighbour solicitations) for VIP `addr` on the interface whose subnet
   * holds it, if one does.
   */
  private async addProxy(addr: HostAddr): Promise<void> {
    const vip = hostAddrText(addr);
    const v6 = typeof addr === 'string';
    const dev = await this.lanDevFor(addr);
    if (dev === undefined) {
      this.opts.log(
        `${vip}: no local subnet holds it; not answering ${v6 ? 'neighbour solicitations' : 'ARP'} for it (route it to this host)`,
      );
      return;
    }
    if (v6) {
      this.setSysctl(`/proc/sys/net/ipv6/conf/${dev}/proxy_ndp`, '1');
      this.setSysctl(`/proc/sys/net/ipv6/neigh/${dev}/proxy_delay`, '0');
    } else {
      this.setSysctl(`/proc/sys/net/ipv4/neigh/${dev}/proxy_delay`, '0');
    }
    this.state.proxies.push({ addr: vip, dev });
    this.save();
    await ip('neigh', 'replace', 'proxy', vip, 'dev', dev);
  }

  async delVip(addr: HostAddr): Promise<void> {
    if (typeof addr === 'string') {
      await ipQuiet('-6', 'route', 'del', `${addr}/128`, 'dev', this.opts.tun);
      await this.delProxy(addr);
      return;
    }
    const vip = u32ToIp(addr);
    this.vips.delete(addr);
    await ipQuiet('route', 'del', `${vip}/32`, 'dev', this.opts.tun);
    if (this.state.intercept) {
      await nft(`delete element ip ${nftTableName(this.opts.table)} vips { ${vip} }\n`).catch(() => {});
    }
    await this.delProxy(addr);
  }

  private async delProxy(addr: HostAddr): Promise<void> {
    const vip = hostAddrText(addr);
    const i = this.state.proxies.findIndex((p) => p.addr === vip);
    if (i < 0) return;
    const [p] = this.state.proxies.splice(i, 1);
    await ipQuiet('neigh', 'del', 'proxy', p.addr, 'dev', p.dev);
    this.save();
  }

  /**
   * The real server's replies arrive on `dev`: a rule sends them into the TUN. So does a rule
   * for all ICMP forwarded from `dev` (one per interface): a router between the director and
   * the server reports a problem with a packet the director sent it (fragmentation needed, time
   * exceeded, unreachable) to that packet's source, the client, and the engine must translate
   * it as IPVS does (ip_vs_out_icmp); the rest of that ICMP passes the engine unchanged.
   * ICMP to the director itself stays local: the local table is looked up first.
   */
  async addNatServer(addr: HostAddr, dev: string): Promise<void> {
    const rip = hostAddrText(addr);
    if (dev === this.opts.tun) return;
    const v6 = typeof addr === 'string';
    if (v6) await this.ensureIpv6();
    const { table, rulePref } = this.opts;
    // One ICMP rule per interface and family.
    const firstOnDev = !this.state.rules.some((r) => r.dev === dev && isIpv6Text(r.addr) === v6);
    this.state.rules.push({ addr: rip, dev });
    this.save();
    await ip(...natRule(rip, dev, table, 'add', rulePref));
    if (firstOnDev) await ip(...icmpRule(v6, dev, table, 'add', rulePref));
  }

  async delNatServer(addr: HostAddr): Promise<void> {
    const rip = hostAddrText(addr);
    const i = this.state.rules.findIndex((r) => r.addr === rip);
    if (i < 0) return;
    const [r] = this.state.rules.splice(i, 1);
    const v6 = typeof addr === 'string';
    const table = this.opts.table;
    await ipQuiet(...natRule(rip, r.dev, table, 'del'));
    if (!this.state.rules.some((o) => o.dev === r.dev && isIpv6Text(o.addr) === v6)) {
      await ipQuiet(...icmpRule(v6, r.dev, table, 'del'));
    }
    this.save();
  }

  async announce(addr: HostAddr, on: boolean): Promise<void> {
    const table = this.opts.announceTable;
    if (table === undefined) return;
    const text = hostAddrText(addr);
    const route = typeof addr === 'string' ? ['-6', 'route'] : ['route'];
    const prefix = `${text}/${typeof addr === 'string' ? 128 : 32}`;
    // Through the TUN: the route vanishes with it when lvsd dies, and the daemon withdraws it.
    if (on) await ip(...route, 'replace', prefix, 'dev', this.opts.tun, 'table', String(table));
    else await ipQuiet(...route, 'del', prefix, 'dev', this.opts.tun, 'table', String(table));
    this.opts.log(`${text}: ${on ? 'announced' : 'withdrawn'} (table ${table})`);
  }

  // A VIP that is also a local address is IPv4's case only (intercept.ts): IPv6 VIPs are never
  // the director's own addresses yet.
  async addService(protocol: number, addr: HostAddr, port: number): Promise<void> {
    if (!this.state.intercept || typeof addr === 'string') return;
    const elements = serviceElements(this.opts.table, protocol, addr, port);
    await nft(elements.map((e) => `add element ${e}\n`).join(''));
  }

  async delService(protocol: number, addr: HostAddr, port: number): Promise<void> {
    if (!this.state.intercept || typeof addr === 'string') return;
    for (const e of serviceElements(this.opts.table, protocol, addr, port)) {
      await nft(`delete element ${e}\n`).catch(() => {});
    }
  }

  localAddrs(): ReadonlySet<number> {
    const out = new Set<number>();
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4') out.add(ipToU32(a.address));
    }
    return out;
  }

  async updateVips(local: ReadonlySet<number>): Promise<void> {
    for (const [addr, was] of this.vips) {
      const now = local.has(addr);
      if (now === was) continue;
      this.vips.set(addr, now);
      this.opts.log(`${u32ToIp(addr)} is ${now ? 'now' : 'no longer'} a local address`);
      if (now) await this.delProxy(addr);
      else await this.addProxy(addr);
    }
  }

  async addFwmark(mark: number, dev: string, v6 = false): Promise<void> {
    this.state.marks ??= [];
    const marks = this.state.marks;
    let table = this.opts.table + 1;
    while (marks.some((m) => m.table === table)) table++;
    marks.push(v6 ? { mark, table, v6 } : { mark, table });
    this.save();
    const family = v6 ? '-6' : '-4';
    // The device goes away with lvsd's fd, and its sysctls with it: nothing to restore. IPv6
    // off before the link is up (see setup()), unless the mark is an IPv6 service's: then on,
    // without a link-local address.
    writeSysctl(`/proc/sys/net/ipv4/conf/${dev}/rp_filter`, '2');
    if (v6) {
      await this.ensureIpv6();
      writeSysctl(`/proc/sys/net/ipv6/conf/${dev}/addr_gen_mode`, '1');
      writeSysctl(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '0');
    } else if (!marks.some((m) => m.mark === mark && m.v6)) {
      writeSysctl(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
    }
    await ip('link', 'set', 'dev', dev, 'up', 'mtu', '1500', 'txqueuelen', '10000');
    await ip(family, 'route', 'replace', 'default', 'dev', dev, 'table', String(table));
    // Before the local table: a marked packet to a local address is a service's too, as with IPVS.
    await addRuleBeforeLocal(['fwmark', String(mark), 'lookup', String(table)], family);
    this.opts.log(`fwmark ${mark}${v6 ? ' (IPv6)' : ''}: marked packets go into ${dev} (table ${table})`);
  }

  async delFwmark(mark: number, v6 = false): Promise<void> {
    const marks = this.state.marks ?? [];
    const i = marks.findIndex((m) => m.mark === mark && (m.v6 ?? false) === v6);
    if (i < 0) return;
    const [m] = marks.splice(i, 1);
    const family = v6 ? '-6' : '-4';
    await delRule(['fwmark', String(m!.mark), 'lookup', String(m!.table)], family);
    await ipQuiet(family, 'route', 'flush', 'table', String(m!.table));
    this.save();
  }

  /** Interface facts change rarely: read each at most every few seconds. */
  private readonly links = new Map<string, { mtu: number; mac: Buffer; at: number }>();

  private async link(dev: string): Promise<{ mtu: number; mac: Buffer }> {
    const now = Date.now();
    const cached = this.links.get(dev);
    if (cached !== undefined && now - cached.at < LINK_CACHE_MS) return cached;
    const [l] = JSON.parse(await ip('-j', 'link', 'show', 'dev', dev)) as { mtu: number; address?: string }[];
    const info = { mtu: l.mtu, mac: macBytes(l.address ?? '00:00:00:00:00:00'), at: now };
    this.links.set(dev, info);
    return info;
  }

  async destPath(addr: HostAddr, neighbour: boolean): Promise<DestPath | undefined> {
    const rip = hostAddrText(addr);
    const v6 = typeof addr === 'string';
    let route: RouteGet | undefined;
    try {
      [route] = JSON.parse(await ip('-j', v6 ? '-6' : '-4', 'route', 'get', rip)) as RouteGet[];
    } catch {
      return undefined;
    }
    if (route?.dev === undefined || route.dev === this.opts.tun || route.prefsrc === undefined) return undefined;
    const link = await this.link(route.dev);
    const path: DestPath = {
      dev: route.dev,
      // No tunnel source or next hop for IPv6 yet (its DR MACs are looked up with the path).
      src: v6 ? 0 : ipToU32(route.prefsrc),
      mtu: route.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? link.mtu,
      devMac: link.mac,
    };
    if (v6) path.src6 = ipv6Words(route.prefsrc) ?? undefined;
    if (typeof addr === 'number') {
      path.nextHop = route.gateway !== undefined && isValidIpv4(route.gateway) ? ipToU32(route.gateway) : addr;
    }
    if (neighbour) {
      const hop = route.gateway ?? rip;
      const family = v6 ? '-6' : '-4';
      const entries = JSON.parse(await ip('-j', family, 'neigh', 'show', 'to', hop, 'dev', route.dev)) as NeighShow[];
      const n = entries.find((e) => e.lladdr !== undefined && (e.state ?? []).some((st) => USABLE.has(st)));
      if (n?.lladdr !== undefined) path.mac = macBytes(n.lladdr);
    }
    return path;
  }

  async neighbourMacs(): Promise<Map<number, { mac: Buffer; dev: string }>> {
    const out = new Map<number, { mac: Buffer; dev: string }>();
    const text = await readFile('/proc/net/arp', 'utf8');
    for (const line of text.split('\n').slice(1)) {
      const [addr, , flags, mac, , dev] = line.trim().split(/\s+/);
      // ATF_COM (0x2): the entry is complete (REACHABLE, STALE, DELAY, PROBE or permanent).
      if (dev === undefined || (Number.parseInt(flags, 16) & 0x2) === 0 || !isValidIpv4(addr)) continue;
      out.set(ipToU32(addr), { mac: macBytes(mac), dev });
    }
    return out;
  }

  async addDrServer(addr: HostAddr, dev: string): Promise<void> {
    const rip = hostAddrText(addr);
    const entries = JSON.parse(await ip('-j', 'neigh', 'show', 'to', rip, 'dev', dev)) as NeighShow[];
    // An entry the operator made permanent stays as it is.
    if (entries.some((e) => (e.state ?? []).includes('PERMANENT'))) return;
    this.state.neighbours.push({ addr: rip, dev });
    this.save();
    await ip('neigh', 'replace', rip, 'dev', dev, 'managed');
  }

  async delDrServer(addr: HostAddr): Promise<void> {
    const rip = hostAddrText(addr);
    const i = this.state.neighbours.findIndex((n) => n.addr === rip);
    if (i < 0) return;
    const [n] = this.state.neighbours.splice(i, 1);
    await ipQuiet('neigh', 'del', n.addr, 'dev', n.dev);
    this.save();
  }
}

const LINK_CACHE_MS = 5000;

/** Neighbour states whose link-layer address may be used (the kernel re-validates STALE ones). */
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

interface RouteGet {
  dev?: string;
  prefsrc?: string;
  gateway?: string;
  metrics?: { mtu?: number }[];
}

interface NeighShow {
  lladdr?: string;
  state?: string[];
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}
