// One errors module. The control plane throws LvsError subclasses carrying the errno name the
// kernel's IPVS would return; lvsadm maps (command, errno) to ipvsadm's text with ipvsStrerror,
// the same table libipvs keeps. Native errors carry `code` (errno name) and `syscall`.

export class LvsError extends Error {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super(message);
    this.name = 'LvsError';
  }
}

/** The object or service named does not exist (ESRCH). */
export class NoSuchServiceError extends LvsError {
  constructor(message = 'No such service') {
    super('ESRCH', message);
  }
}

/** Already exists (EEXIST). */
export class ExistsError extends LvsError {
  constructor(message: string) {
    super('EEXIST', message);
  }
}

/** Not found (ENOENT): a scheduler, a dest. */
export class NotFoundError extends LvsError {
  constructor(message: string) {
    super('ENOENT', message);
  }
}

/** Invalid argument (EINVAL). */
export class InvalidError extends LvsError {
  constructor(message: string) {
    super('EINVAL', message);
  }
}

/** The control-plane verbs, named as ipvsadm names its commands in messages. */
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

const BY_COMMAND: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'add-service': { EEXIST: 'Service already exists', ENOENT: 'Scheduler or persistence engine not found' },
  'edit-service': { ESRCH: 'No such service', ENOENT: 'Scheduler or persistence engine not found' },
  'delete-service': { ESRCH: 'No such service' },
  zero: { ESRCH: 'No such service' },
  'add-server': { ESRCH: 'Service not defined', EEXIST: 'Destination already exists' },
  'edit-server': { ESRCH: 'Service not defined', ENOENT: 'No such destination' },
  'delete-server': { ESRCH: 'Service not defined', ENOENT: 'No such destination' },
  'start-daemon': { EEXIST: 'Daemon has already run' },
  'stop-daemon': { ESRCH: 'No daemon is running' },
};

const ANY_COMMAND: Readonly<Record<string, string>> = {
  EPERM: 'Permission denied (you must be root)',
  EINVAL: 'Invalid operation.  Possibly wrong module version, address not unicast, ...',
  ENOPROTOOPT: 'Protocol not available',
  ENOMEM: 'Memory allocation problem',
  EOPNOTSUPP: 'Operation not supported with IPv6',
  EAFNOSUPPORT: 'Operation not supported with specified address family',
  EMSGSIZE: 'Module is wrong version',
};

/** ipvsadm's text for an errno returned by `command` (libipvs ipvs_strerror). */
export function ipvsStrerror(command: string, errno: string, fallback?: string): string {
  return BY_COMMAND[command]?.[errno] ?? ANY_COMMAND[errno] ?? fallback ?? errno;
}
