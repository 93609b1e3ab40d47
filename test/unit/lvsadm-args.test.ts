import { describe, expect, it } from 'vitest';
import {
  type ArgResolver,
  COMMANDS_V_OPTIONS,
  DEFAULT_LIST_FORMAT,
  type LvsadmCommand,
  OPTION_NAMES,
  parseArgs,
  parseServices,
  stringToNumber,
} from '../../src/cli/lvsadm-args';
import type { Request } from '../../src/ctl/protocol';
import { inetAton } from '../../src/wire/addr';

const HOSTS: Record<string, string> = { 'web.example': '10.1.2.3', 'mask.example': '255.255.0.0' };
const SERVICES: Record<string, number> = { 'http/tcp': 80, 'https/tcp': 443, 'domain/udp': 53 };

const resolver: ArgResolver = {
  host: async (name) => HOSTS[name] ?? null,
  service: (name, proto) => SERVICES[`${name}/${proto}`] ?? null,
};

async function command(...argv: string[]): Promise<LvsadmCommand> {
  const r = await parseArgs(argv, resolver);
  if (!r.ok) throw new Error(`expected success for ${argv.join(' ')}, got: ${r.error.stderr}`);
  return r.args.command;
}

async function req(...argv: string[]): Promise<Request> {
  const c = await command(...argv);
  if (c.kind !== 'request') throw new Error(`expected a request for ${argv.join(' ')}, got ${c.kind}`);
  return c.request;
}

async function failure(...argv: string[]): Promise<{ stderr: string; exitCode: number; kind: string }> {
  const r = await parseArgs(argv, resolver);
  if (r.ok) throw new Error(`expected a failure for ${argv.join(' ')}`);
  return r.error;
}

const svc = (addr: string, port: number, protocol = 6) => ({ protocol, addr, port, fwmark: 0 });
const spec = (over: Partial<Record<string, unknown>> = {}) => ({
  protocol: 6,
  addr: '192.168.0.1',
  port: 80,
  fwmark: 0,
  sched: 'wlc',
  flags: 0,
  timeout: 0,
  netmask: '255.255.255.255',
  pe: '',
  ...over,
});
const dest = (over: Partial<Record<string, unknown>> = {}) => ({
  addr: '172.16.0.1',
  port: 80,
  fwd: 3,
  weight: 1,
  uThreshold: 0,
  lThreshold: 0,
  tunType: 0,
  tunPort: 0,
  tunFlags: 0,
  ...over,
});
const FMT = DEFAULT_LIST_FORMAT;

describe('commands_v_options table', () => {
  it('has one rule per ipvsadm option for every command', () => {
    // ipvsadm's 34 options and lvs-ts's --checks.
    expect(OPTION_NAMES).toHaveLength(35);
    for (const row of Object.values(COMMANDS_V_OPTIONS)) expect(row).toMatch(/^[ +x1]{35}$/);
  });
});

