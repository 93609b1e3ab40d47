// One way to replace a /proc-style file: write a temporary file beside it and rename it over
// the old one, so a reader sees the old file or the new one, never half of one.

import { closeSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function writeAtomic(root: string, rel: string, text: string): void {
  const path = join(root, rel);
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, text);
  } catch {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, text);
  }
  renameSync(tmp, path);
}

/** As writeAtomic, with the content written by `fill` to the open temporary file. */
export function writeAtomicWith(root: string, rel: string, fill: (fd: number) => void): void {
  const path = join(root, rel);
  const tmp = `${path}.tmp`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(tmp, 'w');
  }
  try {
    fill(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
