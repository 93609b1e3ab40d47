// lvsadm: ipvsadm's command line and output, talking to lvsd over its control socket.
//
// Exit status, as ipvsadm's:
//   0    success (also -h, -v);
//   1    a listing could not be produced (ipvsadm exit(1)s in list_*), or lvsd is unreachable;
//   2    the command line is wrong (fail());
//   255  no command / popt error ("Try ..."), or lvsd refused a change (ipvsadm returns -1).

import { lookupService } from 'node:dns/promises';
import { request } from '../ctl/client';
import type {
  ConnSnapshot,
  DaemonSpec,
  Request,
  Response,
  Snapshot,
  Timeouts,
  VirtualServerSnapshot,
  VrrpSnapshot,
} from '../ctl/protocol';
import { socketPath } from '../ctl/protocol';
import {
  ArgsError,
  BadReplyError,
  ControlSocketError,
  type CtlCommand,
  type Errno,
  IPVSADM_TEXT,
  ipvsStrerror,
} from '../errors';
import { IPVS_VERSION } from '../ip-vs';
import {
  type ArgResolver,
  extractSocket,
  type LvsadmCommand,
  PROGRAM,
  parseArgs,
  restoreLineWords,
  servicesDbProto,
  systemArgResolver,
  systemServicesDb,
} from './lvsadm-args';
import {
  connAddresses,
  findService,
  formatChecks,
  formatConnections,
  formatDaemons,
  formatList,
  formatListService,
  formatSave,
  formatTimeouts,
  formatVrrp,
  listedAddresses,
  type NameLookup,
  NUMERIC_NAMES,
} from './lvsadm-format';

export const LVSADM_VERSION = '0.1.0';

/** ipvsadm's SCHEDULERS and PE_LIST as built into 1.31's help text. */
const SCHEDULERS = 'rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh';
const PE_LIST = 'sip';

export function versionText(): string {
  return `${PROGRAM} v${LVSADM_VERSION} (ipvsadm 1.31 compatible, IPVS v${IPVS_VERSION})\n`;
}

const DESCRIPTION =
  'Administers lvsd, the lvs-ts user-space Linux Virtual Server (virtual services, real servers,\n' +
  'schedulers, counters), with the syntax, output and exit codes of ipvsadm 1.31.\n\n';

/** ipvsadm's usage text with lvsadm's name, plus lvsadm's own --socket. */
export function usageText(program = PROGRAM): string {
  const p = program;
  return `${versionText()}${DESCRIPTION}Usage:
  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  ${p} -D virtual-service
  ${p} -C
  ${p} -R
  ${p} -S [-n]
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -L|l [virtual-service] [options]
  ${p} -Z [virtual-service]
  ${p} --set tcp tcpfin udp
  ${p} --start-daemon {master|backup} [daemon-options]
  ${p} --stop-daemon {master|backup}
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of ${SCHEDULERS},
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be ${PE_LIST},
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --checks                            output of health check state (lvs-ts;
                                      lvsd --keepalived-conf)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
${p} Options:
  --socket path                       lvsd control socket (default: $LVS_SOCKET, else lvsd.sock
                                      in the network namespace's run-time directory:
                                      /run/lvs/ in the host's, /run/lvs/netns-<inode>/ in others)
`;
}

/** What main talks to; tests replace parts of it. */
export interface MainDeps {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Names in addresses on the command line. */
  argResolver: ArgResolver;
  /** Reverse names for a listing without -n. */
  resolveNames(addrs: readonly string[]): Promise<NameLookup>;
  send(socketPath: string, req: Request): Promise<Response>;
  /** All of standard input (-R). */
  readStdin(): Promise<string>;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * -R, as ipvsadm's restore_table: each line of standard input is one command line (a leading
 * `ipvsadm` or `lvsadm` word is dropped, `#` starts a comment, blank lines are skipped). A line
 * that does not parse ends the restore with ipvsadm's text and exit status (2); a command lvsd
 * refuses reports and the restore goes on. The status is that of the last command, as
 * ipvsadm's.
 */
async function restore(path: string, deps: MainDeps): Promise<number> {
  let status = 0;
  for (const raw of (await deps.readStdin()).split('\n')) {
    const words = restoreLineWords(raw);
    if (words.length === 0) continue;
    const parsed = await parseArgs(words, deps.argResolver);
    if (!parsed.ok) {
      deps.stderr(parsed.error.stderr);
      return parsed.error.exitCode;
    }
    // ipvsadm refuses a restore inside a restore (it would read the same input again).
    status = parsed.args.command.kind === 'restore' ? 255 : await run(parsed.args.command, path, deps);
  }
  return status;
}

/** How long one reverse lookup may take before the address is printed numerically. */
const NAME_LOOKUP_TIMEOUT_MS = 1000;

