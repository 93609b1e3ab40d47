// `lvsd --metrics ADDR:PORT`: GET /metrics in the Prometheus text format (format.ts renders it
// from a snapshot of the balancer and the engine's counters, taken per scrape).

import { createServer, type Server } from 'node:http';
import type { Balancer } from '../ctl/balancer';
import { formatMetrics, type MetricsInput } from './format';

export async function metricsInput(b: Balancer): Promise<MetricsInput> {
  const c = await b.plane.counters();
  return {
    snapshot: b.snapshot(),
    global: b.globalStats(),
    globalRates: b.globalRates(),
    connections: c.conns,
    drops: b.dropCounts(c.drops),
    txPackets: c.txPackets,
    rxPackets: c.rxPackets,
    batches: c.batches,
    engines: c.engines,
    offload: c.offload,
    synProxy: c.synProxy,
    reassembly: c.reassembly,
    sync: [
      ...(b.sync.master ? [{ role: 'master' as const, ...b.sync.master.counters }] : []),
      ...(b.sync.backup ? [{ role: 'backup' as const, ...b.sync.backup.counters }] : []),
    ],
    health: b.health ? { counters: b.health.stats(), virtualServers: b.health.snapshot() } : null,
  };
}

/** `ADDR:PORT` (ADDR may be empty for all addresses) → host and port; throws on anything else. */
export function parseListen(arg: string): { host: string | undefined; port: number } {
  const i = arg.lastIndexOf(':');
  const port = Number(arg.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`expected ADDR:PORT, got '${arg}'`);
  const host = arg.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? undefined : host, port };
}

/** Serve /metrics on `arg` (ADDR:PORT); resolves once listening. */
export function startMetricsServer(arg: string, b: Balancer): Promise<Server> {
  const { host, port } = parseListen(arg);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    metricsInput(b).then(
      (input) =>
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(formatMetrics(input)),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
