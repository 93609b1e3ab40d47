// Taking a virtual service's packets before local delivery, so that the VIP may also be an
// address of the director (on lo, or put on an interface by keepalived), as with kernel IPVS,
// whose hook runs before the local stack gets the packet.
//
// The kernel looks up the `local` table first (ip rule priority 0), so a local VIP's packets
// never reach a route into the TUN. lvsd therefore
//   - marks, in an nftables prerouting chain of its own (table `ip lvs<T>`, priority mangle + 10),
//     exactly what belongs to its services: <VIP, protocol, port> of each service (port-0
//     services: <VIP, protocol>), every fragment to a VIP (ports are only in the first; the
//     engine reassembles and hands back what is not a service's), and ICMP errors to a VIP
//     (those about its connections are relayed, the rest handed back). The mark takes the upper
//     16 bits of the packet's mark (the routing table number), so a user's small marks, as used
//     by firewall-mark services, survive;
//   - routes marked packets into the TUN by a rule placed just before the `local` rule
//     (`fwmark M/0xffff0000 lookup T`). Firewall-mark services' rules go there too.
// Everything else to the VIP (ssh to another port, ping) is delivered locally, untouched, and
// ARP for it is answered by the kernel as for any local address. Packets from the director
// itself (iif lo) and from the TUN are never marked: what the engine hands back to the local
// stack goes out through the raw socket and loops back on lo.
//
// Why nftables and policy routing: a rule can select by protocol and port but not fragments;
// tc or a netdev hook would have to follow every interface. One nftables table with sets and one
// rule cost a set lookup per packet in prerouting and nothing on the data path.
//
// A rule cannot be inserted before another of the same priority, so placing one before `local`
// re-adds the local rule after it; a spare copy of it one priority below covers the moment in
// between, so local delivery never stops, even if lvsd is killed there.

import { spawn } from 'node:child_process';
import { FTP_PORT, IPPROTO_TCP } from '../ip-vs';
import { u32ToIp } from '../wire/addr';
import { ip, ipQuiet } from './ip-cmd';

/** The mark bits lvsd owns: the upper half. */
export const INTERCEPT_MASK = 0xffff0000;

/** The mark of lvsd's intercepted packets for routing table `table` (never 0). */
export function interceptMark(table: number): number {
  return ((table & 0xffff || 1) << 16) >>> 0;
}

export function nftTableName(table: number): string {
  return `lvs${table}`;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/** The nftables table that marks a service's packets (see the header). */
export function interceptRuleset(table: number, tun: string): string {
  const name = nftTableName(table);
  const set = `meta mark set meta mark & ${hex(~INTERCEPT_MASK >>> 0)} | ${hex(interceptMark(table))}`;
  return [
    // Replace any table of the same name (a killed run's) in the same transaction.
    `add table ip ${name}`,
    `delete table ip ${name}`,
    `table ip ${name} {`,
    '  set services { type ipv4_addr . inet_proto . inet_service; }',
    '  set anyport { type ipv4_addr . inet_proto; }',
    '  set vips { type ipv4_addr; }',
    // An FTP service's data connections come to port 20 or any unprivileged port of its VIP.
    '  set ftpdata { type ipv4_addr . inet_service; flags interval; }',
    '  chain prerouting {',
    '    type filter hook prerouting priority mangle + 10; policy accept;',
    '    meta iiftype loopback return',
    `    iifname ${JSON.stringify(tun)} return`,
    `    ip daddr . meta l4proto . th dport @services ${set} return`,
    `    ip daddr . meta l4proto @anyport ${set} return`,
    `    ip daddr . tcp dport @ftpdata ${set} return`,
    `    ip daddr @vips ip frag-off & 0x3fff != 0 ${set} return`,
    `    ip daddr @vips icmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } ${set}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Run `nft -f -` on `script`. */
export function nft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', (e) => reject(new Error(`nft: ${e.message} (is nftables installed? run scripts/setup.sh)`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft: ${err.trim() || `exit ${code}`}`))));
    child.stdin.end(script);
  });
}

/**
 * The set elements of a service: <VIP, protocol, port>, or <VIP, protocol> for port 0; an FTP
 * service (TCP port 21) also its data ports, as the engine finds that service for them.
 */
export function serviceElements(table: number, protocol: number, addr: number, port: number): string[] {
  const name = nftTableName(table);
  const vip = u32ToIp(addr);
  if (port === 0) return [`ip ${name} anyport { ${vip} . ${protocol} }`];
  const out = [`ip ${name} services { ${vip} . ${protocol} . ${port} }`];
  if (protocol === IPPROTO_TCP && port === FTP_PORT)
    out.push(`ip ${name} ftpdata { ${vip} . 20, ${vip} . 1024-65535 }`);
  return out;
}

interface RuleShow {
  priority: number;
  table?: string;
}

/** The priority of the rule that looks up the `local` table (0 unless someone moved it). */
/** An address family's rules: IPv4's unless told. */
export type RuleFamily = '-4' | '-6';

async function localPref(family: RuleFamily): Promise<number | undefined> {
  return (JSON.parse(await ip('-j', family, 'rule', 'show')) as RuleShow[]).find((r) => r.table === 'local')?.priority;
}

/** Add rule `args` (selectors and action, no priority) just before the `local` rule of `family`. */
export async function addRuleBeforeLocal(args: string[], family: RuleFamily = '-4'): Promise<void> {
  const pref = await localPref(family);
  if (pref === undefined) {
    // No local rule at all (an unusual host): first is before everything else.
    await ip(family, 'rule', 'add', 'pref', '0', ...args);
    return;
  }
  const at = String(pref);
  const spare = String(pref + 1);
  await ipQuiet(family, 'rule', 'add', 'pref', spare, 'lookup', 'local');
  await ip(family, 'rule', 'del', 'pref', at, 'lookup', 'local');
  try {
    await ip(family, 'rule', 'add', 'pref', at, ...args);
  } finally {
    await ip(family, 'rule', 'add', 'pref', at, 'lookup', 'local');
    await ipQuiet(family, 'rule', 'del', 'pref', spare, 'lookup', 'local');
  }
}

/** Remove every rule `args` selects (wherever it is). */
export async function delRule(args: string[], family: RuleFamily = '-4'): Promise<void> {
  while (await ipQuiet(family, 'rule', 'del', ...args)) {}
}

/**
 * After a killed run: if it died while the local rule was re-placed, leave exactly one `local`
 * rule (the spare one below it goes; a missing one comes back).
 */
export async function repairLocalRule(family: RuleFamily = '-4'): Promise<void> {
  const locals = (JSON.parse(await ip('-j', family, 'rule', 'show')) as RuleShow[])
    .filter((r) => r.table === 'local')
    .map((r) => r.priority);
  if (locals.length === 0) await ip(family, 'rule', 'add', 'pref', '0', 'lookup', 'local');
  for (const p of locals.slice(1)) {
    if (p === locals[0] + 1) await ipQuiet(family, 'rule', 'del', 'pref', String(p), 'lookup', 'local');
  }
}

/** The intercepting rule: marked packets into the TUN's table. */
export function interceptRule(table: number): string[] {
  return ['fwmark', `${hex(interceptMark(table))}/${hex(INTERCEPT_MASK)}`, 'lookup', String(table)];
}
