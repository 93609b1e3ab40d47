// Running host programs for the host changes lvsd makes: iproute2's `ip` (routing.ts,
// intercept.ts), and finding a program on the PATH (nft, keepalived).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The full path of program `name` on the PATH, or undefined. */
export function findProgram(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Run `ip ARGS`; its standard output. Throws when it fails. */
export async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { encoding: 'utf8' });
  return stdout;
}

/** Run `ip`, ignoring failure (for removals of things that may already be gone). */
export async function ipQuiet(...args: string[]): Promise<boolean> {
  try {
    await ip(...args);
    return true;
  } catch {
    return false;
  }
}
