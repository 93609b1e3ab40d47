// The measurements, each run from the client namespace against the active path's target, with
// the load generator pinned to CPU 0 when steering is on. Every generator is bounded in time by
// its own option and by a kill timer; the UDP sender and the latency probe in count too.
//
//   tcp           iperf3 -c TARGET -t N (one stream), server `iperf3 -s -1` on rs1: Gbit/s received
//   udp-lossfree  paced 64-byte UDP (scripts/bench/udp-load.c) at rising rates, packets counted
//                 at the sink on rs1: the highest offered rate with < 0.5 % loss (a failing step
//                 gets a second attempt; the sweep stops at the first step failing twice)
//   udp-blast     the same sender unpaced: packets per second delivered at the sink
//   conn          wrk -t1 -c32 -H 'Connection: close' against nginx `return 200`: requests/s
//   latency       TCP ping-pong (latency-client.ts) to an echo server: round-trip p50 and p99
//
// For lvs-ts paths each test also reads lvsd's CPU time (/proc/PID/stat) and engine counters
// before and after, and reports CPU per packet: per packet delivered at the sink for UDP, per
// packet lvsd forwarded (engine txPackets) otherwise.

import { join } from 'node:path';
import { PORT } from './labs';
import type { MetricId } from './metrics';
import type { Profile, TestId } from './options';
import { type ActivePath, type DirectorDelta, LvsdHandle, urlHost } from './paths';
import { firstLines, nsExec, type ProcRegistry, sleep, waitListening } from './proc';

export interface TestCtx {
  active: ActivePath;
  profile: Profile;
  procs: ProcRegistry;
  root: string;
  udpLoad: string;
  /** Prefix a load generator's command (CPU pinning). */
  gen: (cmd: string[]) => string[];
  log: (msg: string) => void;
}

export interface TestOutcome {
  metrics: Partial<Record<MetricId, number>>;
  /** The figure is a lower bound: udp-lossfree passed every step, udp-blast lost nothing. */
  lowerBound?: boolean;
  /** lvs-ts paths: director CPU microseconds per packet. */
  cpuUsPerPkt?: number;
  /** One-line summary for the progress output. */
  summary: string;
  detail: Record<string, unknown>;
}

/** Loss below this is "loss-free". */
export const LOSS_LIMIT = 0.005;
/** A step the sender could not offer at 97 % of its rate is not a valid step. */
const GENERATOR_SHORTFALL = 0.97;
/** Time for queues to drain before the sink is read. */
const SETTLE_MS = 200;

export async function runTest(id: TestId, ctx: TestCtx): Promise<TestOutcome> {
  ctx.active.check();
  switch (id) {
    case 'tcp':
      return tcp(ctx);
    case 'udp-lossfree':
      return udpSweep(ctx);
    case 'udp-blast':
      return udpBlast(ctx);
    case 'conn':
      return conn(ctx);
    case 'latency':
      return latency(ctx);
  }
}

/** Run `fn` between two director snapshots (lvs-ts paths only). */
async function withDirector<T>(ctx: TestCtx, fn: () => Promise<T>): Promise<{ result: T; director?: DirectorDelta }> {
  const lvsd = ctx.active.lvsd;
  if (!lvsd) return { result: await fn() };
  const before = await lvsd.snapshot();
  const result = await fn();
  const after = await lvsd.snapshot();
  return { result, director: LvsdHandle.delta(before, after) };
}

function perPacketUs(d: DirectorDelta | undefined, packets: number): number | undefined {
  if (!d || packets <= 0) return undefined;
  return (d.cpuSeconds * 1e6) / packets;
}

function directorNote(d: DirectorDelta | undefined, packets: number): string {
  if (!d) return '';
  const us = perPacketUs(d, packets);
  const drops = Object.entries(d.drops)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return (
    ` | lvsd ${(d.cpuSeconds * 1000).toFixed(0)} ms CPU` +
    (us !== undefined ? `, ${us.toFixed(1)} µs/pkt` : '') +
    (d.tunTxDropped ? `, TUN drops ${d.tunTxDropped}` : '') +
    (drops ? `, engine drops ${drops}` : '') +
    (d.realserverCpuSeconds !== undefined ? `, realserver ${(d.realserverCpuSeconds * 1000).toFixed(0)} ms CPU` : '')
  );
}