describe('service commands build the request ipvsadm would send', () => {
  it.each([
    [['-A', '-t', '192.168.0.1:80', '-s', 'rr'], { cmd: 'add-service', svc: spec({ sched: 'rr' }) }],
    [['--add-service', '--tcp-service', '192.168.0.1:80'], { cmd: 'add-service', svc: spec() }],
    [['-E', '-t', '192.168.0.1:80', '-s', 'wrr'], { cmd: 'edit-service', svc: spec({ sched: 'wrr' }) }],
    [['-A', '-t', '192.168.0.1:0', '-p'], { cmd: 'add-service', svc: spec({ port: 0, flags: 1, timeout: 360 }) }],
    [
      ['-A', '-t', '192.168.0.1:80', '-p', '600', '-M', '255.255.255.0'],
      { cmd: 'add-service', svc: spec({ flags: 1, timeout: 600, netmask: '255.255.255.0' }) },
    ],
    [['-A', '-t', '192.168.0.1:80', '-p600'], { cmd: 'add-service', svc: spec({ flags: 1, timeout: 600 }) }],
    [['-A', '-t', '192.168.0.1:80', '--persistent=600'], { cmd: 'add-service', svc: spec({ flags: 1, timeout: 600 }) }],
    [
      ['-A', '-t', '192.168.0.1:80', '-p', '-s', 'rr'],
      { cmd: 'add-service', svc: spec({ flags: 1, timeout: 360, sched: 'rr' }) },
    ],
    [
      ['-A', '-u', '192.168.0.1:53', '-o', '-s', 'rr'],
      { cmd: 'add-service', svc: spec({ protocol: 17, port: 53, flags: 4, sched: 'rr' }) },
    ],
    [
      ['-A', '-f', '5', '-s', 'sh', '-b', 'sh-fallback,sh-port'],
      { cmd: 'add-service', svc: spec({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 5, sched: 'sh', flags: 0x18 }) },
    ],
    [
      ['-A', '-t', '192.168.0.1:80', '-s', 'mh', '-b', 'mh-port'],
      { cmd: 'add-service', svc: spec({ sched: 'mh', flags: 0x10 }) },
    ],
    [['-A', '-t', '192.168.0.1:80', '-b', 'flag-1,flag-3'], { cmd: 'add-service', svc: spec({ flags: 0x28 }) }],
    [
      ['-A', '-f', '258', '-o'],
      { cmd: 'add-service', svc: spec({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 258, flags: 4 }) },
    ],
    [
      ['-A', '-t', '192.168.0.1:80', '--pe', 'sip', '-p'],
      { cmd: 'add-service', svc: spec({ pe: 'sip', flags: 1, timeout: 360 }) },
    ],
    [['-D', '-t', '192.168.0.1:80'], { cmd: 'delete-service', svc: svc('192.168.0.1', 80) }],
    [['-D', '-f', '7'], { cmd: 'delete-service', svc: { protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 7 } }],
    [['-C'], { cmd: 'flush' }],
    [['--clear'], { cmd: 'flush' }],
    [['-Z'], { cmd: 'zero' }],
    [['-Z', '-u', '10.0.0.1:53'], { cmd: 'zero', svc: svc('10.0.0.1', 53, 17) }],
    [['--set', '900', '120', '300'], { cmd: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 120, udp: 300 } }],
    [['--set', '0', '0', '60'], { cmd: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 0, udp: 60 } }],
  ])('%j', async (argv, expected) => {
    expect(await req(...argv)).toEqual(expected);
  });
});

describe('server commands build the request ipvsadm would send', () => {
  const key = svc('192.168.0.1', 80);
  it.each([
    [['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1', '-m'], { cmd: 'add-server', svc: key, dest: dest({ fwd: 0 }) }],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080', '-m', '-w', '3', '-x', '100', '-y', '50'],
      { cmd: 'add-server', svc: key, dest: dest({ port: 8080, fwd: 0, weight: 3, uThreshold: 100, lThreshold: 50 }) },
    ],
    // -g (the default) and -i force the dest port to the service port.
    [['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080'], { cmd: 'add-server', svc: key, dest: dest() }],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080', '-g', '-w', '0'],
      { cmd: 'add-server', svc: key, dest: dest({ weight: 0 }) },
    ],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080', '-i'],
      { cmd: 'add-server', svc: key, dest: dest({ fwd: 2 }) },
    ],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1', '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-csum'],
      { cmd: 'add-server', svc: key, dest: dest({ fwd: 2, tunType: 1, tunPort: 6080, tunFlags: 1 }) },
    ],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '172.16.0.1', '-i', '--tun-type', 'gre', '--tun-nocsum'],
      { cmd: 'add-server', svc: key, dest: dest({ fwd: 2, tunType: 2 }) },
    ],
    // -e sends every field: without -m/-w the method goes back to DR and the weight to 1.
    [['-e', '-t', '192.168.0.1:80', '-r', '172.16.0.1'], { cmd: 'edit-server', svc: key, dest: dest() }],
    // -d does not force the port.
    [
      ['-d', '-t', '192.168.0.1:80', '-r', '172.16.0.1:8080'],
      { cmd: 'delete-server', svc: key, dest: { addr: '172.16.0.1', port: 8080 } },
    ],
    [
      ['-d', '-t', '192.168.0.1:80', '-r', '172.16.0.1'],
      { cmd: 'delete-server', svc: key, dest: { addr: '172.16.0.1', port: 80 } },
    ],
    // fwmark services have no port: the dest keeps its own, or 0.
    [
      ['-a', '-f', '7', '-r', '172.16.0.1'],
      { cmd: 'add-server', svc: { protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 7 }, dest: dest({ port: 0 }) },
    ],
    [
      ['-a', '-f', '7', '-r', '172.16.0.1:http', '-g'],
      { cmd: 'add-server', svc: { protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 7 }, dest: dest({ port: 80 }) },
    ],
    // -r before -t: the dest port defaults to the service port known at that point (none yet).
    [
      ['-a', '-r', '172.16.0.1', '-m', '-t', '192.168.0.1:80'],
      { cmd: 'add-server', svc: key, dest: dest({ port: 0, fwd: 0 }) },
    ],
  ])('%j', async (argv, expected) => {
    expect(await req(...argv)).toEqual(expected);
  });
});

