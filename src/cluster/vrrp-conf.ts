// The VRRP half of a keepalived.conf, for the keepalived lvsd runs (`keepalived --vrrp`): the
// same file a kernel-IPVS user has, with what lvsd does itself taken out and what lvsd needs
// from keepalived put in.
//
// Kept, as written: vrrp_instance, vrrp_sync_group, vrrp_script, the track_* blocks, static
// addresses/routes/rules, garp_group, linkbeat_interfaces, and global_defs but for its lvs_*
// keys (lvsd runs the LVS half: virtual_server blocks, lvs_timeouts, lvs_sync_daemon).
// Added:
//   - `vrrp_notify_fifo PATH`: keepalived tells lvsd every state change of an instance or sync
//     group there (a user's vrrp_notify_fifo is replaced, with a warning; notify_fifo is kept);
//   - a `vrrp_script` that fails as soon as lvsd's process is gone, tracked by every instance:
//     a master whose lvsd died goes to FAULT, drops its addresses and hands over at once;
//   - nothing else: notify scripts, authentication, track_interface and the rest are keepalived's.
// Read from it for lvsd: each instance's virtual addresses (served by lvsd on the master only),
// the sync groups, and global_defs `lvs_sync_daemon IFACE INSTANCE [id N] [maxlen N] [port N]
// [ttl N] [group ADDR]` (lvsd's sync daemon follows that instance's state).

import { type Stmt, type Token, VRRP_TOP_LEVEL } from '../health/keepalived-conf';
import { ipToU32, isValidIpv4 } from '../wire/addr';

/** The name of the vrrp_script lvsd adds. */
export const ALIVE_SCRIPT = 'lvsd_alive';

export interface VrrpInstance {
  name: string;
  /** The state it starts in (`state`), MASTER or BACKUP. */
  initial: string;
  iface: string;
  vrid: number;
  priority: number;
  /** Its IPv4 virtual_ipaddress (and _excluded) addresses. */
  vips: number[];
}

/** lvs_sync_daemon: lvsd's sync daemon runs master while `instance` is MASTER, else backup. */
export interface LvsSyncDaemon {
  iface: string;
  instance: string;
  syncid: number;
  maxlen: number;
  port: number;
  ttl: number;
  group: string;
}

export interface VrrpConf {
  /** The configuration for keepalived --vrrp. */
  text: string;
  instances: VrrpInstance[];
  /** Sync group name → its instances. */
  groups: Map<string, string[]>;
  syncDaemon: LvsSyncDaemon | null;
  warnings: string[];
}

export interface VrrpConfOptions {
  /** lvsd's process id (the alive script checks it). */
  pid: number;
  /** Where keepalived writes state changes. */
  fifo: string;
  /** The `kill` program (its -0 tells whether a process exists). */
  killPath: string;
}

function word(text: string, from: Token): Token {
  return { text, quoted: false, file: from.file, line: from.line };
}

function stmt(kw: string, args: string[], from: Token, block: Stmt[] | null = null): Stmt {
  return { kw: word(kw, from), args: args.map((a) => word(a, from)), block };
}

/** Configuration text: one statement a line, blocks indented. */
export function emitConf(stmts: readonly Stmt[], indent = ''): string {
  let out = '';
  for (const s of stmts) {
    const words = [s.kw, ...s.args].map((t) => (t.quoted ? `"${t.text}"` : t.text)).join(' ');
    if (s.block === null) {
      out += `${indent}${words}\n`;
    } else {
      out += `${indent}${words} {\n${emitConf(s.block, `${indent}  `)}${indent}}\n`;
    }
  }
  return out;
}

function intArg(s: Stmt, i: number, fallback: number): number {
  const v = Number(s.args[i]?.text);
  return Number.isInteger(v) ? v : fallback;
}

function parseInstance(s: Stmt): VrrpInstance {
  const inst: VrrpInstance = {
    name: s.args[0]?.text ?? '',
    initial: 'BACKUP',
    iface: '',
    vrid: 0,
    priority: 100,
    vips: [],
  };
  for (const k of s.block ?? []) {
    const kw = k.kw.text;
    if (kw === 'state') inst.initial = (k.args[0]?.text ?? 'BACKUP').toUpperCase();
    else if (kw === 'interface') inst.iface = k.args[0]?.text ?? '';
    else if (kw === 'virtual_router_id') inst.vrid = intArg(k, 0, 0);
    else if (kw === 'priority') inst.priority = intArg(k, 0, 100);
    else if (kw === 'virtual_ipaddress' || kw === 'virtual_ipaddress_excluded') {
      for (const a of k.block ?? []) {
        const addr = a.kw.text.split('/')[0];
        if (isValidIpv4(addr)) inst.vips.push(ipToU32(addr));
      }
    }
  }
  return inst;
}

