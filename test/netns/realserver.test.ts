// lvs-realserver end to end, in two namespaces of our own joined by a veth pair: A (the client,
// and for IP-in-IP also a minimal encapsulating "director") and B (the real server, running
// lvs-realserver, a UDP echo server and an HTTP server, both bound to 0.0.0.0).
//
//   A  rsa0 10.201.0.1/24  <-- veth -->  rsb0 10.201.0.2/24  B   VIP 10.200.0.1
//
// tun: A sends IP-in-IP (outer A -> B, inner A -> VIP) and gets the plain reply from the VIP; B
// has no ipip module, so only lvs-realserver's user-space decapsulation can make that work.
// dr:  B owns the VIP on lo: reachable through a route via B, but never answered for in ARP.
// Needs root; skipped (with the reason) otherwise.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDON_PATH } from '../../src/native/addon';
import { netnsUnavailable, ROOT } from '../helpers/netns';

const BIN = join(ROOT, 'bin/lvs-realserver.js');
const CLIENT_HELPER = join(__dirname, 'helpers/ipip-client.js');

function whySkip(): string | undefined {
  const why = netnsUnavailable();
  if (why !== undefined) return why;
  if (!existsSync(join(ROOT, 'dist/cli/lvs-realserver.js')))
    return 'dist/cli/lvs-realserver.js is missing: run npm run build';
  if (!existsSync(ADDON_PATH)) return `${ADDON_PATH} is missing: run npm run build:native`;
  return undefined;
}

const why = whySkip();
if (why) console.warn(`skipping netns lvs-realserver tests: ${why}`);

const PREFIX = `lvst${process.pid % 100000}rs${randomBytes(2).toString('hex')}`;
const NS_A = `${PREFIX}-a`;
const NS_B = `${PREFIX}-b`;
const A_ADDR = '10.201.0.1';
const B_ADDR = '10.201.0.2';
const VIP = '10.200.0.1';
const UDP_PORT = 5353;
const HTTP_PORT = 8080;
const TUN_DEV = 'lvsrs0';

interface Result {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command (in namespace `ns` unless null); never throws; killed after `timeoutMs`. */
function exec(ns: string | null, cmd: string[], timeoutMs = 10_000): Promise<Result> {
  const argv = ns === null ? cmd : ['ip', 'netns', 'exec', ns, ...cmd];
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ stdout, stderr, code });
    });
  });
}

