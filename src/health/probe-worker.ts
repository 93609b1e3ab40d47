// The worker thread that runs lvsd's health checks and notify commands (probe-thread.ts says
// why). Messages, handled in order:
//   { id, checker, rs }  one check, answered with { id, outcome } when runCheck settles;
//   { script }           a notify/quorum command, started detached, not answered;
//   { close: true }      answered with { closed: true } (every command before it has started).

import { parentPort } from 'node:worker_threads';
import type { Checker } from './keepalived-conf';
import { type ProbeTarget, runCheck, spawnScript } from './probes';

type Message = { id: number; checker: Checker; rs: ProbeTarget } | { script: string } | { close: true };

const runScript = spawnScript((msg) => parentPort?.postMessage({ log: msg }));

parentPort?.on('message', (m: Message) => {
  if ('script' in m) runScript(m.script);
  else if ('close' in m) parentPort?.postMessage({ closed: true });
  else runCheck(m.checker, m.rs).then((outcome) => parentPort?.postMessage({ id: m.id, outcome }));
});
