// keepalived-style health checks end to end (issue 9): lvsd --keepalived-conf in the director of
// the NAT lab checks the real servers itself and keeps the table in step: a failed real server
// leaves the service (or stays at weight 0 with inhibit_on_failure), a sorry_server stands in
// when quorum is lost, MISC_CHECK misc_dynamic sets weights, and SIGHUP applies an edited file
// without touching what did not change. Real HTTP servers, real curl, real kills.
//
// Every describe has its own lab; all labs are built and started together (beforeAll at the
// top), the tests then run one describe after the other.

import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns health-check tests: ${why}`);

const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

// Checker timing of every test: delay_loop 1, connect_timeout 1, retry 1, delay_before_retry 1.
// keepalived's bound from a failure to "down" is delay_loop + retry * delay_before_retry +
// (retry + 1) * connect_timeout = 4 s; polls allow twice that.
const DETECT_S = 1 + 1 * 1 + (1 + 1) * 1;
const DEADLINE_MS = 2 * DETECT_S * 1000;
// The promise for a server whose port refuses: gone from the table within
// delay_loop + retry * delay_before_retry + connect_timeout = 3 s; lvsd adds up to 0.1 s of jitter
// and a 0.1 s tick, and each poll here (lvsadm in the namespace) takes up to ~0.4 s.
const REFUSED_GONE_MS = (1 + 1 * 1 + 1) * 1000 + 200 + 400;
/** Per-test timeout for tests that wait for a transition or two. */
const SLOW = 40_000;

// ---------------------------------------------------------------------------------------------
// keepalived.conf text

/** A keepalived.conf block: `head {`, its lines indented, `}`. */
function block(head: string, ...body: string[]): string {
  const inner = body.flatMap((b) => b.split('\n')).map((l) => `  ${l}`);
  return [`${head} {`, ...inner, '}'].join('\n');
}

const TIMING = ['connect_timeout 1', 'retry 1', 'delay_before_retry 1'];
const tcpCheck = (...extra: string[]) => block('TCP_CHECK', ...extra, ...TIMING);
const httpGet = () => block('HTTP_GET', block('url', 'path /', 'status_code 200'), ...TIMING);
const miscCheck = (path: string) => block('MISC_CHECK', `misc_path "${path}"`, 'misc_dynamic', ...TIMING);
const realServer = (addr: string, port: number, ...body: string[]) => block(`real_server ${addr} ${port}`, ...body);

/** A NAT, rr virtual_server on VIP:port, checked every second. */
function virtualServer(port: number, ...body: string[]): string {
  return block(
    `virtual_server ${VIP} ${port}`,
    'delay_loop 1',
    'lvs_sched rr',
    'lvs_method NAT',
    'protocol TCP',
    ...body,
  );
}

/** Write lab.tmp/keepalived.conf (atomically, lvsd may be reading it); returns its path. */
function writeConf(lab: Lab, ...virtualServers: string[]): string {
  const path = join(lab.tmp, 'keepalived.conf');
  const text = `! written by test/netns/health.test.ts\n\n${virtualServers.join('\n\n')}\n`;
  writeFileSync(`${path}.new`, text);
  renameSync(`${path}.new`, path);
  return path;
}

// ---------------------------------------------------------------------------------------------
// Observing lvsd

interface Dest {
  /** ADDR:PORT */
  addr: string;
  fwd: string;
  weight: number;
  active: number;
  inact: number;
}

/** `lvsadm -L -n` as "TCP VIP:PORT" → its dests, sorted by address. */
async function table(lab: Lab): Promise<Map<string, Dest[]>> {
  const out = new Map<string, Dest[]>();
  let cur: Dest[] | undefined;
  for (const line of (await lab.lvsadmOk('-L', '-n')).split('\n')) {
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)/.exec(line);
    if (svc) {
      cur = [];
      out.set(`${svc[1]} ${svc[2]}`, cur);
      continue;
    }
    const d = /^\s+->\s+(\d+\.\d+\.\d+\.\d+:\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (d && cur) cur.push({ addr: d[1], fwd: d[2], weight: +d[3], active: +d[4], inact: +d[5] });
  }
  for (const ds of out.values()) ds.sort((a, b) => a.addr.localeCompare(b.addr));
  return out;
}

/** The dests of TCP VIP:port ([] when the service is missing). */
async function dests(lab: Lab, port = 80): Promise<Dest[]> {
  return (await table(lab)).get(`TCP ${VIP}:${port}`) ?? [];
}

/** `s` as a regular expression matching itself. */
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const addrs = (ds: Dest[]) => ds.map((d) => d.addr);
const find = (ds: Dest[], addr: string) => ds.find((d) => d.addr === addr);

interface CheckRow {
  addr: string;
  state: string;
  /** -1 when it is not in the table. */
  weight: number;
  text: string;
}

/** `lvsadm -L -n --checks`: one row per real server (and sorry server) of every service. */
async function checks(lab: Lab): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  for (const line of (await lab.lvsadmOk('-L', '-n', '--checks')).split('\n')) {
    // The weight is '-' for a server not in the table.
    const m = /^\s+->\s+(\d+\.\d+\.\d+\.\d+:\d+)\s+(\S+)\s+(\d+|-)\s*(.*)$/.exec(line);
    if (m) rows.push({ addr: m[1], state: m[2], weight: m[3] === '-' ? -1 : +m[3], text: m[4] });
  }
  return rows;
}

/** The state column of `addr`'s --checks row ('absent' when it has none). */
async function checkState(lab: Lab, addr: string): Promise<string> {
  return (await checks(lab)).find((r) => r.addr === addr)?.state ?? 'absent';
}

/**
 * Poll `get` until `done` holds or `deadlineMs` passed; returns the last value either way, so the
 * caller's expect() shows what was seen.
 */
async function until<T>(get: () => Promise<T>, done: (v: T) => boolean, deadlineMs = DEADLINE_MS): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await get();
    if (done(v) || Date.now() >= end) return v;
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** `n` curls from the client, one after the other: each body, or what went wrong. */
async function curls(lab: Lab, n: number, port = 80): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await lab.curl(`http://${VIP}:${port}/`, ['--max-time', '3']);
    out.push(r.code === 0 ? r.stdout.trim() : `curl failed (${r.code}): ${r.stderr.trim()}`);
  }
  return out;
}