async function hostName(addr: string, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    const found = lookupService(addr, 0).then(
      (r) => r.hostname,
      () => undefined,
    );
    return await Promise.race([found, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Real reverse names: getnameinfo (hosts file, DNS) with a short timeout, /etc/services for ports. */
export async function systemNames(addrs: readonly string[]): Promise<NameLookup> {
  const hosts = new Map<string, string>();
  await Promise.all(
    addrs.map(async (addr) => {
      const name = await hostName(addr, NAME_LOOKUP_TIMEOUT_MS);
      if (name && name !== addr) hosts.set(addr, name);
    }),
  );
  const db = systemServicesDb();
  return {
    host: (addr) => hosts.get(addr),
    service: (port, protocol) => {
      const proto = servicesDbProto(protocol);
      return (proto && db.name(port, proto)) || undefined;
    },
  };
}

const DEFAULT_DEPS: MainDeps = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  argResolver: systemArgResolver,
  resolveNames: systemNames,
  send: (path, req) => request(path, req),
  readStdin: readAllStdin,
};

/** The command libipvs's error table (errors.ts IPVS_STRERROR_TABLE) knows each request as. */
const ERROR_COMMAND: Readonly<Record<Request['cmd'], CtlCommand>> = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  flush: 'flush',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  zero: 'zero',
  'set-timeouts': 'set',
  'get-timeouts': 'list',
  list: 'list',
  'list-conns': 'list',
  'start-daemon': 'start-daemon',
  'stop-daemon': 'stop-daemon',
  'list-daemons': 'list',
  'engine-stats': 'list',
  'restart-engine': 'set',
  'list-checks': 'list',
  'list-vrrp': 'list',
  sysctl: 'set',
};

/** ipvsadm's text for lvsd's refusal of `req`. */
function refusalText(req: Request, res: { errno: string; message: string }): string {
  return `${ipvsStrerror(ERROR_COMMAND[req.cmd], res.errno, res.message)}\n`;
}

function asSnapshot(v: unknown): Snapshot {
  const s = v as Snapshot | undefined;
  if (!s || !Array.isArray(s.services) || typeof s.version !== 'string') throw new BadReplyError('not a snapshot');
  return s;
}

function asConns(v: unknown): ConnSnapshot[] {
  if (!Array.isArray(v)) throw new BadReplyError('not a connection list');
  return v as ConnSnapshot[];
}

function asTimeouts(v: unknown): Timeouts {
  const t = v as Timeouts | undefined;
  if (!t || typeof t.tcp !== 'number' || typeof t.tcpfin !== 'number' || typeof t.udp !== 'number')
    throw new BadReplyError('not timeouts');
  return t;
}

/**
 * Text for a socket failure. An unreachable lvsd is what a missing IPVS is to ipvsadm: its
 * ipvs_init failure, EPERM when the socket refuses us, else ENOPROTOOPT (no IPVS).
 */
function socketFailureText(err: ControlSocketError): string {
  if (err.kind === 'connect') {
    const errno: Errno = err.errno === 'EACCES' || err.errno === 'EPERM' ? 'EPERM' : 'ENOPROTOOPT';
    return `${IPVSADM_TEXT.cannotInit(ipvsStrerror(null, errno))}\n(lvsd not reachable at ${err.socketPath})\n`;
  }
  if (err.kind === 'timeout') return `${PROGRAM}: no reply from lvsd at ${err.socketPath}: ${err.message}\n`;
  return `${PROGRAM}: bad reply from lvsd at ${err.socketPath}: ${err.message}\n`;
}

async function run(command: LvsadmCommand, path: string, deps: MainDeps): Promise<number> {
  /** Sends a listing request; prints ipvsadm's text and yields null when lvsd refuses it. */
  const fetch = async (req: Request): Promise<unknown> => {
    const res = await deps.send(path, req);
    if (res.ok) return res.result;
    deps.stderr(refusalText(req, res));
    return null;
  };
  const names = async (numeric: boolean, addrs: () => string[]): Promise<NameLookup> =>
    numeric ? NUMERIC_NAMES : deps.resolveNames(addrs());
  /** keepalived's VRRP states (nothing unless lvsd runs keepalived; an older lvsd: nothing). */
  const vrrpLines = async (): Promise<string> => {
    const res = await deps.send(path, { cmd: 'list-vrrp' });
    return res.ok && Array.isArray(res.result) ? formatVrrp(res.result as VrrpSnapshot[]) : '';
  };

  switch (command.kind) {
    case 'help':
      deps.stdout(usageText());
      return 0;
    case 'version':
      deps.stdout(versionText());
      return 0;
    case 'request': {
      const res = await deps.send(path, command.request);
      if (res.ok) return 0;
      deps.stderr(refusalText(command.request, res));
      return 255;
    }
    case 'list':
    case 'save':
    case 'list-service': {
      const result = await fetch({ cmd: 'list' });
      if (result === null) return 1;
      const snapshot = asSnapshot(result);
      const format = command.format;
      if (command.kind === 'list-service') {
        const svc = findService(snapshot, command.svc);
        if (!svc) {
          // ipvsadm's list_service: ipvs_get_service failing with ESRCH.
          deps.stderr(`${ipvsStrerror('list', 'ESRCH')}\n`);
          return 1;
        }
        const lookup = await names(format.numeric, () => listedAddresses({ ...snapshot, services: [svc] }));
        deps.stdout(formatListService(svc, format, lookup));
        return 0;
      }
      const lookup = await names(format.numeric, () => listedAddresses(snapshot));
      deps.stdout(
        command.kind === 'save' ? formatSave(snapshot, format, lookup) : formatList(snapshot, format, lookup),
      );
      return 0;
    }
    case 'list-conns': {
      const result = await fetch({ cmd: 'list-conns' });
      if (result === null) return 1;
      const conns = asConns(result);
      const lookup = await names(command.format.numeric, () => connAddresses(conns));
      deps.stdout(formatConnections(conns, command.format, lookup));
      return 0;
    }
    case 'list-timeouts': {
      const result = await fetch({ cmd: 'get-timeouts' });
      if (result === null) return 1;
      deps.stdout(formatTimeouts(asTimeouts(result)));
      return 0;
    }
    case 'list-daemons': {
      const result = await fetch({ cmd: 'list-daemons' });
      if (result === null) return 1;
      if (!Array.isArray(result)) throw new BadReplyError('not a list of daemons');
      deps.stdout(formatDaemons(result as DaemonSpec[]) + (await vrrpLines()));
      return 0;
    }
    case 'list-checks': {
      const result = await fetch({ cmd: 'list-checks' });
      if (result === null) return 1;
      if (!Array.isArray(result)) throw new BadReplyError('not a list of virtual servers');
      deps.stdout(formatChecks(result as VirtualServerSnapshot[]) + (await vrrpLines()));
      return 0;
    }
    case 'restore':
      return restore(path, deps);
  }
}

/**
 * Runs lvsadm with `argv` (the words after the program name) and resolves with the exit status.
 * Output goes to process.stdout/stderr unless `deps` says otherwise.
 */
/**
 * `lvsadm --sysctl [NAME[=VALUE]]`: lvs-ts's extension for the IPVS settings the kernel keeps
 * under /proc/sys/net/ipv4/vs/ (lvsd's src/ctl/sysctl.ts). Lists all, shows one, or sets one,
 * printing `name = value` lines as sysctl(8) does. Nothing else may share the command line.
 */
async function sysctlCommand(argv: string[], d: MainDeps, path: string): Promise<number> {
  let arg: string | undefined;
  if (argv.length === 1 && argv[0].startsWith('--sysctl=')) arg = argv[0].slice('--sysctl='.length);
  else if (argv[0] === '--sysctl' && argv.length <= 2 && !argv[1]?.startsWith('-')) arg = argv[1];
  else {
    d.stderr(`${PROGRAM}: --sysctl takes one optional NAME or NAME=VALUE and nothing else\n`);
    return 2;
  }
  const eq = arg?.indexOf('=') ?? -1;
  const req: Request =
    arg === undefined
      ? { cmd: 'sysctl' }
      : eq >= 0
        ? { cmd: 'sysctl', name: arg.slice(0, eq), value: arg.slice(eq + 1) }
        : { cmd: 'sysctl', name: arg };
  const res = await d.send(path, req);
  if (!res.ok) {
    d.stderr(`${PROGRAM}: ${res.message}\n`);
    return 255;
  }
  if (!Array.isArray(res.result)) throw new BadReplyError('not a list of settings');
  d.stdout((res.result as { name: string; value: number }[]).map((v) => `${v.name} = ${v.value}\n`).join(''));
  return 0;
}

export async function main(argv: string[], deps: Partial<MainDeps> = {}): Promise<number> {
  const d: MainDeps = { ...DEFAULT_DEPS, ...deps };
  if (argv.some((a) => a === '--sysctl' || a.startsWith('--sysctl='))) {
    let words: { rest: string[]; socket?: string };
    try {
      words = extractSocket(argv);
    } catch (err) {
      if (!(err instanceof ArgsError)) throw err;
      d.stderr(err.stderr);
      return err.exitCode;
    }
    return withSocketErrors(socketPath(words.socket), d, (path) => sysctlCommand(words.rest, d, path));
  }
  const parsed = await parseArgs(argv, d.argResolver);
  if (!parsed.ok) {
    d.stderr(parsed.error.stderr);
    return parsed.error.exitCode;
  }
  const command = parsed.args.command;
  return withSocketErrors(socketPath(parsed.args.socket), d, (path) => run(command, path, d));
}

/** Runs `fn`, turning a control-socket or reply failure into lvsadm's text and exit status. */
async function withSocketErrors(path: string, d: MainDeps, fn: (path: string) => Promise<number>): Promise<number> {
  try {
    return await fn(path);
  } catch (err) {
    if (err instanceof ControlSocketError) {
      d.stderr(socketFailureText(err));
      // ipvsadm fails with 2 when it cannot reach IPVS at all.
      return err.kind === 'connect' ? 2 : 1;
    }
    if (err instanceof BadReplyError) {
      d.stderr(`${PROGRAM}: bad reply from lvsd at ${path}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
