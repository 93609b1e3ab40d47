// The errors module as tables: every ipvsadm text lvs-ts prints, row by row against ipvsadm 1.31's
// wording (libipvs.c's ipvs_strerror table, ipvsadm.c's fail() calls; REFERENCE.md §2 quotes many
// of them), glibc's strerror texts, and every error class's name and stable code.

import { describe, expect, it } from 'vitest';
import {
  ArgsError,
  BadReplyError,
  ControlSocketError,
  type CtlCommand,
  ERROR_CODES,
  type Errno,
  ExistsError,
  errnoOf,
  InvalidError,
  IPVS_STRERROR_TABLE,
  IPVSADM_TEXT,
  ipvsStrerror,
  isErrno,
  LvsError,
  NoSuchServiceError,
  NotFoundError,
  STRERROR,
  UsageError,
} from '../../src/errors';

const COMMANDS: readonly CtlCommand[] = [
  'add-service',
  'edit-service',
  'delete-service',
  'flush',
  'add-server',
  'edit-server',
  'delete-server',
  'zero',
  'set',
  'list',
  'start-daemon',
  'stop-daemon',
];

describe('libipvs ipvs_strerror: (command, errno) -> ipvsadm text', () => {
  // libipvs.c (ipvsadm 1.31), in its order; null = the rows for any command. `list` stands for
  // ipvs_get_services, ipvs_get_dests and ipvs_get_service.
  const ROWS: [CtlCommand | null, Errno, string][] = [
    ['add-service', 'EEXIST', 'Service already exists'],
    ['add-service', 'ENOENT', 'Scheduler or persistence engine not found'],
    ['edit-service', 'ESRCH', 'No such service'],
    ['edit-service', 'ENOENT', 'Scheduler or persistence engine not found'],
    ['delete-service', 'ESRCH', 'No such service'],
    ['zero', 'ESRCH', 'No such service'],
    ['add-server', 'ESRCH', 'Service not defined'],
    ['add-server', 'EEXIST', 'Destination already exists'],
    ['edit-server', 'ESRCH', 'Service not defined'],
    ['edit-server', 'ENOENT', 'No such destination'],
    ['delete-server', 'ESRCH', 'Service not defined'],
    ['delete-server', 'ENOENT', 'No such destination'],
    ['start-daemon', 'EEXIST', 'Daemon has already run'],
    ['stop-daemon', 'ESRCH', 'No daemon is running'],
    ['list', 'ESRCH', 'No such service'],
    [null, 'EPERM', 'Permission denied (you must be root)'],
    [null, 'EINVAL', 'Invalid operation.  Possibly wrong module version, address not unicast, ...'],
    [null, 'ENOPROTOOPT', 'Protocol not available'],
    [null, 'ENOMEM', 'Memory allocation problem'],
    [null, 'EOPNOTSUPP', 'Operation not supported with IPv6'],
    [null, 'EAFNOSUPPORT', 'Operation not supported with specified address family'],
    [null, 'EMSGSIZE', 'Module is wrong version'],
  ];

  it('holds exactly libipvs rows, in libipvs order', () => {
    expect(IPVS_STRERROR_TABLE.map((r) => [r.command, r.errno, r.message])).toEqual(ROWS);
  });

  it.each(ROWS.filter(([command]) => command !== null))('%s failing with %s prints "%s"', (command, errno, text) => {
    expect(ipvsStrerror(command, errno)).toBe(text);
  });

  it.each(ROWS.filter(([command]) => command === null))('any command failing with %s prints "%s"', (_, errno, text) => {
    for (const command of [...COMMANDS, null]) expect(ipvsStrerror(command, errno)).toBe(text);
  });

  it('a command row wins over the rows for any command, and applies to its command only', () => {
    expect(ipvsStrerror('add-server', 'ESRCH')).toBe('Service not defined');
    expect(ipvsStrerror('delete-service', 'ESRCH')).toBe('No such service');
    expect(ipvsStrerror('add-service', 'ESRCH', 'from lvsd')).toBe('from lvsd');
    expect(ipvsStrerror(null, 'ESRCH')).toBe(STRERROR.ESRCH);
  });

  it("without a row: lvsd's message, else strerror's text, else the errno name", () => {
    expect(ipvsStrerror('start-daemon', 'ENODEV', 'No such device')).toBe('No such device');
    expect(ipvsStrerror('flush', 'ENOENT')).toBe('No such file or directory');
    expect(ipvsStrerror('set', 'ERANGE')).toBe('Numerical result out of range');
    expect(ipvsStrerror('flush', 'EWHATEVER')).toBe('EWHATEVER');
  });
});

