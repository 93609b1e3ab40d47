// The real HostOps: iproute2's `ip` for addresses and links, /proc/sys files for sysctls, /proc
// for "is that lvs-realserver still running".

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { HostOps } from './host-changes';

/** An `ip` command that hangs (it should not) must not hang lvs-realserver's start or stop. */
const IP_TIMEOUT_MS = 10_000;

export class SystemHostOps implements HostOps {
  ip(args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('ip', args, { encoding: 'utf8', timeout: IP_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout);
          return;
        }
        const why = stderr.trim() || err.message;
        reject(new Error(`ip ${args.join(' ')}: ${why}`, { cause: err }));
      });
    });
  }

  readSysctl(path: string): string | undefined {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  writeSysctl(path: string, value: string): void {
    writeFileSync(path, `${value}\n`);
  }

  isRealserver(pid: number): boolean {
    try {
      // NUL-separated argv: node, the script (bin/lvs-realserver.js or dist/cli/lvs-realserver.js), ...
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('lvs-realserver');
    } catch {
      return false;
    }
  }
}
