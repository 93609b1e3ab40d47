// The figures the benchmark reports, and how the repetitions of each cell (figure × path) are
// summarised: median with min–max over the rounds that succeeded.

import type { PathId, TestId } from './options';

export type MetricId =
  | 'tcp'
  | 'udp-lossfree'
  | 'udp-blast'
  | 'conn'
  | 'rtt-p50'
  | 'rtt-p99'
  | 'added-p50'
  | 'added-p99';

export interface MetricDef {
  id: MetricId;
  test: TestId;
  label: string;
  unit: 'Gbit/s' | 'pps' | 'conn/s' | 'µs';
  better: 'higher' | 'lower';
  /** Derived from rtt-* of the path and of fwd in the same round. */
  addedOver?: MetricId;
  /** The row that carries the test's CPU-per-packet figure. */
  carriesCpu?: boolean;
  /** Ratios against kernel NAT / HAProxy make sense. */
  ratios: boolean;
}

export const METRICS: MetricDef[] = [
  {
    id: 'tcp',
    test: 'tcp',
    label: 'TCP bulk, 1 stream',
    unit: 'Gbit/s',
    better: 'higher',
    carriesCpu: true,
    ratios: true,
  },
  {
    id: 'udp-lossfree',
    test: 'udp-lossfree',
    label: 'UDP 64 B, loss-free rate',
    unit: 'pps',
    better: 'higher',
    carriesCpu: true,
    ratios: true,
  },
  {
    id: 'udp-blast',
    test: 'udp-blast',
    label: 'UDP 64 B blast, delivered',
    unit: 'pps',
    better: 'higher',
    carriesCpu: true,
    ratios: true,
  },
  {
    id: 'conn',
    test: 'conn',
    label: 'short connections',
    unit: 'conn/s',
    better: 'higher',
    carriesCpu: true,
    ratios: true,
  },
  {
    id: 'rtt-p50',
    test: 'latency',
    label: 'round trip p50',
    unit: 'µs',
    better: 'lower',
    carriesCpu: true,
    ratios: true,
  },
  { id: 'rtt-p99', test: 'latency', label: 'round trip p99', unit: 'µs', better: 'lower', ratios: true },
  {
    id: 'added-p50',
    test: 'latency',
    label: 'added p50 vs direct',
    unit: 'µs',
    better: 'lower',
    addedOver: 'rtt-p50',
    ratios: false,
  },
  {
    id: 'added-p99',
    test: 'latency',
    label: 'added p99 vs direct',
    unit: 'µs',
    better: 'lower',
    addedOver: 'rtt-p99',
    ratios: false,
  },
];

/** One test of one path in one round, as recorded in the JSON. */
export interface RunRecord {
  round: number;
  path: PathId;
  test: TestId;
  ok: boolean;
  /** Not applicable (HAProxy has no UDP) or skipped (time budget): not a failure. */
  status: 'ok' | 'failed' | 'n/a' | 'skipped';
  error?: string;
  startedAt: string;
  seconds: number;
  metrics?: Partial<Record<MetricId, number>>;
  lowerBound?: boolean;
  cpuUsPerPkt?: number;
  summary?: string;
  detail?: Record<string, unknown>;
}

