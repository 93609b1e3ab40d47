// lvsd's /proc hierarchy (REFERENCE.md §1.12): the files kernel IPVS keeps under /proc, in the
// kernel's exact formats, under a procfs-style root (default /run/lvs/proc, `--procfs-root`):
//
//   <root>/net/ip_vs               services and dests          (procfs-format.ts)
//   <root>/net/ip_vs_conn          connections and templates
//   <root>/net/ip_vs_conn_sync     the same with their origin (LOCAL, or SYNC from a master)
//   <root>/net/ip_vs_stats         global counters and rates
//   <root>/sys/net/ipv4/vs/<name>  the settings (sysctl.ts), one integer per file
//
// The kernel makes these on read; here they are rewritten every second, each atomically (a
// temporary file renamed over the old one), so a reader never sees half a file. Tools that read
// the kernel's files read these unchanged when pointed at the root (node_exporter's
// --path.procfs). The connection list costs time in proportion to the table (about 1 µs a
// row): when writing it took long, it is refreshed less often, so that on average it takes at
// most CONN_BUDGET_MS a second.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Balancer } from './balancer';
import {
  CONN_HEADER,
  CONN_SYNC_HEADER,
  connOrigin,
  formatProcIpVs,
  formatProcIpVsStats,
  formatSysctlValue,
  procConnRow,
} from './procfs-format';
import { readSysctls } from './sysctl';

export const DEFAULT_PROCFS_ROOT = '/run/lvs/proc';
/** Milliseconds a second the connection file may take on average: its refresh slows to keep to it. */
const CONN_BUDGET_MS = 10;

export class ProcfsWriter {
  /** Seconds until the connection file is due again, and how many to wait after each write. */
  private connDue = 0;
  private connEvery = 1;

  constructor(
    readonly root: string,
    private readonly balancer: Balancer,
  ) {}

  /** Write every file now (call once a second). */
  refresh(): void {
    const b = this.balancer;
    this.write('net/ip_vs', formatProcIpVs(b.snapshot()));
    this.write('net/ip_vs_stats', formatProcIpVsStats(b.globalStats(), b.globalRates()));
    for (const s of readSysctls(b.engine)) this.write(`sys/net/ipv4/vs/${s.name}`, formatSysctlValue(s.value));
    if (--this.connDue > 0) return;
    const started = performance.now();
    const { conn, sync } = this.connTexts();
    this.write('net/ip_vs_conn', conn);
    this.write('net/ip_vs_conn_sync', sync);
    const ms = performance.now() - started;
    this.connEvery = Math.max(1, Math.ceil(ms / CONN_BUDGET_MS));
    this.connDue = this.connEvery;
  }

  /**
   * /proc/net/ip_vs_conn and ip_vs_conn_sync (the same rows with an Origin column) straight
   * from the connection table, in one pass (no snapshot objects).
   */
  private connTexts(): { conn: string; sync: string } {
    const b = this.balancer;
    const t = b.engine.conns;
    const now = b.engine.now;
    const rows: string[] = [CONN_HEADER];
    const syncRows: string[] = [CONN_SYNC_HEADER];
    t.forEach((c) => {
      const state = b.connStateName(c);
      const expires = t.expires[c]! - now;
      const args = [
        t.protocol[c]!,
        t.caddr[c]!,
        t.cport[c]!,
        t.vaddr[c]!,
        t.vport[c]!,
        t.daddr[c]!,
        t.dport[c]!,
      ] as const;
      rows.push(procConnRow(...args, state, expires));
      syncRows.push(procConnRow(...args, state, expires, connOrigin(t.flags[c]!)));
    });
    return { conn: rows.join(''), sync: syncRows.join('') };
  }

  /** Remove the hierarchy (lvsd stopping: no stale figures left behind). */
  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private write(rel: string, text: string): void {
    const path = join(this.root, rel);
    const tmp = `${path}.tmp`;
    try {
      writeFileSync(tmp, text);
    } catch {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(tmp, text);
    }
    renameSync(tmp, path);
  }
}
