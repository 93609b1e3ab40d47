// The changes lvs-realserver makes to the host, kept as a journal in a state file so that they can
// always be undone: by the same run when it stops (SIGINT/SIGTERM/SIGHUP), or by `--down` or the
// next start when a run was killed.
//
// Every change is recorded *before* it is applied (the state file is written atomically: tmp +
// rename), so a kill between the two leaves a record whose undo is harmless. Things that were
// already as wanted (an address already present, a sysctl already at the value) are not changes:
// they are neither recorded nor undone. Undo goes in reverse order and restores each sysctl to the
// exact value it had before.
//
// All host access goes through the narrow HostOps interface (host-ops.ts for the real one), so the
// journal logic is unit-tested without root.

import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { NetnsId } from '../run-dir';

/** One change to the host. */
export type HostChange =
  /** An address (`A.B.C.D/32`) added to an interface. */
  | { kind: 'addr'; cidr: string; dev: string }
  /** A /proc/sys file changed from `old` to `value`. */
  | { kind: 'sysctl'; path: string; old: string; value: string }
  /** A (non-persistent) TUN device created; it goes away with the process that holds it. */
  | { kind: 'tun'; dev: string };

/** What the state file holds. */
export interface HostState {
  version: 1;
  mode: string;
  /** The process that made the changes. */
  pid: number;
  /** The network namespace they were made in (absent in journals of older versions). */
  netns?: NetnsId;
  changes: HostChange[];
}

/** The host as lvs-realserver sees it. */
export interface HostOps {
  /** Run `ip` with these arguments; resolves with its stdout, rejects with its stderr in the message. */
  ip(args: readonly string[]): Promise<string>;
  /** The value of a /proc/sys file (trimmed), or undefined when it does not exist. */
  readSysctl(path: string): string | undefined;
  writeSysctl(path: string, value: string): void;
  /** Whether process `pid` is alive and is an lvs-realserver. */
  isRealserver(pid: number): boolean;
}

export interface HostLog {
  /** One line per change made or undone. */
  info(msg: string): void;
  /** Something could not be done; the rest goes on. */
  warn(msg: string): void;
}

const PROC_SYS = '/proc/sys/';

/** '/proc/sys/net/ipv4/conf/all/arp_ignore' -> 'net.ipv4.conf.all.arp_ignore' (as sysctl names it). */
export function sysctlName(path: string): string {
  return (path.startsWith(PROC_SYS) ? path.slice(PROC_SYS.length) : path).replaceAll('/', '.');
}

/** The /proc/sys file of net.ipv4.conf.<dev>.<key>. */
export function ipv4ConfPath(dev: string, key: string): string {
  return `${PROC_SYS}net/ipv4/conf/${dev}/${key}`;
}

/** Read a state file: undefined when there is none; throws when it is not one of ours. */
export function readState(file: string): HostState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let state: HostState;
  try {
    state = JSON.parse(text) as HostState;
  } catch {
    throw new Error(`${file} is not an lvs-realserver state file (not JSON)`);
  }
  if (state?.version !== 1 || !Array.isArray(state.changes) || typeof state.pid !== 'number') {
    throw new Error(`${file} is not an lvs-realserver state file`);
  }
  return state;
}

function writeState(file: string, state: HostState): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