async function tcp(ctx: TestCtx): Promise<TestOutcome> {
  const { lab, target } = ctx.active;
  const { tcpSeconds, tcpOmit } = ctx.profile;
  const server = ctx.procs.spawn(lab.rs1, ['iperf3', '-s', '-1', '-p', String(PORT.iperf)], 'iperf3 -s');
  try {
    await waitListening(lab.rs1, 'tcp', PORT.iperf, server);
    const { result: r, director } = await withDirector(ctx, () =>
      nsExec(
        lab.client,
        ctx.gen([
          'iperf3',
          '-c',
          target,
          '-p',
          String(PORT.iperf),
          '-t',
          String(tcpSeconds),
          '-O',
          String(tcpOmit),
          '-J',
          '--connect-timeout',
          '3000',
        ]),
        (tcpSeconds + tcpOmit + 15) * 1000,
      ),
    );
    let json: {
      error?: string;
      end?: { sum_received?: { bits_per_second?: number; bytes?: number }; sum_sent?: { retransmits?: number } };
    };
    try {
      json = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 (${r.code}): ${firstLines(r.stderr || r.stdout)}`);
    }
    if (json.error) throw new Error(`iperf3: ${json.error}`);
    const bps = json.end?.sum_received?.bits_per_second;
    if (r.code !== 0 || bps === undefined) throw new Error(`iperf3 (${r.code}): ${firstLines(r.stderr || r.stdout)}`);
    const gbps = bps / 1e9;
    const retransmits = json.end?.sum_sent?.retransmits ?? 0;
    const packets = director?.txPackets ?? 0;
    return {
      metrics: { tcp: gbps },
      cpuUsPerPkt: perPacketUs(director, packets),
      summary: `${gbps.toFixed(2)} Gbit/s, ${retransmits} retransmits${directorNote(director, packets)}`,
      detail: { gbps, retransmits, bytes: json.end?.sum_received?.bytes, director },
    };
  } finally {
    await server.stop('SIGTERM', 2000);
  }
}

interface SendResult {
  sent: number;
  errors: number;
  seconds: number;
}

/** One run of the UDP sender (pps 0 = blast), then the sink's count of what arrived. */
async function udpRun(ctx: TestCtx, pps: number, seconds: number): Promise<SendResult & { delivered: number }> {
  const { lab, target } = ctx.active;
  const sink = lab.sink;
  if (!sink) throw new Error('no UDP sink in this lab');
  // A bound in count too: never more than 2 M packets a second of test.
  const maxPackets = Math.ceil((pps > 0 ? pps * 1.05 : 2_000_000) * seconds);
  const before = await sink.count();
  const r = await nsExec(
    lab.client,
    ctx.gen([
      ctx.udpLoad,
      'send',
      target,
      String(PORT.udp),
      String(pps),
      String(seconds),
      String(ctx.profile.udpPayload),
      String(maxPackets),
    ]),
    seconds * 1000 + 10_000,
  );
  if (r.code !== 0) throw new Error(`udp-load send (${r.code}): ${firstLines(r.stderr)}`);
  const sent = JSON.parse(r.stdout) as SendResult;
  await sleep(SETTLE_MS);
  const delivered = (await sink.count()) - before;
  return { ...sent, delivered };
}

/** Bisection steps between the last rate that passed and the first that lost packets. */
const SWEEP_REFINE_STEPS = 2;

async function udpSweep(ctx: TestCtx): Promise<TestOutcome> {
  const { sweepPps, sweepSeconds } = ctx.profile;
  const steps: Record<string, unknown>[] = [];
  let best = 0;
  let bestCpu: number | undefined;
  let stopReason = 'every step passed';
  /** One rate; a failing step is tried once more (see below). Whether it passed. */
  const tryRate = async (pps: number, refining: boolean): Promise<boolean> => {
    // On this VM a stall of a few milliseconds overflows a 1000-packet backlog and would end a
    // sweep that the next attempt passes.
    for (let attempt = 1; attempt <= 2; attempt++) {
      ctx.active.check();
      const { result: s, director } = await withDirector(ctx, () => udpRun(ctx, pps, sweepSeconds));
      const loss = s.sent > 0 ? Math.max(0, 1 - s.delivered / s.sent) : 1;
      const offered = s.sent / s.seconds;
      const generatorShort = s.sent < pps * sweepSeconds * GENERATOR_SHORTFALL;
      const passed = !generatorShort && loss < LOSS_LIMIT;
      const cpu = perPacketUs(director, s.delivered);
      steps.push({
        pps,
        attempt,
        refining,
        ...s,
        offered,
        loss,
        pass: passed,
        generatorShort,
        cpuUsPerPkt: cpu,
        director,
      });
      ctx.log(
        `    ${(pps / 1000).toFixed(1)}k pps${refining ? ' (between)' : ''}${attempt > 1 ? ' (again)' : ''}: ` +
          `sent ${s.sent}, delivered ${s.delivered}, loss ${(loss * 100).toFixed(2)} %` +
          (generatorShort ? ` (sender reached only ${(offered / 1000).toFixed(0)}k pps)` : '') +
          directorNote(director, s.delivered),
      );
      if (passed) {
        if (pps > best) {
          best = pps;
          bestCpu = cpu;
        }
        return true;
      }
      if (!refining)
        stopReason =
          loss >= LOSS_LIMIT
            ? `${(loss * 100).toFixed(2)} % loss at ${pps} pps`
            : `the sender could not offer ${pps} pps (${offered.toFixed(0)}), nothing lost`;
    }
    return false;
  };
  let failedAt = 0;
  for (const pps of sweepPps) {
    if (!(await tryRate(pps, false))) {
      failedAt = pps;
      break;
    }
  }
  const last = steps[steps.length - 1] as { generatorShort: boolean; loss: number } | undefined;
  // Stopped by loss: the sweep's steps are coarse (50k apart at the top), so the rates between
  // the last that passed and the first that lost are bisected, to the nearest 1k.
  if (failedAt > 0 && last !== undefined && last.loss >= LOSS_LIMIT) {
    let lo = best;
    let hi = failedAt;
    for (let i = 0; i < SWEEP_REFINE_STEPS; i++) {
      const mid = Math.round((lo + hi) / 2000) * 1000;
      if (mid <= lo || mid >= hi) break;
      if (await tryRate(mid, true)) lo = mid;
      else hi = mid;
    }
  }
  const top = best === sweepPps[sweepPps.length - 1];
  if (top) stopReason = 'every step passed';
  // Stopped by a sender that could not offer the rate, without loss: the path was not the limit.
  const lowerBound = top || (last?.generatorShort === true && last.loss < LOSS_LIMIT);
  return {
    metrics: { 'udp-lossfree': best },
    lowerBound,
    cpuUsPerPkt: bestCpu,
    summary: `${lowerBound ? '≥ ' : ''}${best} pps loss-free (${stopReason})`,
    detail: { steps, stopReason },
  };
}

async function udpBlast(ctx: TestCtx): Promise<TestOutcome> {
  const { result: s, director } = await withDirector(ctx, () => udpRun(ctx, 0, ctx.profile.blastSeconds));
  const deliveredPps = s.delivered / s.seconds;
  const sentPps = s.sent / s.seconds;
  // Nothing lost: the sender (whose CPU also runs the receiving side's kernel work on a veth)
  // was the limit, not the path, so the figure is a lower bound.
  const lowerBound = s.sent > 0 && 1 - s.delivered / s.sent < LOSS_LIMIT;
  return {
    metrics: { 'udp-blast': deliveredPps },
    lowerBound,
    cpuUsPerPkt: perPacketUs(director, s.delivered),
    summary:
      `${lowerBound ? '≥ ' : ''}${(deliveredPps / 1000).toFixed(1)}k pps delivered of ${(sentPps / 1000).toFixed(1)}k sent` +
      (lowerBound ? ' (nothing lost: the sender was the limit)' : '') +
      directorNote(director, s.delivered),
    detail: { ...s, deliveredPps, sentPps, director },
  };
}

async function conn(ctx: TestCtx): Promise<TestOutcome> {
  const { lab, target } = ctx.active;
  const seconds = ctx.profile.connSeconds;
  const { result: r, director } = await withDirector(ctx, () =>
    nsExec(
      lab.client,
      ctx.gen([
        'wrk',
        '-t1',
        '-c32',
        `-d${seconds}s`,
        '--timeout',
        '2s',
        '-H',
        'Connection: close',
        `http://${urlHost(target)}:${PORT.http}/`,
      ]),
      (seconds + 15) * 1000,
    ),
  );
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (r.code !== 0 || !rps) throw new Error(`wrk (${r.code}): ${firstLines(r.stderr || r.stdout)}`);
  const total = /(\d+) requests in ([\d.]+)(m?s)/.exec(r.stdout);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
  const errors = sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : undefined;
  const requests = total ? Number(total[1]) : 0;
  const value = Number(rps[1]);
  const packets = director?.txPackets ?? 0;
  const errText = errors ? `, socket errors ${JSON.stringify(errors)}` : '';
  return {
    metrics: { conn: value },
    cpuUsPerPkt: perPacketUs(director, packets),
    summary: `${value.toFixed(0)} conn/s${errText}${non2xx ? `, non-2xx ${non2xx[1]}` : ''}${directorNote(director, packets)}`,
    detail: { requestsPerSec: value, requests, errors, non2xx: non2xx ? Number(non2xx[1]) : 0, director },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

async function latency(ctx: TestCtx): Promise<TestOutcome> {
  const { lab, target } = ctx.active;
  const { latencySamples: n, latencyRate: rate } = ctx.profile;
  const timeoutMs = Math.ceil(((n + 20) / rate) * 2000 + 10_000);
  const { result: r, director } = await withDirector(ctx, () =>
    nsExec(
      lab.client,
      ctx.gen([
        process.execPath,
        join(ctx.root, 'dist-bench/bench/net/latency-client.js'),
        target,
        String(PORT.echo),
        String(n),
        String(rate),
      ]),
      timeoutMs,
    ),
  );
  let out: { samples?: number[]; error?: string };
  try {
    out = JSON.parse(r.stdout);
  } catch {
    throw new Error(`latency client (${r.code}): ${firstLines(r.stderr || r.stdout)}`);
  }
  if (out.error || !out.samples) throw new Error(`latency client: ${out.error ?? 'no samples'}`);
  const sorted = [...out.samples].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const packets = director?.txPackets ?? 0;
  return {
    metrics: { 'rtt-p50': p50, 'rtt-p99': p99 },
    cpuUsPerPkt: perPacketUs(director, packets),
    summary: `round trip p50 ${p50.toFixed(0)} µs, p99 ${p99.toFixed(0)} µs${directorNote(director, packets)}`,
    detail: { p50, p99, samples: out.samples, director },
  };
}