/** Answers counted by body. */
function tally(answers: string[]): Record<string, number> {
  const count: Record<string, number> = {};
  for (const a of answers) count[a] = (count[a] ?? 0) + 1;
  return count;
}

/** lvsd logged a `lvsd: health:` line for `addr` going down, and a later one for it coming up. */
function expectDownThenUpLogged(lab: Lab, addr: string): void {
  const lines = lab.lvsdOutput.split('\n').filter((l) => l.startsWith('lvsd: health: ') && l.includes(addr));
  const down = lines.findIndex((l) => /\bdown\b/.test(l));
  const up = lines.findIndex((l, i) => down >= 0 && i > down && /\bup\b/.test(l));
  expect(down, `no down line for ${addr}:\n${lab.lvsdOutput}`).toBeGreaterThanOrEqual(0);
  expect(up, `no up line for ${addr} after its down line:\n${lab.lvsdOutput}`).toBeGreaterThan(down);
}

// ---------------------------------------------------------------------------------------------
// Processes

/** netns/http-server.js answering `name` on `port` in namespace `ns`. */
function httpServer(lab: Lab, ns: string, name: string, port: number): Promise<ChildProcess> {
  return lab.spawn(ns, [process.execPath, join(ROOT, 'netns/http-server.js'), name, String(port)], 'listening');
}

/** SIGKILL `p` (the server itself: `ip netns exec` has exec'd it) and wait until it is gone. */
async function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await exited;
}