describe('popt conventions', () => {
  const addRr = { cmd: 'add-service', svc: spec({ addr: '1.2.3.4' }) };
  it.each([
    [['-A', '-t1.2.3.4:80']],
    [['-A', '-t=1.2.3.4:80']],
    [['-At', '1.2.3.4:80']],
    [['-At1.2.3.4:80']],
    [['--add-service', '--tcp-service=1.2.3.4:80']],
  ])('%j', async (argv) => {
    expect(await req(...argv)).toEqual(addRr);
  });

  it('treats every word after -- as a leftover argument', async () => {
    expect((await failure('-A', '--', '-t', '1.2.3.4:80')).stderr).toBe('unexpected argument -t\n');
  });

  it('clusters list options after the command (-Ln, -lnc)', async () => {
    expect(await command('-Ln')).toEqual({ kind: 'list', format: { ...FMT, numeric: true } });
    expect(await command('-lnc')).toEqual({ kind: 'list-conns', format: { ...FMT, numeric: true } });
  });

  it('takes --socket anywhere in argv, as a separate or attached value', async () => {
    const a = await parseArgs(['-L', '--socket', '/tmp/a.sock', '-n'], resolver);
    const b = await parseArgs(['--socket=/tmp/b.sock', '-C'], resolver);
    expect(a).toEqual({
      ok: true,
      args: { socket: '/tmp/a.sock', command: { kind: 'list', format: { ...FMT, numeric: true } } },
    });
    expect(b).toEqual({
      ok: true,
      args: { socket: '/tmp/b.sock', command: { kind: 'request', request: { cmd: 'flush' } } },
    });
  });
});

