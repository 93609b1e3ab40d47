import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MainDeps, main } from '../../src/cli/lvsadm';
import type { ArgResolver } from '../../src/cli/lvsadm-args';
import { request } from '../../src/ctl/client';
import type { Request, Response, Snapshot, VrrpSnapshot } from '../../src/ctl/protocol';
import { ControlSocketError } from '../../src/errors';
import { dest, service } from '../helpers/snapshots';

/** A stand-in for lvsd: records each request line and answers with `reply(request)`. */
class FakeLvsd {
  readonly received: Request[] = [];
  reply: (req: Request) => Response = () => ({ ok: true });
  /** What `list-vrrp` answers (the listings that end with VRRP lines ask for it). */
  vrrp: VrrpSnapshot[] = [];
  private server: Server | undefined;

  constructor(readonly path: string) {}

  start(): Promise<void> {
    this.server = createServer((sock) => {
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        buf += chunk;
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const req = JSON.parse(buf.slice(0, nl)) as Request;
        this.received.push(req);
        const res = req.cmd === 'list-vrrp' ? { ok: true, result: this.vrrp } : this.reply(req);
        sock.end(`${JSON.stringify(res)}\n`);
      });
    });
    return new Promise((resolve) => this.server!.listen(this.path, resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'lvsadm-main-'));
const lvsd = new FakeLvsd(join(dir, 'lvsd.sock'));

const resolver: ArgResolver = {
  host: async () => null,
  service: (name, proto) => (name === 'http' && proto === 'tcp' ? 80 : null),
};

/** Runs main with captured output, against the fake daemon unless argv names another socket. */
async function run(argv: string[], deps: Partial<MainDeps> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    argResolver: resolver,
    ...deps,
  });
  return { code, stdout, stderr };
}

const S = (...argv: string[]) => ['--socket', lvsd.path, ...argv];

const SNAPSHOT: Snapshot = {
  version: '1.2.1',
  size: 4096,
  services: [service(6, '192.168.0.1', 80, [dest('172.16.0.2', 80), dest('172.16.0.1', 80)], { sched: 'rr' })],
};

const SEED_LISTING = [
  'IP Virtual Server version 1.2.1 (size=4096)',
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
  'TCP  192.168.0.1:80 rr',
  '  -> 172.16.0.1:80                Masq    1      0          0         ',
  '  -> 172.16.0.2:80                Masq    1      0          0         ',
  '',
].join('\n');

beforeAll(() => lvsd.start());
afterAll(async () => {
  await lvsd.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  lvsd.received.length = 0;
  lvsd.reply = () => ({ ok: true });
  lvsd.vrrp = [];
});

