// Several active directors behind an ECMP router (the ecmp lab): each director runs lvsd with
// `--announce-table` and `sloppy_tcp=1`, the same mh service over DR real servers, and BIRD,
// which announces the routes lvsd keeps in that table to the router's BIRD by BGP; the router
// installs one multipath route (kernel ECMP, layer-4 hash). Long-lived connections must survive
// a director leaving and one joining: flows ECMP moves reach a director that has never seen
// them, which schedules them mid-flow (sloppy_tcp) to the same real server (mh).

import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram } from '../../src/ctl/ip-cmd';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable(() =>
  findProgram('bird') === undefined ? 'bird (BIRD 2) is not installed: run scripts/setup.sh' : undefined,
);
if (why) console.warn(`skipping netns ECMP tests: ${why}`);

const VIP = '10.99.0.1';
const ANNOUNCE_TABLE = '19543';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** BIRD on director `n` (1-3): the kernel table lvsd fills, exported to the router by BGP. */
function directorBird(n: number): string {
  const me = `192.168.0.1${n}`;
  return `router id ${me};
protocol device {}
protocol kernel {
  kernel table ${ANNOUNCE_TABLE};
  learn;
  ipv4 { import all; export none; };
}
protocol bgp rtr {
  local ${me} as 6500${n};
  neighbor 192.168.0.1 as 65000;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import none; export all; };
}
`;
}

/** BIRD on the router: a BGP session per director, equal routes merged into one ECMP route. */
function routerBird(): string {
  const peer = (n: number) => `protocol bgp d${n} {
  local 192.168.0.1 as 65000;
  neighbor 192.168.0.1${n} as 6500${n};
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
`;
  return `router id 192.168.0.1;
protocol device {}
protocol kernel {
  merge paths yes;
  ipv4 { export all; };
}
${[1, 2, 3].map(peer).join('')}`;
}