async function ok(ns: string | null, cmd: string[]): Promise<string> {
  const r = await exec(ns, cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function sysctl(ns: string, name: string): Promise<string> {
  return (await ok(ns, ['cat', `/proc/sys/${name.replaceAll('.', '/')}`])).trim();
}

/** The IPv4 addresses (`a.b.c.d/len`) on each interface of a namespace. */
async function addresses(ns: string): Promise<Record<string, string[]>> {
  const links = JSON.parse(await ok(null, ['ip', '-n', ns, '-j', '-4', 'addr', 'show'])) as {
    ifname: string;
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return Object.fromEntries(links.map((l) => [l.ifname, l.addr_info.map((a) => `${a.local}/${a.prefixlen}`)]));
}

async function linkExists(ns: string, dev: string): Promise<boolean> {
  return (await exec(null, ['ip', '-n', ns, 'link', 'show', 'dev', dev])).code === 0;
}

/** A long-running program in a namespace, with its output collected. */
class Proc {
  output = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Resolve once `marker` has been printed; reject if the program exits first or after `ms`. */
  async waitFor(marker: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.output.includes(marker)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`exited (${this.child.exitCode ?? this.child.signalCode}) before "${marker}":\n${this.output}`);
      }
      if (Date.now() > deadline) throw new Error(`no "${marker}" within ${ms} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Send `signal` and wait (bounded) for the exit code. */
  async stop(signal: NodeJS.Signals, ms = 10_000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not exit within ${ms} ms of ${signal}:\n${this.output}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const procs: Proc[] = [];

/** Start a program in a namespace (`ip netns exec` execs it: the child's pid is the program's). */
function start(ns: string, cmd: string[]): Proc {
  const p = new Proc(spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] }));
  procs.push(p);
  return p;
}

function realserver(...args: string[]): Proc {
  return start(NS_B, [process.execPath, BIN, ...args]);
}

/** curl from A with bounded time. */
function curl(url: string, extra: string[] = [], maxTime = 5): Promise<Result> {
  return exec(NS_A, ['curl', '-sS', '--connect-timeout', '2', '--max-time', String(maxTime), ...extra, url], 15_000);
}

describe.skipIf(why !== undefined)('lvs-realserver in network namespaces', () => {
  let tmp = '';

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'lvst-rs-'));
    await ok(null, ['ip', 'netns', 'add', NS_A]);
    await ok(null, ['ip', 'netns', 'add', NS_B]);
    await ok(null, ['ip', '-n', NS_A, 'link', 'add', 'rsa0', 'type', 'veth', 'peer', 'name', 'rsb0', 'netns', NS_B]);
    for (const [ns, dev, a] of [
      [NS_A, 'rsa0', A_ADDR],
      [NS_B, 'rsb0', B_ADDR],
    ] as const) {
      await ok(null, ['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await ok(null, ['ip', '-n', ns, 'addr', 'add', `${a}/24`, 'dev', dev]);
      await ok(null, ['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    // Strict reverse-path filtering on B (all, and the default a new TUN inherits): decapsulated
    // packets from A on the TUN would be dropped unless lvs-realserver turns it off.
    await ok(NS_B, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter']);
    await ok(NS_B, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/default/rp_filter']);
    const http = start(NS_B, [process.execPath, join(ROOT, 'netns/http-server.js'), 'rs', String(HTTP_PORT)]);
    await http.waitFor('listening');
  });

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    for (const ns of [NS_A, NS_B]) {
      // Anything else still running in our namespaces was started by this file.
      const pids = await exec(null, ['ip', 'netns', 'pids', ns]);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      await exec(null, ['ip', 'netns', 'del', ns]);
    }
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  describe('tun', () => {
    let rs: Proc;
    const state = () => join(tmp, 'tun.state');

    /** Send IP-in-IP UDP from A (outer A -> B, inner A -> VIP) and collect the replies. */
    async function ipipUdp(payloads: string[], notVip: string[] = [], waitMs = 3000) {
      const cfg = { outerSrc: A_ADDR, outerDst: B_ADDR, vip: VIP, port: UDP_PORT, payloads, notVip, waitMs };
      const r = await ok(NS_A, [process.execPath, CLIENT_HELPER, 'udp', JSON.stringify(cfg)]);
      return JSON.parse(r) as { accepted: number; replies: { data: string; from: string }[] };
    }

    it('sets up: the TUN device holds the VIP as /32 and rp_filter is 0 on it and on all', async () => {
      rs = realserver('tun', '--vip', VIP, '--state', state());
      await rs.waitFor('ready');
      expect((await addresses(NS_B))[TUN_DEV]).toEqual([`${VIP}/32`]);
      expect(await sysctl(NS_B, `net.ipv4.conf.${TUN_DEV}.rp_filter`)).toBe('0');
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.rp_filter')).toBe('0');
      expect(rs.output).toContain(`lvs-realserver: created TUN device ${TUN_DEV}`);
      expect(rs.output).toContain(`lvs-realserver: added ${VIP}/32 on ${TUN_DEV}`);
      expect(rs.output).toContain('lvs-realserver: net.ipv4.conf.all.rp_filter 1 -> 0');
      expect(existsSync(state())).toBe(true);
      const echo = [process.execPath, join(ROOT, 'netns/udp-echo.js'), 'rs', String(UDP_PORT), VIP];
      await start(NS_B, echo).waitFor('listening');
    });

    it('decapsulates IP-in-IP UDP for the VIP: the reply comes from the VIP straight back to A', async () => {
      const r = await ipipUdp(['one', 'two', 'three']);
      expect(r.accepted).toBe(3);
      expect(r.replies.map((x) => x.data).sort()).toEqual(['rs one', 'rs three', 'rs two']);
      expect(r.replies.every((x) => x.from === `${VIP}:${UDP_PORT}`)).toBe(true);
    });

    it('carries real TCP: curl in A, through a user-space IP-in-IP encapsulator, reaches the HTTP server on the VIP', async () => {
      const enc = start(NS_A, [
        process.execPath,
        CLIENT_HELPER,
        'encap',
        JSON.stringify({ outerSrc: A_ADDR, outerDst: B_ADDR, vip: VIP, dev: 'lvsenc0' }),
      ]);
      await enc.waitFor('encap ready');
      try {
        const get = await curl(`http://${VIP}:${HTTP_PORT}/`);
        expect(get.code, get.stderr).toBe(0);
        expect(get.stdout).toBe('rs\n');
        // 300 kB up: full-size segments A -> B, each one IP-in-IP decapsulated by lvs-realserver.
        const body = join(tmp, 'body');
        writeFileSync(body, Buffer.alloc(300_000, 0x61));
        const post = await curl(`http://${VIP}:${HTTP_PORT}/`, ['--data-binary', `@${body}`], 10);
        expect(post.code, post.stderr).toBe(0);
        expect(post.stdout).toBe('rs got 300000\n');
      } finally {
        expect(await enc.stop('SIGTERM')).toBe(0);
      }
    });

    it('drops an inner destination that is not a VIP, and on SIGTERM prints the counters and undoes everything', async () => {
      const r = await ipipUdp([], ['not-for-a-vip']);
      expect(r.accepted).toBe(1);
      expect(r.replies).toEqual([]);

      expect(await rs.stop('SIGTERM')).toBe(0);
      // The datagrams for the VIP were decapsulated in the kernel (native/src/decap.c), the one
      // for no VIP left to the user-space side, which dropped it.
      expect(rs.output).toMatch(/lvs-realserver: decapsulating in the kernel on [a-z]/);
      const kernel = /lvs-realserver: decapsulated (\d+) IP-in-IP datagrams in the kernel/.exec(rs.output);
      expect(Number(kernel?.[1])).toBeGreaterThan(200);
      expect(rs.output).toMatch(/lvs-realserver: received \d+ IP-in-IP datagrams, delivered \d+ inner packets/);
      expect(rs.output).toContain('lvs-realserver: dropped 1 not_vip');
      expect(rs.output).toContain(`lvs-realserver: removed ${VIP}/32 from ${TUN_DEV}`);
      expect(rs.output).toContain('lvs-realserver: net.ipv4.conf.all.rp_filter 0 -> 1 (restored)');
      expect(rs.output).toContain(`lvs-realserver: removed TUN device ${TUN_DEV}`);
      expect(await linkExists(NS_B, TUN_DEV)).toBe(false);
      expect(JSON.stringify(await addresses(NS_B))).not.toContain(VIP);
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.rp_filter')).toBe('1');
      expect(existsSync(state())).toBe(false);
      // Without it, the same datagrams go unanswered.
      expect((await ipipUdp(['after'], [], 500)).replies).toEqual([]);
    });
  });

  describe('dr', () => {
    let rs: Proc;
    const state = () => join(tmp, 'dr.state');

    it('puts the VIP on lo and sets all.arp_ignore=1 and all.arp_announce=2', async () => {
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_ignore')).toBe('0');
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_announce')).toBe('0');
      rs = realserver('dr', '--vip', VIP, '--state', state());
      await rs.waitFor('ready');
      expect((await addresses(NS_B)).lo).toContain(`${VIP}/32`);
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_ignore')).toBe('1');
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_announce')).toBe('2');
      expect(rs.output).toContain('lvs-realserver: net.ipv4.conf.all.arp_ignore 0 -> 1');
      expect(rs.output).toContain('lvs-realserver: net.ipv4.conf.all.arp_announce 0 -> 2');
      expect(rs.output).toContain(`lvs-realserver: added ${VIP}/32 on lo`);
    });

    it('B answers for the VIP routed to it via its own address (it owns the VIP)', async () => {
      await ok(null, ['ip', '-n', NS_A, 'route', 'replace', `${VIP}/32`, 'via', B_ADDR]);
      const r = await curl(`http://${VIP}:${HTTP_PORT}/`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('rs\n');
    });

    it('but nobody answers ARP for the VIP: with the VIP on-link in A, the neighbour entry never resolves', async () => {
      await ok(null, ['ip', '-n', NS_A, 'route', 'replace', `${VIP}/32`, 'dev', 'rsa0']);
      const r = await curl(`http://${VIP}:${HTTP_PORT}/`, [], 2);
      expect(r.code).not.toBe(0);
      const neigh = await ok(null, ['ip', '-n', NS_A, 'neigh', 'show', VIP]);
      expect(neigh).toMatch(/INCOMPLETE|FAILED/);
      expect(neigh).not.toMatch(/REACHABLE|STALE|DELAY|PROBE/);
    });

    it('after SIGKILL the changes stay, and the next start undoes them before setting up again', async () => {
      const killedPid = rs.child.pid;
      await rs.stop('SIGKILL');
      expect((await addresses(NS_B)).lo).toContain(`${VIP}/32`);
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_ignore')).toBe('1');
      expect(existsSync(state())).toBe(true);

      const next = realserver('dr', '--vip', VIP, '--state', state());
      await next.waitFor('ready');
      expect(next.output).toContain(
        `lvs-realserver: undoing what a killed run (pid ${killedPid}, dr) recorded in ${state()}`,
      );
      const lines = next.output.split('\n');
      expect(lines.indexOf(`lvs-realserver: removed ${VIP}/32 from lo`)).toBeLessThan(
        lines.indexOf(`lvs-realserver: added ${VIP}/32 on lo`),
      );
      expect(next.output).toContain('lvs-realserver: net.ipv4.conf.all.arp_ignore 1 -> 0 (restored)');
      expect(next.output).toContain('lvs-realserver: net.ipv4.conf.all.arp_ignore 0 -> 1');
      await next.stop('SIGKILL');
    });

    it('--down undoes exactly what the killed run changed', async () => {
      expect((await addresses(NS_B)).lo).toContain(`${VIP}/32`);
      const down = await exec(NS_B, [process.execPath, BIN, 'dr', '--down', '--state', state()]);
      expect(down.code, down.stderr).toBe(0);
      expect(down.stdout).toContain(`lvs-realserver: removed ${VIP}/32 from lo`);
      expect(down.stdout).toContain('lvs-realserver: net.ipv4.conf.all.arp_ignore 1 -> 0 (restored)');
      expect(down.stdout).toContain('lvs-realserver: net.ipv4.conf.all.arp_announce 2 -> 0 (restored)');
      expect((await addresses(NS_B)).lo).not.toContain(`${VIP}/32`);
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_ignore')).toBe('0');
      expect(await sysctl(NS_B, 'net.ipv4.conf.all.arp_announce')).toBe('0');
      expect(existsSync(state())).toBe(false);

      const again = await exec(NS_B, [process.execPath, BIN, 'dr', '--down', '--state', state()]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('nothing to undo');
    });

    it('control: the same VIP on lo without arp_ignore is answered in ARP (so the check above is meaningful)', async () => {
      await ok(null, ['ip', '-n', NS_B, 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
      try {
        await exec(null, ['ip', '-n', NS_A, 'neigh', 'flush', 'to', VIP]);
        const r = await curl(`http://${VIP}:${HTTP_PORT}/`);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe('rs\n');
      } finally {
        await ok(null, ['ip', '-n', NS_B, 'addr', 'del', `${VIP}/32`, 'dev', 'lo']);
      }
    });
  });
});
