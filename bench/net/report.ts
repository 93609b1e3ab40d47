// The benchmark's outputs: the table (stdout and Markdown), the Markdown report, the JSON.

import {
  type Cell,
  formatCpu,
  formatRange,
  formatValue,
  METRICS,
  type MetricDef,
  type RunRecord,
  ratio,
} from './metrics';
import type { Options, PathId } from './options';
import type { DirectorDelta } from './paths';

export interface RunInfo {
  startedAt: string;
  finishedAt: string;
  seconds: number;
  options: Options;
  machine: Record<string, string>;
  labels: Record<PathId, string>;
  notes: string[];
}

const HEADER = ['figure', 'path', 'median [min–max]', 'ok', '÷ kernel NAT', '÷ HAProxy', 'lvsd CPU µs/pkt'];

function cellText(m: MetricDef, c: Cell): string {
  if (c.status === 'n/a') return '–';
  if (!c.value) return c.status === 'skipped' ? 'skipped' : 'FAILED';
  return formatRange(m.unit, c.value, c.lowerBound);
}

/** Rows of the results table, grouped by figure. */
export function tableRows(cells: Cell[], paths: PathId[], labels: Record<PathId, string>): string[][][] {
  const groups: string[][][] = [];
  for (const m of METRICS) {
    const mine = cells.filter((c) => c.metric === m.id);
    if (mine.length === 0) continue;
    const hap = mine.find((c) => c.path === 'haproxy');
    const rows: string[][] = [];
    for (const p of paths) {
      const c = mine.find((x) => x.path === p);
      if (!c) continue;
      // An IPv6 path is compared with the kernel's NAT over IPv6.
      const knat = mine.find((x) => x.path === (p.endsWith('6') ? 'nat6' : 'nat'));
      const lvs = p.startsWith('lvs-');
      rows.push([
        `${m.label} (${m.unit})`,
        labels[p],
        cellText(m, c),
        c.status === 'n/a' ? '–' : `${c.ok}/${c.attempted}`,
        (m.ratios && ratio(c, knat)) || '–',
        (m.ratios && ratio(c, hap)) || '–',
        m.carriesCpu && lvs ? formatCpu(c.cpu) : '–',
      ]);
    }
    groups.push(rows);
  }
  return groups;
}

export function textTable(groups: string[][][]): string {
  const all = [HEADER, ...groups.flat()];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => [...r[i]].length)));
  const line = (r: string[]) =>
    r
      .map((s, i) => s + ' '.repeat(widths[i] - [...s].length))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '─'.repeat(w)).join('  ');
  const out = [line(HEADER), sep];
  groups.forEach((g, i) => {
    if (i > 0) out.push('');
    for (const r of g) out.push(line(r));
  });
  return `${out.join('\n')}\n`;
}

export function markdownTable(groups: string[][][]): string {
  const row = (r: string[]) => `| ${r.map((s) => s.replace(/\|/g, '\\|')).join(' | ')} |`;
  const out = [row(HEADER), row(HEADER.map(() => '---'))];
  for (const g of groups) for (const r of g) out.push(row(r));
  return `${out.join('\n')}\n`;
}

/** Sum of lvsd's counters per lvs-ts path and test over all rounds. */
function directorSummary(records: RunRecord[], labels: Record<PathId, string>): string {
  const lines: string[] = [];
  for (const path of ['lvs-nat', 'lvs-dr', 'lvs-tun'] as PathId[]) {
    const recs = records.filter((r) => r.path === path && r.status === 'ok');
    if (recs.length === 0) continue;
    const byTest = new Map<
      string,
      { cpu: number; tx: number; inPkts: number; tun: number; rs: number; drops: Record<string, number> }
    >();
    for (const r of recs) {
      const ds: DirectorDelta[] = [];
      const d = r.detail?.director as DirectorDelta | undefined;
      if (d) ds.push(d);
      for (const s of (r.detail?.steps as { director?: DirectorDelta }[] | undefined) ?? []) {
        if (s.director) ds.push(s.director);
      }
      const acc = byTest.get(r.test) ?? { cpu: 0, tx: 0, inPkts: 0, tun: 0, rs: 0, drops: {} };
      for (const x of ds) {
        acc.cpu += x.cpuSeconds;
        acc.tx += x.txPackets;
        acc.inPkts += x.inPkts;
        acc.tun += x.tunTxDropped;
        acc.rs += x.realserverCpuSeconds ?? 0;
        for (const [k, v] of Object.entries(x.drops)) acc.drops[k] = (acc.drops[k] ?? 0) + v;
      }
      byTest.set(r.test, acc);
    }
    for (const [test, a] of byTest) {
      const drops = Object.entries(a.drops)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      lines.push(
        `| ${labels[path]} | ${test} | ${a.cpu.toFixed(2)} | ${a.tx} | ${a.tun} | ${drops || '0'} | ${path === 'lvs-tun' ? a.rs.toFixed(2) : '–'} |`,
      );
    }
  }
  if (lines.length === 0) return '';
  return [
    '| path | test | lvsd CPU s | packets sent by lvsd | TUN tx_dropped (kernel → lvsd queue full) | engine drops by reason | lvs-realserver CPU s |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...lines,
  ].join('\n');
}

