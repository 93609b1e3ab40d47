// The LVS half of keepalived.conf (keepalived.conf.5, REFERENCE.md §3.1) as a typed model:
// `virtual_server`, `virtual_server_group`, `real_server` and the health checkers, with
// `include` files. Pure: the file system is injected, nothing is thrown on bad input.
//
// Three stages, each small:
//   1. tokenize: words, `{` `}`, "quoted strings", comments (`#` / `!` to end of line) and
//      `include GLOB` spliced in place; every token carries its file and line.
//   2. tree: statements (keyword + the arguments on its line + an optional `{ ... }` block).
//   3. interpret: known keywords fill the model; unknown keywords (and their whole block) are
//      reported as warnings with file:line and skipped, as keepalived does; an error that makes a
//      block meaningless (bad address, unknown scheduler, ...) rejects just that block.
//
// Defaults are keepalived's (REFERENCE.md §3.1 and keepalived.conf.5); where neither states
// one, the assumption is written next to the constant.
//
// `toIpvsServices` turns a VirtualServer into the control protocol's ServiceSpec/DestSpec
// shape (src/ctl/protocol.ts), one service per address/port of a virtual_server_group.

import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { DestSpec, ServiceSpec } from '../ctl/protocol';
import {
  AF_INET6,
  DEFAULT_PERSISTENT_TIMEOUT,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  IP_VS_PROTOCOLS,
  isServiceProtoName,
  SCHED_FLAG_BITS,
  type ServiceProtoName,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  TUN_CSUM_NAMES,
  TUN_F_NOCSUM,
  TUN_TYPE_IPIP,
  TUN_TYPE_NAMES,
  type TunCsumName,
  type TunTypeName,
} from '../ip-vs';
import { getScheduler } from '../sched/registry';
import { ipToU32, isValidIpv4, u32ToIp } from '../wire/addr';
import { formatIpv6, isValidIpv6, parseIpv6 } from '../wire/addr6';

// ---------------------------------------------------------------------------------------------
// Defaults

/** virtual_server and checker `delay_loop` (keepalived.conf.5: 60 s). */
export const DEFAULT_DELAY_LOOP = 60;
/** Checker `connect_timeout` (5 s). */
export const DEFAULT_CONNECT_TIMEOUT = 5;
/** Checker `retry` (1; DNS_CHECK 3). */
export const DEFAULT_RETRY = 1;
export const DEFAULT_DNS_RETRY = 3;
/** `delay_before_retry`: 3 s for HTTP_GET/SSL_GET, 1 s otherwise, delay_loop for DNS_CHECK. */
export const DEFAULT_HTTP_DELAY_BEFORE_RETRY = 3;
export const DEFAULT_DELAY_BEFORE_RETRY = 1;
/** `warmup`: the man page states no default; assumed 0 (first check without random delay). */
export const DEFAULT_WARMUP = 0;
/** keepalived's default method is NAT (ipvsadm's is DR): REFERENCE.md §3.1. */
export const DEFAULT_LVS_METHOD: LvsMethod = 'NAT';
/**
 * `persistence_timeout`: absent means no persistence (0). Given without a value keepalived
 * uses IPVS's 6 minutes (REFERENCE.md §3.1 / §6.1: 360 s).
 */
export const DEFAULT_PERSISTENCE_TIMEOUT = DEFAULT_PERSISTENT_TIMEOUT;
/** `quorum` default 1, `hysteresis` default 0. */
export const DEFAULT_QUORUM = 1;
export const DEFAULT_HYSTERESIS = 0;
/** HTTP_GET/SSL_GET `status_code` when a url gives none: any 2xx. */
export const DEFAULT_STATUS_CODES: readonly StatusRange[] = [[200, 299]];
/** DNS_CHECK `type` and `name`. */
export const DEFAULT_DNS_TYPE = 'SOA';
export const DEFAULT_DNS_NAME = '.';
/** UDP_CHECK reply lengths. */
export const DEFAULT_UDP_MIN_REPLY = 0;
export const DEFAULT_UDP_MAX_REPLY = 255;
/** A virtual_server_group range larger than this is rejected (a typo, not a real VIP range). */
export const MAX_GROUP_RANGE = 65536;

// ---------------------------------------------------------------------------------------------
// Model

export interface SourcePos {
  file: string;
  line: number;
}

export type LvsMethod = 'NAT' | 'DR' | 'TUN';
/** `protocol TCP|UDP|SCTP`: ip-vs.ts's service protocol names. */
export type Protocol = ServiceProtoName;
export type StatusRange = readonly [number, number];

/** `lvs_method TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]`. */
export interface TunnelOpts {
  type: TunTypeName;
  port: number;
  csum: TunCsumName;
}

export type VsTarget =
  | { kind: 'addr'; addr: string; port: number }
  | { kind: 'fwmark'; fwmark: number }
  | { kind: 'group'; name: string };

/** The fields every checker has. */
export interface CheckerCommon {
  pos: SourcePos;
  connectIp: string | null;
  connectPort: number | null;
  bindto: string | null;
  bindPort: number | null;
  /** Seconds. */
  connectTimeout: number;
  retry: number;
  delayBeforeRetry: number;
  delayLoop: number;
  warmup: number;
  /** Start in the failed state (checker `alpha`, else the virtual_server's). */
  alpha: boolean;
}

export interface HttpUrl {
  path: string;
  statusCodes: StatusRange[];
  digest: string | null;
  regex: string | null;
  regexNoMatch: boolean;
  virtualhost: string | null;
}

export type Checker =
  | (CheckerCommon & { type: 'TCP_CHECK' })
  | (CheckerCommon & { type: 'PING_CHECK' })
  | (CheckerCommon & {
      type: 'HTTP_GET' | 'SSL_GET';
      urls: HttpUrl[];
      virtualhost: string | null;
      httpProtocol: string | null;
      enableSni: boolean;
      sniName: string | null;
    })
  | (CheckerCommon & {
      type: 'UDP_CHECK';
      /** Hex digits, as written (without spaces). */
      payload: string | null;
      requireReply: string | null;
      minReplyLength: number;
      maxReplyLength: number;
    })
  | (CheckerCommon & { type: 'DNS_CHECK'; name: string; queryType: string })
  | (CheckerCommon & {
      type: 'MISC_CHECK';
      miscPath: string;
      /** Seconds; keepalived's default is the checker's delay_loop. */
      miscTimeout: number;
      miscDynamic: boolean;
      user: string | null;
    });

export type CheckerType = Checker['type'];

export interface RealServer {
  pos: SourcePos;
  addr: string;
  port: number;
  weight: number;
  inhibitOnFailure: boolean;
  notifyUp: string | null;
  notifyDown: string | null;
  uThreshold: number;
  lThreshold: number;
  /** Per-real-server method; null = the virtual_server's. */
  method: LvsMethod | null;
  tunnel: TunnelOpts | null;
  checkers: Checker[];
}

