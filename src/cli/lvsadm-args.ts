// lvsadm's command line: ipvsadm 1.31's syntax, parsed the way ipvsadm parses it with popt.
//
// Order matters for reproducing ipvsadm's errors, so the parser walks argv exactly as ipvsadm's
// parse_options/process_options do:
//   1. the first option must be a command (else "Try `lvsadm -h' ..."), -h/-v act at once;
//   2. every later option is handled as popt returns it, failing on the first bad value;
//   3. popt's own errors ("-q: unknown option"), then --set's three values, leftovers,
//      scheduler flags;
//   4. the commands_v_options legality table, then the semantic checks of the command.
// The only I/O is name resolution (host and service names in addresses), behind ArgResolver.

import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { DaemonSpec, DestKey, DestSpec, Request, ServiceKey, ServiceSpec, Timeouts } from '../ctl/protocol';
import { ArgsError, IPVSADM_TEXT, type ParseFailureKind } from '../errors';
import {
  AF_INET,
  AF_INET6,
  DEFAULT_PERSISTENT_TIMEOUT,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SCHED_FLAG_BITS,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  serviceProtoName,
  TUN_F_CSUM,
  TUN_F_NOCSUM,
  TUN_F_REMCSUM,
  TUN_TYPE_IPIP,
  TUN_TYPE_NAMES,
} from '../ip-vs';
import { inetAton, ipToU32, isValidIpv4, u32ToIp } from '../wire/addr';
import { formatIpv6, parseIpv6 } from '../wire/addr6';

/** The name lvsadm prints where ipvsadm prints its argv[0]. */
export const PROGRAM = 'lvsadm';

/** ipvsadm's MAX_TIMEOUT: 31 days. */
export const MAX_TIMEOUT = 86400 * 31;
const INT_MAX = 0x7fffffff;
const UINT_MAX = 0xffffffff;
/** IP_VS_SCHEDNAME_MAXLEN - 1 and IP_VS_PENAME_MAXLEN: ipvsadm strncpy()s names to these. */
const SCHED_NAME_MAX = 15;
const PE_NAME_MAX = 16;
/** IP_VS_IFNAME_MAXLEN: --mcast-interface keeps at most 15 characters. */
const IFNAME_MAX = 16;
/** The sync daemon's interface when --mcast-interface is not given (ipvsadm's DEF_MCAST_IFN). */
const DEFAULT_MCAST_IFN = 'eth0';
/** ipvsadm copies -b's argument into a 128-byte buffer. */
const SCHED_FLAGS_ARG_MAX = 127;

// ---------------------------------------------------------------------------------------------
// Commands and options, numbered and named as ipvsadm's cmdnames[] and optnames[].