function failures(records: RunRecord[], labels: Record<PathId, string>): string[] {
  return records
    .filter((r) => r.status === 'failed' || r.status === 'skipped')
    .map((r) => `- round ${r.round}, ${labels[r.path]}, ${r.test}: ${r.status === 'skipped' ? 'skipped' : r.error}`);
}

export function markdownReport(info: RunInfo, records: RunRecord[], svgName: string, table: string): string {
  const p = info.options.profile;
  const m = info.machine;
  const fail = failures(records, info.labels);
  const director = directorSummary(records, info.labels);
  const md = `# lvs-ts network benchmark, ${info.startedAt}

${m.cpus} CPUs, Linux ${m.kernel}, Node ${m.node}; ${m.iperf3}, ${m.wrk}, ${m.haproxy}, ${m.nginx}.
Profile \`${p.name}\`: ${p.rounds} round(s), interleaved (every path in each round, start rotated); paths: ${info.options.paths.join(', ')}; ${info.seconds.toFixed(0)} s in all.
CPU steering ${
    info.options.steer
      ? "on (--steer): load generators pinned to CPU 0, the director's receive processing (RPS on its ingress veths) on the other CPUs"
      : "off (as in PERF-BASELINE.md): nothing pinned; a veth runs the receiving namespace's kernel work on the sending CPU"
  }.

## Results

${table}
- ÷ kernel NAT / ÷ HAProxy: this path's median divided by theirs (for round trips, above 1 = slower).
  ≥ marks a lower bound, ≤ / ≥ a ratio against one: the loss-free sweep passed its top rate
  (${formatValue('pps', p.sweepPps[p.sweepPps.length - 1])} pps), or the blast lost nothing (the sender, not the path,
  was the limit).
- "added vs direct": the path's round trip minus kernel forwarding's (client → real server's own
  address through the director) in the same round.
- lvsd CPU µs/pkt: utime+stime of the lvsd process over the test divided by the packets it
  forwarded (UDP: packets delivered at the sink; loss-free: at the highest passing step). Kernel
  paths and HAProxy: "–" (softirq time of a namespace cannot be isolated).
- "–" in a UDP row of HAProxy: mode tcp carries no UDP.

![chart](${svgName})

${director ? `## lvsd counters (sums over the rounds)\n\n${director}\n` : ''}
${fail.length ? `## Failed or skipped\n\n${fail.join('\n')}\n` : ''}
${info.notes.length ? `## Notes\n\n${info.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}
## Method

- Labs: netns/lab.sh \`nat\` (fwd, nat, haproxy, lvs-nat), \`dr\` (lvs-dr), \`tun\` (lvs-tun), under a
  per-run prefix; one real server serves (rs1). Each path is set up before its tests and torn
  down after them in every round (lvsd started fresh, nftables table added and deleted, HAProxy
  started and stopped).
- Every path run sends from a fresh client address (192.168.0.100 on), so no run meets the
  TIME_WAIT sockets or conntrack entries of an earlier one; the client has
  \`tcp_tw_reuse=1\` and the full port range (wrk's ports would otherwise run out).
- TCP: \`iperf3 -c TARGET -t ${p.tcpSeconds} -O ${p.tcpOmit}\`, one stream; Gbit/s received.
- UDP loss-free: ${p.udpPayload}-byte payloads from one socket, paced by scripts/bench/udp-load.c,
  ${p.sweepSeconds} s per step at ${p.sweepPps.map((x) => formatValue('pps', x)).join(', ')} pps; packets
  counted at the sink on the real server; the highest step with < 0.5 % loss. A failing step
  is tried once more; the sweep stops at the first step that fails twice (loss, or the sender
  could not offer the rate). Stopped by loss, it bisects twice between the last rate that
  passed and that one (to the nearest 1k pps).
- UDP blast: the same sender unpaced for ${p.blastSeconds} s; packets per second delivered at the sink.
- Connections: \`wrk -t1 -c32 -d${p.connSeconds}s -H 'Connection: close'\` against nginx \`return 200\`.
- Latency: ${p.latencySamples} TCP ping-pongs (16 bytes) at ${p.latencyRate}/s over one connection to an echo
  server on the real server (after 20 warm-up round trips); p50 and p99.
`;
  return md.replace(/\n{3,}/g, '\n\n');
}

export function jsonReport(info: RunInfo, records: RunRecord[], cells: Cell[]): string {
  return `${JSON.stringify(
    {
      version: 1,
      ...info,
      metrics: METRICS,
      cells: cells.map((c) => ({
        metric: c.metric,
        path: c.path,
        status: c.status,
        ok: c.ok,
        attempted: c.attempted,
        median: c.value?.median,
        min: c.value?.min,
        max: c.value?.max,
        lowerBound: c.lowerBound,
        cpuUsPerPkt: c.cpu,
        samples: c.samples,
        errors: c.errors,
      })),
      records,
    },
    null,
    1,
  )}\n`;
}
