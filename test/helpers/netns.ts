// Namespace labs for netns tests: build netns/lab.sh's topology under a unique prefix, run lvsd
// and real programs inside it, and always tear it down. Tests skip (with the reason printed) when
// not root, when namespaces are unavailable, or when the build is missing.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { pattern } from '../../netns/pattern';
import type { EngineStats } from '../../src/ctl/protocol';
import { RUN_ROOT } from '../../src/run-dir';
import { type PcapFile, readPcap } from './pcap';

const run = promisify(execFile);
export const ROOT = resolve(__dirname, '../..');
const LAB = join(ROOT, 'netns/lab.sh');
const LVSD = join(ROOT, 'dist/cli/lvsd.js');
const LVSADM = join(ROOT, 'bin/lvsadm.js');
const LVS_REALSERVER = join(ROOT, 'dist/cli/lvs-realserver.js');

/**
 * Why netns tests cannot run here, or undefined when they can. With LVS_REQUIRE_NETNS=1 (what
 * scripts/test.sh sets when run as root, as CI runs it) a reason is an error instead: the suite
 * fails rather than skip. `more` adds a suite's own needs (a program it runs).
 */
export function netnsUnavailable(more?: () => string | undefined): string | undefined {
  return required(netnsProblem() ?? more?.());
}

/** A reason to skip, or (LVS_REQUIRE_NETNS=1) an error: netns suites must run. */
export function required(why: string | undefined): string | undefined {
  if (why !== undefined && process.env.LVS_REQUIRE_NETNS === '1') {
    throw new Error(`netns tests are required (LVS_REQUIRE_NETNS=1) but cannot run: ${why}`);
  }
  return why;
}

function netnsProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'netns tests need root';
  if (!existsSync(LVSD)) return 'dist/ is missing: run npm run build first';
  const probe = `lvst-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  } catch {
    return 'cannot create network namespaces here';
  }
  return undefined;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

let labCounter = 0;

/** Resolve once `p` prints `marker` (stdout or stderr); reject if it exits first or in 10 s. */
function waitForOutput(p: ChildProcess, marker: string, what: string, onText?: (text: string) => void): Promise<void> {
  return new Promise<void>((resolveReady, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what}: not ready: ${out}`)), 10_000);
    const onData = (d: Buffer) => {
      const text = d.toString();
      out += text;
      onText?.(text);
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    p.stdout?.on('data', onData);
    p.stderr?.on('data', onData);
    p.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${out}`));
    });
  });
}

export class Lab {
  readonly prefix: string;
  readonly client: string;
  readonly dir: string;
  /** The second director of the sync, ha and ecmp labs; the third of the ecmp lab. */
  readonly dir2: string;
  readonly dir3: string;
  readonly rs: string[];
  readonly sw: string;
  readonly router: string;
  readonly tmp: string;
  /** The control socket given to lvsd and lvsadm; undefined: they use their defaults (defaultPaths). */
  private readonly explicitSocket: string | undefined;
  private lvsd: ChildProcess | undefined;
  private lvsdLog = '';
  private readonly procs: ChildProcess[] = [];

  /**
   * `defaultPaths`: run lvsd, lvsadm and lvs-realserver as a user would, with no --socket,
   * LVS_SOCKET or --state: each finds its files by the network namespace it runs in.
   */
  constructor(tag: string, opts: { defaultPaths?: boolean } = {}) {
    this.prefix = `lvst${process.pid % 100000}${tag}${labCounter++}`;
    this.client = `${this.prefix}-client`;
    this.dir = `${this.prefix}-dir`;
    this.dir2 = `${this.prefix}-dir2`;
    this.dir3 = `${this.prefix}-dir3`;
    this.rs = [`${this.prefix}-rs1`, `${this.prefix}-rs2`];
    this.sw = `${this.prefix}-sw`;
    this.router = `${this.prefix}-rtr`;
    this.tmp = mkdtempSync(join(tmpdir(), 'lvst-'));
    this.explicitSocket = opts.defaultPaths ? undefined : join(this.tmp, 'lvsd.sock');
  }

  /**
   * lvsd's control socket. With default paths: lvsd.sock in the director namespace's run-time
   * directory, named by the namespace's inode (that of its mount under /run/netns).
   */
  get socket(): string {
    return this.explicitSocket ?? join(RUN_ROOT, `netns-${statSync(`/run/netns/${this.dir}`).ino}`, 'lvsd.sock');
  }

  /** lvsd's --socket arguments (none with default paths). */
  private get socketArgs(): string[] {
    return this.explicitSocket === undefined ? [] : ['--socket', this.explicitSocket];
  }

  /** Build the lab for `mode` (netns/lab.sh); env (e.g. RS_MTU) is passed to the script. */
  async up(
    mode: 'nat' | 'dr' | 'tun' | 'sync' | 'ha' | 'hanat' | 'ecmp' | 'routed' | 'mixed' | 'selftest' = 'nat',
    env: Record<string, string> = {},
  ): Promise<void> {
    await run('bash', [LAB, 'up', this.prefix, mode], { env: { ...process.env, ...env } });
  }

  async down(): Promise<void> {
    await this.stopLvsd();
    for (const p of this.procs) p.kill('SIGKILL');
    // What killed programs left in the namespaces' run-time directories (run-dir.ts) goes with
    // the namespaces.
    for (const ns of [this.client, this.dir, this.dir2, this.dir3, ...this.rs, this.sw, this.router]) {
      if (!existsSync(`/run/netns/${ns}`)) continue;
      rmSync(join(RUN_ROOT, `netns-${statSync(`/run/netns/${ns}`).ino}`), { recursive: true, force: true });
    }
    await run('bash', [LAB, 'down', this.prefix]).catch(() => {});
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Run a command in a namespace; never throws, reports the exit code. */
  async exec(ns: string, cmd: string[], timeoutMs = 15_000): Promise<ExecResult> {
    try {
      const { stdout, stderr } = await run('ip', ['netns', 'exec', ns, ...cmd], {
        encoding: 'utf8',
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      });
      return { stdout, stderr, code: 0 };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: number | string };
      return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
    }
  }

  /** Start a long-running program in a namespace, killed by down(). Resolves once `ready` is printed. */
  async spawn(ns: string, cmd: string[], ready?: string): Promise<ChildProcess> {
    const p = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(p);
    if (ready !== undefined) await waitForOutput(p, ready, cmd.join(' '));
    return p;
  }

  /** Start HTTP servers answering "rs1" / "rs2" on port 80 of each real server (`address` '::': IPv6 too). */
  async startHttpServers(port = 80, address = '0.0.0.0'): Promise<void> {
    await Promise.all(
      this.rs.map((ns, i) =>
        this.spawn(
          ns,
          [process.execPath, join(ROOT, 'netns/http-server.js'), `rs${i + 1}`, String(port), address],
          'listening',
        ),
      ),
    );
  }

  /** UDP echo servers on each real server, bound to `address` (DR/TUN: the VIP). */
  async startUdpEchoServers(port: number, address = '0.0.0.0'): Promise<void> {
    await Promise.all(
      this.rs.map((ns, i) =>
        this.spawn(
          ns,
          [process.execPath, join(ROOT, 'netns/udp-echo.js'), `rs${i + 1}`, String(port), address],
          'listening',
        ),
      ),
    );
  }

  /**
   * From the client, send `n` UDP queries to addr:port, each from its own socket, and collect
   * the answers as "srcaddr:srcport text".
   */
  async udpQueries(addr: string, port: number, n: number): Promise<string[]> {
    const script =
      'const dgram=require("dgram");const [addr,port,n]=[process.argv[1],+process.argv[2],+process.argv[3]];' +
      'const out=[];for(let i=0;i<n;i++){const c=dgram.createSocket(addr.includes(":")?"udp6":"udp4");' +
      'c.on("message",(m,r)=>{out.push(r.address+":"+r.port+" "+m);c.close();' +
      'if(out.length===n){console.log(JSON.stringify(out));process.exit(0)}});c.send("q"+i,port,addr);}' +
      'setTimeout(()=>{console.log(JSON.stringify(out));process.exit(1)},4000);';
    const r = await this.exec(this.client, [process.execPath, '-e', script, addr, String(port), String(n)]);
    return (JSON.parse(r.stdout || '[]') as string[]).sort();
  }

  /**
   * From the client, download `size` bytes of the lab's pattern from http://vip/bytes/N and
   * upload `size` random bytes; returns what a test compares: the download's sha256 next to the
   * expected one, and the server's answer to the upload ("rsN got SIZE").
   */
  async transfer(vip: string, size: number, timeoutS = 20): Promise<{ got: string; want: string; upload: string }> {
    const down = await this.exec(
      this.client,
      ['sh', '-c', `curl -sS --max-time ${timeoutS} http://${vip}/bytes/${size} | sha256sum`],
      (timeoutS + 10) * 1000,
    );
    const up = await this.exec(
      this.client,
      ['sh', '-c', `head -c ${size} /dev/urandom | curl -sS --max-time ${timeoutS} --data-binary @- http://${vip}/`],
      (timeoutS + 10) * 1000,
    );
    return {
      got: down.stdout.split(' ')[0] + down.stderr,
      want: createHash('sha256').update(pattern(size)).digest('hex'),
      upload: up.stdout + up.stderr,
    };
  }

  /** An interface's MAC address in a namespace. */
  async mac(ns: string, iface: string): Promise<string> {
    const r = await this.exec(ns, ['ip', '-j', 'link', 'show', 'dev', iface]);
    return (JSON.parse(r.stdout) as { address: string }[])[0].address;
  }

  async startLvsd(extra: string[] = []): Promise<void> {
    // LVS_TEST_WORKERS=N runs every lab's lvsd with --workers N (unless the test chose).
    const workers = process.env.LVS_TEST_WORKERS;
    const more = workers !== undefined && !extra.includes('--workers') ? ['--workers', workers] : [];
    const p = spawn(
      'ip',
      ['netns', 'exec', this.dir, process.execPath, '--no-memory-reducer', LVSD, ...this.socketArgs, ...extra, ...more],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.lvsd = p;
    this.lvsdLog = '';
    await waitForOutput(p, 'ready:', 'lvsd', (text) => {
      this.lvsdLog += text;
    });
  }

  /** Stop lvsd with `signal` and wait for it to exit; returns its exit code. */
  async stopLvsd(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const p = this.lvsd;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    this.lvsd = undefined;
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    // `ip netns exec` passes the signal on to lvsd (it execs, so it is the same process).
    p.kill(signal);
    return exited;
  }

  /** Send `signal` to the running lvsd without waiting for anything (e.g. SIGHUP: reload). */
  signalLvsd(signal: NodeJS.Signals): void {
    const p = this.lvsd;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) throw new Error('lvsd is not running');
    // As in stopLvsd: `ip netns exec` has exec'd lvsd, so the signal reaches lvsd itself.
    p.kill(signal);
  }

  /**
   * Capture on `iface` in namespace `ns` with tcpdump (filter optional) until stop() is called;
   * stop() returns the captured frames.
   */
  async capture(ns: string, iface: string, filter: string[] = []): Promise<{ stop(): Promise<PcapFile> }> {
    const file = join(this.tmp, `cap-${ns}-${iface}-${Date.now()}.pcap`);
    const p = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'tcpdump',
        '-i',
        iface,
        '--immediate-mode',
        // A 16 MiB capture buffer: fewer packets lost while the test's traffic loads the CPUs.
        '-B',
        '16384',
        '-U',
        '-n',
        '-Z',
        'root',
        '-w',
        file,
        ...filter,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.procs.push(p);
    await waitForOutput(p, 'listening on', `tcpdump on ${ns}/${iface}`);
    return {
      stop: async () => {
        const exited = new Promise<void>((r) => p.once('exit', () => r()));
        p.kill('SIGINT');
        await exited;
        return readPcap(file);
      },
    };
  }

  /** Start lvs-realserver (dr or tun) for `vip` in each real server, with `extra` options; resolves once set up. */
  async startRealservers(mode: 'dr' | 'tun', vip: string, extra: string[] = []): Promise<void> {
    await Promise.all(
      this.rs.map((ns) => {
        const state = this.explicitSocket === undefined ? [] : ['--state', join(this.tmp, `${ns}.rs.state`)];
        return this.spawn(ns, [process.execPath, LVS_REALSERVER, mode, '--vip', vip, ...state, ...extra], 'ready');
      }),
    );
  }

  get lvsdOutput(): string {
    return this.lvsdLog;
  }

  /** Run lvsadm in the director against this lab's lvsd. */
  lvsadm(...args: string[]): Promise<ExecResult> {
    const env = this.explicitSocket === undefined ? ['-u', 'LVS_SOCKET'] : [`LVS_SOCKET=${this.explicitSocket}`];
    return this.exec(this.dir, ['env', ...env, process.execPath, LVSADM, ...args]);
  }

  /** `lvsadm -R` in the director with `rules` on its standard input (what `-S` printed). */
  lvsadmRestore(rules: string): Promise<ExecResult> {
    const file = join(this.tmp, 'restore.rules');
    writeFileSync(file, rules);
    const env = this.explicitSocket === undefined ? ['-u', 'LVS_SOCKET'] : [`LVS_SOCKET=${this.explicitSocket}`];
    return this.exec(this.dir, ['env', ...env, 'sh', '-c', '"$0" "$1" -R < "$2"', process.execPath, LVSADM, file]);
  }

  async lvsadmOk(...args: string[]): Promise<string> {
    const r = await this.lvsadm(...args);
    if (r.code !== 0) throw new Error(`lvsadm ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  /** `lvsadm -A <svc> -s sched` then `lvsadm -a <svc> -r RS <method>` for each real server. */
  async addVirtualService(svc: ['-t' | '-u', string], servers: string[], method: '-m' | '-g' | '-i', sched = 'rr') {
    await this.lvsadmOk('-A', ...svc, '-s', sched);
    for (const rs of servers) await this.lvsadmOk('-a', ...svc, '-r', rs, method);
  }

  /** curl from the client; returns the body. */
  async curl(url: string, extra: string[] = []): Promise<ExecResult> {
    return this.exec(this.client, ['curl', '-sS', '--max-time', '5', ...extra, url]);
  }

  /**
   * In the director, an nftables table `name` whose prerouting rule marks TCP to addr:port with
   * `mark` (what an operator writes for a firewall-mark service); `nft delete table ip NAME`
   * removes it.
   */
  async markTcp(name: string, addr: string, port: number, mark: number): Promise<void> {
    // An IPv6 address: an ip6 table (`nft delete table ip6 NAME`).
    const family = addr.includes(':') ? 'ip6' : 'ip';
    const nft = (...args: string[]) => this.exec(this.dir, ['nft', ...args]);
    await nft('add', 'table', family, name);
    await nft('add', 'chain', family, name, 'pre', '{ type filter hook prerouting priority mangle; }');
    await nft(
      'add',
      'rule',
      family,
      name,
      'pre',
      family,
      'daddr',
      addr,
      'tcp',
      'dport',
      String(port),
      'meta',
      'mark',
      'set',
      String(mark),
    );
  }

  /** Resident memory (KiB) of the lvsd running in namespace `ns` (default: the director). */
  async lvsdRss(ns = this.dir): Promise<number> {
    // lvsd is the largest node process in a director's namespace (lvsadm runs there briefly).
    const script = `for p in $(ip netns pids ${ns}); do ps -o rss=,comm= -p "$p"; done`;
    const r = await this.exec(ns, ['sh', '-c', script]);
    let rss = 0;
    for (const line of r.stdout.split('\n')) {
      const [kib, comm] = line.trim().split(/\s+/);
      if (comm === 'node') rss = Math.max(rss, Number(kib) || 0);
    }
    return rss;
  }

  /** lvsd's own counters over the control socket. */
  async engineStats(): Promise<EngineStats> {
    return (await this.control({ cmd: 'engine-stats' })).result as EngineStats;
  }

  /** One request on lvsd's control socket; its response. */
  async control(req: object): Promise<{ ok: boolean; result?: unknown; error?: unknown }> {
    const script =
      'const s=require("net").createConnection(process.argv[1]);let b="";' +
      's.on("connect",()=>s.write(process.argv[2]+"\\n"));' +
      's.on("data",(d)=>{b+=d;if(b.includes("\\n")){process.stdout.write(b);s.end();}});';
    const r = await this.exec(this.dir, [process.execPath, '-e', script, this.socket, JSON.stringify(req)]);
    return JSON.parse(r.stdout) as { ok: boolean; result?: unknown; error?: unknown };
  }
}

/**
 * A 1 MiB-class download and upload through `vip`, byte-identical, during which the TUN handed
 * lvsd GSO segments (offloads in use) and none was refused as bad_offload.
 */
export async function expectOffloadedTransfer(lab: Lab, vip: string, size: number, timeoutS = 20): Promise<void> {
  const before = (await lab.engineStats()).offload;
  const t = await lab.transfer(vip, size, timeoutS);
  expect(t.got).toBe(t.want);
  expect(t.upload).toMatch(new RegExp(`^rs[12] got ${size}\\n$`));
  const after = await lab.engineStats();
  expect(after.offload.gso - before.gso).toBeGreaterThan(0);
  expect(after.drops.bad_offload ?? 0).toBe(0);
}