export const COMMAND_NAMES = [
  'add-service',
  'edit-service',
  'delete-service',
  'flush',
  'list',
  'add-server',
  'delete-server',
  'edit-server',
  'set',
  'start-daemon',
  'stop-daemon',
  'restore',
  'save',
  'zero',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export const OPTION_NAMES = [
  'numeric',
  'connection',
  'service-address',
  'scheduler',
  'persistent',
  'netmask',
  'real-server',
  'forwarding-method',
  'weight',
  'u-threshold',
  'l-threshold',
  'mcast-interface',
  'timeout',
  'daemon',
  'stats',
  'rate',
  'thresholds',
  'persistent-conn',
  'nosort',
  'syncid',
  'exact',
  'ops',
  'pe',
  'sched-flags',
  'mcast-group',
  'mcast-port',
  'mcast-ttl',
  'sync-maxlen',
  'tun-info',
  'tun-type',
  'tun-port',
  'tun-nocsum',
  'tun-csum',
  'tun-remcsum',
  'checks',
] as const;
export type OptionName = (typeof OPTION_NAMES)[number];

/**
 * ipvsadm's commands_v_options: one character per option, in OPTION_NAMES order.
 * '+' compulsory, 'x' illegal, '1' at most one of the '1' options, ' ' optional.
 */
export const COMMANDS_V_OPTIONS: Readonly<Record<CommandName, string>> = {
  // Column j is OPTION_NAMES[j]: -n -c svc -s -p -M -r fwd -w -x -y mcast-if timeout daemon stats rate thresholds
  // persistent-conn nosort syncid exact ops pe -b mcast-group mcast-port mcast-ttl sync-maxlen tun-info tun-type
  // tun-port tun-nocsum tun-csum tun-remcsum checks (lvs-ts: -L --checks, the health monitor's view).
  'add-service': 'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx',
  'edit-service': 'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx',
  'delete-service': 'xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  flush: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  list: ' 11xxxxxxxxx11       xxxxxxx xxxxx1',
  'add-server': 'xx+xxx+    xxxxxxxxxxxxxxxxxx     x',
  'delete-server': 'xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  'edit-server': 'xx+xxx+    xxxxxxxxxxxxxxxxxx     x',
  set: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  'start-daemon': 'xxxxxxxxxxx xxxxxxx xxxx    xxxxxxx',
  'stop-daemon': 'xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxx',
  restore: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  save: ' xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  zero: 'xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
};

const TUN_OPTIONS: readonly OptionName[] = ['tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'];
/** ipvsadm's tunnel_types_v_options, one character per TUN_OPTIONS entry. */
const TUNNEL_TYPES_V_OPTIONS: readonly string[] = [
  'xxxx', // ipip
  '+111', // gue
  'x11x', // gre
];

// ---------------------------------------------------------------------------------------------
// The parsed result.

/** How a listing is printed (ipvsadm's FMT_* flags). */
export interface ListFormat {
  numeric: boolean;
  exact: boolean;
  nosort: boolean;
  stats: boolean;
  rate: boolean;
  thresholds: boolean;
  persistentConn: boolean;
  tunInfo: boolean;
}

/** Every list option off: what a bare -L prints. */
export const DEFAULT_LIST_FORMAT: ListFormat = {
  numeric: false,
  exact: false,
  nosort: false,
  stats: false,
  rate: false,
  thresholds: false,
  persistentConn: false,
  tunInfo: false,
};

export type LvsadmCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  /** `-L` (and no arguments at all): banner, titles, every service. */
  | { kind: 'list'; format: ListFormat }
  /** `-L` with a virtual service: titles and that one service, no banner. */
  | { kind: 'list-service'; format: ListFormat; svc: ServiceKey }
  | { kind: 'list-conns'; format: ListFormat }
  | { kind: 'list-timeouts' }
  /** -L --daemon: the sync daemons' state (lines like "master sync daemon (mcast=eth0, syncid=1)"). */
  | { kind: 'list-daemons' }
  /** -L --checks (lvs-ts): the health monitor's virtual servers, real servers and their checks. */
  | { kind: 'list-checks' }
  | { kind: 'save'; format: ListFormat }
  /** Every command that changes the table or the timeouts: one request, no output. */
  | { kind: 'request'; request: Request }
  /** -R: one command per line of standard input (lvsadm.ts runs them). */
  | { kind: 'restore' };

export interface ParsedArgs {
  command: LvsadmCommand;
  /** `--socket PATH` (lvsadm's own option), if given. */
  socket?: string;
}

export interface ParseFailure {
  kind: ParseFailureKind;
  /** Exactly what goes to stderr, final newline included. */
  stderr: string;
  exitCode: number;
}

export type ParseResult = { ok: true; args: ParsedArgs } | { ok: false; error: ParseFailure };

/** Name resolution used while parsing addresses (ipvsadm's gethostbyname / getservbyname). */
export interface ArgResolver {
  /** IPv4 address (dotted quad) of a host name, or null when it does not resolve. */
  host(name: string): Promise<string | null>;
  /** Port of a service name for 'tcp' | 'udp' | 'sctp', or null. */
  service(name: string, proto: string): number | null;
}

/**
 * The words of one `-R` input line, as ipvsadm's restore reads it: `#` starts a comment, and a
 * leading `ipvsadm` or `lvsadm` word is dropped. Empty for a blank line.
 */
export function restoreLineWords(raw: string): string[] {
  const hash = raw.indexOf('#');
  const words = (hash >= 0 ? raw.slice(0, hash) : raw).split(/\s+/).filter((w) => w !== '');
  if (words.length > 0 && /(^|\/)(ipvsadm|lvsadm)$/.test(words[0])) words.shift();
  return words;
}

/** ipvsadm's fail(2, msg): msg and a newline on stderr, exit status 2. */
function fail(message: string): never {
  throw new ArgsError('fail', `${message}\n`, 2);
}

function tryHelp(): never {
  throw new ArgsError('try-help', tryHelpText(), 255);
}

function unsupported(what: string): never {
  throw new ArgsError('unsupported', `${PROGRAM}: ${what} is not supported by lvs-ts\n`, 2);
}

export function tryHelpText(program = PROGRAM): string {
  return `${IPVSADM_TEXT.tryHelp(program)}\n`;
}

// ---------------------------------------------------------------------------------------------
// popt, as ipvsadm configures it (no aliases, no one-dash long options).

type ArgKind = 'none' | 'required' | 'optional';

interface PoptOption {
  long?: string;
  short?: string;
  arg: ArgKind;
  /** What parse_options switches on. */
  key: string;
}

const POPT_TABLE: readonly PoptOption[] = [
  { long: 'add-service', short: 'A', arg: 'none', key: 'add-service' },
  { long: 'edit-service', short: 'E', arg: 'none', key: 'edit-service' },
  { long: 'delete-service', short: 'D', arg: 'none', key: 'delete-service' },
  { long: 'clear', short: 'C', arg: 'none', key: 'clear' },
  { long: 'list', short: 'L', arg: 'none', key: 'list' },
  { short: 'l', arg: 'none', key: 'list' },
  { long: 'zero', short: 'Z', arg: 'none', key: 'zero' },
  { long: 'add-server', short: 'a', arg: 'none', key: 'add-server' },
  { long: 'edit-server', short: 'e', arg: 'none', key: 'edit-server' },
  { long: 'delete-server', short: 'd', arg: 'none', key: 'delete-server' },
  { long: 'set', arg: 'none', key: 'set' },
  { long: 'help', short: 'h', arg: 'none', key: 'help' },
  { long: 'version', short: 'v', arg: 'none', key: 'version' },
  { long: 'restore', short: 'R', arg: 'none', key: 'restore' },
  { long: 'save', short: 'S', arg: 'none', key: 'save' },
  { long: 'start-daemon', arg: 'required', key: 'start-daemon' },
  { long: 'stop-daemon', arg: 'required', key: 'stop-daemon' },
  { long: 'tcp-service', short: 't', arg: 'required', key: 'tcp-service' },
  { long: 'udp-service', short: 'u', arg: 'required', key: 'udp-service' },
  { long: 'sctp-service', arg: 'required', key: 'sctp-service' },
  { long: 'fwmark-service', short: 'f', arg: 'required', key: 'fwmark-service' },
  { long: 'scheduler', short: 's', arg: 'required', key: 'scheduler' },
  { long: 'persistent', short: 'p', arg: 'optional', key: 'persistent' },
  { long: 'netmask', short: 'M', arg: 'required', key: 'netmask' },
  { long: 'real-server', short: 'r', arg: 'required', key: 'real-server' },
  { long: 'masquerading', short: 'm', arg: 'none', key: 'masquerading' },
  { long: 'ipip', short: 'i', arg: 'none', key: 'ipip' },
  { long: 'gatewaying', short: 'g', arg: 'none', key: 'gatewaying' },
  { long: 'weight', short: 'w', arg: 'required', key: 'weight' },
  { long: 'u-threshold', short: 'x', arg: 'required', key: 'u-threshold' },
  { long: 'l-threshold', short: 'y', arg: 'required', key: 'l-threshold' },
  { long: 'numeric', short: 'n', arg: 'none', key: 'numeric' },
  { long: 'connection', short: 'c', arg: 'none', key: 'connection' },
  { long: 'mcast-interface', arg: 'required', key: 'mcast-interface' },
  { long: 'syncid', arg: 'required', key: 'syncid' },
  { long: 'timeout', arg: 'none', key: 'timeout' },
  { long: 'daemon', arg: 'none', key: 'daemon' },
  { long: 'checks', arg: 'none', key: 'checks' },
  { long: 'stats', arg: 'none', key: 'stats' },
  { long: 'rate', arg: 'none', key: 'rate' },
  { long: 'thresholds', arg: 'none', key: 'thresholds' },
  { long: 'persistent-conn', arg: 'none', key: 'persistent-conn' },
  { long: 'nosort', arg: 'none', key: 'nosort' },
  { long: 'sort', arg: 'none', key: 'sort' },
  { long: 'exact', short: 'X', arg: 'none', key: 'exact' },
  { long: 'ipv6', short: '6', arg: 'none', key: 'ipv6' },
  { long: 'ops', short: 'o', arg: 'none', key: 'ops' },
  { long: 'pe', arg: 'required', key: 'pe' },
  { long: 'sched-flags', short: 'b', arg: 'required', key: 'sched-flags' },
  { long: 'mcast-group', arg: 'required', key: 'mcast-group' },
  { long: 'mcast-port', arg: 'required', key: 'mcast-port' },
  { long: 'mcast-ttl', arg: 'required', key: 'mcast-ttl' },
  { long: 'sync-maxlen', arg: 'required', key: 'sync-maxlen' },
  { long: 'tun-info', arg: 'none', key: 'tun-info' },
  { long: 'tun-type', arg: 'required', key: 'tun-type' },
  { long: 'tun-port', arg: 'required', key: 'tun-port' },
  { long: 'tun-nocsum', arg: 'none', key: 'tun-nocsum' },
  { long: 'tun-csum', arg: 'none', key: 'tun-csum' },
  { long: 'tun-remcsum', arg: 'none', key: 'tun-remcsum' },
];

type PoptEvent =
  | { type: 'opt'; key: string; arg: string | null }
  | { type: 'end' }
  | { type: 'error'; message: 'unknown option' | 'missing argument' };

/**
 * popt's poptGetNextOpt over one argv: short options cluster (`-Ln`), a short option's argument
 * may be attached (`-t1.2.3.4:80`, `-t=1.2.3.4:80`), long options match by full name only
 * (`--tcp-service=1.2.3.4:80` or `--tcp-service 1.2.3.4:80`). An optional argument (-p) is not
 * taken from the next word when that word starts with '-'. Non-options ("-" included) are
 * collected as leftovers; `--` makes everything after it a leftover.
 */
class PoptScanner {
  readonly leftovers: string[] = [];
  private next = 0;
  /** Rest of a short-option cluster still to process (popt's nextCharArg). */
  private cluster: string | null = null;
  private restLeftover = false;

  constructor(private readonly argv: readonly string[]) {}

  /** poptBadOption(POPT_BADOPTION_NOALIAS): the argv word popt read last. */
  badOption(): string {
    return this.argv[this.next - 1] ?? '';
  }

  nextOpt(): PoptEvent {
    for (;;) {
      let opt: PoptOption | undefined;
      let longArg: string | null = null;
      if (this.cluster === null) {
        if (this.next === this.argv.length) return { type: 'end' };
        const word = this.argv[this.next++];
        if (this.restLeftover || word[0] !== '-' || word === '-') {
          this.leftovers.push(word);
          continue;
        }
        if (word === '--') {
          this.restLeftover = true;
          continue;
        }
        if (word[1] === '-') {
          const body = word.slice(2);
          const eq = body.indexOf('=');
          const name = eq >= 0 ? body.slice(0, eq) : body;
          if (eq >= 0) longArg = body.slice(eq + 1);
          opt = POPT_TABLE.find((o) => o.long === name);
          if (!opt) return { type: 'error', message: 'unknown option' };
        } else {
          this.cluster = word.slice(1);
        }
      }
      if (this.cluster !== null) {
        const ch = this.cluster.slice(0, 1);
        const rest = this.cluster.slice(1);
        this.cluster = null;
        opt = ch === '' ? undefined : POPT_TABLE.find((o) => o.short === ch);
        if (!opt) return { type: 'error', message: 'unknown option' };
        if (rest !== '') this.cluster = rest[0] === '=' ? rest.slice(1) : rest;
      }
      const found = opt!;
      if (found.arg === 'none') return { type: 'opt', key: found.key, arg: null };
      let arg: string | null;
      if (longArg !== null) {
        arg = longArg;
      } else if (this.cluster !== null) {
        arg = this.cluster;
        this.cluster = null;
      } else if (this.next === this.argv.length) {
        if (found.arg !== 'optional') return { type: 'error', message: 'missing argument' };
        arg = null;
      } else if (found.arg === 'optional' && this.argv[this.next][0] === '-') {
        arg = null;
      } else {
        arg = this.argv[this.next++];
      }
      return { type: 'opt', key: found.key, arg };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// C library number and address parsing, as ipvsadm relies on it.

function isCSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** strtol(s, &end, 10) that must consume all of s: the value, or null. */
function strtol10(s: string): number | null {
  let i = 0;
  while (isCSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') neg = s[i++] === '-';
  const start = i;
  while (isDigit(s[i])) i++;
  if (i === start || i !== s.length) return null;
  const n = Number(s.slice(start, i));
  // Past LONG_MAX strtol saturates with ERANGE; every caller's range is far below that.
  if (n > Number.MAX_SAFE_INTEGER) return null;
  return neg && n !== 0 ? -n : n;
}

/** ipvsadm's string_to_number: the value if s is a whole decimal number in [min, max], else null. */
export function stringToNumber(s: string, min: number, max: number): number | null {
  const n = strtol10(s);
  return n !== null && n >= min && n <= max ? n : null;
}

/**
 * The protocol name ipvsadm looks port names up under in the services database (its
 * service_to_port and port_to_service: "tcp", "udp", "sctp"), or null for any other protocol.
 */
export function servicesDbProto(protocol: number): string | null {
  return serviceProtoName(protocol)?.toLowerCase() ?? null;
}

/** ipvsadm's host_to_addr after inet_aton: an IPv4 address, as a host-order number, or null. */
async function hostToAddr(name: string, resolver: ArgResolver): Promise<number | null> {
  const aton = inetAton(name);
  if (aton !== null) return aton;
  if (name === '') return null;
  const addr = await resolver.host(name);
  return addr !== null && isValidIpv4(addr) ? ipToU32(addr) : null;
}

/**
 * ipvsadm's parse_service for "host[:port]": null when unusable (SERVICE_NONE), else the address
 * family, the address (IPv6 in inet_ntop's text) and the port when one was given. `protocol`
 * selects the services database for a port name. As ipvsadm: "[v6]:port" needs the port, a bare
 * IPv6 address has none, and "[v4]:port" is read as the IPv4 address without its port.
 */
async function parseService(
  buf: string,
  protocol: number,
  resolver: ArgResolver,
): Promise<{ af: number; addr: string; port: number | null } | null> {
  if (/^[0-9]*$/.test(buf)) return null;
  let rest = buf;
  let portStr: string | null = null;
  if (rest[0] === '[') {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') return null;
    portStr = rest.slice(close + 2);
    rest = rest.slice(1, close);
  }
  const v6 = parseIpv6(rest);
  let af = AF_INET6;
  let addr: string;
  if (v6 !== null) {
    addr = formatIpv6(v6);
  } else {
    const colon = rest.lastIndexOf(':');
    portStr = colon >= 0 ? rest.slice(colon + 1) : null;
    const host = colon >= 0 ? rest.slice(0, colon) : rest;
    const v4 = await hostToAddr(host, resolver);
    if (v4 === null) return null;
    af = AF_INET;
    addr = u32ToIp(v4);
  }
  if (portStr === null) return { af, addr, port: null };
  let port = stringToNumber(portStr, 0, 65535);
  if (port === null) {
    const proto = servicesDbProto(protocol);
    port = proto ? resolver.service(portStr, proto) : null;
  }
  return port === null ? null : { af, addr, port };
}

/** C's atoi: leading blanks, a sign, the digits up to the first other character; else 0. */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m === null ? 0 : Number.parseInt(m[1], 10) | 0;
}

// ---------------------------------------------------------------------------------------------
// The services database (/etc/services), for names in addresses and in listings.

export interface ServicesDb {
  /** getservbyname: the port of a name or alias for a protocol ('tcp', 'udp', 'sctp'). */
  port(name: string, proto: string): number | null;
  /** getservbyport: the official name of a port for a protocol. */
  name(port: number, proto: string): string | null;
}

/** Parses services(5) text: `name port/proto [aliases...] [# comment]`, first entry wins. */
export function parseServices(text: string): ServicesDb {
  const byName = new Map<string, number>();
  const byPort = new Map<string, string>();
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(fields[1] ?? '');
    if (!m) continue;
    const port = Number(m[1]);
    const proto = m[2];
    if (port > 65535) continue;
    const portKey = `${port}/${proto}`;
    if (!byPort.has(portKey)) byPort.set(portKey, fields[0]);
    for (const name of [fields[0], ...fields.slice(2)]) {
      const nameKey = `${name}/${proto}`;
      if (!byName.has(nameKey)) byName.set(nameKey, port);
    }
  }
  return {
    port: (name, proto) => byName.get(`${name}/${proto}`) ?? null,
    name: (port, proto) => byPort.get(`${port}/${proto}`) ?? null,
  };
}

let systemServices: ServicesDb | undefined;

/** /etc/services, read once; an empty database when the file is missing. */
export function systemServicesDb(path = '/etc/services'): ServicesDb {
  if (!systemServices) {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // No services database: only numeric ports resolve.
    }
    systemServices = parseServices(text);
  }
  return systemServices;
}

/** The real resolver: dns.lookup (hosts file, DNS) for IPv4, /etc/services for ports. */
export const systemArgResolver: ArgResolver = {
  async host(name) {
    try {
      const { address } = await lookup(name, { family: 4 });
      return address;
    } catch {
      return null;
    }
  },
  service(name, proto) {
    return systemServicesDb().port(name, proto);
  },
};

// ---------------------------------------------------------------------------------------------
// The parser proper.

const COMMAND_KEYS: Readonly<Record<string, CommandName>> = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  clear: 'flush',
  list: 'list',
  zero: 'zero',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  set: 'set',
  restore: 'restore',
  save: 'save',
};

/** ipvsadm's struct ipvs_command_entry plus the option and format bits, with its defaults. */
interface Entry {
  cmd: CommandName;
  options: Set<OptionName>;
  format: ListFormat;
  /** The service as the request carries it (`protocol` is sent as 0 for a fwmark service). */
  svc: ServiceSpec;
  /** The service's and the real server's address families (0 until an address sets them). */
  svcAf: number;
  destAf: number;
  dest: DestSpec;
  timeouts: Timeouts;
  schedFlagsArg: string;
  daemon: DaemonSpec;
}

function newEntry(cmd: CommandName): Entry {
  return {
    cmd,
    options: new Set(),
    format: { ...DEFAULT_LIST_FORMAT },
    svc: {
      protocol: 0,
      addr: u32ToIp(0),
      port: 0,
      fwmark: 0,
      sched: '',
      flags: 0,
      timeout: 0,
      netmask: u32ToIp(UINT_MAX),
      pe: '',
    },
    svcAf: 0,
    destAf: 0,
    dest: {
      addr: u32ToIp(0),
      port: 0,
      fwd: FWD_DROUTE,
      weight: DEFAULT_WEIGHT,
      uThreshold: 0,
      lThreshold: 0,
      tunType: TUN_TYPE_IPIP,
      tunPort: 0,
      tunFlags: TUN_F_NOCSUM,
    },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
    schedFlagsArg: '',
    daemon: { state: 'master', mcastIfn: '', syncid: 0, maxlen: 0, group: '', port: 0, ttl: 0 },
  };
}

function setOption(e: Entry, name: OptionName): void {
  if (e.options.has(name)) fail(IPVSADM_TEXT.multipleOption(name));
  e.options.add(name);
}

/** ipvsadm's parse_timeout: no argument means the default persistence timeout. */
function parseTimeout(buf: string | null, min: number, max: number): number {
  if (buf === null) return DEFAULT_PERSISTENT_TIMEOUT;
  const n = stringToNumber(buf, min, max);
  if (n === null) fail(IPVSADM_TEXT.badTimeout(buf));
  return n;
}

/** ipvsadm's parse_fwmark: a whole decimal number in 1..UINT_MAX (strtol: leading blanks, sign ok). */
function parseFwmark(buf: string): number {
  const n = strtol10(buf);
  if (n === null || n <= 0 || n > UINT_MAX) fail(IPVSADM_TEXT.badFwmark(buf));
  return n;
}

/** ipvsadm's parse_sched_flags for scheduler `sched` (the -s value, else wlc). */
function parseSchedFlags(sched: string, arg: string): number {
  let flags = 0;
  for (const flag of arg.split(',')) {
    if (flag === '') continue;
    if (!Object.hasOwn(SCHED_FLAG_BITS, flag)) fail(IPVSADM_TEXT.badSchedFlag(flag));
    // sh-* and mh-* belong to their scheduler.
    if (!flag.startsWith('flag-') && sched !== flag.slice(0, 2)) fail(IPVSADM_TEXT.incompatibleSchedFlag(flag));
    flags |= SCHED_FLAG_BITS[flag];
  }
  return flags;
}

function parseTunType(name: string): number | null {
  const i = (TUN_TYPE_NAMES as readonly string[]).indexOf(name);
  return i >= 0 ? i : null;
}

/** ipvsadm's generic_opt_check: walk the options in table order, failing on the first problem. */
function genericOptCheck(cmd: CommandName, options: ReadonlySet<OptionName>): void {
  const row = COMMANDS_V_OPTIONS[cmd];
  let first: OptionName | null = null;
  OPTION_NAMES.forEach((name, j) => {
    const rule = row[j];
    if (!options.has(name)) {
      if (rule === '+') fail(IPVSADM_TEXT.optionRequired(name, cmd));
      return;
    }
    if (rule === 'x') fail(IPVSADM_TEXT.optionIllegal(name, cmd));
    if (rule === '1') {
      if (first === null) first = name;
      else fail(IPVSADM_TEXT.optionConflict(name, first, cmd));
    }
  });
}

/** ipvsadm's tunnel_opt_check against tunnel_types_v_options. */
function tunnelOptCheck(tunType: number, options: ReadonlySet<OptionName>): void {
  const row = TUNNEL_TYPES_V_OPTIONS[tunType];
  const type = TUN_TYPE_NAMES[tunType];
  let first: OptionName | null = null;
  TUN_OPTIONS.forEach((name, j) => {
    const rule = row[j];
    if (!options.has(name)) {
      if (rule === '+') fail(IPVSADM_TEXT.tunOptionRequired(name, type));
      return;
    }
    if (rule === 'x') fail(IPVSADM_TEXT.tunOptionIllegal(name, type));
    if (rule === '1') {
      if (first === null) first = name;
      else fail(IPVSADM_TEXT.tunOptionConflict(name, first, type));
    }
  });
}

/** Removes lvsadm's own `--socket PATH` / `--socket=PATH` (allowed anywhere) from argv. */
export function extractSocket(argv: readonly string[]): { rest: string[]; socket?: string } {
  const rest: string[] = [];
  let socket: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--socket') {
      if (i + 1 >= argv.length) throw new ArgsError('popt', '--socket: missing argument\n', 255);
      socket = argv[++i];
    } else if (word.startsWith('--socket=')) {
      socket = word.slice('--socket='.length);
    } else {
      rest.push(word);
    }
  }
  return socket === undefined ? { rest } : { rest, socket };
}