export interface SorryServer {
  addr: string;
  port: number;
}

export interface VirtualServer {
  pos: SourcePos;
  target: VsTarget;
  delayLoop: number;
  sched: string;
  /** `flag-1`..`flag-3`, `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`. */
  schedFlags: string[];
  ops: boolean;
  method: LvsMethod;
  tunnel: TunnelOpts | null;
  /** Seconds; 0 = not persistent. */
  persistenceTimeout: number;
  persistenceGranularity: string | null;
  persistenceEngine: string | null;
  protocol: Protocol;
  quorum: number;
  hysteresis: number;
  quorumUp: string | null;
  quorumDown: string | null;
  sorryServer: SorryServer | null;
  sorryServerInhibit: boolean;
  sorryServerMethod: LvsMethod | null;
  inhibitOnFailure: boolean;
  alpha: boolean;
  omega: boolean;
  virtualhost: string | null;
  haSuspend: boolean;
  realServers: RealServer[];
}

export type GroupEntry =
  | { kind: 'addr'; pos: SourcePos; first: string; last: string; port: number }
  | { kind: 'fwmark'; pos: SourcePos; fwmark: number };

export interface VirtualServerGroup {
  pos: SourcePos;
  name: string;
  entries: GroupEntry[];
}

/** global_defs `lvs_timeouts [tcp S] [tcpfin S] [udp S]`: the IPVS timeouts it sets (seconds). */
export interface LvsTimeouts {
  tcp?: number;
  tcpfin?: number;
  udp?: number;
}

export interface KeepalivedConf {
  virtualServers: VirtualServer[];
  groups: Map<string, VirtualServerGroup>;
  /** From global_defs; null when not given. */
  timeouts: LvsTimeouts | null;
  /** The named file itself could not be read (nothing was configured). */
  unreadable: boolean;
  warnings: string[];
  errors: string[];
}

export type ReadFileFn = (path: string) => string;
export type ListDirFn = (dir: string) => string[];

// ---------------------------------------------------------------------------------------------
// Stage 1: tokens

/** A word of the configuration, with where it was written. */
export interface Token {
  text: string;
  quoted: boolean;
  file: string;
  line: number;
}

interface Diag {
  warnings: string[];
  errors: string[];
}

function at(t: SourcePos): string {
  return `${t.file}:${t.line}`;
}

/** Split one line into tokens (comments removed); `{` and `}` always stand alone. */
function lexLine(text: string, file: string, line: number, diag: Diag): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#' || c === '!') {
      break;
    } else if (c === '{' || c === '}') {
      out.push({ text: c, quoted: false, file, line });
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) {
        diag.warnings.push(`${file}:${line}: unterminated quoted string`);
        out.push({ text: text.slice(i + 1), quoted: true, file, line });
        break;
      }
      out.push({ text: text.slice(i + 1, end), quoted: true, file, line });
      i = end + 1;
    } else {
      let j = i;
      while (j < text.length && !' \t\r{}"'.includes(text[j])) j++;
      out.push({ text: text.slice(i, j), quoted: false, file, line });
      i = j;
    }
  }
  return out;
}

function hasGlob(s: string): boolean {
  return s.includes('*') || s.includes('?');
}