export interface Range {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Cell {
  metric: MetricId;
  path: PathId;
  status: 'ok' | 'failed' | 'n/a' | 'skipped' | 'partial';
  /** Successful rounds / rounds attempted. */
  ok: number;
  attempted: number;
  value?: Range;
  /**
   * The median is a lower bound: it comes from a sample that did not find the path's limit
   * (udp-lossfree passing the sweep's top rate, udp-blast losing nothing: the sender was the limit).
   */
  lowerBound?: boolean;
  cpu?: Range;
  samples: number[];
  /** Per sample: a lower bound. */
  sampleBounds: boolean[];
  cpuSamples: number[];
  errors: string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Whether a sample the median is taken from is a lower bound. */
function medianIsBound(samples: number[], bounds: boolean[]): boolean {
  if (samples.length === 0) return false;
  const order = samples.map((v, i) => ({ v, b: bounds[i] })).sort((a, b) => a.v - b.v);
  const m = order.length >> 1;
  return order.length % 2 ? order[m].b! : order[m - 1].b! || order[m].b!;
}

export function range(xs: number[]): Range | undefined {
  if (xs.length === 0) return undefined;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export function buildCells(records: RunRecord[], paths: PathId[], metrics: MetricDef[]): Cell[] {
  const cells: Cell[] = [];
  const find = (path: PathId, test: TestId) => records.filter((r) => r.path === path && r.test === test);
  for (const m of metrics) {
    for (const path of paths) {
      const recs = find(path, m.test);
      if (recs.length === 0) continue;
      const cell: Cell = {
        metric: m.id,
        path,
        status: 'ok',
        ok: 0,
        attempted: 0,
        samples: [],
        cpuSamples: [],
        sampleBounds: [],
        errors: [],
      };
      if (recs.every((r) => r.status === 'n/a')) {
        cell.status = 'n/a';
        cells.push(cell);
        continue;
      }
      for (const r of recs) {
        if (r.status === 'n/a') continue;
        cell.attempted++;
        if (r.status !== 'ok') {
          const e = r.status === 'skipped' ? 'skipped (time budget)' : (r.error ?? 'failed');
          if (!cell.errors.includes(e)) cell.errors.push(e);
          continue;
        }
        let v: number | undefined;
        if (m.addedOver) {
          const ref = records.find((x) => x.path === 'fwd' && x.test === m.test && x.round === r.round && x.ok);
          const own = r.metrics?.[m.addedOver];
          const base = ref?.metrics?.[m.addedOver];
          if (own !== undefined && base !== undefined) v = own - base;
        } else {
          v = r.metrics?.[m.id];
        }
        if (v === undefined || !Number.isFinite(v)) continue;
        cell.ok++;
        cell.samples.push(v);
        cell.sampleBounds.push(r.lowerBound === true);
        if (m.carriesCpu && r.cpuUsPerPkt !== undefined && Number.isFinite(r.cpuUsPerPkt)) {
          cell.cpuSamples.push(r.cpuUsPerPkt);
        }
      }
      cell.value = range(cell.samples);
      cell.cpu = range(cell.cpuSamples);
      cell.lowerBound = medianIsBound(cell.samples, cell.sampleBounds);
      if (cell.ok === 0) cell.status = cell.errors.every((e) => e.startsWith('skipped')) ? 'skipped' : 'failed';
      else if (cell.ok < cell.attempted) cell.status = 'partial';
      cells.push(cell);
    }
  }
  return cells;
}

/** "0.53×"; ≥/≤ when one side is a lower bound; undefined when no ratio can be given. */
export function ratio(cell: Cell | undefined, ref: Cell | undefined): string | undefined {
  if (!cell?.value || !ref?.value || ref.value.median <= 0) return undefined;
  if (cell.path === ref.path) return '1.00×';
  const r = cell.value.median / ref.value.median;
  if (cell.lowerBound && ref.lowerBound) return undefined;
  const prefix = cell.lowerBound ? '≥ ' : ref.lowerBound ? '≤ ' : '';
  return `${prefix}${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export function formatValue(unit: MetricDef['unit'], v: number): string {
  switch (unit) {
    case 'Gbit/s':
      return v >= 10 ? v.toFixed(1) : v.toFixed(2);
    case 'pps':
    case 'conn/s':
      if (Math.abs(v) < 1000) return v.toFixed(0);
      if (v % 1000 === 0) return `${v / 1000}k`;
      return Math.abs(v) < 100_000 ? `${(v / 1000).toFixed(1)}k` : `${(v / 1000).toFixed(0)}k`;
    case 'µs':
      return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
  }
}

export function formatRange(unit: MetricDef['unit'], r: Range, lowerBound = false): string {
  const med = `${lowerBound ? '≥ ' : ''}${formatValue(unit, r.median)}`;
  if (r.n < 2) return med;
  return `${med} [${formatValue(unit, r.min)}–${formatValue(unit, r.max)}]`;
}

export function formatCpu(r: Range | undefined): string {
  if (!r) return '–';
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  return r.n < 2 ? f(r.median) : `${f(r.median)} [${f(r.min)}–${f(r.max)}]`;
}