/** Handles one option after the command, as the loop in ipvsadm's parse_options does. */
async function applyOption(
  e: Entry,
  key: string,
  arg: string | null,
  scanner: PoptScanner,
  resolver: ArgResolver,
  state: { nameProto: number },
): Promise<void> {
  const optarg = arg ?? '';
  switch (key) {
    case 'tcp-service':
    case 'udp-service':
    case 'sctp-service': {
      setOption(e, 'service-address');
      const protocol = key === 'tcp-service' ? IPPROTO_TCP : key === 'udp-service' ? IPPROTO_UDP : IPPROTO_SCTP;
      e.svc.protocol = protocol;
      state.nameProto = protocol;
      const parsed = await parseService(optarg, protocol, resolver);
      if (!parsed) fail(IPVSADM_TEXT.badService);
      e.svcAf = parsed.af;
      e.svc.addr = parsed.addr;
      // An IPv6 service's persistence granularity is a prefix length, 128 until -M says otherwise.
      if (parsed.af === AF_INET6) e.svc.netmask = '128';
      if (parsed.port !== null) e.svc.port = parsed.port;
      return;
    }
    case 'fwmark-service':
      setOption(e, 'service-address');
      // ipvsadm sets TCP here "to a sane value"; lvs-ts sends protocol 0 for a fwmark service
      // but still resolves port names in -r as TCP, as ipvsadm does.
      e.svc.protocol = 0;
      state.nameProto = IPPROTO_TCP;
      e.svcAf = AF_INET;
      e.svc.fwmark = parseFwmark(optarg);
      return;
    case 'scheduler':
      setOption(e, 'scheduler');
      e.svc.sched = optarg.slice(0, SCHED_NAME_MAX);
      return;
    case 'persistent':
      setOption(e, 'persistent');
      e.svc.flags |= SVC_F_PERSISTENT;
      e.svc.timeout = parseTimeout(arg, 1, MAX_TIMEOUT);
      return;
    case 'netmask': {
      setOption(e, 'netmask');
      if (e.svcAf === AF_INET6) {
        // A prefix length for an IPv6 service (-t [v6] or -f N -6 before -M).
        const plen = atoi(optarg);
        if (plen < 1 || plen > 128) fail(IPVSADM_TEXT.badNetmask6);
        e.svc.netmask = String(plen);
        return;
      }
      const mask = await hostToAddr(optarg, resolver);
      if (mask === null) fail(IPVSADM_TEXT.badNetmask);
      e.svc.netmask = u32ToIp(mask);
      return;
    }
    case 'real-server': {
      setOption(e, 'real-server');
      const parsed = await parseService(optarg, state.nameProto, resolver);
      if (!parsed) fail(IPVSADM_TEXT.badRealServer);
      e.destAf = parsed.af;
      e.dest.addr = parsed.addr;
      // Without a port the dest takes the service port known at this point of argv.
      e.dest.port = parsed.port ?? e.svc.port;
      return;
    }
    case 'ipip':
    case 'gatewaying':
    case 'masquerading':
      setOption(e, 'forwarding-method');
      e.dest.fwd = key === 'ipip' ? FWD_TUNNEL : key === 'gatewaying' ? FWD_DROUTE : FWD_MASQ;
      return;
    case 'weight': {
      setOption(e, 'weight');
      const n = stringToNumber(optarg, 0, 65535);
      if (n === null) fail(IPVSADM_TEXT.badWeight);
      e.dest.weight = n;
      return;
    }
    case 'u-threshold':
    case 'l-threshold': {
      setOption(e, key);
      const n = stringToNumber(optarg, 0, INT_MAX);
      if (n === null) fail(key === 'u-threshold' ? IPVSADM_TEXT.badUThreshold : IPVSADM_TEXT.badLThreshold);
      if (key === 'u-threshold') e.dest.uThreshold = n;
      else e.dest.lThreshold = n;
      return;
    }
    case 'connection':
      setOption(e, 'connection');
      return;
    case 'numeric':
      setOption(e, 'numeric');
      e.format.numeric = true;
      return;
    case 'mcast-interface':
      setOption(e, 'mcast-interface');
      e.daemon.mcastIfn = optarg.slice(0, IFNAME_MAX - 1);
      return;
    case 'syncid': {
      setOption(e, 'syncid');
      const n = stringToNumber(optarg, 0, 255);
      if (n === null) fail(IPVSADM_TEXT.badSyncid);
      e.daemon.syncid = n;
      return;
    }
    case 'timeout':
      setOption(e, 'timeout');
      return;
    case 'daemon':
      setOption(e, 'daemon');
      return;
    case 'checks':
      setOption(e, 'checks');
      return;
    case 'stats':
      setOption(e, 'stats');
      e.format.stats = true;
      return;
    case 'rate':
      setOption(e, 'rate');
      e.format.rate = true;
      return;
    case 'thresholds':
      setOption(e, 'thresholds');
      e.format.thresholds = true;
      return;
    case 'persistent-conn':
      setOption(e, 'persistent-conn');
      e.format.persistentConn = true;
      return;
    case 'nosort':
      setOption(e, 'nosort');
      e.format.nosort = true;
      return;
    case 'sort':
      // Sorting is the default; ipvsadm keeps --sort as a no-op.
      return;
    case 'exact':
      setOption(e, 'exact');
      e.format.exact = true;
      return;
    case 'ipv6':
      if (!e.svc.fwmark) fail(IPVSADM_TEXT.ipv6BeforeFwmark);
      e.svcAf = AF_INET6;
      e.svc.netmask = '128';
      return;
    case 'ops':
      setOption(e, 'ops');
      e.svc.flags |= SVC_F_ONEPACKET;
      return;
    case 'pe':
      setOption(e, 'pe');
      e.svc.pe = optarg.slice(0, PE_NAME_MAX);
      return;
    case 'sched-flags':
      setOption(e, 'sched-flags');
      e.schedFlagsArg = optarg.slice(0, SCHED_FLAGS_ARG_MAX);
      return;
    case 'mcast-group': {
      setOption(e, 'mcast-group');
      if (optarg.includes(':')) {
        if (parseIpv6(optarg)?.[0] !== 0xff) fail(IPVSADM_TEXT.badMcastGroup6(optarg));
      } else {
        const first = Number(optarg.split('.')[0]);
        if (!isIPv4(optarg) || first < 224 || first > 239) fail(IPVSADM_TEXT.badMcastGroup4(optarg));
      }
      e.daemon.group = optarg;
      return;
    }
    case 'mcast-port': {
      setOption(e, 'mcast-port');
      const n = stringToNumber(optarg, 1, 65535);
      if (n === null) fail(IPVSADM_TEXT.badMcastPort);
      e.daemon.port = n;
      return;
    }
    case 'mcast-ttl': {
      setOption(e, 'mcast-ttl');
      const n = stringToNumber(optarg, 1, 255);
      if (n === null) fail(IPVSADM_TEXT.badMcastTtl);
      e.daemon.ttl = n;
      return;
    }
    case 'sync-maxlen': {
      setOption(e, 'sync-maxlen');
      const n = stringToNumber(optarg, 1, 65535 - 20 - 8);
      if (n === null) fail(IPVSADM_TEXT.badSyncMaxlen);
      e.daemon.maxlen = n;
      return;
    }
    case 'tun-info':
      setOption(e, 'tun-info');
      e.format.tunInfo = true;
      return;
    case 'tun-type': {
      setOption(e, 'tun-type');
      const t = parseTunType(optarg);
      if (t === null) fail(IPVSADM_TEXT.badTunType);
      e.dest.tunType = t;
      return;
    }
    case 'tun-port': {
      setOption(e, 'tun-port');
      const n = stringToNumber(optarg, 1, 65535);
      if (n === null) fail(IPVSADM_TEXT.badTunPort);
      e.dest.tunPort = n;
      return;
    }
    case 'tun-nocsum':
      setOption(e, 'tun-nocsum');
      e.dest.tunFlags |= TUN_F_NOCSUM;
      return;
    case 'tun-csum':
      setOption(e, 'tun-csum');
      e.dest.tunFlags |= TUN_F_CSUM;
      return;
    case 'tun-remcsum':
      setOption(e, 'tun-remcsum');
      e.dest.tunFlags |= TUN_F_REMCSUM;
      return;
    default:
      // A second command (or -h/-v after the command) reaches ipvsadm's default: case.
      fail(IPVSADM_TEXT.invalidOption(scanner.badOption()));
  }
}

