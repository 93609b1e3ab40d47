// The paths through the director, each set up before a round's tests and torn down after them,
// so that only one path's machinery is active at a time (an idle lvsd would still steer the nat
// lab's reply traffic into its TUN).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../../src/ctl/client';
import type { EngineStats } from '../../src/ctl/protocol';
import { DIR_ADDR, KNAT_VIP, KNAT_VIP6, type Lab, type LabKind, PORT, RS6_ADDR, VIP, VIP6 } from './labs';
import type { PathId } from './options';
import { firstLines, nsExec, nsRun, type Proc, type ProcRegistry, waitListening } from './proc';

export interface PathDef {
  id: PathId;
  label: string;
  lab: LabKind;
  /** HAProxy mode tcp has no UDP. */
  udp: boolean;
  /** lvsadm forwarding flag, for lvs-ts paths. */
  lvsFlag?: '-m' | '-g' | '-i';
  /** Over IPv6 (the nat lab's IPv6 addresses); the kernel path it is compared with. */
  v6?: boolean;
}

export const PATHS: Record<PathId, PathDef> = {
  fwd: { id: 'fwd', label: 'kernel forwarding', lab: 'nat', udp: true },
  nat: { id: 'nat', label: 'kernel NAT (nftables)', lab: 'nat', udp: true },
  haproxy: { id: 'haproxy', label: 'HAProxy mode tcp', lab: 'nat', udp: false },
  'lvs-nat': { id: 'lvs-nat', label: 'lvs-ts NAT (-m)', lab: 'nat', udp: true, lvsFlag: '-m' },
  'lvs-dr': { id: 'lvs-dr', label: 'lvs-ts DR (-g)', lab: 'dr', udp: true, lvsFlag: '-g' },
  'lvs-tun': { id: 'lvs-tun', label: 'lvs-ts TUN (-i)', lab: 'tun', udp: true, lvsFlag: '-i' },
  // The UDP generator (scripts/bench/udp-load.c) speaks IPv4 only.
  nat6: { id: 'nat6', label: 'kernel NAT IPv6 (nftables)', lab: 'nat', udp: false, v6: true },
  'lvs-nat6': { id: 'lvs-nat6', label: 'lvs-ts NAT IPv6 (-m)', lab: 'nat', udp: false, lvsFlag: '-m', v6: true },
};

/** Counters of the director process (lvs-ts paths) at one instant. */
export interface DirectorSnapshot {
  /** utime + stime, seconds. */
  cpu: number;
  engine: EngineStats;
  /** Packets the kernel could not queue into lvsd's TUN (its tx_dropped). */
  tunTxDropped: number;
  /** lvs-realserver's CPU (TUN: user-space decapsulation), seconds. */
  realserverCpu?: number;
}

export interface DirectorDelta {
  cpuSeconds: number;
  txPackets: number;
  inPkts: number;
  drops: Record<string, number>;
  tunTxDropped: number;
  realserverCpuSeconds?: number;
}

/** A path set up for one round. */
export interface ActivePath {
  def: PathDef;
  lab: Lab;
  /** Address the client sends to (VIP, director address or the real server's own address). */
  target: string;
  /** lvsd, for lvs-ts paths. */
  lvsd?: LvsdHandle;
  /** Throws when the path's machinery has died. */
  check(): void;
  teardown(): Promise<void>;
}

let clkTck = 0;
function clockTicks(): number {
  if (clkTck === 0) {
    clkTck = 100;
    try {
      const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
      const n = Number(out.trim());
      if (n > 0) clkTck = n;
    } catch {
      // USER_HZ is 100 on every Linux architecture Node runs on
    }
  }
  return clkTck;
}

/** utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

export class LvsdHandle {
  constructor(
    readonly proc: Proc,
    readonly socket: string,
    private readonly dirNs: string,
    private readonly realserver: Proc | undefined,
  ) {}

  async engineStats(): Promise<EngineStats> {
    const r = await request(this.socket, { cmd: 'engine-stats' }, 3000);
    if (!r.ok) throw new Error(`engine-stats: ${r.errno} ${r.message}`);
    return r.result as EngineStats;
  }

  async snapshot(): Promise<DirectorSnapshot> {
    const [engine, tun] = await Promise.all([
      this.engineStats(),
      nsExec(this.dirNs, ['cat', '/sys/class/net/lvs0/statistics/tx_dropped'], 3000),
    ]);
    const snap: DirectorSnapshot = {
      cpu: processCpuSeconds(this.proc.pid),
      engine,
      tunTxDropped: Number(tun.stdout.trim()) || 0,
    };
    if (this.realserver && !this.realserver.exited) snap.realserverCpu = processCpuSeconds(this.realserver.pid);
    return snap;
  }

  static delta(a: DirectorSnapshot, b: DirectorSnapshot): DirectorDelta {
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(b.engine.drops)) {
      const d = v - (a.engine.drops[k] ?? 0);
      if (d > 0) drops[k] = d;
    }
    const out: DirectorDelta = {
      cpuSeconds: b.cpu - a.cpu,
      txPackets: b.engine.txPackets - a.engine.txPackets,
      inPkts: b.engine.stats.inPkts - a.engine.stats.inPkts,
      drops,
      tunTxDropped: b.tunTxDropped - a.tunTxDropped,
    };
    if (a.realserverCpu !== undefined && b.realserverCpu !== undefined) {
      out.realserverCpuSeconds = b.realserverCpu - a.realserverCpu;
    }
    return out;
  }
}

export interface PathEnv {
  root: string;
  procs: ProcRegistry;
  /** Extra arguments for lvsd. */
  lvsdArgs: string[];
}

/** Set up `def` in `lab`. On failure whatever was started is stopped again before the throw. */
export async function setupPath(def: PathDef, lab: Lab, env: PathEnv): Promise<ActivePath> {
  switch (def.id) {
    case 'fwd':
      return simple(def, lab, lab.rsAddr, async () => {});
    case 'nat':
      return setupKernelNat(def, lab);
    case 'nat6':
      return setupKernelNat6(def, lab);
    case 'haproxy':
      return setupHaproxy(def, lab, env);
    default:
      return setupLvs(def, lab, env);
  }
}

function simple(def: PathDef, lab: Lab, target: string, teardown: () => Promise<void>): ActivePath {
  return { def, lab, target, check: () => {}, teardown };
}

const NFT_TABLE = 'lvsbench';

async function setupKernelNat(def: PathDef, lab: Lab): Promise<ActivePath> {
  const rules = `table ip ${NFT_TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${KNAT_VIP} dnat to ${lab.rsAddr}
  }
}
`;
  await nsRun(lab.dir, ['nft', '-f', '-'], 10_000, rules);
  return simple(def, lab, KNAT_VIP, async () => {
    await nsExec(lab.dir, ['nft', 'delete', 'table', 'ip', NFT_TABLE], 10_000);
  });
}

async function setupKernelNat6(def: PathDef, lab: Lab): Promise<ActivePath> {
  const rules = `table ip6 ${NFT_TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${KNAT_VIP6} dnat to ${RS6_ADDR}
  }
}
`;
  await nsRun(lab.dir, ['nft', '-f', '-'], 10_000, rules);
  return simple(def, lab, KNAT_VIP6, async () => {
    await nsExec(lab.dir, ['nft', 'delete', 'table', 'ip6', NFT_TABLE], 10_000);
  });
}

