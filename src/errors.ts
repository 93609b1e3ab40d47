// One errors module (STYLE 13, after undici's lib/core/errors.js):
//   - every Error class lvs-ts throws outside the packet path, each with a stable `code`
//     (ERROR_CODES): match on the class or the code, never on message text;
//   - the errno names that cross the control socket, as one type (Errno) with glibc's texts;
//   - ipvsadm's error texts as tables: libipvs's ipvs_strerror rows by command and errno
//     (IPVS_STRERROR_TABLE, looked up by ipvsStrerror) and ipvsadm's own messages (IPVSADM_TEXT).
// test/unit/errors.test.ts checks every row of both tables against ipvsadm's wording.
//
// The control plane throws LvsError subclasses carrying the errno name the kernel's IPVS would
// return; lvsadm turns (command, errno) into ipvsadm's text as libipvs does. Native errors (the
// addon's NativeError, src/native/addon.ts) carry `code` (the errno name) and `syscall`.

// ---------------------------------------------------------------------------------------------
// Errno names

/** The errno names lvs-ts passes around (LvsError, control-socket replies), with glibc's strerror text. */
export const STRERROR = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ERANGE: 'Numerical result out of range',
  ENOMEM: 'Cannot allocate memory',
  EMSGSIZE: 'Message too long',
  ENOPROTOOPT: 'Protocol not available',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
} as const;
export type Errno = keyof typeof STRERROR;

/** True if `s` is one of the errno names of STRERROR. */
export function isErrno(s: string): s is Errno {
  return Object.hasOwn(STRERROR, s);
}

/** The errno name an error carries (LvsError's `errno`, or any object's string `errno`), if any. */
export function errnoOf(err: unknown): string | undefined {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'string' ? errno : undefined;
}

// ---------------------------------------------------------------------------------------------
// Error classes

