// lvs-realserver's command line, parsed into a typed command (the CLI acts on nothing else).
//
//   lvs-realserver dr  --vip A.B.C.D|IPV6[,...] [--state FILE]
//   lvs-realserver tun --vip A.B.C.D|IPV6[,...] [--dev NAME] [--state FILE]
//   lvs-realserver dr|tun --down [--state FILE]

import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors';
import { runDir } from '../run-dir';
import { ipToU32, isValidIpv4 } from '../wire/addr';
import { formatIpv6, parseIpv6 } from '../wire/addr6';

export type RealserverMode = 'dr' | 'tun';

export const DEFAULT_TUN_DEV = 'lvsrs0';
/**
 * Where a mode records its changes unless --state says otherwise: in the network namespace's
 * run-time directory (run-dir.ts), so real servers in two namespaces never share a journal.
 */
export function defaultStateFile(mode: RealserverMode, dir = runDir()): string {
  return join(dir, `realserver-${mode}.state`);
}

export type RealserverCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  /** Set the host up for `mode` and stay in the foreground until a signal. */
  | {
      kind: 'up';
      mode: RealserverMode;
      vips: string[];
      dev: string;
      stateFile: string;
      /** tun: decapsulate in user space only (no eBPF program). */
      userSpace: boolean;
    }
  /** Undo what a (killed) run recorded in `stateFile`. */
  | { kind: 'down'; mode: RealserverMode; stateFile: string };

/** Interface names as the kernel takes them: 1..15 bytes, no '/', ':' or whitespace. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Why a VIP cannot be a unicast address of this host, or undefined when it can. */
function vipProblem(a: number): string | undefined {
  const first = a >>> 24;
  if (first === 0) return 'is in 0.0.0.0/8';
  if (first === 127) return 'is a loopback address';
  if (first >= 224) return 'is not a unicast address';
  return undefined;
}

/** Why an IPv6 VIP cannot be a unicast address of this host, or undefined when it can. */
function vip6Problem(b: Uint8Array): string | undefined {
  if (b.every((x, i) => x === 0 || (i === 15 && x === 1))) return 'is the unspecified or loopback address';
  if (b[0] === 0xff) return 'is not a unicast address';
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return 'is a link-local address';
  return undefined;
}

/** "a,b" and repeated --vip options -> distinct validated addresses (IPv6 in its canonical text), in order. */
function parseVips(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(',')) {
      let vip = part.trim();
      if (vip === '') continue;
      const b = parseIpv6(vip);
      if (b !== null) {
        const problem = vip6Problem(b);
        if (problem !== undefined) throw new UsageError(`invalid VIP ${vip}: it ${problem}`);
        vip = formatIpv6(b);
        if (!out.includes(vip)) out.push(vip);
        continue;
      }
      if (!isValidIpv4(vip)) {
        throw new UsageError(`invalid VIP ${JSON.stringify(vip)}: expected A.B.C.D or an IPv6 address`);
      }
      const problem = vipProblem(ipToU32(vip));
      if (problem !== undefined) throw new UsageError(`invalid VIP ${vip}: it ${problem}`);
      if (!out.includes(vip)) out.push(vip);
    }
  }
  return out;
}

export function parseRealserverArgs(argv: readonly string[]): RealserverCommand {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const [mode, ...extra] = positionals;
  if (mode === undefined) throw new UsageError('missing mode: dr or tun');
  if (mode !== 'dr' && mode !== 'tun') throw new UsageError(`unknown mode ${JSON.stringify(mode)}: dr or tun`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);

  if (values.state === '') throw new UsageError('--state needs a file name');
  const stateFile = values.state === undefined ? defaultStateFile(mode) : resolve(values.state);
  if (values.dev !== undefined && mode !== 'tun') throw new UsageError('--dev is for tun mode only');
  if (values['user-space'] && mode !== 'tun') throw new UsageError('--user-space is for tun mode only');

  if (values.down) {
    if (values.vip !== undefined) throw new UsageError('--down takes no --vip: it undoes what the state file records');
    if (values.dev !== undefined) throw new UsageError('--down takes no --dev: it undoes what the state file records');
    if (values['user-space']) throw new UsageError('--down takes no --user-space');
    return { kind: 'down', mode, stateFile };
  }

  const vips = parseVips(values.vip ?? []);
  if (vips.length === 0) throw new UsageError('missing --vip A.B.C.D[,...]');
  const dev = values.dev ?? DEFAULT_TUN_DEV;
  if (!IFNAME.test(dev)) throw new UsageError(`invalid device name ${JSON.stringify(dev)}: 1..15 of A-Z a-z 0-9 _ . -`);
  return { kind: 'up', mode, vips, dev, stateFile, userSpace: values['user-space'] };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      vip: { type: 'string', multiple: true },
      dev: { type: 'string' },
      'user-space': { type: 'boolean', default: false },
      state: { type: 'string' },
      down: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
}
