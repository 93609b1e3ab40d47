// Where lvs-ts keeps its run-time files (control socket, leftovers records, /proc files, real
// server journals): one directory per network namespace, as kernel IPVS keeps one table per
// network namespace. `ip netns exec NS lvsadm ...` then reaches NS's lvsd with no flag, as
// `ip netns exec NS ipvsadm ...` reaches NS's IPVS, and two namespaces never share a file.
//
//   the host's network namespace (PID 1's)   /run/lvs/
//   any other                                /run/lvs/netns-<inode of /proc/self/ns/net>/
//
// The inode names a namespace only while it exists: a later namespace may get the same number.
// Records that outlive their writer (lvsd's and lvs-realserver's leftovers files) therefore
// also carry the namespace's cookie (SO_NETNS_COOKIE), which the kernel never reuses, so a
// record left in a namespace that is gone is recognised and never applied to a new one.

import { readdirSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from './native/addon';

export const RUN_ROOT = '/run/lvs';
/** The initial network namespace's inode number where the kernel fixes it (recent kernels). */
const INIT_NET_INO = 0xeffffff9;
const NETNS_DIRS = ['/run/netns', '/var/run/netns'];

/** The inode of a namespace file (/proc/PID/ns/net, a bind mount under /run/netns), or 0. */
function nsInode(path: string): number {
  try {
    return statSync(path).ino;
  } catch {
    return 0;
  }
}

/** This process's network namespace's inode number (0 without /proc). */
export function netnsInode(): number {
  return nsInode('/proc/self/ns/net');
}

/**
 * Is `inode` the host's network namespace: PID 1's, or, where PID 1's cannot be read (another
 * user namespace, a restricted /proc), the initial namespace's fixed number?
 */
function isHostNetns(inode: number): boolean {
  const init = nsInode('/proc/1/ns/net');
  return init !== 0 ? inode === init : inode === INIT_NET_INO;
}

/** The run-time directory of this process's network namespace. */
export function runDir(): string {
  const inode = netnsInode();
  return inode === 0 || isHostNetns(inode) ? RUN_ROOT : join(RUN_ROOT, `netns-${inode}`);
}

/** Remove the namespace's run-time directory if it is a per-namespace one and now empty. */
export function removeRunDirIfEmpty(dir: string): void {
  if (dir === RUN_ROOT || !dir.startsWith(`${RUN_ROOT}/netns-`)) return;
  try {
    rmdirSync(dir);
  } catch {
    // not empty (another program of this namespace still runs), or already gone
  }
}

/** A network namespace, as a leftovers record names the one it was made in. */
export interface NetnsId {
  inode: number;
  /** SO_NETNS_COOKIE in decimal: unique for as long as the machine runs. */
  cookie: string;
}

/** This process's network namespace (the cookie needs the native addon). */
export function currentNetns(): NetnsId {
  return { inode: netnsInode(), cookie: loadNative().netnsCookie() };
}

/** Does a network namespace with this inode exist: held by a process or a mount under /run/netns? */
export function netnsExists(inode: number): boolean {
  const name = `net:[${inode}]`;
  for (const dir of NETNS_DIRS) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    if (names.some((n) => nsInode(join(dir, n)) === inode)) return true;
  }
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return true; // cannot tell: assume it does
  }
  return pids.some((p) => {
    try {
      return readlinkSync(`/proc/${p}/ns/net`) === name;
    } catch {
      return false;
    }
  });
}

/**
 * How a leftovers record made in `recorded` relates to this namespace: `here` (undo it),
 * `gone` (its namespace no longer exists, and what it changed went with it: discard it) or
 * `elsewhere` (a namespace that still exists: not ours to touch). Records of older versions
 * name no namespace and count as made here.
 */
export function recordOrigin(recorded: NetnsId | undefined, here: NetnsId): 'here' | 'gone' | 'elsewhere' {
  if (recorded === undefined) return 'here';
  if (recorded.inode === here.inode) return recorded.cookie === here.cookie ? 'here' : 'gone';
  return netnsExists(recorded.inode) ? 'elsewhere' : 'gone';
}