// A client holding one keep-alive HTTP connection to VIP:PORT: it connects until the answer
// comes from WANT (closing the others), prints "held WANT LOCALPORT", then sends a request on
// that same connection every 200 ms and prints "reply N BODY" for each answer; "closed" or
// "error ..." if the connection ever ends.
const HOLD = String.raw`
const net = require('node:net');
const [vip, port, want] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
let tries = 0;
function attempt() {
  if (++tries > 20) { console.log('gave up'); process.exit(1); }
  const s = net.connect(port, vip);
  let buf = '';
  let held = false;
  let n = 0;
  const ask = () => s.write('GET / HTTP/1.1\r\nHost: vip\r\n\r\n');
  s.on('connect', ask);
  s.on('data', (d) => {
    buf += d;
    for (;;) {
      const h = buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      const m = /content-length: *(\d+)/i.exec(buf.slice(0, h));
      const end = h + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < end) return;
      const body = buf.slice(h + 4, end).trim();
      buf = buf.slice(end);
      if (held) {
        console.log('reply ' + ++n + ' ' + body);
        setTimeout(ask, 200);
      } else if (body === want) {
        held = true;
        console.log('held ' + body + ' ' + s.localPort);
        setTimeout(ask, 200);
      } else {
        s.destroy();
        setTimeout(attempt, 20);
        return;
      }
    }
  });
  s.on('error', (e) => {
    if (held) console.log('error ' + e.message);
    else setTimeout(attempt, 100);
  });
  s.on('close', () => {
    if (held) { console.log('closed'); process.exit(1); }
  });
}
attempt();
`;

interface Holder {
  /** The client's port of the held connection. */
  port: number;
  /** The bodies answered on the held connection, in order. */
  replies(): string[];
  output(): string;
}

/** Start HOLD in the client; resolves once it holds a connection answered by `want`. */
async function hold(lab: Lab, want: string, port = 80): Promise<Holder> {
  const p = await lab.spawn(lab.client, [process.execPath, '-e', HOLD, VIP, String(port), want]);
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
  };
  p.stdout?.on('data', onData);
  p.stderr?.on('data', onData);
  await until(
    async () => out,
    (o) => /^(held|gave up)/m.test(o) || p.exitCode !== null,
    10_000,
  );
  const m = /^held \S+ (\d+)$/m.exec(out);
  if (!m) throw new Error(`no connection to ${want} held: ${out}`);
  return {
    port: Number(m[1]),
    replies: () => [...out.matchAll(/^reply \d+ (\S*)$/gm)].map((r) => r[1]),
    output: () => out,
  };
}