describe("ipvsadm's own messages (ipvsadm.c)", () => {
  // [key, arguments, ipvsadm's text]. Every key of IPVSADM_TEXT has a row.
  const ROWS: [keyof typeof IPVSADM_TEXT, string[], string][] = [
    ['tryHelp', ['ipvsadm'], "Try `ipvsadm -h' or 'ipvsadm --help' for more information."],
    [
      'cannotInit',
      ['Protocol not available'],
      "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?",
    ],
    ['multipleOption', ['weight'], "multiple 'weight' options specified"],
    [
      'optionRequired',
      ['service-address', 'add-service'],
      "You need to supply the 'service-address' option for the 'add-service' command",
    ],
    ['optionIllegal', ['weight', 'add-service'], "Illegal 'weight' option with the 'add-service' command"],
    [
      'optionConflict',
      ['timeout', 'connection', 'list'],
      "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
    ],
    ['tunOptionRequired', ['tun-port', 'gue'], "You need to supply the 'tun-port' option for the 'gue' tunnel type"],
    ['tunOptionIllegal', ['tun-port', 'ipip'], "Illegal 'tun-port' option with the 'ipip' tunnel type"],
    [
      'tunOptionConflict',
      ['tun-csum', 'tun-nocsum', 'gre'],
      "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
    ],
    ['badTimeout', ['abc'], "invalid timeout value `abc' specified"],
    ['badFwmark', ['0'], "invalid fwmark value `0' specified"],
    ['badSchedFlag', ['flag-9'], "invalid scheduler flag `flag-9'"],
    ['incompatibleSchedFlag', ['sh-port'], "incompatible scheduler flag `sh-port'"],
    ['badService', [], 'illegal virtual server address[:port] specified'],
    ['badNetmask', [], 'illegal virtual server persistent mask specified'],
    ['badNetmask6', [], 'illegal ipv6 netmask specified'],
    ['badRealServer', [], 'illegal real server address[:port] specified'],
    ['badWeight', [], 'illegal weight specified'],
    ['badUThreshold', [], 'illegal u_threshold specified'],
    ['badLThreshold', [], 'illegal l_threshold specified'],
    ['badSyncid', [], 'illegal syncid specified'],
    ['ipv6BeforeFwmark', [], '-6 used before -f\n'],
    ['badMcastGroup6', ['fe80::1'], "invalid IPv6 mcast-group `fe80::1'"],
    ['badMcastGroup4', ['10.0.0.1'], "invalid IPv4 mcast-group `10.0.0.1'"],
    ['badMcastPort', [], 'illegal mcast-port specified'],
    ['badMcastTtl', [], 'illegal mcast-ttl specified'],
    ['badSyncMaxlen', [], 'illegal sync-maxlen specified'],
    ['badTunType', [], 'illegal tunnel type specified'],
    ['badTunPort', [], 'illegal tunnel port specified'],
    ['badStartDaemon', [], 'illegal start-daemon parameter specified'],
    ['badStopDaemon', [], 'illegal start_daemon specified'],
    ['invalidOption', ['-A'], "invalid option `-A'"],
    ['setNeedsThree', [], '--set option requires 3 timeout values'],
    ['unexpectedArgument', ['extra'], 'unexpected argument extra'],
    ['zeroPort', [], 'Zero port specified for non-persistent service'],
    ['opsNotUdp', [], 'One-Packet Scheduling is only for UDP virtual services'],
    ['tunOptionsNotTunnel', [], 'Tunnel options conflict with forward method'],
    ['familyNotTunnel', [], 'Different address family is allowed only for tunneling servers'],
    ['listConflict', [], 'options conflicts in the list command'],
  ];

  it('has a row here for every text', () => {
    expect(ROWS.map(([key]) => key).sort()).toEqual(Object.keys(IPVSADM_TEXT).sort());
  });

  it.each(ROWS)('%s %j is "%s"', (key, args, text) => {
    const entry: string | ((...a: string[]) => string) = IPVSADM_TEXT[key];
    expect(typeof entry === 'function' ? entry(...args) : entry).toBe(text);
    if (typeof entry === 'string') expect(args).toEqual([]);
    else expect(entry.length).toBe(args.length);
  });
});