describe('addresses and ports', () => {
  it.each([
    [['-A', '-t', 'web.example:http'], '10.1.2.3', 80],
    [['-A', '-t', 'web.example:https'], '10.1.2.3', 443],
    [['-A', '-u', '10.0.0.5:domain'], '10.0.0.5', 53],
    [['-A', '-t', '10.1:80'], '10.0.0.1', 80],
    [['-A', '-t', '0x7f.1:80'], '127.0.0.1', 80],
    [['-A', '-t', '010.0.0.1:80'], '8.0.0.1', 80],
    [['-A', '-t', '1.2.3.4:+80'], '1.2.3.4', 80],
    [['-A', '-t', '1.2.3.4: 80'], '1.2.3.4', 80],
  ])('%j → %s:%i', async (argv, addr, port) => {
    const r = await req(...argv);
    expect(r.cmd === 'add-service' && r.svc).toMatchObject({ addr, port });
  });

  it('reads a netmask given as a host name', async () => {
    const r = await req('-A', '-t', '1.2.3.4:80', '-p', '-M', 'mask.example');
    expect(r.cmd === 'add-service' && r.svc.netmask).toBe('255.255.0.0');
  });

  it('implements inet_aton and string_to_number as the C library does', () => {
    expect(inetAton('1.2.3.4')).toBe(0x01020304);
    expect(inetAton('1')).toBe(1);
    expect(inetAton('1.2.3.4 trailing')).toBe(0x01020304);
    expect(inetAton('1.2.3.256')).toBeNull();
    expect(inetAton('1.2.3.')).toBeNull();
    expect(inetAton('08.1.1.1')).toBeNull();
    expect(inetAton('')).toBeNull();
    expect(stringToNumber(' 42', 0, 100)).toBe(42);
    expect(stringToNumber('42 ', 0, 100)).toBeNull();
    expect(stringToNumber('-0', 0, 100)).toBe(0);
    expect(stringToNumber('101', 0, 100)).toBeNull();
  });

  it('parses services(5) text: first entry per port, names and aliases per protocol', () => {
    const db = parseServices('http 80/tcp www # web\nhttp 80/udp\nalt 80/tcp\n# comment\n');
    expect(db.port('www', 'tcp')).toBe(80);
    expect(db.port('http', 'udp')).toBe(80);
    expect(db.port('http', 'sctp')).toBeNull();
    expect(db.name(80, 'tcp')).toBe('http');
    expect(db.name(81, 'tcp')).toBeNull();
  });
});

describe('list, save, help and version', () => {
  it.each([
    [[], { kind: 'list', format: FMT }],
    [['-L'], { kind: 'list', format: FMT }],
    [['-l'], { kind: 'list', format: FMT }],
    [['--list', '--numeric'], { kind: 'list', format: { ...FMT, numeric: true } }],
    [['-L', '-n', '--stats', '--exact'], { kind: 'list', format: { ...FMT, numeric: true, stats: true, exact: true } }],
    [['-L', '--rate', '--nosort', '--sort'], { kind: 'list', format: { ...FMT, rate: true, nosort: true } }],
    [['-L', '--thresholds'], { kind: 'list', format: { ...FMT, thresholds: true } }],
    [['-L', '--persistent-conn'], { kind: 'list', format: { ...FMT, persistentConn: true } }],
    [['-L', '--tun-info'], { kind: 'list', format: { ...FMT, tunInfo: true } }],
    [['-L', '-n', '-c'], { kind: 'list-conns', format: { ...FMT, numeric: true } }],
    [['-L', '-c', '--persistent-conn'], { kind: 'list-conns', format: { ...FMT, persistentConn: true } }],
    [['-L', '--timeout'], { kind: 'list-timeouts' }],
    [
      ['-L', '-n', '-t', '192.168.0.1:80'],
      { kind: 'list-service', format: { ...FMT, numeric: true }, svc: svc('192.168.0.1', 80) },
    ],
    [['-S', '-n'], { kind: 'save', format: { ...FMT, numeric: true } }],
    [['-R'], { kind: 'restore' }],
    [['-L', '--daemon'], { kind: 'list-daemons' }],
    [['-L', '--checks'], { kind: 'list-checks' }],
    [['-L', '-n', '--checks'], { kind: 'list-checks' }],
    [
      ['--start-daemon', 'master'],
      {
        kind: 'request',
        request: {
          cmd: 'start-daemon',
          daemon: { state: 'master', mcastIfn: 'eth0', syncid: 0, maxlen: 0, group: '', port: 0, ttl: 0 },
        },
      },
    ],
    [
      [
        '--start-daemon',
        'backup',
        '--mcast-interface',
        'a-very-long-interface-name',
        '--syncid',
        '7',
        '--sync-maxlen',
        '9000',
        '--mcast-group',
        '239.1.2.3',
        '--mcast-port',
        '9000',
        '--mcast-ttl',
        '4',
      ],
      {
        kind: 'request',
        request: {
          cmd: 'start-daemon',
          daemon: {
            state: 'backup',
            mcastIfn: 'a-very-long-int',
            syncid: 7,
            maxlen: 9000,
            group: '239.1.2.3',
            port: 9000,
            ttl: 4,
          },
        },
      },
    ],
    [['--stop-daemon', 'backup'], { kind: 'request', request: { cmd: 'stop-daemon', state: 'backup' } }],
    [['--restore'], { kind: 'restore' }],
    [['-h'], { kind: 'help' }],
    [['--help', '--bogus'], { kind: 'help' }],
    [['-v'], { kind: 'version' }],
  ])('%j', async (argv, expected) => {
    expect(await command(...argv)).toEqual(expected);
  });
});

