// High availability with keepalived's VRRP, end to end (cluster/ha.ts): two directors each run
// `lvsd --keepalived-conf` with the same file but for the priority, keepalived puts the VIP on
// the master, lvsd's sync daemon follows lvs_sync_daemon's instance, and when the master's lvsd
// is killed the backup takes the VIP and carries the open connections on; when it comes back it
// takes them back (preempt after preempt_delay).

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../src/ctl/ip-cmd';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable(() =>
  findProgram('keepalived') === undefined ? 'keepalived is not installed: run scripts/setup.sh' : undefined,
);
if (why) console.warn(`skipping netns HA tests: ${why}`);

const VIP = '192.168.0.1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The keepalived.conf of both directors, as a kernel-IPVS user writes it. NAT: a second instance
 * holds the real servers' gateway, in a sync group with the VIP's so both move together.
 */
function keepalivedConf(kind: 'dr' | 'nat' | 'tun', name: string, priority: number): string {
  const instance = (vi: string, dev: string, vrid: number, addr: string) => `vrrp_instance ${vi} {
  state BACKUP
  interface ${dev}
  virtual_router_id ${vrid}
  priority ${priority}
  advert_int 1
  preempt_delay 3
  authentication {
    auth_type PASS
    auth_pass lvs-ts
  }
  virtual_ipaddress {
    ${addr} dev ${dev}
  }
}
`;
  const servers = kind === 'nat' ? ['172.16.0.1', '172.16.0.2'] : ['192.168.0.11', '192.168.0.12'];
  return `global_defs {
  router_id ${name}
  lvs_sync_daemon sync0 VI_1 id 7
}
${kind === 'nat' ? 'vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_GW\n  }\n}\n' : ''}${instance('VI_1', 'eth0', 51, `${VIP}/24`)}${
  kind === 'nat' ? instance('VI_GW', 'eth1', 52, '172.16.0.254/24') : ''
}virtual_server ${VIP} 80 {
  delay_loop 2
  lb_algo rr
  lb_kind ${kind.toUpperCase()}
  protocol TCP
${servers.map((rs) => `  real_server ${rs} 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n`).join('')}}
virtual_server ${VIP} 53 {
  lb_algo rr
  lb_kind ${kind.toUpperCase()}
  protocol UDP
  persistence_timeout 120
${servers.map((rs) => `  real_server ${rs} 53 {\n  }\n`).join('')}}
`;
}

/**
 * A client sending one UDP request every 100 ms for `seconds` to VIP:53, each from a new source
 * port (persistence, not the connection, keeps them on one real server); prints one line per
 * request: its send time (ms) and the answering server, or "lost".
 */
const UDP_STREAM = `
const dgram = require('dgram');
const [vip, seconds] = [process.argv[1], Number(process.argv[2])];
const t0 = Date.now();
let sent = 0, done = 0;
const total = seconds * 10;
const timer = setInterval(() => {
  if (sent === total) { clearInterval(timer); return; }
  const at = Date.now() - t0;
  const s = dgram.createSocket('udp4');
  let answered = false;
  const finish = (what) => {
    if (answered) return;
    answered = true;
    console.log(at + ' ' + what);
    try { s.close(); } catch {}
    if (++done === total) process.exit(0);
  };
  s.on('message', (m) => finish(String(m).split(' ')[0]));
  s.send('q' + sent, 53, vip);
  setTimeout(() => finish('lost'), 500);
  sent++;
}, 100);
`;