/** Shell-style match of one path component: `*` and `?`; a leading dot must be literal. */
function globMatcher(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

interface Io {
  readFile: ReadFileFn;
  listDir: ListDirFn;
}

/** The files an `include` names, sorted as glob(3) returns them. */
function expandInclude(pattern: string, fromFile: string, io: Io, tok: Token, diag: Diag): string[] {
  const full = posix.isAbsolute(pattern) ? pattern : posix.join(posix.dirname(fromFile), pattern);
  const dir = posix.dirname(full);
  const base = posix.basename(full);
  if (hasGlob(dir)) {
    diag.warnings.push(`${at(tok)}: include ${pattern}: wildcards are supported in the last path component only`);
    return [];
  }
  if (!hasGlob(base)) return [full];
  let names: string[];
  try {
    names = io.listDir(dir);
  } catch {
    names = [];
  }
  const re = globMatcher(base);
  const hits = names.filter((n) => re.test(n) && (base.startsWith('.') || !n.startsWith('.'))).sort();
  if (hits.length === 0) diag.warnings.push(`${at(tok)}: include ${pattern}: no file matches`);
  return hits.map((n) => posix.join(dir, n));
}

/**
 * Tokens of `file` with its includes spliced in; `stack` holds the files being read (cycles).
 * Returns false when `file` itself could not be read.
 */
function tokenizeFile(file: string, io: Io, diag: Diag, stack: string[], out: Token[], from: Token | null): boolean {
  let text: string;
  try {
    text = io.readFile(file);
  } catch (e) {
    const where = from ? `${at(from)}: ` : '';
    diag.errors.push(`${where}cannot read ${file}: ${(e as Error).message}`);
    return false;
  }
  stack.push(posix.resolve(file));
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const toks = lexLine(lines[n], file, n + 1, diag);
    for (let k = 0; k < toks.length; k++) {
      const t = toks[k];
      if (t.quoted || t.text !== 'include') {
        out.push(t);
        continue;
      }
      const arg = toks[k + 1];
      if (!arg || arg.text === '{' || arg.text === '}') {
        diag.warnings.push(`${at(t)}: include without a file name`);
        continue;
      }
      k++;
      for (const inc of expandInclude(arg.text, file, io, t, diag)) {
        const abs = posix.resolve(inc);
        const loop = stack.indexOf(abs);
        if (loop >= 0) {
          const chain = [...stack.slice(loop), abs].join(' -> ');
          diag.errors.push(`${at(t)}: include cycle: ${chain}`);
          continue;
        }
        tokenizeFile(inc, io, diag, stack, out, t);
      }
    }
  }
  stack.pop();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Stage 2: statements

/** A statement: a keyword, the arguments on its line, and its `{ ... }` block if any. */
export interface Stmt {
  kw: Token;
  args: Token[];
  block: Stmt[] | null;
}

function sameLine(a: Token, b: Token): boolean {
  return a.line === b.line && a.file === b.file;
}

class TreeBuilder {
  private i = 0;
  constructor(
    private readonly toks: Token[],
    private readonly diag: Diag,
  ) {}

  /** Statements until the matching `}` (consumed) or the end (top level). */
  build(open: Token | null): Stmt[] {
    const out: Stmt[] = [];
    while (this.i < this.toks.length) {
      const t = this.toks[this.i++];
      if (!t.quoted && t.text === '}') {
        if (open) return out;
        this.diag.warnings.push(`${at(t)}: unmatched '}' ignored`);
        continue;
      }
      if (!t.quoted && t.text === '{') {
        // A block with no keyword: skip it whole.
        this.diag.warnings.push(`${at(t)}: '{' without a keyword, block ignored`);
        this.build(t);
        continue;
      }
      const args: Token[] = [];
      while (this.i < this.toks.length) {
        const a = this.toks[this.i];
        if (!sameLine(a, t) || (!a.quoted && (a.text === '{' || a.text === '}'))) break;
        args.push(a);
        this.i++;
      }
      const next = this.toks[this.i];
      let block: Stmt[] | null = null;
      if (next && !next.quoted && next.text === '{') {
        this.i++;
        block = this.build(next);
      }
      out.push({ kw: t, args, block });
    }
    if (open) this.diag.errors.push(`${at(open)}: missing '}' for the block opened here`);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Stage 3: interpretation

/** Top-level blocks keepalived's VRRP process reads (cluster/vrrp-conf.ts passes them on). */
export const VRRP_TOP_LEVEL: ReadonlySet<string> = new Set([
  'vrrp_instance',
  'vrrp_sync_group',
  'vrrp_script',
  'vrrp_track_file',
  'track_file',
  'vrrp_track_process',
  'track_process',
  'static_ipaddress',
  'static_routes',
  'static_rules',
  'garp_group',
  'linkbeat_interfaces',
  'linkbeat_use_polling',
]);

/** Top-level blocks of keepalived's other half (VRRP, BFD, globals): skipped silently. */
const NON_LVS_TOP_LEVEL: ReadonlySet<string> = new Set([
  ...VRRP_TOP_LEVEL,
  'global_defs',
  'bfd_instance',
  'net_namespace',
  'net_namespace_ipvs',
  'instance',
  'use_pid_dir',
  'SSL',
  '$',
]);

const DNS_TYPES: ReadonlySet<string> = new Set(['A', 'NS', 'CNAME', 'SOA', 'MX', 'TXT', 'AAAA']);
const CHECKER_TYPES: ReadonlySet<string> = new Set([
  'TCP_CHECK',
  'HTTP_GET',
  'SSL_GET',
  'UDP_CHECK',
  'DNS_CHECK',
  'MISC_CHECK',
  'PING_CHECK',
]);
/** Checkers keepalived has that lvs-ts does not run: warned about and skipped. */
const UNSUPPORTED_CHECKERS: ReadonlySet<string> = new Set(['SMTP_CHECK', 'BFD_CHECK', 'FILE_CHECK']);

/** A whole decimal integer in [min, max], or null. */
function parseIntIn(s: string, min: number, max: number): number | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

/** Seconds: a non-negative decimal (keepalived accepts fractions for timers). */
function parseSeconds(s: string): number | null {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(s)) return null;
  return Number(s);
}

/** `s` if it is one of `names` (ip-vs.ts's literal name tables), else undefined. */
function oneOf<T extends string>(names: readonly T[], s: string): T | undefined {
  return names.find((n) => n === s);
}

function parseMethod(s: string): LvsMethod | null {
  const u = s.toUpperCase();
  return u === 'NAT' || u === 'DR' || u === 'TUN' ? u : null;
}

/** Reads one block's statements, reporting problems through the shared lists. */
class Interp {
  constructor(private readonly diag: Diag) {}

  warn(t: SourcePos, msg: string): void {
    this.diag.warnings.push(`${at(t)}: ${msg}`);
  }

  error(t: SourcePos, msg: string): void {
    this.diag.errors.push(`${at(t)}: ${msg}`);
  }

  unknown(s: Stmt, where: string): void {
    if (s.block) this.warn(s.kw, `unknown block '${s.kw.text}' in ${where} ignored`);
    else this.warn(s.kw, `unknown keyword '${s.kw.text}' in ${where} ignored`);
  }

  /** Warn about a block given to a keyword that takes none. */
  noBlock(s: Stmt): void {
    if (s.block) this.warn(s.kw, `'${s.kw.text}' takes no block; block ignored`);
  }

  arg(s: Stmt, i = 0): string | null {
    const a = s.args[i];
    if (!a) {
      this.warn(s.kw, `'${s.kw.text}' needs an argument; ignored`);
      return null;
    }
    return a.text;
  }

  /**
   * The one argument of a single-valued keyword. More words on the line are reported: they are
   * usually further keywords of a block written on one line (`url { path / status_code 200 }`),
   * which keepalived.conf wants one per line.
   */
  single(s: Stmt): string | null {
    const a = this.arg(s);
    if (a !== null && s.args.length > 1) {
      const extra = s.args
        .slice(1)
        .map((t) => t.text)
        .join(' ');
      this.warn(s.args[1], `'${s.kw.text}' takes one value; '${extra}' ignored (one keyword per line)`);
    }
    return a;
  }

  /** The rest of the line as one string (a command with arguments, unquoted). */
  rest(s: Stmt): string | null {
    if (s.args.length === 0) return this.arg(s);
    return s.args.map((a) => a.text).join(' ');
  }

  int(s: Stmt, min: number, max: number): number | null {
    const a = this.single(s);
    if (a === null) return null;
    const n = parseIntIn(a, min, max);
    if (n === null) this.warn(s.kw, `'${s.kw.text}' value '${a}' is invalid (expected ${min}..${max}); ignored`);
    return n;
  }

  seconds(s: Stmt): number | null {
    const a = this.single(s);
    if (a === null) return null;
    const n = parseSeconds(a);
    if (n === null) this.warn(s.kw, `'${s.kw.text}' value '${a}' is not a number of seconds; ignored`);
    return n;
  }

  ip(s: Stmt, i = 0): string | null {
    const a = this.arg(s, i);
    if (a === null) return null;
    if (!isValidIpv4(a) && !isValidIpv6(a)) {
      this.warn(s.kw, `'${s.kw.text}' address '${a}' is invalid; ignored`);
      return null;
    }
    return a;
  }

  /** `lvs_method M [type ipip|gue port N|gre] [nocsum|csum|remcsum]`. */
  method(s: Stmt): { method: LvsMethod; tunnel: TunnelOpts | null } | null {
    const a = this.arg(s);
    if (a === null) return null;
    const method = parseMethod(a);
    if (!method) {
      this.warn(s.kw, `unknown ${s.kw.text} '${a}'; ignored`);
      return null;
    }
    if (method !== 'TUN') {
      if (s.args.length > 1) this.warn(s.args[1], `'${s.kw.text} ${a}' takes no options; extra words ignored`);
      return { method, tunnel: null };
    }
    const tunnel: TunnelOpts = { type: 'ipip', port: 0, csum: 'nocsum' };
    for (let i = 1; i < s.args.length; i++) {
      const w = s.args[i];
      const v = w.text.toLowerCase();
      const csum = oneOf(TUN_CSUM_NAMES, v);
      if (v === 'type' && s.args[i + 1]) {
        const ty = s.args[++i].text.toLowerCase();
        const known = oneOf(TUN_TYPE_NAMES, ty);
        if (known) tunnel.type = known;
        else this.warn(w, `unknown tunnel type '${ty}'; ipip used`);
      } else if (v === 'port' && s.args[i + 1]) {
        const p = parseIntIn(s.args[++i].text, 1, 65535);
        if (p === null) this.warn(w, `invalid tunnel port '${s.args[i].text}'; ignored`);
        else tunnel.port = p;
      } else if (csum) {
        tunnel.csum = csum;
      } else {
        this.warn(w, `unknown lvs_method option '${w.text}' ignored`);
      }
    }
    if (tunnel.type === 'gue' && tunnel.port === 0) this.warn(s.kw, `tunnel type gue needs a port`);
    return { method, tunnel };
  }
}

function pos(t: Token): SourcePos {
  return { file: t.file, line: t.line };
}

/** `IP [PORT]` from args[from..]; null (with an error) when the address or port is bad. */
function addrPort(ip: Interp, s: Stmt, from: number, what: string): { addr: string; port: number } | null {
  const a = s.args[from];
  if (!a) {
    ip.error(s.kw, `${what} without an address; block rejected`);
    return null;
  }
  if (!isValidIpv4(a.text) && !isValidIpv6(a.text)) {
    ip.error(a, `${what} has an invalid address '${a.text}'; block rejected`);
    return null;
  }
  const p = s.args[from + 1];
  if (!p) return { addr: a.text, port: 0 };
  const port = parseIntIn(p.text, 0, 65535);
  if (port === null) {
    ip.error(p, `${what} ${a.text} has an invalid port '${p.text}'; block rejected`);
    return null;
  }
  if (s.args.length > from + 2) ip.warn(s.args[from + 2], `${what}: extra words after the port ignored`);
  return { addr: a.text, port };
}

// ---- checkers ----

/** Fill the common checker keys; returns false when `s` is not one of them. */
function commonCheckerKey(ip: Interp, s: Stmt, c: CheckerDraft): boolean {
  switch (s.kw.text) {
    case 'connect_ip': {
      const v = ip.ip(s);
      if (v !== null) c.connectIp = v;
      return true;
    }
    case 'connect_port': {
      const v = ip.int(s, 0, 65535);
      if (v !== null) c.connectPort = v;
      return true;
    }
    case 'bindto': {
      const v = ip.ip(s);
      if (v !== null) c.bindto = v;
      return true;
    }
    case 'bind_port': {
      const v = ip.int(s, 0, 65535);
      if (v !== null) c.bindPort = v;
      return true;
    }
    case 'connect_timeout': {
      const v = ip.seconds(s);
      if (v !== null) c.connectTimeout = v;
      return true;
    }
    case 'retry':
    case 'nb_get_retry':
    case 'nb_sock_retry': {
      const v = ip.int(s, 0, 0x7fffffff);
      if (v !== null) c.retry = v;
      return true;
    }
    case 'delay_before_retry': {
      const v = ip.seconds(s);
      if (v !== null) c.delayBeforeRetry = v;
      return true;
    }
    case 'delay_loop': {
      const v = ip.seconds(s);
      if (v !== null) c.delayLoop = v;
      return true;
    }
    case 'warmup': {
      const v = ip.seconds(s);
      if (v !== null) c.warmup = v;
      return true;
    }
    case 'alpha':
      c.alpha = true;
      return true;
    case 'no_alpha':
      c.alpha = false;
      return true;
    default:
      return false;
  }
}

/** A checker while its block is read: common values not given stay null until the vs is done. */
interface CheckerDraft {
  pos: SourcePos;
  type: CheckerType;
  connectIp: string | null;
  connectPort: number | null;
  bindto: string | null;
  bindPort: number | null;
  connectTimeout: number | null;
  retry: number | null;
  delayBeforeRetry: number | null;
  delayLoop: number | null;
  warmup: number | null;
  alpha: boolean | null;
  urls: HttpUrl[];
  virtualhost: string | null;
  httpProtocol: string | null;
  enableSni: boolean;
  sniName: string | null;
  payload: string | null;
  requireReply: string | null;
  minReplyLength: number;
  maxReplyLength: number;
  dnsName: string;
  dnsType: string;
  miscPath: string | null;
  miscTimeout: number | null;
  miscDynamic: boolean;
  user: string | null;
}

/** `status_code 200`, `status_code 200-299`, several per line. */
function statusCodes(ip: Interp, s: Stmt, out: StatusRange[]): void {
  if (s.args.length === 0) ip.arg(s);
  for (const a of s.args) {
    const m = /^([0-9]{3})(?:-([0-9]{3}))?$/.exec(a.text);
    const lo = m ? Number(m[1]) : 0;
    const hi = m?.[2] ? Number(m[2]) : lo;
    if (!m || lo < 100 || hi > 599 || hi < lo) ip.warn(a, `invalid status_code '${a.text}' ignored`);
    else out.push([lo, hi]);
  }
}

function parseUrl(ip: Interp, block: Stmt[]): HttpUrl | null {
  const url: HttpUrl = { path: '', statusCodes: [], digest: null, regex: null, regexNoMatch: false, virtualhost: null };
  for (const s of block) {
    switch (s.kw.text) {
      case 'path':
        url.path = ip.single(s) ?? url.path;
        break;
      case 'status_code':
        statusCodes(ip, s, url.statusCodes);
        break;
      case 'digest': {
        const d = ip.single(s);
        if (d !== null && !/^[0-9a-fA-F]{32}$/.test(d))
          ip.warn(s.kw, `digest '${d}' is not an MD5 hex digest; ignored`);
        else if (d !== null) url.digest = d.toLowerCase();
        break;
      }
      case 'regex':
        url.regex = ip.arg(s);
        break;
      case 'regex_no_match':
        url.regexNoMatch = true;
        break;
      case 'virtualhost':
        url.virtualhost = ip.arg(s);
        break;
      default:
        ip.unknown(s, 'url');
    }
    if (s.kw.text !== 'url') ip.noBlock(s);
  }
  if (url.statusCodes.length === 0) url.statusCodes = DEFAULT_STATUS_CODES.map((r) => [r[0], r[1]] as const);
  return url;
}

function hexArg(ip: Interp, s: Stmt): string | null {
  const h = s.args.map((a) => a.text).join('');
  if (h === '') return ip.arg(s);
  if (!/^([0-9a-fA-F]{2})+$/.test(h)) {
    ip.warn(s.kw, `'${s.kw.text}' must be hex bytes; ignored`);
    return null;
  }
  return h.toLowerCase();
}

function parseChecker(ip: Interp, s: Stmt): CheckerDraft | null {
  const type = s.kw.text as CheckerType;
  const c: CheckerDraft = {
    pos: pos(s.kw),
    type,
    connectIp: null,
    connectPort: null,
    bindto: null,
    bindPort: null,
    connectTimeout: null,
    retry: null,
    delayBeforeRetry: null,
    delayLoop: null,
    warmup: null,
    alpha: null,
    urls: [],
    virtualhost: null,
    httpProtocol: null,
    enableSni: false,
    sniName: null,
    payload: null,
    requireReply: null,
    minReplyLength: DEFAULT_UDP_MIN_REPLY,
    maxReplyLength: DEFAULT_UDP_MAX_REPLY,
    dnsName: DEFAULT_DNS_NAME,
    dnsType: DEFAULT_DNS_TYPE,
    miscPath: null,
    miscTimeout: null,
    miscDynamic: false,
    user: null,
  };
  const where = type;
  for (const k of s.block ?? []) {
    if (commonCheckerKey(ip, k, c)) {
      ip.noBlock(k);
      continue;
    }
    const kw = k.kw.text;
    let known = true;
    if (type === 'HTTP_GET' || type === 'SSL_GET') {
      if (kw === 'url') {
        const u = parseUrl(ip, k.block ?? []);
        if (u) c.urls.push(u);
        continue;
      }
      if (kw === 'virtualhost') c.virtualhost = ip.arg(k);
      else if (kw === 'http_protocol') c.httpProtocol = ip.arg(k);
      else if (type === 'SSL_GET' && kw === 'enable_sni') c.enableSni = true;
      else if (type === 'SSL_GET' && (kw === 'sni_name' || kw === 'sni')) {
        c.sniName = ip.arg(k);
        c.enableSni = true;
      } else known = false;
    } else if (type === 'UDP_CHECK') {
      if (kw === 'payload') c.payload = hexArg(ip, k);
      else if (kw === 'require_reply') c.requireReply = hexArg(ip, k);
      else if (kw === 'min_reply_length') c.minReplyLength = ip.int(k, 0, 65535) ?? c.minReplyLength;
      else if (kw === 'max_reply_length') c.maxReplyLength = ip.int(k, 0, 65535) ?? c.maxReplyLength;
      else known = false;
    } else if (type === 'DNS_CHECK') {
      if (kw === 'name') c.dnsName = ip.arg(k) ?? c.dnsName;
      else if (kw === 'type') {
        const t = ip.arg(k);
        if (t !== null && DNS_TYPES.has(t.toUpperCase())) c.dnsType = t.toUpperCase();
        else if (t !== null) ip.warn(k.kw, `unknown DNS_CHECK type '${t}'; ${c.dnsType} used`);
      } else known = false;
    } else if (type === 'MISC_CHECK') {
      if (kw === 'misc_path') c.miscPath = ip.rest(k);
      else if (kw === 'misc_timeout') c.miscTimeout = ip.seconds(k) ?? c.miscTimeout;
      else if (kw === 'misc_dynamic') c.miscDynamic = true;
      else if (kw === 'user') c.user = ip.rest(k);
      else known = false;
    } else {
      known = false;
    }
    if (!known) ip.unknown(k, where);
    else ip.noBlock(k);
  }
  if (type === 'MISC_CHECK' && !c.miscPath) {
    ip.error(s.kw, 'MISC_CHECK without misc_path; checker rejected');
    return null;
  }
  if ((type === 'HTTP_GET' || type === 'SSL_GET') && c.urls.length === 0) {
    ip.error(s.kw, `${type} without a url; checker rejected`);
    return null;
  }
  return c;
}

/** The checker with every default filled in from keepalived's rules and its virtual_server. */
function finishChecker(c: CheckerDraft, vs: VirtualServer): Checker {
  const delayLoop = c.delayLoop ?? vs.delayLoop;
  const http = c.type === 'HTTP_GET' || c.type === 'SSL_GET';
  const common: CheckerCommon = {
    pos: c.pos,
    connectIp: c.connectIp,
    connectPort: c.connectPort,
    bindto: c.bindto,
    bindPort: c.bindPort,
    connectTimeout: c.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
    retry: c.retry ?? (c.type === 'DNS_CHECK' ? DEFAULT_DNS_RETRY : DEFAULT_RETRY),
    delayBeforeRetry:
      c.delayBeforeRetry ??
      (http ? DEFAULT_HTTP_DELAY_BEFORE_RETRY : c.type === 'DNS_CHECK' ? delayLoop : DEFAULT_DELAY_BEFORE_RETRY),
    delayLoop,
    warmup: c.warmup ?? DEFAULT_WARMUP,
    alpha: c.alpha ?? vs.alpha,
  };
  switch (c.type) {
    case 'TCP_CHECK':
    case 'PING_CHECK':
      return { ...common, type: c.type };
    case 'HTTP_GET':
    case 'SSL_GET':
      return {
        ...common,
        type: c.type,
        urls: c.urls,
        // keepalived's Host: the url's virtualhost, else the checker's, else the virtual_server's.
        virtualhost: c.virtualhost ?? vs.virtualhost,
        httpProtocol: c.httpProtocol,
        enableSni: c.enableSni,
        sniName: c.sniName,
      };
    case 'UDP_CHECK':
      return {
        ...common,
        type: c.type,
        payload: c.payload,
        requireReply: c.requireReply,
        minReplyLength: c.minReplyLength,
        maxReplyLength: c.maxReplyLength,
      };
    case 'DNS_CHECK':
      return { ...common, type: c.type, name: c.dnsName, queryType: c.dnsType };
    case 'MISC_CHECK':
      return {
        ...common,
        type: c.type,
        miscPath: c.miscPath!,
        miscTimeout: c.miscTimeout ?? delayLoop,
        miscDynamic: c.miscDynamic,
        user: c.user,
      };
  }
}

// ---- real_server ----

interface RealServerDraft extends Omit<RealServer, 'checkers' | 'inhibitOnFailure'> {
  inhibitOnFailure: boolean | null;
  checkers: CheckerDraft[];
}

function parseRealServer(ip: Interp, s: Stmt): RealServerDraft | null {
  const ap = addrPort(ip, s, 0, 'real_server');
  if (!ap) return null;
  const rs: RealServerDraft = {
    pos: pos(s.kw),
    addr: ap.addr,
    port: ap.port,
    weight: DEFAULT_WEIGHT, // keepalived's real_server default, as ipvsadm's: 1
    inhibitOnFailure: null,
    notifyUp: null,
    notifyDown: null,
    uThreshold: 0,
    lThreshold: 0,
    method: null,
    tunnel: null,
    checkers: [],
  };
  for (const k of s.block ?? []) {
    const kw = k.kw.text;
    if (CHECKER_TYPES.has(kw)) {
      const c = parseChecker(ip, k);
      if (c) rs.checkers.push(c);
      continue;
    }
    if (UNSUPPORTED_CHECKERS.has(kw)) {
      ip.warn(k.kw, `${kw} is not supported by lvs-ts; checker ignored`);
      continue;
    }
    switch (kw) {
      case 'weight':
        rs.weight = ip.int(k, 0, 0x7fffffff) ?? rs.weight;
        break;
      case 'inhibit_on_failure':
        rs.inhibitOnFailure = true;
        break;
      case 'notify_up':
        rs.notifyUp = ip.rest(k);
        break;
      case 'notify_down':
        rs.notifyDown = ip.rest(k);
        break;
      case 'uthreshold':
        rs.uThreshold = ip.int(k, 0, 65535) ?? rs.uThreshold;
        break;
      case 'lthreshold':
        rs.lThreshold = ip.int(k, 0, 65535) ?? rs.lThreshold;
        break;
      case 'lvs_method':
      case 'lb_kind': {
        const m = ip.method(k);
        if (m) {
          rs.method = m.method;
          rs.tunnel = m.tunnel;
        }
        break;
      }
      default:
        ip.unknown(k, 'real_server');
        continue;
    }
    ip.noBlock(k);
  }
  return rs;
}

// ---- virtual_server ----

function vsTarget(ip: Interp, s: Stmt): VsTarget | null {
  const first = s.args[0];
  if (first?.text === 'fwmark') {
    const v = s.args[1] ? parseIntIn(s.args[1].text, 1, 0xffffffff) : null;
    if (v === null) {
      ip.error(s.kw, `virtual_server fwmark needs a mark in 1..4294967295; block rejected`);
      return null;
    }
    return { kind: 'fwmark', fwmark: v };
  }
  if (first?.text === 'group') {
    const name = s.args[1];
    if (!name) {
      ip.error(s.kw, 'virtual_server group needs a group name; block rejected');
      return null;
    }
    return { kind: 'group', name: name.text };
  }
  const ap = addrPort(ip, s, 0, 'virtual_server');
  return ap ? { kind: 'addr', ...ap } : null;
}

function parseVirtualServer(ip: Interp, s: Stmt): VirtualServer | null {
  const target = vsTarget(ip, s);
  if (!target) return null;
  if (!s.block) {
    ip.error(s.kw, 'virtual_server without a { } block; rejected');
    return null;
  }
  const vs: VirtualServer = {
    pos: pos(s.kw),
    target,
    delayLoop: DEFAULT_DELAY_LOOP,
    sched: DEFAULT_SCHEDULER, // keepalived's without lvs_sched, as ipvsadm's: wlc
    schedFlags: [],
    ops: false,
    method: DEFAULT_LVS_METHOD,
    tunnel: null,
    persistenceTimeout: 0,
    persistenceGranularity: null,
    persistenceEngine: null,
    protocol: 'TCP',
    quorum: DEFAULT_QUORUM,
    hysteresis: DEFAULT_HYSTERESIS,
    quorumUp: null,
    quorumDown: null,
    sorryServer: null,
    sorryServerInhibit: false,
    sorryServerMethod: null,
    inhibitOnFailure: false,
    alpha: false,
    omega: false,
    virtualhost: null,
    haSuspend: false,
    realServers: [],
  };
  const drafts: RealServerDraft[] = [];
  let rejected = false;
  for (const k of s.block) {
    const kw = k.kw.text;
    if (kw === 'real_server') {
      const rs = parseRealServer(ip, k);
      if (rs) drafts.push(rs);
      continue;
    }
    switch (kw) {
      case 'delay_loop':
        vs.delayLoop = ip.seconds(k) ?? vs.delayLoop;
        break;
      case 'lvs_sched':
      case 'lb_algo': {
        const name = ip.arg(k);
        if (name === null) break;
        if (!getScheduler(name)) {
          ip.error(k.kw, `unknown scheduler '${name}'; virtual_server at ${at(vs.pos)} rejected`);
          rejected = true;
        } else vs.sched = name;
        break;
      }
      case 'lvs_method':
      case 'lb_kind': {
        const m = ip.method(k);
        if (m) {
          vs.method = m.method;
          vs.tunnel = m.tunnel;
        }
        break;
      }
      case 'persistence_timeout':
        vs.persistenceTimeout = k.args.length === 0 ? DEFAULT_PERSISTENCE_TIMEOUT : (ip.int(k, 1, 86400 * 31) ?? 0);
        break;
      case 'persistence_granularity': {
        // An IPv6 virtual server's granularity is a prefix length (keepalived's pgr_handler).
        if (vs.target.kind === 'addr' && isValidIpv6(vs.target.addr)) {
          const plen = ip.int(k, 1, 128);
          if (plen !== null) vs.persistenceGranularity = String(plen);
          break;
        }
        const m = ip.ip(k);
        if (m !== null) vs.persistenceGranularity = m;
        break;
      }
      case 'persistence_engine':
        vs.persistenceEngine = ip.arg(k);
        break;
      case 'protocol': {
        const p = ip.arg(k);
        if (p === null) break;
        const proto = p.toUpperCase();
        if (isServiceProtoName(proto)) vs.protocol = proto;
        else ip.warn(k.kw, `unknown protocol '${p}'; ${vs.protocol} used`);
        break;
      }
      case 'ops':
        vs.ops = true;
        break;
      case 'flag-1':
      case 'flag-2':
      case 'flag-3':
      case 'sh-port':
      case 'sh-fallback':
      case 'mh-port':
      case 'mh-fallback':
        if (!vs.schedFlags.includes(kw)) vs.schedFlags.push(kw);
        break;
      case 'quorum':
        vs.quorum = ip.int(k, 0, 0x7fffffff) ?? vs.quorum;
        break;
      case 'hysteresis':
        vs.hysteresis = ip.int(k, 0, 0x7fffffff) ?? vs.hysteresis;
        break;
      case 'quorum_up':
        vs.quorumUp = ip.rest(k);
        break;
      case 'quorum_down':
        vs.quorumDown = ip.rest(k);
        break;
      case 'sorry_server': {
        const ap = addrPort(new Interp({ warnings: [], errors: [] }), k, 0, 'sorry_server');
        if (ap) vs.sorryServer = ap;
        else ip.warn(k.kw, `sorry_server needs a valid IP [PORT]; ignored`);
        break;
      }
      case 'sorry_server_inhibit':
        vs.sorryServerInhibit = true;
        break;
      case 'sorry_server_lvs_method': {
        const m = ip.method(k);
        if (m) vs.sorryServerMethod = m.method;
        break;
      }
      case 'inhibit_on_failure':
        vs.inhibitOnFailure = true;
        break;
      case 'alpha':
        vs.alpha = true;
        break;
      case 'omega':
        vs.omega = true;
        break;
      case 'virtualhost':
        vs.virtualhost = ip.arg(k);
        break;
      case 'ha_suspend':
        vs.haSuspend = true;
        break;
      default:
        ip.unknown(k, 'virtual_server');
        continue;
    }
    ip.noBlock(k);
  }
  if (rejected) return null;
  for (const f of vs.schedFlags) {
    const fam = f.slice(0, 2);
    if ((fam === 'sh' || fam === 'mh') && vs.sched !== fam)
      ip.warn(vs.pos, `scheduler flag '${f}' does not apply to scheduler ${vs.sched}; ignored`);
  }
  vs.schedFlags = vs.schedFlags.filter((f) => f.startsWith('flag') || f.slice(0, 2) === vs.sched);
  if (vs.ops && vs.protocol !== 'UDP' && vs.target.kind !== 'fwmark')
    ip.warn(vs.pos, 'ops (one-packet scheduling) applies to UDP services only');
  vs.realServers = drafts.map((d) => ({
    ...d,
    inhibitOnFailure: d.inhibitOnFailure ?? vs.inhibitOnFailure,
    checkers: d.checkers.map((c) => finishChecker(c, vs)),
  }));
  return vs;
}

// ---- virtual_server_group ----

/**
 * An IPv6 address or range, `2001:db8::1-a`: the last group runs from the address's to the
 * hex number after the dash (keepalived's reading). [first, last] in canonical text, or null.
 */
function parseAddrRange6(s: string): [string, string] | null {
  const dash = s.indexOf('-');
  const lo = parseIpv6(dash < 0 ? s : s.slice(0, dash));
  if (lo === null) return null;
  const first = formatIpv6(lo);
  if (dash < 0) return [first, first];
  const text = s.slice(dash + 1);
  if (!/^[0-9a-fA-F]{1,4}$/.test(text)) return null;
  const last = Number.parseInt(text, 16);
  if (last < ((lo[14] << 8) | lo[15])) return null;
  const hi = Uint8Array.from(lo);
  hi[14] = last >> 8;
  hi[15] = last & 0xff;
  return [first, formatIpv6(hi)];
}

/** The addresses from `first` to `last` (a range parseAddrRange made), in order. */
export function rangeAddrs(first: string, last: string): string[] {
  if (!first.includes(':')) {
    const out: string[] = [];
    for (let a = ipToU32(first); a <= ipToU32(last); a++) out.push(u32ToIp(a));
    return out;
  }
  const b = parseIpv6(first)!;
  const end = parseIpv6(last)!;
  const out: string[] = [];
  for (let g = (b[14] << 8) | b[15]; g <= ((end[14] << 8) | end[15]); g++) {
    b[14] = g >> 8;
    b[15] = g & 0xff;
    out.push(formatIpv6(b));
  }
  return out;
}

/**
 * `a.b.c.d`, `a.b.c.d-e`, `a.b.c.d-A.B.C.D` or `a.b.c.d/N` (and IPv6 `addr` or `addr-x`) as
 * [first, last]; null if invalid.
 */
export function parseAddrRange(s: string): [string, string] | null {
  if (s.includes(':')) return parseAddrRange6(s);
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const base = s.slice(0, slash);
    const bits = parseIntIn(s.slice(slash + 1), 0, 32);
    if (!isValidIpv4(base) || bits === null) return null;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const first = (ipToU32(base) & mask) >>> 0;
    return [u32ToIp(first), u32ToIp((first | ~mask) >>> 0)];
  }
  const dash = s.indexOf('-');
  if (dash < 0) return isValidIpv4(s) ? [s, s] : null;
  const lo = s.slice(0, dash);
  const hiText = s.slice(dash + 1);
  if (!isValidIpv4(lo)) return null;
  let hi: string;
  if (isValidIpv4(hiText)) hi = hiText;
  else {
    const last = parseIntIn(hiText, 0, 255);
    if (last === null) return null;
    hi = u32ToIp(((ipToU32(lo) & 0xffffff00) | last) >>> 0);
  }
  return ipToU32(hi) >= ipToU32(lo) ? [lo, hi] : null;
}

function parseGroup(ip: Interp, s: Stmt): VirtualServerGroup | null {
  const name = s.args[0];
  if (!name) {
    ip.error(s.kw, 'virtual_server_group without a name; block rejected');
    return null;
  }
  const g: VirtualServerGroup = { pos: pos(s.kw), name: name.text, entries: [] };
  for (const k of s.block ?? []) {
    ip.noBlock(k);
    if (k.kw.text === 'fwmark') {
      const v = k.args[0] ? parseIntIn(k.args[0].text, 1, 0xffffffff) : null;
      if (v === null) ip.error(k.kw, `virtual_server_group ${g.name}: invalid fwmark entry; entry rejected`);
      else g.entries.push({ kind: 'fwmark', pos: pos(k.kw), fwmark: v });
      continue;
    }
    const range = parseAddrRange(k.kw.text);
    if (!range) {
      ip.error(k.kw, `virtual_server_group ${g.name}: invalid address or range '${k.kw.text}'; entry rejected`);
      continue;
    }
    const size = rangeAddrs(range[0], range[1]).length;
    if (size > MAX_GROUP_RANGE) {
      ip.error(k.kw, `virtual_server_group ${g.name}: range '${k.kw.text}' has ${size} addresses; entry rejected`);
      continue;
    }
    const portText = k.args[0]?.text;
    const port = portText === undefined ? 0 : parseIntIn(portText, 0, 65535);
    if (port === null) {
      ip.error(k.kw, `virtual_server_group ${g.name}: invalid port '${portText}'; entry rejected`);
      continue;
    }
    g.entries.push({ kind: 'addr', pos: pos(k.kw), first: range[0], last: range[1], port });
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Entry point

const defaultListDir: ListDirFn = (dir) => readdirSync(dir);
const defaultReadFile: ReadFileFn = (p) => readFileSync(p, 'utf8');

/**
 * The statements of the configuration at `path` (includes spliced in), uninterpreted: what the
 * VRRP half (cluster/vrrp-conf.ts) is made from. Never throws.
 */
export function readKeepalivedTree(
  path: string,
  readFile: ReadFileFn = defaultReadFile,
  listDir: ListDirFn = defaultListDir,
): KeepalivedTree {
  const diag: Diag = { warnings: [], errors: [] };
  const toks: Token[] = [];
  const unreadable = !tokenizeFile(path, { readFile, listDir }, diag, [], toks, null);
  const tree = new TreeBuilder(toks, diag).build(null);
  return { tree, unreadable, warnings: diag.warnings, errors: diag.errors };
}

/** A configuration's statements as readKeepalivedTree read them, with what reading found. */
export interface KeepalivedTree {
  tree: Stmt[];
  unreadable: boolean;
  warnings: string[];
  errors: string[];
}

/**
 * Parse the LVS half of the keepalived configuration at `path` (following includes). Never
 * throws: unknown keywords become `warnings`, rejected blocks `errors`, both as "file:line: ...".
 */
export function parseKeepalivedConf(
  path: string,
  readFile: ReadFileFn = defaultReadFile,
  listDir: ListDirFn = defaultListDir,
): KeepalivedConf {
  return keepalivedConfOf(readKeepalivedTree(path, readFile, listDir));
}

/**
 * The LVS half of a configuration already read (its other half, VRRP, is made from the same
 * statements: cluster/vrrp-conf.ts). Its warnings and errors follow the reading's.
 */
export function keepalivedConfOf(read: KeepalivedTree): KeepalivedConf {
  const { tree, unreadable, ...diag } = read;
  const ip = new Interp(diag);
  const groups = new Map<string, VirtualServerGroup>();
  const parsed: VirtualServer[] = [];
  let timeouts: LvsTimeouts | null = null;
  for (const s of tree) {
    const kw = s.kw.text;
    if (kw === 'virtual_server') {
      const vs = parseVirtualServer(ip, s);
      if (vs) parsed.push(vs);
    } else if (kw === 'global_defs') {
      // Only the LVS keyword matters here; the rest of global_defs is keepalived's own business.
      for (const g of s.block ?? []) if (g.kw.text === 'lvs_timeouts') timeouts = parseLvsTimeouts(ip, g);
    } else if (kw === 'virtual_server_group') {
      const g = parseGroup(ip, s);
      if (!g) continue;
      if (groups.has(g.name)) ip.error(s.kw, `virtual_server_group ${g.name} defined twice; the later one rejected`);
      else groups.set(g.name, g);
    } else if (!NON_LVS_TOP_LEVEL.has(kw)) {
      ip.unknown(s, 'the top level');
    }
  }
  // Groups may be defined after the virtual_server naming them, so references resolve last.
  const virtualServers: VirtualServer[] = [];
  for (const vs of parsed) {
    if (vs.target.kind === 'group' && !groups.has(vs.target.name)) {
      ip.error(vs.pos, `virtual_server group ${vs.target.name}: no such virtual_server_group; block rejected`);
      continue;
    }
    virtualServers.push(vs);
  }
  return { virtualServers, groups, timeouts, unreadable, warnings: diag.warnings, errors: diag.errors };
}

/** IPVS's largest timeout (31 days), as ipvsadm and keepalived bound it. */
const LVS_MAX_TIMEOUT = 86400 * 31;

/** `lvs_timeouts [tcp S] [tcpfin S] [udp S]`, in any order. */
function parseLvsTimeouts(ip: Interp, s: Stmt): LvsTimeouts {
  const t: LvsTimeouts = {};
  for (let i = 0; i < s.args.length; i++) {
    const w = s.args[i];
    const name = w.text.toLowerCase();
    if ((name === 'tcp' || name === 'tcpfin' || name === 'udp') && s.args[i + 1]) {
      const v = parseIntIn(s.args[++i].text, 1, LVS_MAX_TIMEOUT);
      if (v === null)
        ip.warn(w, `lvs_timeouts ${name} '${s.args[i].text}' is invalid (1..${LVS_MAX_TIMEOUT}); ignored`);
      else t[name] = v;
    } else {
      ip.warn(w, `unknown lvs_timeouts word '${w.text}' ignored`);
    }
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// To lvs-ts rules

export interface IpvsService {
  svc: ServiceSpec;
  dests: DestSpec[];
}

const FWD_BY_METHOD: Readonly<Record<LvsMethod, number>> = { NAT: FWD_MASQ, DR: FWD_DROUTE, TUN: FWD_TUNNEL };

/** The dest a real server (or the sorry server) of `vs` is, at its configured weight. */
export function destSpec(
  vs: VirtualServer,
  rs: Pick<RealServer, 'addr' | 'port' | 'weight' | 'uThreshold' | 'lThreshold' | 'method' | 'tunnel'>,
): DestSpec {
  const method = rs.method ?? vs.method;
  const tunnel = rs.method ? rs.tunnel : vs.tunnel;
  return {
    addr: rs.addr,
    port: rs.port,
    fwd: FWD_BY_METHOD[method],
    weight: rs.weight,
    uThreshold: rs.uThreshold,
    lThreshold: rs.lThreshold,
    tunType: method === 'TUN' && tunnel ? TUN_TYPE_NAMES.indexOf(tunnel.type) : TUN_TYPE_IPIP,
    tunPort: method === 'TUN' && tunnel ? tunnel.port : 0,
    tunFlags: method === 'TUN' && tunnel ? TUN_CSUM_NAMES.indexOf(tunnel.csum) : TUN_F_NOCSUM,
  };
}

/** The configured real servers as dests (all of them, at their configured weight). */
export function destSpecs(vs: VirtualServer): DestSpec[] {
  return vs.realServers.map((rs) => destSpec(vs, rs));
}

/**
 * The ipvsadm-equivalent services for `vs`: one for an address or fwmark virtual_server, one
 * per address/port (and fwmark) of its virtual_server_group, each with the same dests. The
 * sorry_server is not among the dests: it only enters the table when quorum is lost.
 */
export function toIpvsServices(vs: VirtualServer, groups: ReadonlyMap<string, VirtualServerGroup>): IpvsService[] {
  let flags = 0;
  if (vs.persistenceTimeout > 0) flags |= SVC_F_PERSISTENT;
  if (vs.ops) flags |= SVC_F_ONEPACKET;
  for (const f of vs.schedFlags) flags |= SCHED_FLAG_BITS[f] ?? 0;
  const base = {
    sched: vs.sched,
    flags,
    timeout: vs.persistenceTimeout,
    netmask: vs.persistenceGranularity ?? '255.255.255.255',
    pe: vs.persistenceEngine ?? '',
  };
  const proto = IP_VS_PROTOCOLS[vs.protocol];
  const keys: { protocol: number; addr: string; port: number; fwmark: number; af?: number; netmask?: string }[] = [];
  const t = vs.target;
  if (t.kind === 'addr' && isValidIpv6(t.addr)) {
    // An IPv6 service: its netmask is a prefix length, 128 unless persistence_granularity says.
    keys.push({ protocol: proto, addr: t.addr, port: t.port, fwmark: 0, af: AF_INET6 });
    return keys.map((k) => ({
      svc: { ...k, ...base, netmask: vs.persistenceGranularity ?? '128' },
      dests: destSpecs(vs),
    }));
  }
  if (t.kind === 'addr') keys.push({ protocol: proto, addr: t.addr, port: t.port, fwmark: 0 });
  else if (t.kind === 'fwmark') keys.push({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: t.fwmark });
  else {
    for (const e of groups.get(t.name)?.entries ?? []) {
      if (e.kind === 'fwmark') {
        keys.push({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: e.fwmark });
        continue;
      }
      // An IPv6 entry's services are IPv6 ones, their netmask a prefix length.
      const af = e.first.includes(':') ? { af: AF_INET6, netmask: '128' } : {};
      for (const addr of rangeAddrs(e.first, e.last))
        keys.push({ protocol: proto, addr, port: e.port, fwmark: 0, ...af });
    }
  }
  return keys.map((k) => ({ svc: { ...base, ...k }, dests: destSpecs(vs) }));
}
