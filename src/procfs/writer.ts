// lvsd's /proc hierarchy (REFERENCE.md §1.12): the files kernel IPVS keeps under /proc, in the
// kernel's exact formats, under a procfs-style root (default `proc` in the network namespace's
// run-time directory, run-dir.ts; `--procfs-root`):
//
//   <root>/net/ip_vs               services and dests          (format.ts)
//   <root>/net/ip_vs_conn          connections and templates
//   <root>/net/ip_vs_conn_sync     the same with their origin (LOCAL, or SYNC from a master)
//   <root>/net/ip_vs_stats         global counters and rates
//   <root>/sys/net/ipv4/vs/<name>  the settings (ctl/sysctl.ts), one integer per file
//
// The kernel makes these on read; here they are rewritten every second, each atomically (a
// temporary file renamed over the old one), so a reader never sees half a file. Tools that read
// the kernel's files read these unchanged when pointed at the root (node_exporter's
// --path.procfs). The connection files cost time in proportion to the table (about 1 µs a
// row), so the data path's thread only snapshots the table into typed arrays and a worker
// thread formats and writes them (conns.ts, worker.ts). They are refreshed every
// second up to about 30 000 connections, then less often, so that the worker spends at most
// WORKER_BUDGET_MS a second on average (100 000 connections: every 4 s here). Without the
// worker's compiled file (unit tests run the TypeScript sources) they are written inline, within
// CONN_BUDGET_MS a second.

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { connRowsBuffers } from '../conn/conn-rows';
import type { Balancer } from '../ctl/balancer';
import { readSysctls } from '../ctl/sysctl';
import { writeAtomic } from './atomic-write';
import { formatConnFiles } from './conns';
import { formatProcIpVs, formatProcIpVsStats, formatSysctlValue } from './format';

/**
 * Milliseconds a second the connection files may take on average: the worker's (on another
 * core, but one the kernel's packet work also needs), and the data path's own without it.
 */
const WORKER_BUDGET_MS = 250;
const CONN_BUDGET_MS = 10;
const WORKER_FILE = join(__dirname, 'worker.js');

export class ProcfsWriter {
  /** Seconds until the connection files are due again. */
  private connDue = 0;
  /** The worker writing the connection files (null where its compiled file is absent: tests). */
  private readonly worker: Worker | null;
  private busy = false;
  /** The text each small file was last written with. */
  private readonly written = new Map<string, string>();
  /** Refreshes of the connection files skipped because the previous one was still being written. */
  skipped = 0;

  constructor(
    readonly root: string,
    private readonly balancer: Balancer,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.worker = existsSync(WORKER_FILE) ? new Worker(WORKER_FILE) : null;
    this.worker?.on('message', (m: { ms: number; error?: string }) => {
      this.busy = false;
      this.pace(m.ms, WORKER_BUDGET_MS);
      if (m.error !== undefined) this.log(`procfs ${root}: ${m.error}`);
    });
    this.worker?.on('error', (err) => this.log(`procfs worker: ${err.message}`));
    this.worker?.unref();
  }

  /** Write every file now (call once a second). */
  refresh(): void {
    const b = this.balancer;
    this.writeIfChanged('net/ip_vs', formatProcIpVs(b.snapshot()));
    this.writeIfChanged('net/ip_vs_stats', formatProcIpVsStats(b.globalStats(), b.globalRates()));
    for (const s of readSysctls(b.plane)) {
      this.writeIfChanged(`sys/net/ipv4/vs/${s.name}`, formatSysctlValue(s.value));
    }
    if (--this.connDue > 0) return;
    if (this.worker !== null) {
      if (this.busy) {
        this.skipped++;
        return;
      }
      this.busy = true;
      const worker = this.worker;
      b.plane.connRows().then(
        (rows) => worker.postMessage({ root: this.root, rows }, connRowsBuffers(rows)),
        (err: Error) => {
          this.busy = false;
          this.log(`procfs ${this.root}: ${err.message}`);
        },
      );
      return;
    }
    const started = performance.now();
    void b.plane.connRows().then((rows) => {
      const { conn, sync } = formatConnFiles(rows);
      this.write('net/ip_vs_conn', conn);
      this.write('net/ip_vs_conn_sync', sync);
      this.pace(performance.now() - started, CONN_BUDGET_MS);
    });
  }

  /** The connection files took `ms`: wait enough seconds that they cost at most `budget` ms a second. */
  private pace(ms: number, budget: number): void {
    this.connDue = Math.max(1, Math.ceil(ms / budget));
  }

  /** Stop the worker and remove the hierarchy (lvsd stopping: no stale figures left behind). */
  async remove(): Promise<void> {
    await this.worker?.terminate();
    rmSync(this.root, { recursive: true, force: true });
  }

  private write(rel: string, text: string): void {
    writeAtomic(this.root, rel, text);
  }

  /**
   * The small files, rewritten only when their text changed: most seconds the settings and an
   * idle table did not, and each rewrite is four syscalls on the data path's thread.
   */
  private writeIfChanged(rel: string, text: string): void {
    if (this.written.get(rel) === text) return;
    this.write(rel, text);
    this.written.set(rel, text);
  }
}