async function setupHaproxy(def: PathDef, lab: Lab, env: PathEnv): Promise<ActivePath> {
  const cfg = join(lab.tmp, 'haproxy.cfg');
  const listen = (name: string, port: number) =>
    `listen ${name}\n  bind ${DIR_ADDR}:${port}\n  server rs1 ${lab.rsAddr}:${port}\n`;
  writeFileSync(
    cfg,
    `# written by npm run bench: HAProxy as packaged, mode tcp
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${listen('iperf', PORT.iperf)}${listen('http', PORT.http)}${listen('echo', PORT.echo)}`,
  );
  const p = env.procs.spawn(lab.dir, ['haproxy', '-db', '-f', cfg], 'haproxy');
  try {
    await Promise.all([PORT.iperf, PORT.http, PORT.echo].map((port) => waitListening(lab.dir, 'tcp', port, p)));
  } catch (err) {
    const out = p.tail;
    await p.stop();
    throw new Error(
      `${(err as Error).message}${out && !(err as Error).message.includes(out) ? `; haproxy: ${out}` : ''}`,
    );
  }
  return {
    def,
    lab,
    target: DIR_ADDR,
    check: () => {
      if (p.exited) throw new Error(p.death);
    },
    teardown: () => p.stop(),
  };
}

async function setupLvs(def: PathDef, lab: Lab, env: PathEnv): Promise<ActivePath> {
  const socket = join(lab.tmp, 'lvsd.sock');
  const node = process.execPath;
  const p = env.procs.spawn(
    lab.dir,
    [node, '--no-memory-reducer', join(env.root, 'dist/cli/lvsd.js'), '--socket', socket, ...env.lvsdArgs],
    'lvsd',
  );
  const lvsadm = (args: string[]) =>
    nsRun(lab.dir, ['env', `LVS_SOCKET=${socket}`, node, join(env.root, 'bin/lvsadm.js'), ...args], 10_000);
  try {
    await p.waitFor('ready:', 10_000);
    const services: [string, number][] = [
      ['-t', PORT.iperf],
      ['-t', PORT.http],
      ['-t', PORT.echo],
      ['-u', PORT.udp],
    ];
    const vip = def.v6 ? `[${VIP6}]` : VIP;
    const rsAddr = def.v6 ? `[${RS6_ADDR}]` : lab.rsAddr;
    await Promise.all(services.map(([proto, port]) => lvsadm(['-A', proto, `${vip}:${port}`, '-s', 'rr'])));
    await Promise.all(
      services.map(([proto, port]) => {
        // NAT names the real server's port; DR and TUN keep the virtual port.
        const rs = def.lvsFlag === '-m' ? `${rsAddr}:${port}` : lab.rsAddr;
        return lvsadm(['-a', proto, `${vip}:${port}`, '-r', rs, def.lvsFlag!]);
      }),
    );
  } catch (err) {
    const out = p.tail;
    await p.stop();
    throw new Error(`${(err as Error).message}${out && !(err as Error).message.includes(out) ? `; lvsd: ${out}` : ''}`);
  }
  // TUN real servers decapsulate in user space: their CPU is part of the path's cost.
  const handle = new LvsdHandle(p, socket, lab.dir, lab.kind === 'tun' ? lab.realserver : undefined);
  return {
    def,
    lab,
    target: def.v6 ? VIP6 : VIP,
    lvsd: handle,
    check: () => {
      if (p.exited) throw new Error(p.death);
      if (lab.realserver?.exited) throw new Error(lab.realserver.death);
    },
    teardown: async () => {
      await p.stop('SIGTERM', 5000);
    },
  };
}

/** One HTTP request through the path: a path that cannot carry it is not worth timing. */
/** An address as a URL's host: an IPv6 one in brackets. */
export function urlHost(addr: string): string {
  return addr.includes(':') ? `[${addr}]` : addr;
}

export async function probe(active: ActivePath): Promise<void> {
  const r = await nsExec(active.lab.client, [
    'curl',
    '-sS',
    '--max-time',
    '3',
    `http://${urlHost(active.target)}:${PORT.http}/`,
  ]);
  if (r.code !== 0 || r.stdout.trim() !== 'ok') {
    throw new Error(
      `HTTP probe through ${active.def.id} to ${active.target} failed: ${firstLines(r.stderr || r.stdout)}`,
    );
  }
}
