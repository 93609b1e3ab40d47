// Connection sync between two lvsd directors (REFERENCE.md §1.10), end to end: the master
// multicasts its connections over a dedicated link, the backup keeps copies of them, and when the
// client's route to the VIP moves to the backup (a failover) an open TCP connection carries on
// with the same real server. Without its copy the backup could not schedule the mid-stream
// segment (not a SYN) and would answer it with a reset.

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns sync tests: ${why}`);

const VIP = '192.168.0.1';
const RS1 = '192.168.0.11';
const RS2 = '192.168.0.12';

/**
 * A client holding one keep-alive HTTP connection to VIP:80: it sends a request for each line
 * on its stdin and prints each response's body (or "error: ...") as one line.
 */
const KEEPALIVE_CLIENT = `
const net = require('net');
const s = net.connect(80, '${VIP}');
let buf = '';
s.on('data', (d) => {
  buf += d;
  const m = /\\r\\n\\r\\n([^\\n]*)\\n/.exec(buf);
  if (m) { console.log(m[1]); buf = ''; }
});
s.on('error', (e) => console.log('error: ' + e.code));
s.on('close', () => console.log('closed'));
s.on('connect', () => console.log('connected'));
process.stdin.on('data', () => s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n'));
setTimeout(() => process.exit(0), 60000).unref();
`;

describe.skipIf(why !== undefined)('connection sync between two lvsd directors', () => {
  const lab = new Lab('y');
  const socket2 = join(lab.tmp, 'lvsd2.sock');
  let client: ChildProcess | undefined;
  let clientOut = '';

  const lvsadm2 = async (...args: string[]) =>
    lab.exec(lab.dir2, ['env', `LVS_SOCKET=${socket2}`, process.execPath, join(ROOT, 'bin/lvsadm.js'), ...args]);

  /** Resolve with the client's next output line. */
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer; client said: ${clientOut}`)), 10_000);
      const check = () => {
        const i = clientOut.indexOf('\n');
        if (i < 0) return;
        clearTimeout(timer);
        client!.stdout!.off('data', check);
        const line = clientOut.slice(0, i);
        clientOut = clientOut.slice(i + 1);
        resolve(line);
      };
      client!.stdout!.on('data', check);
      check();
    });

  beforeAll(async () => {
    await lab.up('sync');
    await lab.startRealservers('dr', VIP);
    await lab.startHttpServers();
    await lab.startLvsd();
    await lab.spawn(
      lab.dir2,
      [process.execPath, join(ROOT, 'dist/cli/lvsd.js'), '--socket', socket2, '--procfs-root', `${socket2}.proc`],
      'ready:',
    );
    await lab.addVirtualService(['-t', `${VIP}:80`], [RS1, RS2], '-g');
    // The backup lists the dests the other way round, so a connection it scheduled itself
    // would go to the other real server.
    for (const args of [
      ['-A', '-t', `${VIP}:80`, '-s', 'rr'],
      ['-a', '-t', `${VIP}:80`, '-r', RS2, '-g'],
      ['-a', '-t', `${VIP}:80`, '-r', RS1, '-g'],
    ]) {
      const r = await lvsadm2(...args);
      expect(r.code, r.stderr).toBe(0);
    }
  });

  afterAll(async () => {
    client?.kill('SIGKILL');
    await lab.down();
  });

  it('starts, lists and refuses to double-start the daemons with ipvsadm text', async () => {
    await lab.lvsadmOk('--start-daemon', 'master', '--mcast-interface', 'sync0', '--syncid', '9');
    expect((await lvsadm2('--start-daemon', 'backup', '--mcast-interface', 'sync0', '--syncid', '9')).code).toBe(0);
    expect(await lab.lvsadmOk('-L', '--daemon')).toBe(
      'master sync daemon (mcast=sync0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n',
    );
    expect((await lvsadm2('-L', '--daemon')).stdout).toBe(
      'backup sync daemon (mcast=sync0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n',
    );
    expect(await lab.lvsadm('--start-daemon', 'master', '--mcast-interface', 'sync0')).toMatchObject({
      code: 255,
      stderr: 'Daemon has already run\n',
    });
    expect(await lab.lvsadm('--stop-daemon', 'backup')).toMatchObject({ code: 255, stderr: 'No daemon is running\n' });
    expect(await lab.lvsadm('--start-daemon', 'backup', '--mcast-interface', 'nosuch0')).toMatchObject({
      code: 255,
      stderr: 'No such device\n',
    });
  });

  it('keeps an open TCP connection going through the backup after a failover', async () => {
    client = spawn('ip', ['netns', 'exec', lab.client, process.execPath, '-e', KEEPALIVE_CLIENT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    client.stdout!.on('data', (d: Buffer) => {
      clientOut += d.toString();
    });
    expect(await nextLine()).toBe('connected');
    client.stdin!.write('1\n');
    const first = await nextLine();
    expect([`rs1`, `rs2`]).toContain(first);

    // The master sends the connection on its 3rd client packet, within 2 s; the backup lists it.
    let copies = '';
    for (let i = 0; i < 50 && !copies.includes('ESTABLISHED'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      copies = (await lvsadm2('-L', '-c', '-n')).stdout;
    }
    const rsAddr = first === 'rs1' ? RS1 : RS2;
    expect(copies).toMatch(
      new RegExp(`TCP \\d\\d:\\d\\d  ESTABLISHED 192\\.168\\.0\\.2:\\d+ +${VIP}:80 +${rsAddr}:80`),
    );
    // /proc files are rewritten every second.
    let procSync = '';
    for (let i = 0; i < 30 && !procSync.includes('SYNC'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      procSync = (await lab.exec(lab.dir2, ['cat', `${socket2}.proc/net/ip_vs_conn_sync`])).stdout;
    }
    expect(procSync.split('\n')[0]).toBe('Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires');
    expect(procSync).toMatch(/\nTCP C0A80002 [0-9A-F]{4} C0A80001 0050 C0A8000[BC] 0050 ESTABLISHED SYNC +\d+\n/);

    // Failover: the master goes away and the client's route to the VIP moves to the backup.
    await lab.stopLvsd();
    const moved = await lab.exec(lab.client, ['ip', 'route', 'replace', `${VIP}/32`, 'via', '192.168.0.252']);
    expect(moved.code, moved.stderr).toBe(0);
    client.stdin!.write('2\n');
    expect(await nextLine()).toBe(first);
    client.stdin!.write('3\n');
    expect(await nextLine()).toBe(first);
    // The backup forwarded them by its copy: the dest it points to counted the packets.
    const stats = (await lvsadm2('-L', '-n', '--stats')).stdout;
    const row = stats.split('\n').find((l) => l.includes(`-> ${rsAddr}:80`));
    expect(Number(row?.trim().split(/\s+/)[3])).toBeGreaterThan(0);
  });
});