/** The stable `code` of each error class. */
export const ERROR_CODES = {
  LvsError: 'LVS_ERR',
  NoSuchServiceError: 'LVS_ERR_NO_SUCH_SERVICE',
  ExistsError: 'LVS_ERR_EXISTS',
  NotFoundError: 'LVS_ERR_NOT_FOUND',
  InvalidError: 'LVS_ERR_INVALID',
  ArgsError: 'LVS_ERR_ARGS',
  UsageError: 'LVS_ERR_USAGE',
  ControlSocketError: 'LVS_ERR_CONTROL_SOCKET',
  BadReplyError: 'LVS_ERR_BAD_REPLY',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/**
 * The control plane refused something, for the reason the kernel's IPVS gives as `errno` (also
 * thrown by parsers of control-plane input: InvalidError). The message defaults to strerror's.
 */
export class LvsError extends Error {
  readonly code: ErrorCode = ERROR_CODES.LvsError;

  constructor(
    readonly errno: Errno,
    message: string = STRERROR[errno],
  ) {
    super(message);
    this.name = 'LvsError';
  }
}

/** The object or service named does not exist (ESRCH). */
export class NoSuchServiceError extends LvsError {
  override readonly code: ErrorCode = ERROR_CODES.NoSuchServiceError;

  constructor(message = 'No such service') {
    super('ESRCH', message);
    this.name = 'NoSuchServiceError';
  }
}

/** Already exists (EEXIST). */
export class ExistsError extends LvsError {
  override readonly code: ErrorCode = ERROR_CODES.ExistsError;

  constructor(message: string) {
    super('EEXIST', message);
    this.name = 'ExistsError';
  }
}

/** Not found (ENOENT): a scheduler, a dest. */
export class NotFoundError extends LvsError {
  override readonly code: ErrorCode = ERROR_CODES.NotFoundError;

  constructor(message: string) {
    super('ENOENT', message);
    this.name = 'NotFoundError';
  }
}

/** Invalid argument (EINVAL). */
export class InvalidError extends LvsError {
  override readonly code: ErrorCode = ERROR_CODES.InvalidError;

  constructor(message: string) {
    super('EINVAL', message);
    this.name = 'InvalidError';
  }
}

/**
 * How lvsadm's command line failed, as ipvsadm fails:
 * - fail: ipvsadm's fail(): the text on stderr, exit 2;
 * - try-help: no or misplaced command: "Try `lvsadm -h' ...", exit 255;
 * - popt: an option popt itself rejects ("-q: unknown option"), exit 255;
 * - unsupported: valid for ipvsadm but not (yet) for lvs-ts, exit 2.
 */
export type ParseFailureKind = 'fail' | 'try-help' | 'popt' | 'unsupported';

/** lvsadm's command line cannot be run: `stderr` is exactly what ipvsadm prints, `exitCode` its status. */
export class ArgsError extends Error {
  readonly code: ErrorCode = ERROR_CODES.ArgsError;

  constructor(
    readonly kind: ParseFailureKind,
    readonly stderr: string,
    readonly exitCode: number,
  ) {
    super(stderr.trimEnd());
    this.name = 'ArgsError';
  }
}

/** A command line lvs-realserver cannot act on; the message says why. */
export class UsageError extends Error {
  readonly code: ErrorCode = ERROR_CODES.UsageError;

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Why a control-socket request got no usable reply:
 * - connect: the socket could not be reached (`errno`: ENOENT, ECONNREFUSED, EACCES, ...);
 * - timeout: no complete reply within the time allowed;
 * - protocol: the connection closed early or the reply was not a JSON response.
 */
export type ControlSocketErrorKind = 'connect' | 'timeout' | 'protocol';

/** A request to lvsd over its control socket failed (src/ctl/client.ts). */
export class ControlSocketError extends Error {
  readonly code: ErrorCode = ERROR_CODES.ControlSocketError;

  constructor(
    readonly kind: ControlSocketErrorKind,
    readonly socketPath: string,
    /** The socket call's errno name, as Node reports it (any errno, not only Errno's). */
    readonly errno: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ControlSocketError';
  }
}

/** lvsd answered, but not with what the request asks for (a listing that is not a snapshot, ...). */
export class BadReplyError extends Error {
  readonly code: ErrorCode = ERROR_CODES.BadReplyError;

  constructor(message: string) {
    super(message);
    this.name = 'BadReplyError';
  }
}

// ---------------------------------------------------------------------------------------------
// ipvsadm's texts

/**
 * The commands libipvs's error table tells apart (its `ipvs_func`), named as ipvsadm names its
 * commands in messages. `list` stands for ipvs_get_services, ipvs_get_dests and ipvs_get_service.
 */
export type CtlCommand =
  | 'add-service'
  | 'edit-service'
  | 'delete-service'
  | 'flush'
  | 'add-server'
  | 'edit-server'
  | 'delete-server'
  | 'zero'
  | 'set'
  | 'list'
  | 'start-daemon'
  | 'stop-daemon';

export interface StrerrorRow {
  /** The command the row is for; null: any command. */
  command: CtlCommand | null;
  errno: Errno;
  message: string;
}

/**
 * libipvs's ipvs_strerror table (ipvsadm 1.31), row for row and in its order: the first row whose
 * command (or null) and errno match gives the text.
 */
export const IPVS_STRERROR_TABLE: readonly StrerrorRow[] = [
  { command: 'add-service', errno: 'EEXIST', message: 'Service already exists' },
  { command: 'add-service', errno: 'ENOENT', message: 'Scheduler or persistence engine not found' },
  { command: 'edit-service', errno: 'ESRCH', message: 'No such service' },
  { command: 'edit-service', errno: 'ENOENT', message: 'Scheduler or persistence engine not found' },
  { command: 'delete-service', errno: 'ESRCH', message: 'No such service' },
  { command: 'zero', errno: 'ESRCH', message: 'No such service' },
  { command: 'add-server', errno: 'ESRCH', message: 'Service not defined' },
  { command: 'add-server', errno: 'EEXIST', message: 'Destination already exists' },
  { command: 'edit-server', errno: 'ESRCH', message: 'Service not defined' },
  { command: 'edit-server', errno: 'ENOENT', message: 'No such destination' },
  { command: 'delete-server', errno: 'ESRCH', message: 'Service not defined' },
  { command: 'delete-server', errno: 'ENOENT', message: 'No such destination' },
  { command: 'start-daemon', errno: 'EEXIST', message: 'Daemon has already run' },
  { command: 'stop-daemon', errno: 'ESRCH', message: 'No daemon is running' },
  { command: 'list', errno: 'ESRCH', message: 'No such service' },
  { command: null, errno: 'EPERM', message: 'Permission denied (you must be root)' },
  {
    command: null,
    errno: 'EINVAL',
    message: 'Invalid operation.  Possibly wrong module version, address not unicast, ...',
  },
  { command: null, errno: 'ENOPROTOOPT', message: 'Protocol not available' },
  { command: null, errno: 'ENOMEM', message: 'Memory allocation problem' },
  { command: null, errno: 'EOPNOTSUPP', message: 'Operation not supported with IPv6' },
  { command: null, errno: 'EAFNOSUPPORT', message: 'Operation not supported with specified address family' },
  { command: null, errno: 'EMSGSIZE', message: 'Module is wrong version' },
];

/**
 * ipvsadm's text for `errno` returned to `command` (libipvs ipvs_strerror; `command` null: no
 * command's rows, as when ipvs_init fails). Without a row: `fallback` (lvsd's own message), else
 * strerror's text, else the errno name itself.
 */
export function ipvsStrerror(command: CtlCommand | null, errno: string, fallback?: string): string {
  for (const row of IPVS_STRERROR_TABLE) {
    if ((row.command === null || row.command === command) && row.errno === errno) return row.message;
  }
  return fallback ?? (isErrno(errno) ? STRERROR[errno] : errno);
}

/**
 * ipvsadm 1.31's own messages (ipvsadm.c: its fail() calls, tryhelp_exit, the ipvs_init failure
 * in main), by the check that prints them, without the final newline; the arguments fill its
 * `%s`. lvsadm prints them unchanged.
 */
export const IPVSADM_TEXT = {
  /** tryhelp_exit. */
  tryHelp: (program: string) => `Try \`${program} -h' or '${program} --help' for more information.`,
  /** main, when ipvs_init fails; `why` is ipvsStrerror(null, errno). */
  cannotInit: (why: string) =>
    `Can't initialize ipvs: ${why}\nAre you sure that IP Virtual Server is built in the kernel or as module?`,
  /** set_option. */
  multipleOption: (option: string) => `multiple '${option}' options specified`,
  /** generic_opt_check. */
  optionRequired: (option: string, command: string) =>
    `You need to supply the '${option}' option for the '${command}' command`,
  optionIllegal: (option: string, command: string) => `Illegal '${option}' option with the '${command}' command`,
  optionConflict: (option: string, first: string, command: string) =>
    `The option '${option}' conflicts with the '${first}' option in the '${command}' command`,
  /** tunnel_opt_check. */
  tunOptionRequired: (option: string, type: string) =>
    `You need to supply the '${option}' option for the '${type}' tunnel type`,
  tunOptionIllegal: (option: string, type: string) => `Illegal '${option}' option with the '${type}' tunnel type`,
  tunOptionConflict: (option: string, first: string, type: string) =>
    `The option '${option}' conflicts with the '${first}' option in the '${type}' tunnel type`,
  /** parse_options, value by value. */
  badTimeout: (value: string) => `invalid timeout value \`${value}' specified`,
  badFwmark: (value: string) => `invalid fwmark value \`${value}' specified`,
  badSchedFlag: (flag: string) => `invalid scheduler flag \`${flag}'`,
  incompatibleSchedFlag: (flag: string) => `incompatible scheduler flag \`${flag}'`,
  badService: 'illegal virtual server address[:port] specified',
  badNetmask: 'illegal virtual server persistent mask specified',
  badNetmask6: 'illegal ipv6 netmask specified',
  badRealServer: 'illegal real server address[:port] specified',
  badWeight: 'illegal weight specified',
  badUThreshold: 'illegal u_threshold specified',
  badLThreshold: 'illegal l_threshold specified',
  badSyncid: 'illegal syncid specified',
  /** ipvsadm's text carries an extra newline. */
  ipv6BeforeFwmark: '-6 used before -f\n',
  badMcastGroup6: (group: string) => `invalid IPv6 mcast-group \`${group}'`,
  badMcastGroup4: (group: string) => `invalid IPv4 mcast-group \`${group}'`,
  badMcastPort: 'illegal mcast-port specified',
  badMcastTtl: 'illegal mcast-ttl specified',
  badSyncMaxlen: 'illegal sync-maxlen specified',
  badTunType: 'illegal tunnel type specified',
  badTunPort: 'illegal tunnel port specified',
  badStartDaemon: 'illegal start-daemon parameter specified',
  badStopDaemon: 'illegal start_daemon specified',
  invalidOption: (word: string) => `invalid option \`${word}'`,
  setNeedsThree: '--set option requires 3 timeout values',
  unexpectedArgument: (word: string) => `unexpected argument ${word}`,
  /** process_options, after parsing. */
  zeroPort: 'Zero port specified for non-persistent service',
  opsNotUdp: 'One-Packet Scheduling is only for UDP virtual services',
  tunOptionsNotTunnel: 'Tunnel options conflict with forward method',
  familyNotTunnel: 'Different address family is allowed only for tunneling servers',
  listConflict: 'options conflicts in the list command',
} as const;
