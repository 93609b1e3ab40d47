// npm run bench — lvs-ts side by side with the kernel (forwarding, nftables NAT) and HAProxy, on
// network namespaces this run builds and removes (netns/lab.sh labs under the prefix lvsb<pid>).
// Every round runs every path (start rotated), each path's tests back to back, so that the
// machine's drift hits all paths alike. Prints the table; writes results/bench-<ts>.{json,md,svg}
// and results/latest.*. See --help, and bench/net/tests.ts for how each figure is measured.
//
// A benchmark, not a test: a path or a tool that fails is recorded as a failed cell and the run
// goes on; the namespaces are removed at the end, on failure and on SIGINT/SIGTERM/SIGHUP.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Lab, type LabKind } from './net/labs';
import { buildCells, METRICS, type RunRecord } from './net/metrics';
import { HELP, type Options, type PathId, parseOptions, type TestId } from './net/options';
import { type ActivePath, PATHS, probe, setupPath } from './net/paths';
import { exec, firstLines, ProcRegistry } from './net/proc';
import { jsonReport, markdownReport, markdownTable, type RunInfo, tableRows, textTable } from './net/report';
import { renderSvg } from './net/svg';
import { runTest } from './net/tests';

const ROOT = resolve(__dirname, '../..');
const LAB_SCRIPT = join(ROOT, 'netns/lab.sh');
const PREFIX_RE = /^lvsb(\d+)[ndt]-/;
const UDP_TESTS: TestId[] = ['udp-lossfree', 'udp-blast'];

const t0 = Date.now();
const elapsed = () => (Date.now() - t0) / 1000;
function log(msg: string): void {
  process.stderr.write(`[${elapsed().toFixed(0).padStart(4)}s] ${msg}\n`);
}

/** Namespaces of earlier bench runs whose process is gone (killed with SIGKILL, say). */
function removeStaleLabs(): void {
  let names: string[] = [];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '');
  } catch {
    return;
  }
  const stale = new Set<string>();
  for (const n of names) {
    const m = PREFIX_RE.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (!alive) stale.add(n.slice(0, n.indexOf('-')));
  }
  for (const prefix of stale) {
    log(`removing namespaces left by a dead bench run: ${prefix}-*`);
    try {
      execFileSync('bash', [LAB_SCRIPT, 'down', prefix], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // best effort
    }
  }
}

function firstLine(cmd: string, args: string[]): string {
  // Version flags print on stdout or stderr and exit 0 or 1, depending on the tool.
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `${cmd}: ${r.error.message}`;
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n')[0].trim();
}

