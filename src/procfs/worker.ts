// The worker thread that writes lvsd's /proc connection files (conns.ts says why): one
// message per refresh, { root, rows }, answered with the milliseconds it took once both files
// are in place (each encoded through one reused buffer into a temporary file, renamed over the
// old one).

import { writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { ConnRows } from '../conn/conn-rows';
import { writeAtomicWith } from './atomic-write';
import { emitConnFile } from './conns';

/** The one buffer every refresh encodes through. */
const buf = Buffer.allocUnsafe(1 << 16);

function writeConnFile(root: string, rel: string, rows: ConnRows, sync: boolean): void {
  writeAtomicWith(root, rel, (fd) =>
    emitConnFile(rows, sync, buf, (len) => {
      for (let done = 0; done < len; ) done += writeSync(fd, buf, done, len - done);
    }),
  );
}

parentPort?.on('message', (m: { root: string; rows: ConnRows }) => {
  const started = performance.now();
  let error: string | undefined;
  try {
    writeConnFile(m.root, 'net/ip_vs_conn', m.rows, false);
    writeConnFile(m.root, 'net/ip_vs_conn_sync', m.rows, true);
  } catch (err) {
    error = (err as Error).message;
  }
  parentPort?.postMessage({ ms: performance.now() - started, error });
});
