// One way to replace a /proc-style file: write a temporary file beside it and rename it over
// the old one, so a reader sees the old file or the new one, never half of one.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
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
