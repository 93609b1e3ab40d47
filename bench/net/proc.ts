// Processes for the network benchmark: commands with a hard time limit, long-running programs in
// a namespace (tracked, so teardown can stop every one of them), readiness checks.

import { type ChildProcess, execFile, spawn } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a command; never throws. A command still running after `timeoutMs` is killed (code 124). */
export function exec(cmd: string, args: string[], timeoutMs = 15_000, input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const code = e.killed ? 124 : typeof e.code === 'number' ? e.code : 1;
        const why = e.killed ? `timed out after ${timeoutMs} ms` : typeof e.code === 'string' ? e.message : '';
        resolve({ stdout: stdout ?? '', stderr: `${stderr ?? ''}${why ? `${stderr ? '\n' : ''}${why}` : ''}`, code });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Run a command in network namespace `ns`. */
export function nsExec(ns: string, cmd: string[], timeoutMs = 15_000, input?: string): Promise<ExecResult> {
  return exec('ip', ['netns', 'exec', ns, ...cmd], timeoutMs, input);
}

/** Like nsExec, but throws with the command's stderr when it fails. */
export async function nsRun(ns: string, cmd: string[], timeoutMs = 15_000, input?: string): Promise<string> {
  const r = await nsExec(ns, cmd, timeoutMs, input);
  if (r.code !== 0)
    throw new Error(`${cmd.join(' ')} (in ${ns}) failed (${r.code}): ${firstLines(r.stderr || r.stdout)}`);
  return r.stdout;
}

export function firstLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(0, n).join(' | ');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A long-running program in a namespace, with its output kept (the last 64 KB). */
export class Proc {
  output = '';
  exited = false;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  private readonly waiters: { marker: string; resolve: () => void }[] = [];
  private readonly exitPromise: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const onData = (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 65536) this.output = this.output.slice(-65536);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i];
        if (this.output.includes(w.marker)) {
          this.waiters.splice(i, 1);
          w.resolve();
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
      child.once('error', (err) => {
        this.output += `\nspawn error: ${err.message}`;
        this.exited = true;
        resolve();
      });
    });
  }

  /** "exited with 1" / "killed by SIGKILL", and the last lines it printed. */
  get death(): string {
    const how = this.exitSignal ? `killed by ${this.exitSignal}` : `exited with ${this.exitCode}`;
    const tail = this.tail;
    return `${this.name} ${how}${tail ? `: ${tail}` : ''}`;
  }

  /** The last lines of its output, on one line. */
  get tail(): string {
    return this.output.trim().split('\n').slice(-3).join(' | ');
  }

  /** `ip netns exec` execs the program, so this is the program's own pid. */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Resolve once `marker` has appeared in the output; reject if the program exits or time runs out. */
  waitFor(marker: string, timeoutMs = 10_000): Promise<void> {
    if (this.output.includes(marker)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no '${marker}' within ${timeoutMs} ms: ${firstLines(this.output)}`));
      }, timeoutMs);
      this.waiters.push({
        marker,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      void this.exitPromise.then(() => {
        clearTimeout(timer);
        if (!this.output.includes(marker)) {
          reject(new Error(this.death));
        }
      });
    });
  }

  /** Send `signal`, wait up to `graceMs` for the exit, then SIGKILL. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (this.exited) return;
    this.child.kill(signal);
    const done = await Promise.race([this.exitPromise.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await Promise.race([this.exitPromise, sleep(1000)]);
    }
  }

  wait(): Promise<void> {
    return this.exitPromise;
  }
}

/** Every program the benchmark started, so that teardown can stop each one (by its own pid). */
export class ProcRegistry {
  private readonly procs = new Set<Proc>();

  spawn(ns: string, cmd: string[], name = cmd[0] ?? '?'): Proc {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new Proc(`${name} in ${ns}`, child);
    this.procs.add(p);
    void p.wait().then(() => this.procs.delete(p));
    return p;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop('SIGTERM', 2000)));
  }

  /** Synchronous last resort (signal handlers): SIGKILL what is still running. */
  killAllSync(): void {
    for (const p of this.procs) {
      try {
        p.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** Wait until something in `ns` listens on `port` (tcp or udp); give up early if `server` exits. */
export async function waitListening(
  ns: string,
  proto: 'tcp' | 'udp',
  port: number,
  server?: Proc,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const flag = proto === 'tcp' ? '-Hltn' : '-Hlun';
  for (;;) {
    if (server?.exited) throw new Error(server.death);
    const r = await nsExec(ns, ['ss', flag, `sport = :${port}`], 5000);
    if (r.code === 0 && r.stdout.trim() !== '') return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${proto} port ${port} in ${ns}`);
    await sleep(50);
  }
}