describe('errno names', () => {
  // glibc's strerror texts.
  const ROWS: [Errno, string][] = [
    ['EPERM', 'Operation not permitted'],
    ['ENOENT', 'No such file or directory'],
    ['ESRCH', 'No such process'],
    ['EACCES', 'Permission denied'],
    ['EEXIST', 'File exists'],
    ['ENODEV', 'No such device'],
    ['EINVAL', 'Invalid argument'],
    ['ERANGE', 'Numerical result out of range'],
    ['ENOMEM', 'Cannot allocate memory'],
    ['EMSGSIZE', 'Message too long'],
    ['ENOPROTOOPT', 'Protocol not available'],
    ['EOPNOTSUPP', 'Operation not supported'],
    ['EAFNOSUPPORT', 'Address family not supported by protocol'],
  ];

  it('STRERROR holds glibc strerror text of each errno name used', () => {
    expect(Object.entries(STRERROR)).toEqual(ROWS);
    for (const [errno] of ROWS) expect(isErrno(errno)).toBe(true);
    expect(isErrno('toString')).toBe(false);
    expect(isErrno('EWHATEVER')).toBe(false);
  });

  it("errnoOf reads an error's errno name, and nothing else", () => {
    expect(errnoOf(new ExistsError('x'))).toBe('EEXIST');
    expect(errnoOf(Object.assign(new Error('x'), { errno: 'ENOENT' }))).toBe('ENOENT');
    expect(errnoOf(Object.assign(new Error('x'), { errno: -2 }))).toBeUndefined();
    expect(errnoOf(new Error('x'))).toBeUndefined();
    expect(errnoOf(null)).toBeUndefined();
    expect(errnoOf('EEXIST')).toBeUndefined();
  });
});

describe('error classes', () => {
  // [error, its class, name, code, errno (LvsError family), message]
  const ROWS: [Error, new (...args: never[]) => Error, string, string, string | undefined, string][] = [
    [new LvsError('ENODEV'), LvsError, 'LvsError', 'LVS_ERR', 'ENODEV', 'No such device'],
    [new LvsError('ERANGE', 'weight out of range'), LvsError, 'LvsError', 'LVS_ERR', 'ERANGE', 'weight out of range'],
    [
      new NoSuchServiceError(),
      NoSuchServiceError,
      'NoSuchServiceError',
      'LVS_ERR_NO_SUCH_SERVICE',
      'ESRCH',
      'No such service',
    ],
    [
      new ExistsError('Service already exists'),
      ExistsError,
      'ExistsError',
      'LVS_ERR_EXISTS',
      'EEXIST',
      'Service already exists',
    ],
    [new NotFoundError('no such dest'), NotFoundError, 'NotFoundError', 'LVS_ERR_NOT_FOUND', 'ENOENT', 'no such dest'],
    [new InvalidError('bad address'), InvalidError, 'InvalidError', 'LVS_ERR_INVALID', 'EINVAL', 'bad address'],
    [
      new ArgsError('fail', 'illegal weight specified\n', 2),
      ArgsError,
      'ArgsError',
      'LVS_ERR_ARGS',
      undefined,
      'illegal weight specified',
    ],
    [
      new UsageError('missing mode: dr or tun'),
      UsageError,
      'UsageError',
      'LVS_ERR_USAGE',
      undefined,
      'missing mode: dr or tun',
    ],
    [
      new ControlSocketError('connect', '/run/lvs/lvsd.sock', 'ECONNREFUSED', 'connect ECONNREFUSED'),
      ControlSocketError,
      'ControlSocketError',
      'LVS_ERR_CONTROL_SOCKET',
      'ECONNREFUSED',
      'connect ECONNREFUSED',
    ],
    [
      new BadReplyError('not a snapshot'),
      BadReplyError,
      'BadReplyError',
      'LVS_ERR_BAD_REPLY',
      undefined,
      'not a snapshot',
    ],
  ];

  it.each(ROWS)(
    '%s is an Error of its class, with its name, stable code, errno and message',
    (err, cls, name, code, errno, message) => {
      expect(err).toBeInstanceOf(Error);
      expect(err).toBeInstanceOf(cls);
      expect(err).toMatchObject({ name, code, message });
      expect(errnoOf(err)).toBe(errno);
    },
  );

  it('every class has its own code, and every code a class', () => {
    const codes = ROWS.map(([, , name, code]) => [name, code]);
    expect(Object.fromEntries(codes)).toEqual(ERROR_CODES);
    expect(new Set(Object.values(ERROR_CODES)).size).toBe(Object.keys(ERROR_CODES).length);
  });

  it('only the kernel-errno classes are LvsErrors (what lvsd sends back as errno)', () => {
    const family = ['LvsError', 'NoSuchServiceError', 'ExistsError', 'NotFoundError', 'InvalidError'];
    for (const [err, , name] of ROWS) expect(err instanceof LvsError).toBe(family.includes(name));
  });

  it('ArgsError keeps the exact stderr text and exit status', () => {
    const err = new ArgsError('try-help', `${IPVSADM_TEXT.tryHelp('lvsadm')}\n`, 255);
    expect(err).toMatchObject({
      kind: 'try-help',
      stderr: "Try `lvsadm -h' or 'lvsadm --help' for more information.\n",
      exitCode: 255,
    });
  });
});