for (const kind of ['dr', 'nat', 'tun'] as const) {
  describe.skipIf(why !== undefined)(`two directors with keepalived's VRRP (${kind.toUpperCase()})`, () => {
    const lab = new Lab({ dr: 'h', nat: 'k', tun: 'i' }[kind]);
    const conf1 = join(lab.tmp, 'dir1.conf');
    const conf2 = join(lab.tmp, 'dir2.conf');
    const socket2 = join(lab.tmp, 'lvsd2.sock');

    const lvsadm = (ns: string, ...args: string[]) =>
      lab.exec(ns, [
        'env',
        `LVS_SOCKET=${ns === lab.dir ? lab.socket : socket2}`,
        process.execPath,
        join(ROOT, 'bin/lvsadm.js'),
        ...args,
      ]);

    /** Wait until `ns`'s lvsd reports VI_1 in `state` (and returns its -L --daemon text). */
    async function waitFor(ns: string, state: string, ms = 15_000): Promise<string> {
      const until = Date.now() + ms;
      let out = '';
      while (Date.now() < until) {
        out = (await lvsadm(ns, '-L', '--daemon')).stdout;
        if (out.includes(`vrrp instance VI_1: ${state} `)) return out;
        await sleep(200);
      }
      throw new Error(`${ns} never reached ${state}: ${out}`);
    }

    /** A rate-limited download through the VIP, running in the background: its sha256 at the end. */
    function download(bytes: number, rate: string): { done: Promise<string>; proc: ChildProcess } {
      const proc = spawn('ip', [
        'netns',
        'exec',
        lab.client,
        'sh',
        '-c',
        `curl -sS --max-time 60 --limit-rate ${rate} http://${VIP}/bytes/${bytes} | sha256sum`,
      ]);
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      proc.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      return {
        proc,
        done: new Promise((r) => proc.on('exit', () => r(out.split(' ')[0] + out.replace(/^\S+\s+-\n?/, '')))),
      };
    }

    /** The lab's download pattern's sha256 (netns/http-server.js /bytes/N). */
    async function expected(bytes: number): Promise<string> {
      const r = await lab.exec(lab.client, ['sh', '-c', `curl -sS http://${VIP}/bytes/${bytes} | sha256sum`]);
      return r.stdout.split(' ')[0];
    }

    /** Seconds until a new connection through the VIP succeeds again. */
    async function recovery(from: number): Promise<number> {
      for (;;) {
        const r = await lab.exec(lab.client, ['curl', '-sS', '--max-time', '0.5', `http://${VIP}/`]);
        if (r.code === 0 && /^rs[12]/.test(r.stdout)) return (Date.now() - from) / 1000;
        if (Date.now() - from > 20_000) throw new Error('no new connection within 20 s');
        await sleep(100);
      }
    }

    /** UDP_STREAM from the client, in the background: resolves with its lines. */
    function udpStream(seconds: number): Promise<{ at: number; who: string }[]> {
      return lab
        .exec(lab.client, [process.execPath, '-e', UDP_STREAM, VIP, String(seconds)], (seconds + 5) * 1000)
        .then((r) =>
          r.stdout
            .trim()
            .split('\n')
            .map((l) => ({ at: Number(l.split(' ')[0]), who: l.split(' ')[1] ?? '' })),
        );
    }

    /**
     * A stream across a failover at `event` (ms into it): at most 4 s of it lost, and every
     * answer, before and after, from the one real server persistence chose.
     */
    function expectStream(lines: { at: number; who: string }[], event: number): void {
      const answered = lines.filter((l) => l.who !== 'lost');
      expect(lines.length).toBeGreaterThan(60);
      expect(new Set(answered.map((l) => l.who)).size).toBe(1);
      expect(lines.filter((l) => l.who === 'lost').length).toBeLessThanOrEqual(40);
      expect(answered.some((l) => l.at < event) && answered.some((l) => l.at > event + 1500)).toBe(true);
      const lost = lines.filter((l) => l.who === 'lost').length;
      console.log(`udp stream: ${lines.length} requests, ${lost} lost, all answered by ${answered[0]?.who}`);
    }

    beforeAll(async () => {
      // TUN: the same LAN as DR, the real servers decapsulating (lvs-realserver tun).
      await lab.up(kind === 'nat' ? 'hanat' : 'ha');
      if (kind !== 'nat') await lab.startRealservers(kind, VIP);
      await lab.startHttpServers();
      await lab.startUdpEchoServers(53, kind === 'nat' ? '0.0.0.0' : VIP);
      writeFileSync(conf1, keepalivedConf(kind, 'dir1', 150));
      writeFileSync(conf2, keepalivedConf(kind, 'dir2', 100));
      await lab.startLvsd(['--keepalived-conf', conf1]);
      lvsd2 = await lab.spawn(
        lab.dir2,
        [
          process.execPath,
          join(ROOT, 'dist/cli/lvsd.js'),
          '--socket',
          socket2,
          '--procfs-root',
          `${socket2}.proc`,
          '--keepalived-conf',
          conf2,
        ],
        'ready:',
      );
    }, 60_000);
    let lvsd2: ChildProcess;

    afterAll(async () => {
      await lab.down();
    });

    it('elects the higher priority master: it holds the VIP and runs the master sync daemon', async () => {
      const master = await waitFor(lab.dir, 'MASTER');
      expect(master).toMatch(/^master sync daemon \(mcast=sync0, syncid=7/);
      const backup = await waitFor(lab.dir2, 'BACKUP');
      expect(backup).toMatch(/^backup sync daemon \(mcast=sync0, syncid=7/);
      expect((await lab.exec(lab.dir, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout).toContain(`${VIP}/24`);
      expect((await lab.exec(lab.dir2, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout).not.toContain(VIP);
      if (kind === 'nat') {
        // The real servers' gateway moves with the VIP (the sync group).
        expect((await lab.exec(lab.dir, ['ip', '-br', 'addr', 'show', 'eth1'])).stdout).toContain('172.16.0.254/24');
      }
      // No split brain: the backup answers no ARP for it (no proxy entry), the master's kernel does.
      expect((await lab.exec(lab.dir2, ['ip', 'neigh', 'show', 'proxy'])).stdout).toBe('');
      const r = await lab.exec(lab.client, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`]);
      expect(r.stdout).toMatch(/^rs[12]/);
    });

    it("carries a download on when the master's lvsd is killed, and new connections within 4 s", async () => {
      const size = 20 << 20;
      const want = await expected(size);
      const dl = download(size, '2M');
      const streamStart = Date.now();
      const stream = udpStream(10);
      await sleep(2500);
      // The copy of the connection is on the backup before the failover.
      expect((await lvsadm(lab.dir2, '-L', '-n', '-c')).stdout).toMatch(
        kind !== 'nat'
          ? /TCP \d\d:\d\d +ESTABLISHED +192\.168\.0\.2:\d+ +192\.168\.0\.1:80 +192\.168\.0\.1[12]:80/
          : /TCP \d\d:\d\d +ESTABLISHED +192\.168\.0\.2:\d+ +192\.168\.0\.1:80 +172\.16\.0\.[12]:80/,
      );
      expect(dl.proc.exitCode).toBeNull();
      const killed = Date.now();
      await lab.stopLvsd('SIGKILL');
      const took = await recovery(killed);
      expect(took).toBeLessThan(4);
      await waitFor(lab.dir2, 'MASTER');
      expect((await lvsadm(lab.dir2, '-L', '--daemon')).stdout).toMatch(/^master sync daemon/);
      expect(await dl.done).toBe(want);
      expectStream(await stream, killed - streamStart);
      console.log(`failover: new connections again ${took.toFixed(1)} s after the master's lvsd was killed`);
    }, 60_000);

    it('takes the VIP back when the old master returns, losing nothing', async () => {
      // 15 s at 2 MB/s: lvsd's start, keepalived's and preempt_delay's 3 s all fall inside it.
      const size = 30 << 20;
      const want = await expected(size);
      const dl = download(size, '2M');
      const streamStart = Date.now();
      const stream = udpStream(16);
      await sleep(1000);
      // lvsd again on the first director: it stops the keepalived its killed predecessor left,
      // starts its own, learns the connections as backup, and preempts after preempt_delay.
      await lab.startLvsd(['--keepalived-conf', conf1]);
      await waitFor(lab.dir, 'MASTER', 20_000);
      const back = Date.now();
      await waitFor(lab.dir2, 'BACKUP');
      expect(dl.proc.exitCode).toBeNull();
      expect(await dl.done).toBe(want);
      const lines = await stream;
      expectStream(lines, back - streamStart);
      // A failback loses (almost) nothing: both directors forward throughout.
      expect(lines.filter((l) => l.who === 'lost').length).toBeLessThanOrEqual(10);
      const r = await lab.exec(lab.client, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`]);
      expect(r.stdout).toMatch(/^rs[12]/);
    }, 60_000);

    it('hands over at once when the master stops cleanly, and leaves nothing behind', async () => {
      const stopped = Date.now();
      expect(await lab.stopLvsd('SIGTERM')).toBe(0);
      const took = await recovery(stopped);
      expect(took).toBeLessThan(4);
      expect((await lab.exec(lab.dir, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout).not.toContain(VIP);
      // keepalived went with lvsd: no process of that name is left in the director's namespace.
      const pids = (await lab.exec(lab.dir, ['ip', 'netns', 'pids', lab.dir])).stdout.split('\n').filter(Boolean);
      const comm = (pid: string) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          return '';
        }
      };
      expect(pids.map(comm)).not.toContain('keepalived');
    }, 30_000);

    it('gives up the mastership when its link goes down, and takes it back when the link returns', async () => {
      await lab.startLvsd(['--keepalived-conf', conf1]);
      await waitFor(lab.dir, 'MASTER', 20_000);
      const down = Date.now();
      await lab.exec(lab.dir, ['ip', 'link', 'set', 'eth0', 'down']);
      expect(await recovery(down)).toBeLessThan(4);
      await waitFor(lab.dir2, 'MASTER');
      await waitFor(lab.dir, 'FAULT');
      await lab.exec(lab.dir, ['ip', 'link', 'set', 'eth0', 'up']);
      await waitFor(lab.dir, 'MASTER', 20_000);
      const r = await lab.exec(lab.client, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`]);
      expect(r.stdout).toMatch(/^rs[12]/);
    }, 60_000);

    it('passes a changed VRRP half to keepalived on SIGHUP: a higher priority takes over', async () => {
      writeFileSync(conf2, keepalivedConf(kind, 'dir2', 200));
      lvsd2.kill('SIGHUP');
      await waitFor(lab.dir2, 'MASTER', 20_000);
      await waitFor(lab.dir, 'BACKUP');
      expect((await lab.exec(lab.dir2, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout).toContain(`${VIP}/24`);
      const r = await lab.exec(lab.client, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`]);
      expect(r.stdout).toMatch(/^rs[12]/);
    }, 60_000);

    // NAT only: DR and TUN real servers answer the client themselves, and are never proxied.
    if (kind === 'nat') {
      it('carries a connection the SYN proxy opened across a failover: the sync message brought its sequence shift', async () => {
        // Every connection through the SYN proxy (syn_proxy=1), on both directors; the second
        // one is the master now.
        for (const ns of [lab.dir, lab.dir2]) expect((await lvsadm(ns, '--sysctl', 'syn_proxy=1')).code).toBe(0);
        const size = 20 << 20;
        const want = await expected(size);
        const dl = download(size, '2M');
        await sleep(2500);
        expect(dl.proc.exitCode).toBeNull();
        const killed = Date.now();
        lvsd2.kill('SIGKILL');
        expect(await recovery(killed)).toBeLessThan(4);
        await waitFor(lab.dir, 'MASTER');
        // The real server's bytes reach the client in the cookie's sequence space on the new
        // master too: otherwise the client would drop them all and the download would stall.
        expect(await dl.done).toBe(want);
      }, 60_000);
    }
  });
}