function serviceKey(e: Entry): ServiceKey {
  const key: ServiceKey = {
    protocol: e.svc.fwmark ? 0 : e.svc.protocol,
    addr: e.svc.addr,
    port: e.svc.port,
    fwmark: e.svc.fwmark,
  };
  if (e.svcAf === AF_INET6) key.af = AF_INET6;
  return key;
}

function serviceSpec(e: Entry): ServiceSpec {
  const { sched, flags, timeout, netmask, pe } = e.svc;
  return { ...serviceKey(e), sched, flags, timeout, netmask, pe };
}

function destKey(e: Entry): DestKey {
  return { addr: e.dest.addr, port: e.dest.port };
}

function destSpec(e: Entry): DestSpec {
  return { ...e.dest };
}

/** process_options after parsing: legality table, semantic checks, then the command. */
function finish(e: Entry): LvsadmCommand {
  genericOptCheck(e.cmd, e.options);

  if (e.cmd === 'add-service' || e.cmd === 'edit-service') {
    if (!e.svc.fwmark && !e.svc.port && !(e.svc.flags & SVC_F_PERSISTENT)) fail(IPVSADM_TEXT.zeroPort);
    if (e.svc.flags & SVC_F_ONEPACKET && !e.svc.fwmark && e.svc.protocol !== IPPROTO_UDP) fail(IPVSADM_TEXT.opsNotUdp);
    if (e.svc.sched === '') e.svc.sched = DEFAULT_SCHEDULER;
  }

  if (e.cmd === 'add-server' || e.cmd === 'edit-server') {
    // DR and tunnelled dests answer on the service port; a fwmark service has none.
    if (!e.svc.fwmark && (e.dest.fwd === FWD_TUNNEL || e.dest.fwd === FWD_DROUTE)) e.dest.port = e.svc.port;
    if (e.destAf !== e.svcAf && e.dest.fwd !== FWD_TUNNEL) fail(IPVSADM_TEXT.familyNotTunnel);
    const tunOptions: OptionName[] = ['tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'];
    if (tunOptions.some((o) => e.options.has(o)) && e.dest.fwd !== FWD_TUNNEL) fail(IPVSADM_TEXT.tunOptionsNotTunnel);
    tunnelOptCheck(e.dest.tunType, e.options);
  }

  const has = (o: OptionName) => e.options.has(o);
  switch (e.cmd) {
    case 'list':
      if (
        ((has('connection') || has('timeout') || has('daemon') || has('checks')) &&
          (has('stats') || has('rate') || has('thresholds'))) ||
        ((has('timeout') || has('daemon') || has('checks')) && has('persistent-conn'))
      )
        fail(IPVSADM_TEXT.listConflict);
      if (has('connection')) return { kind: 'list-conns', format: e.format };
      if (has('service-address')) return { kind: 'list-service', format: e.format, svc: serviceKey(e) };
      if (has('timeout')) return { kind: 'list-timeouts' };
      if (has('daemon')) return { kind: 'list-daemons' };
      if (has('checks')) return { kind: 'list-checks' };
      return { kind: 'list', format: e.format };
    case 'save':
      return { kind: 'save', format: e.format };
    case 'restore':
      return { kind: 'restore' };
    case 'start-daemon':
      if (e.daemon.group.includes(':')) unsupported('IPv6');
      return {
        kind: 'request',
        request: {
          cmd: 'start-daemon',
          daemon: { ...e.daemon, mcastIfn: e.daemon.mcastIfn || DEFAULT_MCAST_IFN },
        },
      };
    case 'stop-daemon':
      return { kind: 'request', request: { cmd: 'stop-daemon', state: e.daemon.state } };
    case 'flush':
      return { kind: 'request', request: { cmd: 'flush' } };
    case 'add-service':
      return { kind: 'request', request: { cmd: 'add-service', svc: serviceSpec(e) } };
    case 'edit-service':
      return { kind: 'request', request: { cmd: 'edit-service', svc: serviceSpec(e) } };
    case 'delete-service':
      return { kind: 'request', request: { cmd: 'delete-service', svc: serviceKey(e) } };
    case 'zero':
      return {
        kind: 'request',
        request: has('service-address') ? { cmd: 'zero', svc: serviceKey(e) } : { cmd: 'zero' },
      };
    case 'add-server':
      return { kind: 'request', request: { cmd: 'add-server', svc: serviceKey(e), dest: destSpec(e) } };
    case 'edit-server':
      return { kind: 'request', request: { cmd: 'edit-server', svc: serviceKey(e), dest: destSpec(e) } };
    case 'delete-server':
      return { kind: 'request', request: { cmd: 'delete-server', svc: serviceKey(e), dest: destKey(e) } };
    case 'set':
      return { kind: 'request', request: { cmd: 'set-timeouts', timeouts: e.timeouts } };
  }
  throw new Error(`unhandled command ${e.cmd}`);
}

