// lvsd's configuration file (`lvsd --config-file FILE`): the services and dests in `ipvsadm -S -n`
// form (with the dests' -x/-y thresholds, which -S leaves out), plus a `--set` line for the timeouts, rewritten atomically after every change made
// through the control socket and read back when lvsd starts. A lvsd killed with SIGKILL and
// started again comes back with the same table; the file is also a valid `lvsadm -R` input.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Balancer } from '../ctl/balancer';
import type { ServiceKey } from '../ctl/protocol';
import { dispatch } from '../ctl/server';
import type { ConfigStore } from '../lvsd/daemon';
import { type ArgResolver, DEFAULT_LIST_FORMAT, parseArgs, restoreLineWords } from './lvsadm-args';
import { formatSave, NUMERIC_NAMES } from './lvsadm-format';

/** Numeric addresses and ports only: a saved file never depends on the resolver. */
const NUMERIC_RESOLVER: ArgResolver = {
  host: async () => null,
  service: () => null,
};

const HEADER = '# lvsd configuration: the virtual services (lvsadm -S -n), rewritten on every change\n';

/**
 * The file's text for the balancer's current table and timeouts; services `skip` names (the
 * health monitor's: its keepalived.conf is their configuration) are left out.
 */
export function configText(b: Balancer, skip: (svc: ServiceKey) => boolean = () => false): string {
  const t = b.getTimeouts();
  const snap = b.snapshot();
  const kept = { ...snap, services: snap.services.filter((svc) => !skip(svc)) };
  const rules = formatSave(kept, { ...DEFAULT_LIST_FORMAT, numeric: true }, NUMERIC_NAMES, true);
  return `${HEADER}${rules}--set ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}

/** Write the configuration to `path` atomically (a temporary file renamed over it). */
export function saveConfig(path: string, b: Balancer, skip?: (svc: ServiceKey) => boolean): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, configText(b, skip), { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * Apply a configuration file, line by line as `lvsadm -R` reads it. A line that does not parse
 * or that the balancer refuses is reported and skipped; the rest loads. A missing file is an
 * empty configuration. Returns how many lines were applied and how many failed.
 */
export async function loadConfig(
  path: string,
  b: Balancer,
  log: (msg: string) => void,
): Promise<{ applied: number; failed: number }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { applied: 0, failed: 0 };
    throw err;
  }
  let applied = 0;
  let failed = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const words = restoreLineWords(lines[i]);
    if (words.length === 0) continue;
    const parsed = await parseArgs(words, NUMERIC_RESOLVER);
    const where = `${path}:${i + 1}`;
    if (!parsed.ok) {
      log(`${where}: ${parsed.error.stderr.trim()}`);
      failed++;
      continue;
    }
    const command = parsed.args.command;
    if (command.kind !== 'request') {
      log(`${where}: not a configuration command, ignored`);
      failed++;
      continue;
    }
    try {
      await dispatch(b, command.request);
      applied++;
    } catch (err) {
      log(`${where}: ${(err as Error).message}`);
      failed++;
    }
  }
  return { applied, failed };
}

/** The file `path` as lvsd's configuration store (lvsd --config-file). */
export function configFileStore(path: string): ConfigStore {
  return {
    path,
    load: (b, log) => loadConfig(path, b, log),
    save: (b, skip) => saveConfig(path, b, skip),
  };
}