function parseSyncDaemon(s: Stmt, warnings: string[]): LvsSyncDaemon | null {
  const [iface, instance] = s.args;
  if (iface === undefined || instance === undefined) {
    warnings.push(`${s.kw.file}:${s.kw.line}: lvs_sync_daemon needs an interface and an instance; ignored`);
    return null;
  }
  const d: LvsSyncDaemon = {
    iface: iface.text,
    instance: instance.text,
    syncid: 0,
    maxlen: 0,
    port: 0,
    ttl: 0,
    group: '',
  };
  for (let i = 2; i + 1 < s.args.length; i += 2) {
    const key = s.args[i].text;
    const value = s.args[i + 1].text;
    if (key === 'id') d.syncid = intArg(s, i + 1, 0);
    else if (key === 'maxlen') d.maxlen = intArg(s, i + 1, 0);
    else if (key === 'port') d.port = intArg(s, i + 1, 0);
    else if (key === 'ttl') d.ttl = intArg(s, i + 1, 0);
    else if (key === 'group') d.group = value;
  }
  return d;
}

/** The VRRP half of `tree` (readKeepalivedTree), ready for keepalived, and what lvsd needs of it. */
export function buildVrrpConf(tree: readonly Stmt[], opts: VrrpConfOptions): VrrpConf {
  const warnings: string[] = [];
  const out: Stmt[] = [];
  const instances: VrrpInstance[] = [];
  const groups = new Map<string, string[]>();
  let syncDaemon: LvsSyncDaemon | null = null;
  let globals: Stmt[] = [];
  let anchor: Token | undefined;
  for (const s of tree) {
    const kw = s.kw.text;
    anchor ??= s.kw;
    if (kw === 'global_defs') {
      for (const g of s.block ?? []) {
        const key = g.kw.text;
        if (key === 'lvs_sync_daemon') syncDaemon = parseSyncDaemon(g, warnings);
        else if (key === 'vrrp_notify_fifo' || key === 'vrrp_notify_fifo_script') {
          warnings.push(`${g.kw.file}:${g.kw.line}: ${key} is lvsd's own (it follows VRRP through it); ignored`);
        } else if (!key.startsWith('lvs_')) globals.push(g);
      }
    } else if (VRRP_TOP_LEVEL.has(kw)) {
      if (kw === 'vrrp_instance') {
        instances.push(parseInstance(s));
        out.push(withAliveScript(s));
      } else {
        if (kw === 'vrrp_sync_group') {
          const members = s.block?.find((b) => b.kw.text === 'group')?.block ?? [];
          groups.set(
            s.args[0]?.text ?? '',
            members.map((m) => m.kw.text),
          );
        }
        out.push(s);
      }
    }
  }
  if (anchor === undefined) anchor = { text: '', quoted: false, file: '', line: 0 };
  globals = [...globals, stmt('vrrp_notify_fifo', [opts.fifo], anchor)];
  const alive = stmt('vrrp_script', [ALIVE_SCRIPT], anchor, [
    {
      kw: word('script', anchor),
      args: [{ ...word(`${opts.killPath} -0 ${opts.pid}`, anchor), quoted: true }],
      block: null,
    },
    stmt('interval', ['1'], anchor),
    stmt('fall', ['1'], anchor),
    stmt('rise', ['1'], anchor),
  ]);
  const text = emitConf([stmt('global_defs', [], anchor, globals), alive, ...out]);
  return { text, instances, groups, syncDaemon, warnings };
}

/** `s` (a vrrp_instance) tracking lvsd's alive script besides whatever it tracks already. */
function withAliveScript(s: Stmt): Stmt {
  const block = [...(s.block ?? [])];
  const track: Stmt = { kw: word(ALIVE_SCRIPT, s.kw), args: [], block: null };
  const i = block.findIndex((b) => b.kw.text === 'track_script' && b.block !== null);
  if (i >= 0) block[i] = { ...block[i], block: [...(block[i].block ?? []), track] };
  else block.push({ kw: word('track_script', s.kw), args: [], block: [track] });
  return { ...s, block };
}