/** The held connection answers `n` more requests, every one from `want`, and is still open. */
async function expectStillAnswering(h: Holder, want: string, n = 3): Promise<void> {
  const before = h.replies().length;
  await until(
    async () => h.replies().length,
    (k) => k >= before + n || /^(closed|error)/m.test(h.output()),
    5_000,
  );
  expect(h.output()).not.toMatch(/^(closed|error)/m);
  const fresh = h.replies().slice(before);
  expect(fresh.length, h.output()).toBeGreaterThanOrEqual(n);
  expect(new Set(fresh)).toEqual(new Set([want]));
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(why !== undefined)('keepalived-style health checks: lvsd --keepalived-conf', () => {
  const labs: { lab: Lab; setup: () => Promise<void> }[] = [];

  /** The lab of one describe below; `setup` runs in the shared beforeAll, next to the others. */
  function newLab(tag: string, setup: (lab: Lab) => Promise<void>): Lab {
    const lab = new Lab(tag);
    labs.push({ lab, setup: () => setup(lab) });
    return lab;
  }

  beforeAll(async () => {
    const results = await Promise.allSettled(labs.map((l) => l.setup()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });

  afterAll(async () => {
    await Promise.all(labs.map((l) => l.lab.down()));
  });

  describe('HTTP_GET and TCP_CHECK on both real servers', () => {
    const servers: Record<string, ChildProcess> = {};
    const lab = newLab('h', async (lab) => {
      await lab.up('nat');
      [servers.rs1, servers.rs2] = await Promise.all([
        httpServer(lab, lab.rs[0], 'rs1', 80),
        httpServer(lab, lab.rs[1], 'rs2', 80),
      ]);
      // notify_down / notify_up append to a file, so the test sees that each ran once.
      const notify = join(lab.tmp, 'notify.sh');
      writeFileSync(notify, `#!/bin/sh\necho "$1" >> ${join(lab.tmp, 'rs2.notify')}\n`, { mode: 0o755 });
      const conf = writeConf(
        lab,
        virtualServer(
          80,
          realServer(RS1, 80, 'weight 1', httpGet(), tcpCheck()),
          realServer(
            RS2,
            80,
            'weight 3',
            `notify_down "${notify} down"`,
            `notify_up "${notify} up"`,
            httpGet(),
            tcpCheck(),
          ),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });

    it('starts with both real servers in the table at their weights, both up', async () => {
      const ds = await dests(lab);
      expect(ds.map((d) => [d.addr, d.fwd, d.weight])).toEqual([
        [`${RS1}:80`, 'Masq', 1],
        [`${RS2}:80`, 'Masq', 3],
      ]);
      const rows = await checks(lab);
      expect(rows.find((r) => r.addr === `${RS1}:80`)?.state).toMatch(/^up$/i);
      expect(rows.find((r) => r.addr === `${RS2}:80`)?.state).toMatch(/^up$/i);
      expect(tally(await curls(lab, 4))).toEqual({ rs1: 2, rs2: 2 });
    });

    it(
      'removes rs2 once its HTTP server is killed; then every curl answers rs1',
      async () => {
        await kill(servers.rs2!);
        const started = Date.now();
        const ds = await until(
          () => dests(lab),
          (v) => find(v, `${RS2}:80`) === undefined,
        );
        const took = Date.now() - started;
        expect(addrs(ds), `after ${took} ms`).toEqual([`${RS1}:80`]);
        expect(took).toBeLessThan(REFUSED_GONE_MS);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^down$/i);
        expect(await checkState(lab, `${RS1}:80`)).toMatch(/^up$/i);
        expect(await curls(lab, 20)).toEqual(Array(20).fill('rs1'));
      },
      SLOW,
    );

    it(
      'puts rs2 back at weight 3 when its server runs again, and curls reach both',
      async () => {
        servers.rs2 = await httpServer(lab, lab.rs[1], 'rs2', 80);
        const ds = await until(
          () => dests(lab),
          (v) => find(v, `${RS2}:80`) !== undefined,
        );
        expect(ds.map((d) => [d.addr, d.weight])).toEqual([
          [`${RS1}:80`, 1],
          [`${RS2}:80`, 3],
        ]);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^up$/i);
        // rr ignores weights other than 0: it alternates.
        expect(tally(await curls(lab, 6))).toEqual({ rs1: 3, rs2: 3 });
      },
      SLOW,
    );

    it('logged rs2 going down and coming back up, and ran its notify_down and notify_up commands', async () => {
      expectDownThenUpLogged(lab, RS2);
      const ran = await until(
        async () => (existsSync(join(lab.tmp, 'rs2.notify')) ? readFileSync(join(lab.tmp, 'rs2.notify'), 'utf8') : ''),
        (t) => t === 'down\nup\n',
      );
      expect(ran).toBe('down\nup\n');
    });
  });

  describe('inhibit_on_failure: a failed real server stays at weight 0', () => {
    const servers: Record<string, ChildProcess> = {};
    let held: Holder;
    // rs2 is checked on another port (connect_port 8080), served by a process of its own: killing
    // it fails the check while rs2's port 80, and the connection held to it, stay up.
    const lab = newLab('i', async (lab) => {
      await lab.up('nat');
      [servers.rs1, servers.rs2, servers.hc2] = await Promise.all([
        httpServer(lab, lab.rs[0], 'rs1', 80),
        httpServer(lab, lab.rs[1], 'rs2', 80),
        httpServer(lab, lab.rs[1], 'hc2', 8080),
      ]);
      const conf = writeConf(
        lab,
        virtualServer(
          80,
          realServer(RS1, 80, 'weight 1', 'inhibit_on_failure', tcpCheck()),
          realServer(RS2, 80, 'weight 2', 'inhibit_on_failure', tcpCheck('connect_port 8080')),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });

    it('holds a keep-alive connection through the VIP to rs2', async () => {
      held = await hold(lab, 'rs2');
      await expectStillAnswering(held, 'rs2');
      expect(find(await dests(lab), `${RS2}:80`)).toMatchObject({ weight: 2, active: 1 });
    });

    it(
      'keeps rs2 listed at weight 0 when its check fails: new curls reach rs1 only, the held connection still works',
      async () => {
        await kill(servers.hc2!);
        const ds = await until(
          () => dests(lab),
          (v) => find(v, `${RS2}:80`)?.weight === 0,
        );
        expect(ds.map((d) => [d.addr, d.weight])).toEqual([
          [`${RS1}:80`, 1],
          [`${RS2}:80`, 0],
        ]);
        // Quiescent, not removed: the held connection is still counted against it.
        expect(find(ds, `${RS2}:80`)?.active).toBe(1);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^down$/i);
        expect(await curls(lab, 10)).toEqual(Array(10).fill('rs1'));
        await expectStillAnswering(held, 'rs2');
      },
      SLOW,
    );

    it(
      'gives rs2 its weight back when the check passes again',
      async () => {
        servers.hc2 = await httpServer(lab, lab.rs[1], 'hc2', 8080);
        const ds = await until(
          () => dests(lab),
          (v) => find(v, `${RS2}:80`)?.weight === 2,
        );
        expect(ds.map((d) => [d.addr, d.weight])).toEqual([
          [`${RS1}:80`, 1],
          [`${RS2}:80`, 2],
        ]);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^up$/i);
        expect(tally(await curls(lab, 6))).toEqual({ rs1: 3, rs2: 3 });
        await expectStillAnswering(held, 'rs2');
      },
      SLOW,
    );

    it('logged rs2 going down and coming back up', () => {
      expectDownThenUpLogged(lab, RS2);
    });
  });

  describe('sorry_server: stands in while quorum is lost', () => {
    const servers: Record<string, ChildProcess> = {};
    const SORRY = `${RS1}:8080`;
    // quorum is keepalived's default, 1: lost when no real server is up.
    const lab = newLab('s', async (lab) => {
      await lab.up('nat');
      [servers.rs1, servers.rs2, servers.sorry] = await Promise.all([
        httpServer(lab, lab.rs[0], 'rs1', 80),
        httpServer(lab, lab.rs[1], 'rs2', 80),
        httpServer(lab, lab.rs[0], 'sorry', 8080),
      ]);
      const conf = writeConf(
        lab,
        virtualServer(
          80,
          `sorry_server ${RS1} 8080`,
          realServer(RS1, 80, 'weight 1', httpGet()),
          realServer(RS2, 80, 'weight 1', httpGet()),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });

    it('starts with the real servers and without the sorry server', async () => {
      expect(addrs(await dests(lab))).toEqual([`${RS1}:80`, `${RS2}:80`]);
      expect(await checkState(lab, SORRY)).not.toMatch(/sorry/i);
    });

    it(
      'puts the sorry server in when both real servers fail, and it answers',
      async () => {
        await Promise.all([kill(servers.rs1!), kill(servers.rs2!)]);
        const ds = await until(
          () => dests(lab),
          (v) => addrs(v).join() === SORRY,
        );
        expect(addrs(ds)).toEqual([SORRY]);
        expect(await checkState(lab, SORRY)).toMatch(/^sorry$/i);
        expect(await checkState(lab, `${RS1}:80`)).toMatch(/^down$/i);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^down$/i);
        expect(await curls(lab, 5)).toEqual(Array(5).fill('sorry'));
      },
      SLOW,
    );

    it(
      'takes the sorry server out when a real server comes back, which then answers',
      async () => {
        servers.rs2 = await httpServer(lab, lab.rs[1], 'rs2', 80);
        const ds = await until(
          () => dests(lab),
          (v) => addrs(v).join() === `${RS2}:80`,
        );
        expect(addrs(ds)).toEqual([`${RS2}:80`]);
        expect(await checkState(lab, SORRY)).not.toMatch(/sorry/i);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^up$/i);
        expect(await curls(lab, 5)).toEqual(Array(5).fill('rs2'));
        expectDownThenUpLogged(lab, RS2);
      },
      SLOW,
    );
  });

  describe('MISC_CHECK misc_dynamic: the exit status sets the weight', () => {
    let exitFile = '';
    let runsFile = '';
    // rs2's check is a script: exit "$(cat exitFile)", and it appends a line to runsFile per run.
    const lab = newLab('m', async (lab) => {
      exitFile = join(lab.tmp, 'rs2.exit');
      runsFile = join(lab.tmp, 'rs2.runs');
      const script = join(lab.tmp, 'check-rs2.sh');
      writeFileSync(script, `#!/bin/sh\necho ran >> '${runsFile}'\nexit "$(cat '${exitFile}')"\n`);
      chmodSync(script, 0o755);
      setExit(0);
      await lab.up('nat');
      await lab.startHttpServers();
      const conf = writeConf(
        lab,
        virtualServer(
          80,
          realServer(RS1, 80, 'weight 1', tcpCheck()),
          realServer(RS2, 80, 'weight 3', miscCheck(script)),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });

    /** The script's next runs exit with `code` (written atomically: no run reads it half-written). */
    function setExit(code: number): void {
      writeFileSync(`${exitFile}.new`, `${code}\n`);
      renameSync(`${exitFile}.new`, exitFile);
    }

    const runs = async () => (existsSync(runsFile) ? readFileSync(runsFile, 'utf8').split('\n').length - 1 : 0);

    /** Set the exit status, then wait until rs2's dest satisfies `done`; returns the dests. */
    async function exitThen(code: number, done: (rs2: Dest | undefined) => boolean): Promise<Dest[]> {
      setExit(code);
      return until(
        () => dests(lab),
        (v) => done(find(v, `${RS2}:80`)),
      );
    }

    it('runs the script and keeps the configured weight while it exits 0', async () => {
      expect(await until(runs, (n) => n >= 2)).toBeGreaterThanOrEqual(2);
      const ds = await dests(lab);
      expect(ds.map((d) => [d.addr, d.weight])).toEqual([
        [`${RS1}:80`, 1],
        [`${RS2}:80`, 3],
      ]);
      expect(await checkState(lab, `${RS2}:80`)).toMatch(/^up$/i);
    });

    it(
      'sets weight exit-2 for exits 2..255: 7 → 5, 2 → 0 (listed, no new connections), 5 → 3',
      async () => {
        let ds = await exitThen(7, (d) => d?.weight === 5);
        expect(find(ds, `${RS2}:80`)?.weight).toBe(5);
        ds = await exitThen(2, (d) => d?.weight === 0);
        expect(find(ds, `${RS2}:80`)?.weight).toBe(0);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^up$/i);
        expect(await curls(lab, 4)).toEqual(Array(4).fill('rs1'));
        ds = await exitThen(5, (d) => d?.weight === 3);
        expect(find(ds, `${RS2}:80`)?.weight).toBe(3);
      },
      SLOW,
    );

    it(
      'removes rs2 when the script exits 1, and puts it back when it exits 0',
      async () => {
        let ds = await exitThen(1, (d) => d === undefined);
        expect(addrs(ds)).toEqual([`${RS1}:80`]);
        expect(await checkState(lab, `${RS2}:80`)).toMatch(/^down$/i);
        // The weight in effect before the failure was 3 (= configured): back at 3 either way.
        ds = await exitThen(0, (d) => d !== undefined);
        expect(ds.map((d) => [d.addr, d.weight])).toEqual([
          [`${RS1}:80`, 1],
          [`${RS2}:80`, 3],
        ]);
        expect(tally(await curls(lab, 4))).toEqual({ rs1: 2, rs2: 2 });
        expectDownThenUpLogged(lab, RS2);
      },
      SLOW,
    );
  });

  describe('DR: the checks reach real servers on the LAN, beside the VIP they own', () => {
    const DR1 = '192.168.0.11';
    const DR2 = '192.168.0.12';
    const servers: Record<string, ChildProcess> = {};
    const lab = newLab('d', async (lab) => {
      await lab.up('dr');
      await lab.startRealservers('dr', VIP);
      [servers.rs1, servers.rs2] = await Promise.all([
        httpServer(lab, lab.rs[0], 'rs1', 80),
        httpServer(lab, lab.rs[1], 'rs2', 80),
      ]);
      const conf = writeConf(
        lab,
        block(
          `virtual_server ${VIP} 80`,
          'delay_loop 1',
          'lvs_sched rr',
          'lvs_method DR',
          'protocol TCP',
          realServer(DR1, 80, httpGet()),
          realServer(DR2, 80, httpGet()),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });

    it(
      'takes a DR server out when its HTTP server stops and puts it back when it runs again',
      async () => {
        expect((await dests(lab)).map((d) => [d.addr, d.fwd])).toEqual([
          [`${DR1}:80`, 'Route'],
          [`${DR2}:80`, 'Route'],
        ]);
        await kill(servers.rs2!);
        let ds = await until(
          () => dests(lab),
          (v) => find(v, `${DR2}:80`) === undefined,
        );
        expect(addrs(ds)).toEqual([`${DR1}:80`]);
        expect(await curls(lab, 6)).toEqual(Array(6).fill('rs1'));
        servers.rs2 = await httpServer(lab, lab.rs[1], 'rs2', 80);
        ds = await until(
          () => dests(lab),
          (v) => find(v, `${DR2}:80`) !== undefined,
        );
        expect(addrs(ds)).toEqual([`${DR1}:80`, `${DR2}:80`]);
        expect(tally(await curls(lab, 4))).toEqual({ rs1: 2, rs2: 2 });
      },
      SLOW,
    );
  });

  describe('UDP_CHECK on a UDP virtual service', () => {
    const servers: Record<string, ChildProcess> = {};
    const udpEcho = (lab: Lab, i: number) =>
      lab.spawn(lab.rs[i - 1], [process.execPath, join(ROOT, 'netns/udp-echo.js'), `rs${i}`, '5353'], 'listening');
    // The echo answers "rsN <datagram>": require_reply "rs" (hex 7273) accepts both servers.
    const udpCheck = block('UDP_CHECK', 'require_reply 7273', ...TIMING);
    const lab = newLab('u', async (lab) => {
      await lab.up('nat');
      [servers.rs1, servers.rs2] = await Promise.all([udpEcho(lab, 1), udpEcho(lab, 2)]);
      const conf = writeConf(
        lab,
        block(
          `virtual_server ${VIP} 5353`,
          'delay_loop 1',
          'lvs_sched rr',
          'lvs_method NAT',
          'protocol UDP',
          realServer(RS1, 5353, udpCheck),
          realServer(RS2, 5353, udpCheck),
        ),
      );
      await lab.startLvsd(['--keepalived-conf', conf]);
    });
    const udpDests = async () => (await table(lab)).get(`UDP ${VIP}:5353`) ?? [];
    const answeredBy = async (n: number) => (await lab.udpQueries(VIP, 5353, n)).map((a) => a.split(' ')[1]);

    it(
      'removes the server whose UDP port stops answering, and puts it back when it answers again',
      async () => {
        expect(addrs(await udpDests())).toEqual([`${RS1}:5353`, `${RS2}:5353`]);
        expect(await checkState(lab, `${RS2}:5353`)).toMatch(/^up$/i);
        await kill(servers.rs2!);
        let ds = await until(udpDests, (v) => find(v, `${RS2}:5353`) === undefined);
        expect(addrs(ds)).toEqual([`${RS1}:5353`]);
        expect(await answeredBy(4)).toEqual(['rs1', 'rs1', 'rs1', 'rs1']);
        servers.rs2 = await udpEcho(lab, 2);
        ds = await until(udpDests, (v) => find(v, `${RS2}:5353`) !== undefined);
        expect(addrs(ds)).toEqual([`${RS1}:5353`, `${RS2}:5353`]);
        expect((await answeredBy(4)).sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
      },
      SLOW,
    );
  });

  describe('SIGHUP: reload the file, apply only the difference', () => {
    const vs80 = (rs2Weight: number) =>
      virtualServer(
        80,
        realServer(RS1, 80, 'weight 1', tcpCheck()),
        realServer(RS2, 80, `weight ${rs2Weight}`, tcpCheck()),
      );
    const vs8080 = virtualServer(8080, realServer(RS1, 8080, tcpCheck()), realServer(RS2, 8080, tcpCheck()));
    const lab = newLab('r', async (lab) => {
      await lab.up('nat');
      await Promise.all([lab.startHttpServers(80), lab.startHttpServers(8080)]);
      await lab.startLvsd(['--keepalived-conf', writeConf(lab, vs80(1))]);
    });

    it(
      'adds the new service and the new weight, and the connection held through rs1 keeps working',
      async () => {
        const held = await hold(lab, 'rs1');
        await expectStillAnswering(held, 'rs1');
        expect([...(await table(lab)).keys()]).toEqual([`TCP ${VIP}:80`]);
        expect(find(await dests(lab), `${RS1}:80`)).toMatchObject({ weight: 1, active: 1 });

        writeConf(lab, block('global_defs', 'router_id lb1', 'lvs_timeouts tcp 600 udp 60'), vs80(4), vs8080);
        lab.signalLvsd('SIGHUP');
        const t = await until(
          () => table(lab),
          (v) =>
            v.get(`TCP ${VIP}:8080`)?.length === 2 && find(v.get(`TCP ${VIP}:80`) ?? [], `${RS2}:80`)?.weight === 4,
        );
        expect([...t.keys()].sort()).toEqual([`TCP ${VIP}:80`, `TCP ${VIP}:8080`]);
        expect(t.get(`TCP ${VIP}:80`)?.map((d) => [d.addr, d.weight])).toEqual([
          [`${RS1}:80`, 1],
          [`${RS2}:80`, 4],
        ]);
        expect(t.get(`TCP ${VIP}:8080`)?.map((d) => [d.addr, d.fwd, d.weight])).toEqual([
          [`${RS1}:8080`, 'Masq', 1],
          [`${RS2}:8080`, 'Masq', 1],
        ]);
        // rs1's dest was not touched: it still counts the held connection, which still answers.
        expect(find(t.get(`TCP ${VIP}:80`) ?? [], `${RS1}:80`)?.active).toBe(1);
        await expectStillAnswering(held, 'rs1');
        const conns = await lab.lvsadmOk('-L', '-n', '-c');
        expect(conns).toMatch(
          new RegExp(
            `^TCP\\s+\\S+\\s+ESTABLISHED\\s+${re('192.168.0.2')}:${held.port}\\s+${re(VIP)}:80\\s+${re(RS1)}:80\\s*$`,
            'm',
          ),
        );
        // The new service forwards, and global_defs' lvs_timeouts are in force (tcpfin unchanged).
        expect(tally(await curls(lab, 2, 8080))).toEqual({ rs1: 1, rs2: 1 });
        expect(await lab.lvsadmOk('-L', '--timeout')).toBe('Timeout (tcp tcpfin udp): 600 120 60\n');
      },
      SLOW,
    );

    it(
      'keeps the running configuration when the reloaded file has an error, and says so',
      async () => {
        const before = await lab.lvsadmOk('-S', '-n');
        const held = await hold(lab, 'rs1');
        // The port-8080 block now names an unknown scheduler: that block is rejected.
        writeConf(lab, vs80(4), vs8080.replace('lvs_sched rr', 'lvs_sched nosuch'));
        lab.signalLvsd('SIGHUP');
        await until(
          async () => lab.lvsdOutput,
          (out) => out.includes('the running configuration is kept'),
        );
        expect(lab.lvsdOutput).toMatch(/keepalived\.conf: not applied \(1 errors\); the running configuration is kept/);
        expect(await lab.lvsadmOk('-S', '-n')).toBe(before);
        await expectStillAnswering(held, 'rs1');
        expect(tally(await curls(lab, 2, 8080))).toEqual({ rs1: 1, rs2: 1 });
      },
      SLOW,
    );
  });
});
