// The worker thread that runs lvsd's health checks (probe-thread.ts says why): each message
// { id, checker, rs } is one check, answered with { id, outcome } when runCheck settles.

import { parentPort } from 'node:worker_threads';
import type { Checker } from './keepalived-conf';
import { type ProbeTarget, runCheck } from './probes';

parentPort?.on('message', (m: { id: number; checker: Checker; rs: ProbeTarget }) => {
  runCheck(m.checker, m.rs).then((outcome) => parentPort?.postMessage({ id: m.id, outcome }));
});
