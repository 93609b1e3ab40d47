// lvsd --max-conns with real TCP: lvsd in a director namespace tracking at most 4 connections,
// two HTTP real servers behind NAT, a client holding 4 connections open. A 5th connection gets
// no answer (its SYN is dropped as table_full) while the 4 held ones keep working; closed, their
// entries stay until their state times out, and then new connections get through again.
//
// The held connections are closed with a reset, which puts their entries in CLOSE: 10 s, the
// kernel's fixed tcp_timeouts[CLOSE]. A FIN close ends in TIME_WAIT (120 s); `--set` sets only
// the ESTABLISHED, FIN_WAIT and UDP timeouts, as ipvsadm's does.

import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns --max-conns test: ${why}`);

const VIP = '192.168.0.1';
const MAX_CONNS = 4;
/** The held connections' client ports; curl uses others, so no SYN revives a held entry. */
const HELD_PORT = 41000;
const CURL_PORTS = '42000-42999';

/**
 * The client holding MAX_CONNS connections to VIP:80. It prints "open N" once all are up, and on
 * stdin takes "get I" (an HTTP request on connection I: prints "answer I rsN") and "reset"
 * (closes every connection with a reset). It exits when stdin closes, or after 30 s.
 */
const HOLDER = `
const net = require('node:net');
const [vip, n, port0] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
setTimeout(() => { console.log('deadline'); process.exit(2); }, 30000);
const socks = [];
let up = 0;
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: vip, port: 80, localPort: port0 + i }, () => { if (++up === n) console.log('open ' + n); });
  s.on('error', (e) => console.log('error ' + i + ' ' + e.code));
  socks.push(s);
}
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'get') {
    const s = socks[Number(arg)];
    let got = '';
    const onData = (d) => {
      got += d;
      const m = /\\r\\n\\r\\n(rs\\d)\\n/.exec(got);
      if (m) { s.off('data', onData); console.log('answer ' + arg + ' ' + m[1]); }
    };
    s.on('data', onData);
    s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n');
  } else if (cmd === 'reset') {
    for (const s of socks) s.resetAndDestroy();
    console.log('reset');
  }
});
process.stdin.on('end', () => process.exit(0));
`;

/** The holder's lines, and a way to wait (bounded) for the next one matching a pattern. */
class Holder {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;

  constructor(readonly proc: ChildProcess) {
    let partial = '';
    proc.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      this.waiter?.();
    });
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  /** The first line (taken off the list) matching `re`, within `ms`. */
  async line(re: RegExp, ms = 3000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l) => re.test(l));
      if (i >= 0) return this.lines.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`holder: no line matching ${re} in ${ms} ms; got ${JSON.stringify(this.lines)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
}

describe.skipIf(why !== undefined)(`lvsd --max-conns ${MAX_CONNS} with real TCP connections through NAT`, () => {
  const lab = new Lab('m');
  let holder: ChildProcess | undefined;

  beforeAll(async () => {
    await lab.up('nat');
    await lab.startHttpServers();
    await lab.startLvsd(['--max-conns', String(MAX_CONNS)]);
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1:80', '172.16.0.2:80'], '-m');
  });

  afterAll(async () => {
    holder?.kill('SIGKILL');
    await lab.down();
  });

  /** A new connection from the client: curl's exit code and body, given up after 1 s unanswered. */
  function newConnection() {
    return lab.curl(`http://${VIP}/`, ['--local-port', CURL_PORTS, '--connect-timeout', '1', '--max-time', '3']);
  }

  it('drops the connection beyond the limit as table_full, keeps the held ones working, and admits new ones once closed entries expire', async () => {
    const started = Date.now();
    holder = spawn(
      'ip',
      ['netns', 'exec', lab.client, process.execPath, '-e', HOLDER, VIP, String(MAX_CONNS), String(HELD_PORT)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const h = new Holder(holder);
    await h.line(/^open 4$/);
    const full = await lab.engineStats();
    expect(full.conns).toBe(MAX_CONNS);

    // The 5th connection: its SYN (and any retransmission) is dropped, so curl times out (28).
    const fifth = await newConnection();
    expect(fifth.code, fifth.stderr).toBe(28);
    const afterFifth = await lab.engineStats();
    expect(afterFifth.drops.table_full ?? 0).toBeGreaterThanOrEqual(1);
    expect(afterFifth.conns).toBe(MAX_CONNS);
    expect(afterFifth.stats.conns, 'no connection was created for it').toBe(full.stats.conns);

    // The held connections still carry requests and answers (rr: two on each server).
    for (let i = 0; i < MAX_CONNS; i++) h.send(`get ${i}`);
    const answers: string[] = [];
    for (let i = 0; i < MAX_CONNS; i++) answers.push((await h.line(/^answer \d rs\d$/)).split(' ')[2]);
    expect(answers.sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);

    // Past NONE's 2 s, the tick has filed the ESTABLISHED entries at their 900 s expiry: a
    // reset's shorter timeout must still end them on time (ConnTable.touch files them again).
    await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - started))));

    // Closed with resets, the 4 entries sit in CLOSE and still fill the table...
    h.send('reset');
    await h.line(/^reset$/);
    const resetAt = Date.now();
    const closed = await newConnection();
    expect(closed.code, closed.stderr).toBe(28);
    expect((await lab.engineStats()).conns).toBe(MAX_CONNS);

    // ...until their 10 s run out (lvsd expires entries once a second).
    let conns = MAX_CONNS;
    while (conns !== 0 && Date.now() - resetAt < 13_000) {
      await new Promise((r) => setTimeout(r, 250));
      conns = (await lab.engineStats()).conns;
    }
    const emptiedAfter = (Date.now() - resetAt) / 1000;
    expect(conns).toBe(0);
    expect(emptiedAfter, 'not before the CLOSE timeout').toBeGreaterThan(8.5);

    const again = await newConnection();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^rs[12]\n$/);
    console.log(
      `max-conns: table emptied ${emptiedAfter.toFixed(1)} s after the resets; test body ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 30_000);
});
