// Command line and run profiles of `npm run bench`.

import { parseArgs } from 'node:util';

export const PATH_IDS = ['fwd', 'nat', 'haproxy', 'lvs-nat', 'lvs-dr', 'lvs-tun', 'nat6', 'lvs-nat6'] as const;
export type PathId = (typeof PATH_IDS)[number];

export const TEST_IDS = ['tcp', 'udp-lossfree', 'udp-blast', 'conn', 'latency'] as const;
export type TestId = (typeof TEST_IDS)[number];

export interface Profile {
  name: 'default' | 'quick';
  rounds: number;
  /** iperf3 -t (seconds measured) and -O (seconds omitted at the start). */
  tcpSeconds: number;
  tcpOmit: number;
  /** Paced UDP sweep: offered rates (packets per second), seconds per step. */
  sweepPps: number[];
  sweepSeconds: number;
  blastSeconds: number;
  /** UDP payload bytes. */
  udpPayload: number;
  connSeconds: number;
  latencySamples: number;
  latencyRate: number;
  /** Whole-run budget: tests that would start after it are skipped (recorded as such). */
  budgetSeconds: number;
}

export const PROFILES: Record<Profile['name'], Profile> = {
  default: {
    name: 'default',
    rounds: 3,
    tcpSeconds: 4,
    tcpOmit: 1,
    sweepPps: [5_000, 10_000, 20_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000],
    sweepSeconds: 1,
    blastSeconds: 2,
    udpPayload: 64,
    connSeconds: 4,
    latencySamples: 1000,
    latencyRate: 250,
    budgetSeconds: 540,
  },
  quick: {
    name: 'quick',
    rounds: 1,
    tcpSeconds: 2,
    tcpOmit: 0,
    sweepPps: [10_000, 50_000, 100_000, 200_000, 300_000],
    sweepSeconds: 0.5,
    blastSeconds: 1,
    udpPayload: 64,
    connSeconds: 2,
    latencySamples: 300,
    latencyRate: 300,
    budgetSeconds: 105,
  },
};

export interface Options {
  profile: Profile;
  paths: PathId[];
  tests: TestId[];
  /** --steer: RPS of the director's ingress to CPUs 1.., load generators pinned to CPU 0. */
  steer: boolean;
  /** Extra lvsd arguments (--lvsd-arg, repeatable), e.g. --no-offload, for comparisons. */
  lvsdArgs: string[];
  outDir: string;
}

export const HELP = `Usage: npm run bench -- [options]    (as root; build first: npm run build)

Side-by-side network benchmark of lvs-ts against the kernel and HAProxy, on network
namespaces it builds itself (netns/lab.sh labs under a unique prefix, removed at the end,
on failure and on Ctrl-C). Paths through the director, run interleaved (round 1: every
path, round 2: every path, ...):

  fwd       kernel IP forwarding, client -> real server's own address (reference ceiling)
  nat       kernel NAT: nftables dnat with conntrack in the director
  haproxy   HAProxy mode tcp in the director (TCP tests only)
  lvs-nat   lvsd, masquerading (-m)
  lvs-dr    lvsd, direct routing (-g); lvs-realserver dr on the real server
  lvs-tun   lvsd, IP-in-IP (-i); lvs-realserver tun on the real server
  nat6      kernel NAT over IPv6: nftables ip6 dnat with conntrack (TCP tests only)
  lvs-nat6  lvsd, masquerading over IPv6 (TCP tests only); its ratio is to nat6

Tests: tcp (iperf3, one stream, Gbit/s), udp-lossfree (paced 64-byte UDP sweep: highest
offered rate with < 0.5 % loss), udp-blast (delivered pps at full speed), conn (wrk -t1
-c32, Connection: close, nginx return 200: connections/s), latency (TCP ping-pong
round trip p50/p99 at light load, and what each path adds over fwd, "direct").

Options:
  --quick            1 round, shorter tests, fewer sweep steps (under 2 minutes)
  --rounds N         repetitions (default 3; 1 with --quick)
  --only LIST        paths, comma-separated (e.g. --only nat,lvs-nat)
  --tests LIST       tests, comma-separated (e.g. --tests tcp,conn)
  --steer            pin the load generators to CPU 0 and steer the director's receive
                     processing (RPS on its ingress veths) to the other CPUs. Off by default,
                     as in shared/PERF-BASELINE.md: a veth then runs the director's kernel
                     work on the sending CPU, so kernel paths can be bound by the generator,
                     while with --steer lvsd shares its CPU with that work
  --lvsd-arg ARG     pass ARG to every lvsd started (repeatable), e.g. --lvsd-arg=--no-offload
  --out DIR          results directory (default: results)
  -h, --help         this help

Writes DIR/bench-<timestamp>.{json,md,svg} and DIR/latest.{json,md,svg}; prints the table.
`;

function list<T extends string>(value: string, allowed: readonly T[], what: string): T[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const i of items) {
    if (!allowed.includes(i as T)) throw new Error(`unknown ${what} '${i}' (one of ${allowed.join(', ')})`);
  }
  if (items.length === 0) throw new Error(`empty ${what} list`);
  return allowed.filter((a) => items.includes(a));
}

/** Parse argv; returns 'help' for --help, throws on bad input. */
export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      only: { type: 'string' },
      tests: { type: 'string' },
      steer: { type: 'boolean', default: false },
      'lvsd-arg': { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: 'results' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const profile = { ...PROFILES[values.quick ? 'quick' : 'default'] };
  if (values.rounds !== undefined) {
    const n = Number(values.rounds);
    if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`invalid --rounds ${values.rounds}`);
    // Keep the per-round share of the budget.
    profile.budgetSeconds = Math.round((profile.budgetSeconds / profile.rounds) * n);
    profile.rounds = n;
  }
  return {
    profile,
    paths: values.only !== undefined ? list(values.only, PATH_IDS, 'path') : [...PATH_IDS],
    tests: values.tests !== undefined ? list(values.tests, TEST_IDS, 'test') : [...TEST_IDS],
    steer: values.steer as boolean,
    lvsdArgs: values['lvsd-arg'] as string[],
    outDir: values.out as string,
  };
}