describe('command-line errors: ipvsadm text and exit status', () => {
  const TRY = "Try `lvsadm -h' or 'lvsadm --help' for more information.\n";
  it.each([
    // No command first: try-help, exit 255.
    [['foo'], TRY, 255],
    [['-n', '-L'], TRY, 255],
    [['-t', '1.2.3.4:80', '-A'], TRY, 255],
    [['--bogus'], TRY, 255],
    [['-t'], TRY, 255],
    // popt's own errors after the command: "<word>: <reason>", exit 255.
    [['-L', '--bogus'], '--bogus: unknown option\n', 255],
    [['-Lq'], '-Lq: unknown option\n', 255],
    [['-L', '--num'], '--num: unknown option\n', 255],
    [['-A', '-t'], '-t: missing argument\n', 255],
    [['-L', '--socket'], '--socket: missing argument\n', 255],
    // A second command reaches ipvsadm's default case.
    [['-A', '-t', '1.2.3.4:80', '-E'], "invalid option `-E'\n", 2],
    [['-L', '-h'], "invalid option `-h'\n", 2],
    [['-Ln', '-C'], "invalid option `-C'\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-t', '1.2.3.4:81'], "multiple 'service-address' options specified\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-u', '1.2.3.4:81'], "multiple 'service-address' options specified\n", 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-m', '-g'], "multiple 'forwarding-method' options specified\n", 2],
    [['-L', '-n', '-n'], "multiple 'numeric' options specified\n", 2],
    // Bad values.
    [['-A', '-t', '80'], 'illegal virtual server address[:port] specified\n', 2],
    [['-A', '-t', '1.2.3.4:65536'], 'illegal virtual server address[:port] specified\n', 2],
    [['-A', '-t', '1.2.3.4:'], 'illegal virtual server address[:port] specified\n', 2],
    [['-A', '-t', 'nosuch.example:80'], 'illegal virtual server address[:port] specified\n', 2],
    [['-A', '-t', '1.2.3.4:nosuchservice'], 'illegal virtual server address[:port] specified\n', 2],
    [['-A', '-u', '1.2.3.4:https'], 'illegal virtual server address[:port] specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.300'], 'illegal real server address[:port] specified\n', 2],
    [['-a', '-r', '10.0.0.1:http', '-t', '1.2.3.4:80'], 'illegal real server address[:port] specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-w', '65536'], 'illegal weight specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-w', '-1'], 'illegal weight specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-w', 'x'], 'illegal weight specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-x', 'many'], 'illegal u_threshold specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-y', '-2'], 'illegal l_threshold specified\n', 2],
    [['-A', '-t', '1.2.3.4:80', '-p', '0'], "invalid timeout value `0' specified\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-p', '2678401'], "invalid timeout value `2678401' specified\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-pn'], "invalid timeout value `n' specified\n", 2],
    [['-A', '-f', '0'], "invalid fwmark value `0' specified\n", 2],
    [['-A', '-f', 'mark'], "invalid fwmark value `mark' specified\n", 2],
    [['-A', '-f', '4294967296'], "invalid fwmark value `4294967296' specified\n", 2],
    [
      ['-A', '-t', '1.2.3.4:80', '-p', '-M', '255.255.255.999'],
      'illegal virtual server persistent mask specified\n',
      2,
    ],
    [['-A', '-t', '1.2.3.4:80', '-s', 'sh', '-b', 'sh-port,bogus'], "invalid scheduler flag `bogus'\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-s', 'rr', '-b', 'sh-port'], "incompatible scheduler flag `sh-port'\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-b', 'mh-fallback'], "incompatible scheduler flag `mh-fallback'\n", 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-i', '--tun-type', 'vxlan'], 'illegal tunnel type specified\n', 2],
    [['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-i', '--tun-port', '0'], 'illegal tunnel port specified\n', 2],
    // Semantic checks.
    [['-A', '-t', '1.2.3.4'], 'Zero port specified for non-persistent service\n', 2],
    [['-E', '-t', '1.2.3.4:0'], 'Zero port specified for non-persistent service\n', 2],
    [['-A', '-t', '1.2.3.4:80', '-o'], 'One-Packet Scheduling is only for UDP virtual services\n', 2],
    [
      ['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-m', '--tun-type', 'ipip'],
      'Tunnel options conflict with forward method\n',
      2,
    ],
    [
      ['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-i', '--tun-type', 'gue'],
      "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
      2,
    ],
    [
      ['-a', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-i', '--tun-port', '5000'],
      "Illegal 'tun-port' option with the 'ipip' tunnel type\n",
      2,
    ],
    [
      ['-e', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-i', '--tun-type', 'gre', '--tun-remcsum'],
      "Illegal 'tun-remcsum' option with the 'gre' tunnel type\n",
      2,
    ],
    [
      [
        '-a',
        '-t',
        '1.2.3.4:80',
        '-r',
        '10.0.0.1',
        '-i',
        '--tun-type',
        'gue',
        '--tun-port',
        '1',
        '--tun-csum',
        '--tun-nocsum',
      ],
      "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type\n",
      2,
    ],
    // The legality table.
    [['-A', '-s', 'rr'], "You need to supply the 'service-address' option for the 'add-service' command\n", 2],
    [['-a', '-t', '1.2.3.4:80'], "You need to supply the 'real-server' option for the 'add-server' command\n", 2],
    [['-d', '-r', '10.0.0.1'], "You need to supply the 'service-address' option for the 'delete-server' command\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-n'], "Illegal 'numeric' option with the 'add-service' command\n", 2],
    [['-A', '-t', '1.2.3.4:80', '-w', '2'], "Illegal 'weight' option with the 'add-service' command\n", 2],
    [['-D', '-t', '1.2.3.4:80', '-s', 'rr'], "Illegal 'scheduler' option with the 'delete-service' command\n", 2],
    [
      ['-d', '-t', '1.2.3.4:80', '-r', '10.0.0.1', '-m'],
      "Illegal 'forwarding-method' option with the 'delete-server' command\n",
      2,
    ],
    [['-C', '-n'], "Illegal 'numeric' option with the 'flush' command\n", 2],
    [['-Z', '-n'], "Illegal 'numeric' option with the 'zero' command\n", 2],
    [['-L', '-s', 'rr'], "Illegal 'scheduler' option with the 'list' command\n", 2],
    [['-S', '--stats'], "Illegal 'stats' option with the 'save' command\n", 2],
    [
      ['-L', '-c', '--timeout'],
      "The option 'timeout' conflicts with the 'connection' option in the 'list' command\n",
      2,
    ],
    [
      ['-L', '-t', '1.2.3.4:80', '-c'],
      "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
      2,
    ],
    [['-L', '-c', '--stats'], 'options conflicts in the list command\n', 2],
    [['-L', '--timeout', '--persistent-conn'], 'options conflicts in the list command\n', 2],
    [
      ['-L', '--checks', '--daemon'],
      "The option 'checks' conflicts with the 'daemon' option in the 'list' command\n",
      2,
    ],
    [['-L', '--checks', '--stats'], 'options conflicts in the list command\n', 2],
    [
      ['-a', '-t', '1.2.3.4:80', '-r', '5.6.7.8', '--checks'],
      "Illegal 'checks' option with the 'add-server' command\n",
      2,
    ],
    // --set and leftovers.
    [['--set', '1', '2'], '--set option requires 3 timeout values\n', 2],
    [['--set', '1', '2', 'x'], "invalid timeout value `x' specified\n", 2],
    [['--set', '1', '2', '2678401'], "invalid timeout value `2678401' specified\n", 2],
    [['--set', '1', '2', '3', '4'], 'unexpected argument 4\n', 2],
    [['--set', '1', '2', '3', '-n'], "Illegal 'numeric' option with the 'set' command\n", 2],
    [['-C', 'now'], 'unexpected argument now\n', 2],
    [['-L', '-'], 'unexpected argument -\n', 2],
    // IPv6 and daemon options.
    [['-A', '-6', '-f', '1'], '-6 used before -f\n\n', 2],
    [['--start-daemon', 'primary'], 'illegal start-daemon parameter specified\n', 2],
    [['--stop-daemon', 'primary'], 'illegal start_daemon specified\n', 2],
  ])('%j', async (argv, stderr, exitCode) => {
    const err = await failure(...argv);
    expect(err.stderr).toBe(stderr);
    expect(err.exitCode).toBe(exitCode);
  });

  it.each([[['--start-daemon', 'master', '--mcast-group', 'ff02::1']]])(
    '%j is valid ipvsadm but reported as unsupported (exit 2)',
    async (argv) => {
      const err = await failure(...argv);
      expect(err.kind).toBe('unsupported');
      expect(err.exitCode).toBe(2);
      expect(err.stderr).toMatch(/^lvsadm: .* is not supported by lvs-ts\n$/);
    },
  );
});