function removeState(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** `ip -j -4 addr show dev <dev>` has `cidr` on it. False when the device does not exist. */
async function hasAddress(ops: HostOps, cidr: string, dev: string): Promise<boolean> {
  let links: { addr_info?: { local?: string; prefixlen?: number }[] }[];
  try {
    links = JSON.parse(await ops.ip(['-j', cidr.includes(':') ? '-6' : '-4', 'addr', 'show', 'dev', dev]));
  } catch {
    return false;
  }
  return links.some((l) => (l.addr_info ?? []).some((a) => `${a.local}/${a.prefixlen}` === cidr));
}

async function linkExists(ops: HostOps, dev: string): Promise<boolean> {
  try {
    await ops.ip(['link', 'show', 'dev', dev]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Undo one change. `release` closes what this process holds for a TUN device (its fd): given only
 * for the live run that created it. Without it, a TUN device still present belongs to someone else
 * (ours went away with the process that was killed) and is left alone.
 */
async function undoChange(ops: HostOps, c: HostChange, log: HostLog, release?: () => void): Promise<void> {
  switch (c.kind) {
    case 'addr':
      if (!(await hasAddress(ops, c.cidr, c.dev))) return; // went away with its device, or removed by hand
      try {
        await ops.ip(['addr', 'del', c.cidr, 'dev', c.dev]);
        log.info(`removed ${c.cidr} from ${c.dev}`);
      } catch (err) {
        log.warn(`could not remove ${c.cidr} from ${c.dev}: ${(err as Error).message}`);
      }
      return;
    case 'sysctl': {
      const now = ops.readSysctl(c.path);
      if (now === undefined || now === c.old) return; // its interface is gone, or it is already back
      try {
        ops.writeSysctl(c.path, c.old);
        log.info(`${sysctlName(c.path)} ${now} -> ${c.old} (restored)`);
      } catch (err) {
        log.warn(`could not restore ${sysctlName(c.path)} to ${c.old}: ${(err as Error).message}`);
      }
      return;
    }
    case 'tun':
      if (release !== undefined) {
        try {
          release();
          log.info(`removed TUN device ${c.dev}`);
        } catch (err) {
          log.warn(`could not close TUN device ${c.dev}: ${(err as Error).message}`);
        }
      } else if (await linkExists(ops, c.dev)) {
        log.warn(`${c.dev} exists but is not the TUN device of the recorded run (that one closed with it): left alone`);
      }
      return;
  }
}

/** Undo the changes of a state file a previous run left (it was killed), newest first. */
export async function undoState(ops: HostOps, state: HostState, log: HostLog): Promise<void> {
  for (let i = state.changes.length - 1; i >= 0; i--) await undoChange(ops, state.changes[i], log);
}

/** The journal of one live run. */
export class HostChanges {
  private readonly state: HostState;
  private readonly releases = new Map<string, () => void>();

  constructor(
    private readonly ops: HostOps,
    /** The state file (written atomically on every change). */
    readonly file: string,
    mode: string,
    private readonly log: HostLog,
    pid = process.pid,
    netns?: NetnsId,
  ) {
    this.state = { version: 1, mode, pid, netns, changes: [] };
  }

  /** The changes made so far, oldest first. */
  get changes(): readonly HostChange[] {
    return this.state.changes;
  }

  /** Write the (empty) state file: from here on, what this run changes can be undone by another. */
  begin(): void {
    writeState(this.file, this.state);
  }

  private record(c: HostChange): void {
    this.state.changes.push(c);
    writeState(this.file, this.state);
  }

  private forget(c: HostChange): void {
    const i = this.state.changes.lastIndexOf(c);
    if (i >= 0) this.state.changes.splice(i, 1);
    writeState(this.file, this.state);
  }

  /** Add address `cidr` (A.B.C.D/32) to `dev`, unless it is already there. */
  async addAddress(cidr: string, dev: string): Promise<void> {
    if (await hasAddress(this.ops, cidr, dev)) {
      this.log.info(`${cidr} is already on ${dev}: left as it is`);
      return;
    }
    const c: HostChange = { kind: 'addr', cidr, dev };
    this.record(c);
    try {
      await this.ops.ip(['addr', 'add', cidr, 'dev', dev]);
    } catch (err) {
      this.forget(c);
      throw err;
    }
    this.log.info(`added ${cidr} on ${dev}`);
  }

  /** Set a /proc/sys file to `value`, remembering the value it had. Throws if it does not exist. */
  setSysctl(path: string, value: string): void {
    const old = this.ops.readSysctl(path);
    if (old === undefined) throw new Error(`${sysctlName(path)} does not exist (${path})`);
    if (old === value) return;
    const c: HostChange = { kind: 'sysctl', path, old, value };
    this.record(c);
    try {
      this.ops.writeSysctl(path, value);
    } catch (err) {
      this.forget(c);
      throw err;
    }
    this.log.info(`${sysctlName(path)} ${old} -> ${value}`);
  }

  /**
   * Raise a numeric /proc/sys value to at least `min` (a higher, stricter value is left alone),
   * remembering the value it had. Throws if it does not exist.
   */
  raiseSysctl(path: string, min: number): void {
    const old = this.ops.readSysctl(path);
    if (old !== undefined && Number(old) >= min) return;
    this.setSysctl(path, String(min));
  }

  /** Record a TUN device this process created; `release` closes its fd (the device goes with it). */
  recordTun(dev: string, release: () => void): void {
    this.releases.set(dev, release);
    this.record({ kind: 'tun', dev });
    this.log.info(`created TUN device ${dev}`);
  }

  /**
   * Undo every change, newest first, keeping the state file in step (a kill half way leaves an
   * accurate record), then remove the state file.
   */
  async undoAll(): Promise<void> {
    const changes = this.state.changes;
    while (changes.length > 0) {
      const c = changes[changes.length - 1];
      await undoChange(this.ops, c, this.log, c.kind === 'tun' ? this.releases.get(c.dev) : undefined);
      changes.pop();
      writeState(this.file, this.state);
    }
    removeState(this.file);
  }
}

/** Remove a state file (after undoState). */
export function removeStateFile(file: string): void {
  removeState(file);
}