describe('lvsadm main against a fake lvsd', () => {
  it('sends -A as add-service with the ipvsadm defaults, prints nothing, exits 0', async () => {
    const r = await run(S('-A', '-t', '192.168.0.1:http', '-s', 'rr'));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(lvsd.received).toEqual([
      {
        cmd: 'add-service',
        svc: {
          protocol: 6,
          addr: '192.168.0.1',
          port: 80,
          fwmark: 0,
          sched: 'rr',
          flags: 0,
          timeout: 0,
          netmask: '255.255.255.255',
          pe: '',
        },
      },
    ]);
  });

  it('prints "Service already exists" and exits 255 when lvsd answers EEXIST to add-service', async () => {
    lvsd.reply = () => ({ ok: false, errno: 'EEXIST', message: 'service exists' });
    const r = await run(S('-A', '-t', '192.168.0.1:80'));
    expect(r).toEqual({ code: 255, stdout: '', stderr: 'Service already exists\n' });
  });

  it.each([
    [['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1'], 'ESRCH', 'Service not defined\n'],
    [['-e', '-t', '10.0.0.1:80', '-r', '10.0.1.1'], 'ENOENT', 'No such destination\n'],
    [['-D', '-t', '10.0.0.1:80'], 'ESRCH', 'No such service\n'],
    [['-E', '-t', '10.0.0.1:80', '-s', 'nope'], 'ENOENT', 'Scheduler or persistence engine not found\n'],
    [['-C'], 'EPERM', 'Permission denied (you must be root)\n'],
    [
      ['--set', '1', '2', '3'],
      'EINVAL',
      'Invalid operation.  Possibly wrong module version, address not unicast, ...\n',
    ],
  ])('maps %j + %s to libipvs text, exit 255', async (argv, errno, text) => {
    lvsd.reply = () => ({ ok: false, errno, message: 'x' });
    expect(await run(S(...argv))).toEqual({ code: 255, stdout: '', stderr: text });
  });

  it('sends -e without -m/-w as an edit that resets the dest to DR and weight 1', async () => {
    await run(S('-e', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080'));
    expect(lvsd.received[0]).toMatchObject({
      cmd: 'edit-server',
      dest: { addr: '172.16.0.1', port: 80, fwd: 3, weight: 1 },
    });
  });

  it('lists with -L -n: the snapshot in ipvsadm order and format, exit 0', async () => {
    lvsd.reply = (req) =>
      req.cmd === 'list' ? { ok: true, result: SNAPSHOT } : { ok: false, errno: 'EINVAL', message: '' };
    const r = await run(S('-L', '-n'));
    expect(lvsd.received).toEqual([{ cmd: 'list' }]);
    expect(r).toEqual({ code: 0, stdout: SEED_LISTING, stderr: '' });
  });

  it('lists without -n through the name resolver', async () => {
    lvsd.reply = () => ({ ok: true, result: SNAPSHOT });
    const r = await run(S('-L'), {
      resolveNames: async (addrs) => {
        expect([...addrs].sort()).toEqual(['172.16.0.1', '172.16.0.2', '192.168.0.1']);
        return {
          host: (a) => (a === '192.168.0.1' ? 'vip' : undefined),
          service: (p) => (p === 80 ? 'http' : undefined),
        };
      },
    });
    expect(r.stdout.split('\n').slice(3, 5)).toEqual([
      'TCP  vip:http rr',
      '  -> 172.16.0.1:http              Masq    1      0          0         ',
    ]);
  });

  it('lists a single service without the banner, and says "No such service" (exit 1) for a missing one', async () => {
    lvsd.reply = () => ({ ok: true, result: SNAPSHOT });
    const one = await run(S('-L', '-n', '-t', '192.168.0.1:80'));
    expect(one).toEqual({ code: 0, stdout: SEED_LISTING.split('\n').slice(1).join('\n'), stderr: '' });
    const none = await run(S('-L', '-n', '-t', '192.168.0.1:81'));
    expect(none).toEqual({ code: 1, stdout: '', stderr: 'No such service\n' });
  });

  it('asks for timeouts with --timeout and connections with -c', async () => {
    lvsd.reply = (req) =>
      req.cmd === 'get-timeouts'
        ? { ok: true, result: { tcp: 900, tcpfin: 120, udp: 300 } }
        : {
            ok: true,
            result: [
              {
                protocol: 17,
                caddr: '10.0.0.1',
                cport: 5353,
                vaddr: '10.0.0.2',
                vport: 53,
                daddr: '10.0.0.3',
                dport: 53,
                state: 'UDP',
                expires: 299,
                flags: 0,
              },
            ],
          };
    expect(await run(S('-L', '--timeout'))).toEqual({
      code: 0,
      stdout: 'Timeout (tcp tcpfin udp): 900 120 300\n',
      stderr: '',
    });
    expect((await run(S('-L', '-n', '-c'))).stdout).toBe(
      [
        'IPVS connection entries',
        'pro expire state       source             virtual            destination',
        'UDP 04:59  UDP         10.0.0.1:5353      10.0.0.2:53        10.0.0.3:53',
        '',
      ].join('\n'),
    );
    expect(lvsd.received).toEqual([{ cmd: 'get-timeouts' }, { cmd: 'list-conns' }]);
  });

  it('exits 1 with the libipvs text when a listing is refused', async () => {
    lvsd.reply = () => ({ ok: false, errno: 'ENOMEM', message: '' });
    expect(await run(S('-L', '-n'))).toEqual({ code: 1, stdout: '', stderr: 'Memory allocation problem\n' });
  });

  it('finds the socket through LVS_SOCKET when --socket is absent', async () => {
    const saved = process.env.LVS_SOCKET;
    process.env.LVS_SOCKET = lvsd.path;
    try {
      expect((await run(['-C'])).code).toBe(0);
      expect(lvsd.received).toEqual([{ cmd: 'flush' }]);
    } finally {
      if (saved === undefined) delete process.env.LVS_SOCKET;
      else process.env.LVS_SOCKET = saved;
    }
  });

  it('reports a command-line error without contacting lvsd (exit 2 / 255)', async () => {
    expect(await run(S('-A', '-t', '1.2.3.4:80', '-w', '3'))).toEqual({
      code: 2,
      stdout: '',
      stderr: "Illegal 'weight' option with the 'add-service' command\n",
    });
    expect(await run(S('-n'))).toEqual({
      code: 255,
      stdout: '',
      stderr: "Try `lvsadm -h' or 'lvsadm --help' for more information.\n",
    });
    expect(lvsd.received).toEqual([]);
  });

  it('prints help and version on stdout, exit 0', async () => {
    const help = await run(['-h']);
    expect(help.code).toBe(0);
    expect(help.stdout.split('\n').slice(0, 6)).toEqual([
      'lvsadm v0.1.0 (ipvsadm 1.31 compatible, IPVS v1.2.1)',
      'Administers lvsd, the lvs-ts user-space Linux Virtual Server (virtual services, real servers,',
      'schedulers, counters), with the syntax, output and exit codes of ipvsadm 1.31.',
      '',
      'Usage:',
      '  lvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]',
    ]);
    expect(await run(['--version'])).toEqual({
      code: 0,
      stdout: 'lvsadm v0.1.0 (ipvsadm 1.31 compatible, IPVS v1.2.1)\n',
      stderr: '',
    });
  });
});

describe('lvsadm main without a daemon', () => {
  it('prints ipvsadm\'s "Can\'t initialize ipvs" text and the socket path, exit 2', async () => {
    const missing = join(dir, 'absent.sock');
    expect(await run(['--socket', missing, '-L', '-n'])).toEqual({
      code: 2,
      stdout: '',
      stderr: [
        "Can't initialize ipvs: Protocol not available",
        'Are you sure that IP Virtual Server is built in the kernel or as module?',
        `(lvsd not reachable at ${missing})`,
        '',
      ].join('\n'),
    });
  });

  it('request() gives up on a daemon that accepts but never answers (ControlSocketError timeout)', async () => {
    const silentPath = join(dir, 'silent.sock');
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
    try {
      const err = await request(silentPath, { cmd: 'flush' }, 50).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ControlSocketError);
      expect(err).toMatchObject({ kind: 'timeout', socketPath: silentPath });
    } finally {
      silent.close();
    }
  });

  it('reports a timeout from the daemon on stderr, exit 1', async () => {
    const r = await run(S('-C'), {
      send: () => Promise.reject(new ControlSocketError('timeout', lvsd.path, undefined, 'no reply within 5000 ms')),
    });
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: `lvsadm: no reply from lvsd at ${lvsd.path}: no reply within 5000 ms\n`,
    });
  });

  it('reports a refused (permission) connection as ipvsadm reports EPERM, exit 2', async () => {
    const r = await run(S('-C'), {
      send: () => Promise.reject(new ControlSocketError('connect', '/x.sock', 'EACCES', 'permission denied')),
    });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("Can't initialize ipvs: Permission denied (you must be root)");
  });

  it('-L --checks prints the health monitor view: quorum per virtual server, state, weight, age, checks', async () => {
    lvsd.reply = () => ({
      ok: true,
      result: [
        {
          label: 'TCP 192.168.0.1:80',
          quorum: 2,
          hysteresis: 0,
          liveWeight: 1,
          hasQuorum: false,
          servers: [
            {
              addr: '172.16.0.1',
              port: 80,
              state: 'up',
              weight: 1,
              inTable: false,
              since: 75,
              checkers: [{ type: 'HTTP_GET', up: true, why: 'HTTP 200' }],
            },
            {
              addr: '172.16.0.2',
              port: 80,
              state: 'down',
              weight: 0,
              inTable: true,
              since: 3,
              checkers: [
                { type: 'HTTP_GET', up: false, why: 'connect: ECONNREFUSED' },
                { type: 'TCP_CHECK', up: false, why: '' },
              ],
            },
            { addr: '172.16.0.9', port: 8080, state: 'sorry', weight: 1, inTable: true, since: 0, checkers: [] },
          ],
        },
        {
          label: 'FWM 5',
          quorum: 1,
          hysteresis: 1,
          liveWeight: 3,
          hasQuorum: true,
          servers: [{ addr: '10.0.0.5', port: 0, state: 'up', weight: 3, inTable: true, since: 7300, checkers: [] }],
        },
      ],
    });
    expect(await run(S('-L', '-n', '--checks'))).toEqual({
      code: 0,
      stdout: [
        'Prot LocalAddress:Port                 Quorum',
        '  -> RemoteAddress:Port                State   Weight Since   Checks',
        'TCP  192.168.0.1:80                    lost (live weight 1, quorum 2)',
        '  -> 172.16.0.1:80                     up      -      1m15s   HTTP_GET up (HTTP 200)',
        '  -> 172.16.0.2:80                     down    0      3s      HTTP_GET down (connect: ECONNREFUSED); TCP_CHECK down',
        '  -> 172.16.0.9:8080                   sorry   1      -       sorry server',
        'FWM  5                                 up (live weight 3, quorum 1, hysteresis 1)',
        '  -> 10.0.0.5:0                        up      3      2h1m    no checker (always up)',
        '',
      ].join('\n'),
      stderr: '',
    });
    expect(lvsd.received).toEqual([{ cmd: 'list-checks' }, { cmd: 'list-vrrp' }]);
  });

  it('-L --checks with no health monitor prints the titles only', async () => {
    lvsd.reply = () => ({ ok: true, result: [] });
    expect((await run(S('-L', '--checks'))).stdout.split('\n')).toHaveLength(3);
  });

  it('-L --daemon prints nothing when no sync daemon runs, exit 0', async () => {
    lvsd.reply = () => ({ ok: true, result: [] });
    expect(await run(S('-L', '--daemon'))).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(lvsd.received).toEqual([{ cmd: 'list-daemons' }, { cmd: 'list-vrrp' }]);
  });

  it('-L --daemon and --checks end with the VRRP states when lvsd runs keepalived', async () => {
    lvsd.reply = () => ({
      ok: true,
      result: [{ state: 'master', mcastIfn: 'sync0', syncid: 5, maxlen: 1472, group: '', port: 0, ttl: 0 }],
    });
    lvsd.vrrp = [
      { kind: 'instance', name: 'VI_1', state: 'MASTER', priority: 150, iface: 'eth0', vrid: 51, since: 75 },
      { kind: 'group', name: 'G1', state: 'MASTER', priority: 0, iface: '', vrid: 0, since: 75 },
    ];
    expect((await run(S('-L', '--daemon'))).stdout).toBe(
      'master sync daemon (mcast=sync0, syncid=5, maxlen=1472)\n' +
        'vrrp instance VI_1: MASTER for 1m15s (priority 150, eth0, vrid 51)\n' +
        'vrrp group G1: MASTER for 1m15s\n',
    );
  });

  it('-L --daemon prints each running daemon as ipvsadm does, master first', async () => {
    lvsd.reply = () => ({
      ok: true,
      result: [
        { state: 'master', mcastIfn: 'eth0', syncid: 0, maxlen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
        { state: 'backup', mcastIfn: 'sync0', syncid: 9, maxlen: 8972, group: '239.0.0.9', port: 9000, ttl: 1 },
      ],
    });
    expect(await run(S('-L', '--daemon'))).toEqual({
      code: 0,
      stdout:
        'master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n' +
        'backup sync daemon (mcast=sync0, syncid=9, maxlen=8972, group=239.0.0.9, port=9000, ttl=1)\n',
      stderr: '',
    });
  });

  it.each([
    [['--start-daemon', 'master'], 'EEXIST', 'Daemon has already run'],
    [['--stop-daemon', 'backup'], 'ESRCH', 'No daemon is running'],
    [['--start-daemon', 'master', '--mcast-interface', 'nope0'], 'ENODEV', 'No such device'],
  ])('%j failing with %s prints "%s", exit 255', async (argv, errno, text) => {
    lvsd.reply = () => ({ ok: false, errno, message: 'No such device' });
    expect(await run(S(...argv))).toEqual({ code: 255, stdout: '', stderr: `${text}\n` });
  });

  describe('--sysctl (lvs-ts extension)', () => {
    const SETTINGS = [
      { name: 'conn_reuse_mode', value: 1 },
      { name: 'expire_nodest_conn', value: 0 },
    ];

    it('lists every setting as sysctl(8) prints them', async () => {
      lvsd.reply = () => ({ ok: true, result: SETTINGS });
      const r = await run(S('--sysctl'));
      expect(r).toEqual({ code: 0, stdout: 'conn_reuse_mode = 1\nexpire_nodest_conn = 0\n', stderr: '' });
      expect(lvsd.received).toEqual([{ cmd: 'sysctl' }]);
    });

    it('shows one and sets one (also as --sysctl=NAME=VALUE)', async () => {
      lvsd.reply = (req) => ({
        ok: true,
        result: [{ name: (req as { name: string }).name, value: Number((req as { value?: string }).value ?? 0) }],
      });
      expect((await run(S('--sysctl', 'expire_nodest_conn'))).stdout).toBe('expire_nodest_conn = 0\n');
      expect((await run(S('--sysctl=expire_nodest_conn=1'))).stdout).toBe('expire_nodest_conn = 1\n');
      expect(lvsd.received).toEqual([
        { cmd: 'sysctl', name: 'expire_nodest_conn' },
        { cmd: 'sysctl', name: 'expire_nodest_conn', value: '1' },
      ]);
    });

    it("prints lvsd's refusal and exits 255", async () => {
      lvsd.reply = () => ({ ok: false, errno: 'ENOENT', message: 'no such setting: nosuch' });
      expect(await run(S('--sysctl', 'nosuch'))).toEqual({
        code: 255,
        stdout: '',
        stderr: 'lvsadm: no such setting: nosuch\n',
      });
    });

    it('refuses anything else on the command line with exit 2, sending nothing', async () => {
      for (const argv of [S('--sysctl', 'a', 'b'), S('-L', '--sysctl'), S('--sysctl', '-n')]) {
        const r = await run(argv);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.stderr).toBe('lvsadm: --sysctl takes one optional NAME or NAME=VALUE and nothing else\n');
      }
      expect(lvsd.received).toEqual([]);
    });
  });
});