describe.skipIf(why !== undefined)('three active directors behind an ECMP router (DR, mh, sloppy_tcp)', () => {
  const lab = new Lab('e');
  const dirs = () => [lab.dir, lab.dir2, lab.dir3];
  const sock = (n: number) => join(lab.tmp, `lvsd${n}.sock`);
  const lvsd: (ChildProcess | undefined)[] = [];

  /**
   * lvsd on director `n`, configured as on every director: the same `lvsadm -R` file, so the
   * same dests in the same order and so the same Maglev table.
   */
  async function startDirector(n: number, sched = 'mh', sloppy = true): Promise<void> {
    const args = [join(ROOT, 'dist/cli/lvsd.js'), '--socket', sock(n), '--procfs-root', `${sock(n)}.proc`];
    args.push('--announce-table', ANNOUNCE_TABLE);
    if (sloppy) args.push('--sysctl', 'sloppy_tcp=1');
    lvsd[n - 1] = await lab.spawn(dirs()[n - 1], [process.execPath, ...args], 'ready:');
    const rules = join(lab.tmp, `rules-${sched}`);
    writeFileSync(
      rules,
      `-A -t ${VIP}:7 -s ${sched}\n-a -t ${VIP}:7 -r 192.168.0.21:7 -g -w 1\n-a -t ${VIP}:7 -r 192.168.0.22:7 -g -w 1\n`,
    );
    const lvsadmJs = join(ROOT, 'bin/lvsadm.js');
    const r = await lab.exec(dirs()[n - 1], [
      'sh',
      '-c',
      `LVS_SOCKET=${sock(n)} ${process.execPath} ${lvsadmJs} -R < ${rules}`,
    ]);
    if (r.code !== 0) throw new Error(`lvsadm -R: ${r.stderr}`);
  }

  async function stopDirector(n: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = lvsd[n - 1];
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await exited;
    lvsd[n - 1] = undefined;
  }

  /** The router's next hops towards the VIP, once they are `count` (waits up to 15 s). */
  async function nextHops(count: number): Promise<string[]> {
    const until = Date.now() + 15_000;
    let hops: string[] = [];
    while (Date.now() < until) {
      const out = (await lab.exec(lab.router, ['ip', 'route', 'show', VIP])).stdout;
      hops = [...out.matchAll(/via (192\.168\.0\.\d+)/g)].map((m) => m[1]).sort();
      if (hops.length === count) return hops;
      await sleep(100);
    }
    throw new Error(`the router has ${hops.length} next hops for ${VIP}, not ${count}`);
  }

  /** netns/long-lived-client.js in the background: resolves with its report. */
  function clients(n: number, seconds: number) {
    return lab
      .exec(
        lab.client,
        [process.execPath, join(ROOT, 'netns/long-lived-client.js'), VIP, '7', String(n), String(seconds)],
        (seconds + 10) * 1000,
      )
      .then(
        (r) =>
          JSON.parse(r.stdout) as {
            opened: number;
            failed: number;
            shortOk: number;
            shortFail: number;
            worstOutageMs: number;
          },
      );
  }

  beforeAll(async () => {
    await lab.up('ecmp');
    await lab.startRealservers('dr', VIP);
    // An echo server that outlives its clients' resets (a flow moved to the other real server
    // is reset there, and the client's stack then resets this one's side too).
    const echo = `require('net').createServer((s)=>{s.on('error',()=>{});s.pipe(s)}).listen(7,()=>console.log('listening'))`;
    for (const rs of lab.rs) await lab.spawn(rs, [process.execPath, '-e', echo], 'listening');
    writeFileSync(join(lab.tmp, 'rtr.conf'), routerBird());
    await lab.spawn(lab.router, ['bird', '-f', '-c', join(lab.tmp, 'rtr.conf'), '-s', join(lab.tmp, 'rtr.ctl')]);
    for (const n of [1, 2, 3]) {
      writeFileSync(join(lab.tmp, `d${n}.conf`), directorBird(n));
      await lab.spawn(dirs()[n - 1], [
        'bird',
        '-f',
        '-c',
        join(lab.tmp, `d${n}.conf`),
        '-s',
        join(lab.tmp, `d${n}.ctl`),
      ]);
      await startDirector(n);
    }
  }, 60_000);

  afterAll(async () => {
    for (const n of [1, 2, 3]) await stopDirector(n);
    await lab.down();
  });

  it('announces the VIP from every director: the router spreads it over three next hops', async () => {
    expect(await nextHops(3)).toEqual(['192.168.0.11', '192.168.0.12', '192.168.0.13']);
    expect((await lab.exec(lab.dir, ['ip', 'route', 'show', 'table', ANNOUNCE_TABLE])).stdout).toContain(
      `${VIP} dev lvs0`,
    );
  });

  /**
   * `n` clients for `seconds`; director 3 leaves after a quarter of it (its lvsd stopped, or
   * killed with `signal` SIGKILL) and joins again at half.
   */
  async function leaveAndJoin(
    n: number,
    seconds: number,
    sched = 'mh',
    sloppy = true,
    signal: NodeJS.Signals = 'SIGTERM',
  ) {
    const run = clients(n, seconds);
    await sleep((seconds * 1000) / 4);
    // A director leaves: lvsd stops or dies, its route goes with the TUN, BIRD withdraws it.
    const left = Date.now();
    await stopDirector(3, signal);
    await nextHops(2);
    const convergence = Date.now() - left;
    await sleep((seconds * 1000) / 4);
    // ... and joins again: announced once its service has a real server.
    await startDirector(3, sched, sloppy);
    await nextHops(3);
    return { ...(await run), convergence };
  }

  it('keeps the long-lived connections when a director leaves and when one joins', async () => {
    const report = await leaveAndJoin(300, 22);
    console.log(`ecmp (mh, sloppy_tcp, a director stopped): ${JSON.stringify(report)}`);
    expect(report.opened).toBe(300);
    expect(report.failed).toBeLessThanOrEqual(3);
    expect(report.shortOk).toBeGreaterThan(200);
    expect(report.worstOutageMs).toBeLessThan(2000);
  }, 60_000);

  it("withdraws at once when a director's lvsd dies (SIGKILL): the connections stay", async () => {
    const report = await leaveAndJoin(150, 12, 'mh', true, 'SIGKILL');
    console.log(`ecmp (mh, sloppy_tcp, a director killed): ${JSON.stringify(report)}`);
    expect(report.failed).toBeLessThanOrEqual(1);
    expect(report.convergence).toBeLessThan(2000);
  }, 60_000);

  /** Every director again, with `sched` and sloppy_tcp on or off. */
  async function reconfigure(sched: string, sloppy: boolean): Promise<void> {
    for (const n of [1, 2, 3]) await stopDirector(n);
    await nextHops(0);
    for (const n of [1, 2, 3]) await startDirector(n, sched, sloppy);
    await nextHops(3);
  }

  it('without sloppy_tcp, the flows ECMP moves are reset', async () => {
    await reconfigure('mh', false);
    const report = await leaveAndJoin(150, 12, 'mh', false);
    console.log(`ecmp (mh, no sloppy_tcp): ${JSON.stringify(report)}`);
    expect(report.failed).toBeGreaterThan(15);
  }, 90_000);

  it('with wlc instead of mh, the moved flows reach other real servers, which reset them', async () => {
    await reconfigure('wlc', true);
    const report = await leaveAndJoin(150, 12, 'wlc', true);
    console.log(`ecmp (wlc, sloppy_tcp): ${JSON.stringify(report)}`);
    expect(report.failed).toBeGreaterThan(15);
  }, 90_000);
});