describe('IPv6 addresses, as ipvsadm parses them', () => {
  const v6 = (over: Partial<Record<string, unknown>> = {}) =>
    spec({ addr: '2001:db8::1', netmask: '128', af: 10, ...over });

  it.each([
    [['-A', '-t', '[2001:db8::1]:80', '-s', 'rr'], { cmd: 'add-service', svc: v6({ sched: 'rr' }) }],
    // inet_ntop's text travels, whatever the spelling; a port may be a service name.
    [['-A', '-t', '[2001:DB8:0:0::0001]:http'], { cmd: 'add-service', svc: v6() }],
    // Without brackets an IPv6 address has no port.
    [
      ['-A', '-t', '2001:db8::1:80', '-p'],
      { cmd: 'add-service', svc: v6({ addr: '2001:db8::1:80', port: 0, flags: 1, timeout: 360 }) },
    ],
    [
      ['-A', '-u', '[::ffff:10.0.0.1]:53', '-o'],
      { cmd: 'add-service', svc: v6({ addr: '::ffff:10.0.0.1', protocol: 17, port: 53, flags: 4 }) },
    ],
    // -M is a prefix length once the service is IPv6 (C's atoi: "64x" is 64).
    [
      ['-A', '-t', '[2001:db8::1]:80', '-p', '-M', '64'],
      { cmd: 'add-service', svc: v6({ flags: 1, timeout: 360, netmask: '64' }) },
    ],
    [
      ['-A', '-t', '[2001:db8::1]:80', '-p', '-M', ' 64x'],
      { cmd: 'add-service', svc: v6({ flags: 1, timeout: 360, netmask: '64' }) },
    ],
    // Before the address it is read as an IPv4 mask, and the IPv6 address then resets it to 128.
    [['-A', '-p', '-M', '64', '-t', '[2001:db8::1]:80'], { cmd: 'add-service', svc: v6({ flags: 1, timeout: 360 }) }],
    [
      ['-A', '-f', '1', '-6', '-p', '-M', '48'],
      {
        cmd: 'add-service',
        svc: v6({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 1, flags: 1, timeout: 360, netmask: '48' }),
      },
    ],
    [
      ['-D', '-f', '1', '-6'],
      { cmd: 'delete-service', svc: { protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 1, af: 10 } },
    ],
    // "[v4]:port" is the IPv4 address, and its port is lost (ipvsadm looks for it inside the brackets).
    [
      ['-A', '-t', '[10.0.0.1]:80', '-p'],
      { cmd: 'add-service', svc: spec({ addr: '10.0.0.1', port: 0, flags: 1, timeout: 360 }) },
    ],
    [
      ['-a', '-t', '[2001:db8::1]:80', '-r', '[2001:db8::10]:8080', '-m'],
      {
        cmd: 'add-server',
        svc: { protocol: 6, addr: '2001:db8::1', port: 80, fwmark: 0, af: 10 },
        dest: dest({ addr: '2001:db8::10', port: 8080, fwd: 0 }),
      },
    ],
    // Tunnels may cross families both ways.
    [
      ['-a', '-t', '[2001:db8::1]:80', '-r', '172.16.0.1', '-i'],
      {
        cmd: 'add-server',
        svc: { protocol: 6, addr: '2001:db8::1', port: 80, fwmark: 0, af: 10 },
        dest: dest({ fwd: 2 }),
      },
    ],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '2001:db8::10', '-i'],
      { cmd: 'add-server', svc: svc('192.168.0.1', 80), dest: dest({ addr: '2001:db8::10', fwd: 2 }) },
    ],
    [
      ['-a', '-f', '1', '-6', '-r', '[2001:db8::10]:0', '-g'],
      {
        cmd: 'add-server',
        svc: { protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 1, af: 10 },
        dest: dest({ addr: '2001:db8::10', port: 0 }),
      },
    ],
  ])('%j', async (argv, expected) => {
    expect(await req(...argv)).toEqual(expected);
  });

  it.each([
    [['-A', '-t', '[2001:db8::1]'], 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '[2001:db8::1]80'], 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '[2001:db8::1]:'], 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '[2001:db8::1]:nosuch'], 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '[fe80::1%eth0]:80'], 'illegal virtual server address[:port] specified\n'],
    [['-A', '-t', '2001:db8::1'], 'Zero port specified for non-persistent service\n'],
    [['-A', '-t', '[2001:db8::1]:80', '-p', '-M', '129'], 'illegal ipv6 netmask specified\n'],
    [['-A', '-t', '[2001:db8::1]:80', '-p', '-M', '0'], 'illegal ipv6 netmask specified\n'],
    [['-A', '-t', '[2001:db8::1]:80', '-p', '-M', 'ffff::'], 'illegal ipv6 netmask specified\n'],
    [
      ['-a', '-t', '[2001:db8::1]:80', '-r', '172.16.0.1', '-m'],
      'Different address family is allowed only for tunneling servers\n',
    ],
    [
      ['-a', '-t', '192.168.0.1:80', '-r', '[2001:db8::10]:80', '-g'],
      'Different address family is allowed only for tunneling servers\n',
    ],
    [['-e', '-f', '1', '-r', '2001:db8::10'], 'Different address family is allowed only for tunneling servers\n'],
    [['-a', '-t', '[2001:db8::1]:80', '-r', '[2001:db8::10'], 'illegal real server address[:port] specified\n'],
    [['--start-daemon', 'master', '--mcast-group', 'fe80::1'], "invalid IPv6 mcast-group `fe80::1'\n"],
    [['--start-daemon', 'master', '--mcast-group', 'ff02::1%eth0'], "invalid IPv6 mcast-group `ff02::1%eth0'\n"],
  ])('%j fails as ipvsadm does', async (argv, stderr) => {
    const err = await failure(...argv);
    expect(err.stderr).toBe(stderr);
    expect(err.exitCode).toBe(2);
  });
});