async function parse(argv: readonly string[], resolver: ArgResolver): Promise<ParsedArgs> {
  const { rest, socket } = extractSocket(argv);
  const withSocket = (command: LvsadmCommand): ParsedArgs => (socket === undefined ? { command } : { command, socket });

  // `ipvsadm` alone lists the table.
  if (rest.length === 0) return withSocket({ kind: 'list', format: newEntry('list').format });

  const scanner = new PoptScanner(rest);
  const first = scanner.nextOpt();
  if (first.type !== 'opt') tryHelp();
  if (first.key === 'help') return withSocket({ kind: 'help' });
  if (first.key === 'version') return withSocket({ kind: 'version' });
  let cmd = COMMAND_KEYS[first.key];
  if (first.key === 'start-daemon' || first.key === 'stop-daemon') {
    if (first.arg !== 'master' && first.arg !== 'backup')
      fail(first.key === 'start-daemon' ? IPVSADM_TEXT.badStartDaemon : IPVSADM_TEXT.badStopDaemon);
    cmd = first.key;
  }
  if (!cmd) tryHelp();

  const e = newEntry(cmd);
  if (first.arg === 'backup') e.daemon.state = 'backup';
  const state = { nameProto: 0 };
  for (;;) {
    const ev = scanner.nextOpt();
    if (ev.type === 'end') break;
    if (ev.type === 'error') throw new ArgsError('popt', `${scanner.badOption()}: ${ev.message}\n`, 255);
    await applyOption(e, ev.key, ev.arg, scanner, resolver, state);
  }

  const leftovers = scanner.leftovers;
  if (e.cmd === 'set') {
    if (leftovers.length < 3) fail(IPVSADM_TEXT.setNeedsThree);
    const [tcp, tcpfin, udp] = leftovers.splice(0, 3) as [string, string, string];
    e.timeouts = {
      tcp: parseTimeout(tcp, 0, MAX_TIMEOUT),
      tcpfin: parseTimeout(tcpfin, 0, MAX_TIMEOUT),
      udp: parseTimeout(udp, 0, MAX_TIMEOUT),
    };
  }
  if (leftovers.length > 0) fail(IPVSADM_TEXT.unexpectedArgument(leftovers[0]));

  if (e.schedFlagsArg !== '') {
    e.svc.flags &= ~(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
    e.svc.flags |= parseSchedFlags(e.svc.sched || DEFAULT_SCHEDULER, e.schedFlagsArg);
  }

  return withSocket(finish(e));
}

/**
 * Parses lvsadm's argv (without node and script) into a command, or the failure ipvsadm would
 * report for the same words. Name resolution goes through `resolver` (tests pass a fake one).
 */
export async function parseArgs(
  argv: readonly string[],
  resolver: ArgResolver = systemArgResolver,
): Promise<ParseResult> {
  try {
    return { ok: true, args: await parse(argv, resolver) };
  } catch (err) {
    if (err instanceof ArgsError)
      return { ok: false, error: { kind: err.kind, stderr: err.stderr, exitCode: err.exitCode } };
    throw err;
  }
}
