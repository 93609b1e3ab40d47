// lvsd's control socket: a Unix stream socket (mode 0600) carrying one JSON request per line and
// one JSON response per line. Requests from all clients run one at a time, in arrival order, so
// a listing is always a consistent snapshot even while another client edits the table.

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { LvsError } from '../errors';
import type { Balancer } from './balancer';
import type { DaemonSpec, Request, Response } from './protocol';
import { readSysctls, sysctlDef, writeSysctl } from './sysctl';

/** The requests that change the configuration (what `lvsadm -S` and `--timeout` show). */
const CONFIG_COMMANDS: ReadonlySet<string> = new Set([
  'add-service',
  'edit-service',
  'delete-service',
  'flush',
  'add-server',
  'edit-server',
  'delete-server',
  'set-timeouts',
]);

/** Longest request line accepted (a restore of thousands of rules still fits). */
const MAX_LINE = 1 << 20;

export async function dispatch(b: Balancer, req: Request): Promise<unknown> {
  switch (req.cmd) {
    case 'add-service':
      return b.addService(req.svc);
    case 'edit-service':
      return b.editService(req.svc);
    case 'delete-service':
      return b.deleteService(req.svc);
    case 'flush':
      return b.flush();
    case 'add-server':
      return b.addDest(req.svc, req.dest);
    case 'edit-server':
      return b.editDest(req.svc, req.dest);
    case 'delete-server':
      return b.deleteDest(req.svc, req.dest);
    case 'zero':
      return b.zero(req.svc);
    case 'set-timeouts':
      return b.setTimeouts(req.timeouts);
    case 'get-timeouts':
      return b.getTimeouts();
    case 'list':
      return b.snapshot();
    case 'list-conns':
      return b.connections();
    case 'start-daemon':
      return b.sync.start(checkDaemonSpec(req.daemon));
    case 'stop-daemon':
      return b.sync.stop(req.state);
    case 'list-daemons':
      return b.sync.list();
    case 'sysctl': {
      if (req.name === undefined) return readSysctls(b.plane);
      if (typeof req.name !== 'string' || (req.value !== undefined && typeof req.value !== 'string')) {
        throw new LvsError('EINVAL', 'malformed sysctl request');
      }
      if (req.value !== undefined) writeSysctl(b.plane, req.name, req.value);
      return [{ name: req.name, value: b.plane.setting(sysctlDef(req.name).setting) }];
    }
    case 'list-vrrp':
      return b.vrrp?.snapshot() ?? [];
    case 'list-checks':
      return b.health?.snapshot() ?? [];
    case 'restart-engine': {
      const k = req.engine;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= b.plane.engines) {
        throw new LvsError('EINVAL', `no engine ${String(k)} (lvsd runs ${b.plane.engines})`);
      }
      await b.plane.restartEngine(k);
      return undefined;
    }
    case 'engine-stats': {
      const c = await b.plane.counters();
      const drops = b.dropCounts(c.drops);
      return {
        conns: c.conns,
        rxPackets: c.rxPackets,
        txPackets: c.txPackets,
        stats: b.globalStats(),
        drops,
        offload: c.offload,
        synProxy: c.synProxy,
        engines: c.engines,
        handed: c.handed,
      };
    }
    default:
      throw new LvsError('EINVAL', `unknown command ${(req as { cmd?: unknown }).cmd}`);
  }
}

/** A start-daemon request's settings, checked field by field (the socket carries any JSON). */
function checkDaemonSpec(d: unknown): DaemonSpec {
  const v = d as Partial<DaemonSpec> | null;
  const int = (n: unknown, max: number) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;
  if (
    typeof v !== 'object' ||
    v === null ||
    (v.state !== 'master' && v.state !== 'backup') ||
    typeof v.mcastIfn !== 'string' ||
    typeof v.group !== 'string' ||
    !int(v.syncid, 255) ||
    !int(v.maxlen, 65535) ||
    !int(v.port, 65535) ||
    !int(v.ttl, 255)
  ) {
    throw new LvsError('EINVAL', 'malformed start-daemon request');
  }
  return v as DaemonSpec;
}

function toResponse(err: unknown): Response {
  if (err instanceof LvsError) return { ok: false, errno: err.errno, message: err.message };
  return { ok: false, errno: 'EINVAL', message: err instanceof Error ? err.message : String(err) };
}

function isRequest(v: unknown): v is Request {
  return typeof v === 'object' && v !== null && typeof (v as { cmd?: unknown }).cmd === 'string';
}

/** True when something answers on the socket path (another lvsd). */
export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: Server | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly clients = new Set<Socket>();

  /**
   * `onChange` runs after every request that changed the services or dests, or the timeouts
   * (lvsd saves its configuration file there).
   */
  constructor(
    private readonly balancer: Balancer,
    private readonly path: string,
    private readonly log: (msg: string) => void,
    private readonly onChange: () => void = () => {},
  ) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      if (await socketAlive(this.path)) throw new Error(`another lvsd is listening on ${this.path}`);
      unlinkSync(this.path);
    }
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    // Create the socket file as 0600 from the start: no window in which others could connect.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    chmodSync(this.path, 0o600);
  }

  private serve(sock: Socket): void {
    this.clients.add(sock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) {
        sock.end(`${JSON.stringify({ ok: false, errno: 'EMSGSIZE', message: 'request too long' })}\n`);
        buf = '';
        return;
      }
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== '') this.enqueue(sock, line);
        nl = buf.indexOf('\n');
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.clients.delete(sock));
  }

  /**
   * Run `fn` in turn with the requests, so that another writer (the health monitor) never
   * changes the table in the middle of a request.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private enqueue(sock: Socket, line: string): void {
    this.queue = this.queue.then(async () => {
      let res: Response;
      try {
        const req: unknown = JSON.parse(line);
        if (!isRequest(req)) throw new LvsError('EINVAL', 'malformed request');
        const result = await dispatch(this.balancer, req);
        res = result === undefined ? { ok: true } : { ok: true, result };
        if (
          req.cmd !== 'list' &&
          req.cmd !== 'list-conns' &&
          req.cmd !== 'get-timeouts' &&
          req.cmd !== 'engine-stats' &&
          req.cmd !== 'list-checks' &&
          req.cmd !== 'list-vrrp' &&
          !(req.cmd === 'sysctl' && req.value === undefined)
        ) {
          this.log(`${req.cmd} ${describe(req)}`);
        }
        if (CONFIG_COMMANDS.has(req.cmd)) this.onChange();
      } catch (err) {
        res = toResponse(err);
      }
      if (!sock.destroyed) sock.write(`${JSON.stringify(res)}\n`);
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

function describe(req: Request): string {
  const parts: string[] = [];
  if ('svc' in req && req.svc) {
    const s = req.svc;
    parts.push(s.fwmark ? `fwmark ${s.fwmark}` : `${s.protocol === 17 ? 'udp' : 'tcp'} ${s.addr}:${s.port}`);
  }
  if ('dest' in req) parts.push(`-> ${req.dest.addr}:${req.dest.port}`);
  if (req.cmd === 'sysctl') parts.push(`${req.name}=${req.value}`);
  return parts.join(' ');
}
