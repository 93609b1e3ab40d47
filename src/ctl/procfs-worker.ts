// The worker thread that writes lvsd's /proc connection files (procfs-conns.ts says why): one
// message per refresh, { root, rows }, answered with the milliseconds it took once both files
// are in place (each written to a temporary file and renamed over the old one).

import { parentPort } from 'node:worker_threads';
import { type ConnRows, formatConnFiles } from './procfs-conns';
import { writeAtomic } from './procfs-write';

parentPort?.on('message', (m: { root: string; rows: ConnRows }) => {
  const started = performance.now();
  let error: string | undefined;
  try {
    const { conn, sync } = formatConnFiles(m.rows);
    writeAtomic(m.root, 'net/ip_vs_conn', conn);
    writeAtomic(m.root, 'net/ip_vs_conn_sync', sync);
  } catch (err) {
    error = (err as Error).message;
  }
  parentPort?.postMessage({ ms: performance.now() - started, error });
});
