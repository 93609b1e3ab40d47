// Running iproute2's `ip`, for the host changes lvsd makes (routing.ts, intercept.ts).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

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
