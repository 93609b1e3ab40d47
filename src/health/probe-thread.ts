// Health checks off the data path's thread. The probes themselves never block, but starting a
// MISC_CHECK script, a ping or a notify command forks lvsd, and fork() stalls the calling thread
// for milliseconds (2 ms median, 8 ms worst measured at 90 MB RSS): on the main thread that is a
// pause in packet forwarding. So the probes and the commands run in a worker thread
// (probe-worker.ts), which pays for the forks, its own sockets and HTTP parsing; the monitor
// only sees a Prober that resolves with each outcome and a ScriptRunner. A worker that dies
// fails its checks in flight and is replaced.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Checker } from './keepalived-conf';
import type { Prober } from './monitor';
import { type ProbeOutcome, type ProbeTarget, runCheck, type ScriptRunner, spawnScript } from './probes';

const WORKER_FILE = join(__dirname, 'probe-worker.js');

export class ProbeThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, (out: ProbeOutcome) => void>();
  private nextId = 1;
  private closed = false;
  /** Whether the compiled worker is there (not when the tests run the TypeScript). */
  private readonly threaded = existsSync(WORKER_FILE);

  constructor(private readonly log: (msg: string) => void) {}

  /** Run one check in the worker (in this thread where the compiled worker is absent: tests). */
  readonly probe: Prober = (checker: Checker, rs: ProbeTarget): Promise<ProbeOutcome> => {
    if (!this.threaded) return runCheck(checker, rs);
    const w = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      w.postMessage({ id, checker, rs });
    });
  };

  /** Start a notify/quorum command in the worker (here where the compiled worker is absent). */
  readonly runScript: ScriptRunner = (cmd: string): void => {
    if (this.threaded) (this.worker ?? this.start()).postMessage({ script: cmd });
    else spawnScript(this.log)(cmd);
  };

  private start(): Worker {
    const w = new Worker(WORKER_FILE);
    w.on('message', (m: { id?: number; outcome?: ProbeOutcome; log?: string; closed?: boolean }) => {
      if (m.log !== undefined) this.log(m.log);
      if (m.closed) this.onClosed?.();
      if (m.id === undefined || m.outcome === undefined) return;
      const done = this.pending.get(m.id);
      this.pending.delete(m.id);
      done?.(m.outcome);
    });
    w.on('error', (err) => this.log(`health: probe worker: ${err.message}`));
    w.on('exit', () => {
      if (this.worker === w) this.worker = null;
      if (!this.closed) this.failPending('probe worker exited');
    });
    w.unref();
    this.worker = w;
    return w;
  }

  private failPending(why: string): void {
    for (const done of this.pending.values()) done({ ok: false, why });
    this.pending.clear();
  }

  private onClosed: (() => void) | undefined;

  /**
   * Stop the worker once the commands already sent have started (at most 1 s); checks in
   * flight fail.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.failPending('lvsd stopping');
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      w.postMessage({ close: true });
    });
    await w.terminate();
  }
}