function machineInfo(): Record<string, string> {
  return {
    cpus: String(cpus().length),
    cpuModel: cpus()[0]?.model ?? '?',
    kernel: release(),
    node: process.version,
    iperf3: firstLine('iperf3', ['--version']).replace(/ \(.*$/, ''),
    wrk: firstLine('wrk', ['-v']).replace(/ \[.*$/, ''),
    haproxy: firstLine('haproxy', ['-v']).replace(/ - https.*$/, ''),
    nginx: firstLine('nginx', ['-v']).replace('nginx version: ', ''),
  };
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseOptions(argv);
    if (parsed === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\nTry 'npm run bench -- --help'.\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (network namespaces, TUN devices): sudo npm run bench\n');
    return 1;
  }
  for (const f of [
    'dist/cli/lvsd.js',
    'dist-bench/bench/net/latency-client.js',
    'dist-bench/bench/net/echo-server.js',
  ]) {
    if (!existsSync(join(ROOT, f))) {
      process.stderr.write(`bench: ${f} is missing: run npm run build first\n`);
      return 1;
    }
  }

  const profile = opts.profile;
  const base = `lvsb${process.pid}`;
  const tmp = mkdtempSync(join(tmpdir(), `${base}-`));
  const procs = new ProcRegistry();
  const labs = new Map<LabKind, Lab>();
  const notes: string[] = [];
  const startedAt = new Date();

  // Teardown in a signal handler must be synchronous: kill, remove the namespaces, exit.
  let finished = false;
  const emergency = (sig: string) => {
    if (finished) return;
    finished = true;
    process.stderr.write(`\nbench: ${sig}: tearing down\n`);
    procs.killAllSync();
    for (const lab of labs.values()) {
      try {
        execFileSync('bash', [LAB_SCRIPT, 'down', lab.prefix], { stdio: 'ignore', timeout: 30_000 });
      } catch {
        // best effort
      }
    }
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => emergency(sig));

  try {
    removeStaleLabs();
    log(
      `profile ${profile.name}: ${profile.rounds} round(s), paths ${opts.paths.join(', ')}, tests ${opts.tests.join(', ')}` +
        `, steering ${opts.steer ? 'on' : 'off'}, prefix ${base}`,
    );

    // The UDP generator and sink, compiled for this run.
    const udpLoad = join(tmp, 'udp-load');
    let udpError: string | undefined;
    if (opts.tests.some((t) => UDP_TESTS.includes(t))) {
      const r = await exec('gcc', ['-O2', '-o', udpLoad, join(ROOT, 'scripts/bench/udp-load.c')], 60_000);
      if (r.code !== 0) {
        udpError = `cannot compile scripts/bench/udp-load.c: ${firstLines(r.stderr)}`;
        log(udpError);
      }
    }
    const steer = opts.steer && cpus().length >= 2;
    if (opts.steer && !steer) notes.push('one CPU: no steering');
    const gen = (cmd: string[]) => (steer ? ['taskset', '-c', '0', ...cmd] : cmd);

    // Build the labs the chosen paths need, each once for the whole run.
    const labErrors = new Map<LabKind, string>();
    const kinds = [...new Set(opts.paths.map((p) => PATHS[p].lab))];
    const udpNeeded = !udpError && opts.tests.some((t) => UDP_TESTS.includes(t));
    for (const kind of kinds) {
      const lab = new Lab(kind, `${base}${kind[0]}`, tmp, {
        root: ROOT,
        labScript: LAB_SCRIPT,
        procs,
        steer,
        udpLoad,
        log,
      });
      labs.set(kind, lab);
      try {
        log(`building the ${kind} lab (${lab.prefix}-*)`);
        await lab.up(udpNeeded);
      } catch (err) {
        const msg = (err as Error).message;
        labErrors.set(kind, `lab ${kind}: ${msg}`);
        log(`lab ${kind} FAILED: ${msg}`);
      }
    }

    const records: RunRecord[] = [];
    const record = (r: Omit<RunRecord, 'startedAt' | 'seconds' | 'ok'>, started: number) => {
      const full: RunRecord = {
        ...r,
        ok: r.status === 'ok',
        startedAt: new Date(started).toISOString(),
        seconds: (Date.now() - started) / 1000,
      };
      records.push(full);
      return full;
    };

    for (let round = 1; round <= profile.rounds; round++) {
      const order = opts.paths.map((_, i) => opts.paths[(i + round - 1) % opts.paths.length]);
      log(`round ${round}/${profile.rounds}: ${order.join(', ')}`);
      for (const pathId of order) {
        const def = PATHS[pathId];
        const lab = labs.get(def.lab)!;
        const tests = opts.tests;
        const failAll = (error: string, status: 'failed' | 'skipped' = 'failed') => {
          for (const test of tests) {
            const na = !def.udp && UDP_TESTS.includes(test);
            record(
              { round, path: pathId, test, status: na ? 'n/a' : status, error: na ? undefined : error },
              Date.now(),
            );
          }
        };
        if (elapsed() > profile.budgetSeconds) {
          log(`  ${pathId}: skipped (over the ${profile.budgetSeconds} s budget)`);
          failAll('over the time budget', 'skipped');
          continue;
        }
        const labError = labErrors.get(def.lab);
        if (labError) {
          failAll(labError);
          continue;
        }
        let active: ActivePath | undefined;
        try {
          await lab.freshClientSource();
          active = await setupPath(def, lab, { root: ROOT, procs, lvsdArgs: opts.lvsdArgs });
          await probe(active);
        } catch (err) {
          const msg = `setup: ${(err as Error).message}`;
          log(`  ${pathId}: ${msg}`);
          failAll(msg);
          if (active) await active.teardown().catch(() => {});
          continue;
        }
        log(
          `  ${def.label}: set up, ${lab.clientAddr} -> ${active.target}${active.lvsd ? `, lvsd pid ${active.lvsd.proc.pid}` : ''}`,
        );
        try {
          for (const test of tests) {
            const started = Date.now();
            if (!def.udp && UDP_TESTS.includes(test)) {
              record({ round, path: pathId, test, status: 'n/a' }, started);
              continue;
            }
            if (UDP_TESTS.includes(test) && udpError) {
              record({ round, path: pathId, test, status: 'failed', error: udpError }, started);
              continue;
            }
            if (elapsed() > profile.budgetSeconds) {
              record({ round, path: pathId, test, status: 'skipped', error: 'over the time budget' }, started);
              log(`  ${pathId} ${test}: skipped (over the ${profile.budgetSeconds} s budget)`);
              continue;
            }
            try {
              const o = await runTest(test, {
                active,
                profile,
                procs,
                root: ROOT,
                udpLoad,
                gen,
                log,
              });
              record(
                {
                  round,
                  path: pathId,
                  test,
                  status: 'ok',
                  metrics: o.metrics,
                  lowerBound: o.lowerBound,
                  cpuUsPerPkt: o.cpuUsPerPkt,
                  summary: o.summary,
                  detail: o.detail,
                },
                started,
              );
              log(`  ${pathId} ${test}: ${o.summary}`);
            } catch (err) {
              const msg = (err as Error).message;
              record({ round, path: pathId, test, status: 'failed', error: msg }, started);
              log(`  ${pathId} ${test}: FAILED: ${msg}`);
            }
          }
        } finally {
          await active.teardown().catch((err: Error) => log(`  ${pathId}: teardown: ${err.message}`));
        }
      }
    }

    // Results.
    const labels = Object.fromEntries(Object.values(PATHS).map((p) => [p.id, p.label])) as Record<PathId, string>;
    const metrics = METRICS.filter((m) => opts.tests.includes(m.test) && (!m.addedOver || opts.paths.includes('fwd')));
    const cells = buildCells(records, opts.paths, metrics);
    const groups = tableRows(cells, opts.paths, labels);
    const info: RunInfo = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      seconds: elapsed(),
      options: opts,
      machine: machineInfo(),
      labels,
      notes,
    };
    const stamp = startedAt
      .toISOString()
      .replace(/:/g, '-')
      .replace(/\.\d+Z$/, 'Z');
    const outDir = resolve(ROOT, opts.outDir);
    mkdirSync(outDir, { recursive: true });
    const name = `bench-${stamp}`;
    const title = `lvs-ts network benchmark, ${info.startedAt} (${profile.name}, ${profile.rounds} round${profile.rounds > 1 ? 's' : ''})`;
    const svg = renderSvg(title, metrics, cells, opts.paths, labels);
    const mdTable = markdownTable(groups);
    writeFileSync(join(outDir, `${name}.svg`), svg);
    writeFileSync(join(outDir, `${name}.json`), jsonReport(info, records, cells));
    writeFileSync(join(outDir, `${name}.md`), markdownReport(info, records, `${name}.svg`, mdTable));
    copyFileSync(join(outDir, `${name}.svg`), join(outDir, 'latest.svg'));
    copyFileSync(join(outDir, `${name}.json`), join(outDir, 'latest.json'));
    writeFileSync(join(outDir, 'latest.md'), markdownReport(info, records, 'latest.svg', mdTable));

    process.stdout.write(`\n${title}\n\n${textTable(groups)}\n`);
    process.stdout.write(`wrote ${join(opts.outDir, name)}.{json,md,svg} and ${join(opts.outDir, 'latest')}.*\n`);
    const failed = records.filter((r) => r.status === 'failed').length;
    if (failed) process.stdout.write(`${failed} test run(s) failed: see the report's "Failed or skipped" section\n`);
    return 0;
  } finally {
    if (!finished) {
      finished = true;
      await procs.stopAll();
      for (const lab of labs.values()) await lab.down();
      rmSync(tmp, { recursive: true, force: true });
      log('torn down');
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
