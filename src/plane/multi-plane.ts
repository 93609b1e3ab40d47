// lvsd --workers N: N engines, each in its own thread on one queue of a multi-queue TUN, behind
// the one DataPlane the control plane knows. The kernel picks the queue of every packet it sends
// into the TUN with lvsd's steering program (native/steering.ts): both directions of a flow reach
// the engine that holds it, as both directions of a connection reach one CPU's view of kernel
// IPVS's shared table.
//
// What is shared, and how:
// - The table (services, dests, their settings and paths) is the control plane's; after every
//   change it is sent whole to every engine (table-image.ts), which updates its copy between two
//   batches, so no packet sees half a change.
// - Each dest's connection counts and flags are one Int32Array on shared memory (Dest.shared,
//   changed with Atomics): lc, wlc and the thresholds see every engine's connections, as the
//   kernel's atomic counters do. The traffic counters are shared memory too, a slice per engine,
//   summed when read (shared-stats.ts).
// - Per engine: connections (a flow lives on its queue's engine), scheduler cursors (rr and wrr
//   go round per engine), the defense strategies' decisions, the fragment queues.
// - Gathered by message: counters() and connRows() ask every engine and merge the answers.
//
// A worker that dies is started again on its queue with the current table and settings; the
// connections it held are gone, and their next packets are handled as packets of unknown
// connections (a TCP segment that is not a SYN is answered with a reset, unless sloppy_tcp).

import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type ConnRows, mergeConnRows } from '../conn/conn-rows';
import {
  type DataPlane,
  EnginePlane,
  type PlaneCounters,
  type ServiceView,
  type Setting,
  type SynProxyCounters,
} from '../core/data-plane';
import { Engine } from '../core/engine';
import type { SyncSink } from '../core/sync-conn';
import { AF_INET, type Dest, destSharedInts, IPPROTO_TCP, type Service, type Stats, SVC_F_PERSISTENT } from '../ip-vs';
import { loadNative } from '../native/addon';
import { MemoryIo } from '../native/memory-io';
import { MARK_DEV_PREFIX, MAX_FRAME_DEVS } from '../native/native-io';
import { TunSteering } from '../native/steering';
import { steerKeyHash } from '../wire/steer-hash';
import type { SyncConn } from '../wire/sync';
import { SumStats, statsBuffer } from './shared-stats';
import { sharedSchedInts, tableImage } from './table-image';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol';

const WORKER_FILE = join(__dirname, 'engine-worker.js');
/** Fields of a table image that are shared memory or its number: not part of what changed. */
const SHARED_FIELDS: ReadonlySet<string> = new Set(['shared', 'stats', 'cursor', 'version']);
/** An engine that ended sooner than this after its start is started again this much later. */
const RESPAWN_PAUSE_MS = 1000;
/** How long counters() and connRows() wait for an engine's answer. */
const ASK_TIMEOUT_MS = 2000;

export interface MultiPlaneOptions {
  tunName: string;
  offload: boolean;
  /** Attach the IP-in-IP segmentation program to the TUN (native/src/encap.c). */
  ipipGso: boolean;
  batch: number;
  maxConns: number;
  /** Engines (and TUN queues), at least 2. */
  workers: number;
  log: (msg: string) => void;
}

interface EngineThread {
  k: number;
  worker: Worker;
}

interface MarkDev {
  name: string;
  fds: number[];
}

export class MultiPlane implements DataPlane {
  readonly tunName: string;
  readonly stats: Stats;
  private readonly n: number;
  private readonly fds: number[];
  private readonly steering: TunSteering;
  /** The IP-in-IP segmentation program's link fd, or -1. */
  private ipipLink = -1;
  /**
   * The control plane's copy of the table and settings: an engine that never sees a packet (its
   * service table and dest ids are the ones the Balancer edits; its settings answer setting()).
   */
  private readonly table: EnginePlane;
  private readonly threads: EngineThread[] = [];
  private readonly globalStats: Float64Array;
  /** Every engine's live connections (the --max-conns bound is on their sum). */
  private readonly connTotal: Int32Array;
  /** What a restarted worker must be told again, by a key per setting. */
  private readonly replay = new Map<string, ToWorker>();
  private readonly frameDevs: string[] = [];
  private readonly markDevs = new Map<number, MarkDev>();
  private syncSink: SyncSink | null = null;
  private readonly pending = new Map<number, (m: FromWorker) => void>();
  private nextId = 1;
  private imageQueued = false;
  /** The last image sent, without its shared memory and version, to compare the next with. */
  private lastImage = '';
  private version = 0;
  private applyQueue: SyncConn[][] = [];
  private applyQueued = false;
  private stopping = false;
  private readonly cursors = new WeakMap<Service, Int32Array>();
  private readonly cursorOf = (s: Service): Int32Array => {
    let c = this.cursors.get(s);
    const ints = sharedSchedInts(s.schedName);
    if (c === undefined || c.length < ints) {
      c = new Int32Array(new SharedArrayBuffer(4 * ints));
      this.cursors.set(s, c);
    }
    return c;
  };
  private readonly uids = new WeakMap<Dest, number>();
  private nextUid = 1;
  private readonly uidOf = (d: Dest): number => {
    let u = this.uids.get(d);
    if (u === undefined) {
      u = this.nextUid++;
      this.uids.set(d, u);
    }
    return u;
  };

  constructor(private readonly opts: MultiPlaneOptions) {
    const native = loadNative();
    this.n = opts.workers;
    const tun = native.tunOpen(opts.tunName, opts.offload, opts.workers);
    this.tunName = tun.name;
    this.fds = tun.fds;
    try {
      this.steering = TunSteering.attach(tun.fd);
    } catch (err) {
      for (const fd of tun.fds) native.close(fd);
      throw err;
    }
    // TUN mode's GSO packets segmented by the kernel (native/src/encap.c; daemon.ts says why only with routes).
    if (opts.ipipGso) {
      try {
        this.ipipLink = native.ipipGsoAttach(tun.name);
      } catch (err) {
        opts.log(`IP-in-IP segmentation stays in the engines: ${(err as Error).message}`);
      }
    }
    this.table = new EnginePlane(new Engine(new MemoryIo()));
    this.globalStats = statsBuffer(this.n);
    this.connTotal = new Int32Array(new SharedArrayBuffer(4 * this.n));
    this.stats = new SumStats(this.globalStats);
    for (let k = 0; k < this.n; k++) this.threads.push(this.spawn(k));
  }

  private spawn(k: number): EngineThread {
    const { opts } = this;
    const replay: ToWorker[] = [...this.replay.values()];
    const sockets = new Int32Array(new SharedArrayBuffer(4 * (MAX_FRAME_DEVS + 2)));
    for (const [mark, m] of this.markDevs) replay.push({ t: 'markDev', mark, fd: m.fds[k]!, name: m.name });
    const init: WorkerInit = {
      k,
      engines: this.n,
      tunFd: this.fds[k]!,
      tunName: this.tunName,
      offload: opts.offload,
      ipipGso: this.ipipLink >= 0,
      batch: opts.batch,
      maxConns: opts.maxConns,
      connTotal: this.connTotal,
      sockets,
      stats: this.globalStats,
      replay,
    };
    const worker = new Worker(WORKER_FILE, { workerData: init });
    const thread: EngineThread = { k, worker };
    const started = Date.now();
    worker.on('message', (m: FromWorker) => this.received(m));
    worker.on('error', (err) => opts.log(`engine ${k}: ${err.stack ?? err.message}`));
    worker.on('exit', (code) => {
      if (this.stopping) return;
      opts.log(`engine ${k} ended (exit code ${code}); starting it again with the table (its connections are lost)`);
      Atomics.store(this.connTotal, k, 0);
      // Its thread is gone but its sockets are not: close them (its queue's fd is ours, kept).
      const native = loadNative();
      for (let i = 1; i <= Atomics.load(sockets, 0); i++) {
        try {
          native.close(Atomics.load(sockets, i));
        } catch {
          // Already closed: nothing to release.
        }
      }
      for (const s of this.table.services.list) for (const d of s.dests) d.forgetEngine(k);
      this.table.engine.dests.forgetEngine(k);
      // One that dies as it starts is started again after a pause, not in a tight loop.
      if (Date.now() - started >= RESPAWN_PAUSE_MS) {
        this.threads[k] = this.spawn(k);
        return;
      }
      setTimeout(() => {
        if (!this.stopping) this.threads[k] = this.spawn(k);
      }, RESPAWN_PAUSE_MS).unref();
    });
    return thread;
  }

  get engines(): number {
    return this.n;
  }

  /** Stop engine `k`; its 'exit' starts it again, as when it dies. Resolves once it runs. */
  async restartEngine(k: number): Promise<void> {
    const old = this.threads[k]!;
    await old.worker.terminate();
    // The exit handler has started the new one; wait until it reads its queue.
    const fresh = this.threads[k]!;
    if (fresh === old) return;
    await new Promise<void>((resolve) => {
      const onReady = (m: FromWorker): void => {
        if (m.t !== 'ready') return;
        fresh.worker.off('message', onReady);
        resolve();
      };
      fresh.worker.on('message', onReady);
    });
  }

  private received(m: FromWorker): void {
    switch (m.t) {
      case 'counters':
      case 'connRows': {
        const done = this.pending.get(m.id);
        this.pending.delete(m.id);
        done?.(m);
        return;
      }
      case 'sync':
        if (this.syncSink !== null) for (const e of m.entries) this.syncSink.add(e);
        return;
      case 'log':
        this.opts.log(m.msg);
        return;
      case 'handoff':
        this.threads[m.to]?.worker.postMessage({ t: 'packet', bytes: m.bytes } satisfies ToWorker, [
          m.bytes.buffer as ArrayBuffer,
        ]);
        return;
      default:
        return;
    }
  }

  private broadcast(m: ToWorker, replayKey?: string): void {
    if (replayKey !== undefined) this.replay.set(replayKey, m);
    for (const t of this.threads) t.worker.postMessage(m);
  }

  /**
   * Ask every engine; resolves with their answers. An engine that ended before answering (it is
   * being restarted) is left out after ASK_TIMEOUT_MS rather than holding the caller forever.
   */
  private ask(t: 'counters' | 'connRows'): Promise<FromWorker[]> {
    return Promise.all(
      this.threads.map(
        (th) =>
          new Promise<FromWorker>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.pending.delete(id);
              resolve({ t: 'stopped' });
            }, ASK_TIMEOUT_MS);
            this.pending.set(id, (m) => {
              clearTimeout(timer);
              resolve(m);
            });
            th.worker.postMessage({ t, id } satisfies ToWorker);
          }),
      ),
    );
  }

  get services(): ServiceView {
    return this.table.services;
  }

  tableChanged(): void {
    if (this.imageQueued) return;
    this.imageQueued = true;
    setImmediate(() => {
      this.imageQueued = false;
      const list = this.table.services.list;
      // IPv4 VIPs only: IPv6 is steered to one queue (steer.c), and an IPv6 service's addr is a fold.
      this.steering.setVips(list.filter((s) => s.fwmark === 0 && s.af === AF_INET).map((s) => s.addr));
      const mask = this.addrMask(list);
      this.steering.setAddrOnly(mask);
      const image = tableImage(list, this.uidOf, this.cursorOf, this.version + 1, mask);
      // The control plane reports a possible change after every verb and every path refresh
      // (each second); the engines only hear of real ones.
      const text = JSON.stringify(image, (key, value) => (SHARED_FIELDS.has(key) ? undefined : value));
      if (text === this.lastImage) return;
      this.lastImage = text;
      this.version++;
      this.broadcast({ t: 'table', image }, 'table');
    });
  }

  /**
   * Connections that belong together must meet on one engine: those of a persistent service's
   * clients (the template; all clients of one masked network share it) and an FTP service's (the
   * data connections its control connection expects). While there is such a service the
   * client's address alone, masked with every persistent service's netmask, picks the engine.
   */
  private addrMask(list: readonly Service[]): number | null {
    const ftpPorts = this.table.engine.ftp.ports;
    let mask: number | null = null;
    for (const s of list) {
      if (s.af !== AF_INET) continue;
      if ((s.flags & SVC_F_PERSISTENT) !== 0) mask = ((mask ?? 0xffffffff) & s.netmask) >>> 0;
      else if (s.protocol === IPPROTO_TCP && ftpPorts.has(s.port)) mask ??= 0xffffffff;
    }
    return mask;
  }

  addService(svc: Service): void {
    svc.stats = new SumStats(statsBuffer(this.n));
    this.table.addService(svc);
    this.tableChanged();
  }

  removeService(svc: Service): boolean {
    const last = this.table.removeService(svc);
    this.tableChanged();
    return last;
  }

  addDest(dest: Dest): void {
    const shared = new Int32Array(new SharedArrayBuffer(4 * destSharedInts(this.n)));
    shared.set(dest.shared.subarray(0, destSharedInts(1)));
    dest.shared = shared;
    dest.stats = new SumStats(statsBuffer(this.n));
    this.table.addDest(dest);
    this.tableChanged();
  }

  retireDest(dest: Dest): void {
    this.table.retireDest(dest);
    this.tableChanged();
  }

  openMarkDev(mark: number): string {
    const known = this.markDevs.get(mark);
    if (known !== undefined) return known.name;
    const native = loadNative();
    const tun = native.tunOpen(`${MARK_DEV_PREFIX}%d`, this.opts.offload, this.n);
    try {
      this.steering.attachRequestsOnly(tun.fd);
    } catch (err) {
      for (const fd of tun.fds) native.close(fd);
      throw err;
    }
    this.markDevs.set(mark, { name: tun.name, fds: tun.fds });
    for (const t of this.threads) t.worker.postMessage({ t: 'markDev', mark, fd: tun.fds[t.k]!, name: tun.name });
    return tun.name;
  }

  closeMarkDev(mark: number): void {
    const m = this.markDevs.get(mark);
    if (m === undefined) return;
    this.markDevs.delete(mark);
    // Each engine closes its queue's fd once it stopped watching it.
    this.broadcast({ t: 'closeMarkDev', mark });
  }

  openFrameDev(dev: string): number {
    const known = this.frameDevs.indexOf(dev);
    if (known >= 0) return known + 1;
    // Fail here, as a single engine would, for an interface that cannot be opened.
    const native = loadNative();
    native.close(native.packetOpen(dev, this.opts.offload).fd);
    this.frameDevs.push(dev);
    const index = this.frameDevs.length;
    this.broadcast({ t: 'frameDev', name: dev, index }, `frameDev ${index}`);
    return index;
  }

  timeout(protocol: number, state: number): number {
    return this.table.timeout(protocol, state);
  }

  setTimeout(protocol: number, state: number, seconds: number): void {
    this.table.setTimeout(protocol, state, seconds);
    this.broadcast({ t: 'timeout', protocol, state, seconds }, `timeout ${protocol} ${state}`);
  }

  setting(name: Setting): number {
    return this.table.setting(name);
  }

  setSetting(name: Setting, value: number): void {
    this.table.setSetting(name, value);
    this.broadcast({ t: 'setting', name, value }, `setting ${name}`);
  }

  setFtpPorts(ports: Iterable<number>): void {
    const list = [...ports];
    this.table.setFtpPorts(list);
    this.broadcast({ t: 'ftpPorts', ports: list }, 'ftpPorts');
    this.tableChanged();
  }

  setSyncSink(sink: SyncSink | null): void {
    this.syncSink = sink;
    this.broadcast({ t: 'syncSink', on: sink !== null }, 'syncSink');
  }

  /** A received connection goes to the engine its packets will reach (the steering hash). */
  applySync(e: SyncConn): void {
    // IPv6 is steered to the first queue's engine (steer.c): its connections live there.
    const k = e.af === AF_INET ? steerKeyHash(e.caddr, e.cport, this.steering.addrMask) % this.n : 0;
    if (this.applyQueue.length === 0) this.applyQueue = Array.from({ length: this.n }, () => []);
    this.applyQueue[k]!.push({ ...e, addr6: e.addr6.slice(), inSeq: { ...e.inSeq }, outSeq: { ...e.outSeq } });
    if (this.applyQueued) return;
    this.applyQueued = true;
    setImmediate(() => {
      this.applyQueued = false;
      const q = this.applyQueue;
      this.applyQueue = [];
      for (const t of this.threads) if (q[t.k]!.length > 0) t.worker.postMessage({ t: 'applySync', entries: q[t.k]! });
    });
  }

  setLocalAddrs(addrs: ReadonlySet<number>): void {
    this.table.setLocalAddrs(addrs);
    this.broadcast({ t: 'localAddrs', addrs: [...addrs] }, 'localAddrs');
  }

  setReplyMtu(mtu: number): void {
    this.broadcast({ t: 'replyMtu', mtu }, 'replyMtu');
  }

  tick(freePages: number): void {
    this.broadcast({ t: 'tick', freePages });
    // Retired dests' ids are freed once no engine has a connection on them.
    this.table.engine.dests.sweep();
  }

  async counters(): Promise<PlaneCounters> {
    const sum: PlaneCounters = await this.table.counters();
    sum.engines = [];
    for (const m of await this.ask('counters')) {
      if (m.t !== 'counters') continue;
      const c = m.counters;
      sum.conns += c.conns;
      sum.rxPackets += c.rxPackets;
      sum.batches += c.batches;
      sum.txPackets += c.txPackets;
      for (let i = 0; i < sum.drops.length; i++) sum.drops[i]! += c.drops[i]!;
      sum.offload.partial += c.offload.partial;
      sum.offload.gso += c.offload.gso;
      for (const f of ['datagrams', 'bytes', 'completed', 'expired'] as const) sum.reassembly[f] += c.reassembly[f];
      for (const f of ['created', 'updated', 'ignored'] as const) sum.synced[f] += c.synced[f];
      for (const f of Object.keys(sum.synProxy) as (keyof SynProxyCounters)[]) sum.synProxy[f] += c.synProxy[f];
      sum.engines.push(...c.engines);
      sum.handed += c.handed;
    }
    return sum;
  }

  async connRows(): Promise<ConnRows> {
    const parts: ConnRows[] = [];
    for (const m of await this.ask('connRows')) if (m.t === 'connRows') parts.push(m.rows);
    return mergeConnRows(parts);
  }

  /**
   * Stop the engines, then close the TUN's queues and the steering map. The firewall-mark
   * devices' queues are the engines' to close (NativeIo.close, as they stop).
   */
  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.threads.map(
        (t) =>
          new Promise<void>((resolve) => {
            t.worker.once('exit', () => resolve());
            t.worker.postMessage({ t: 'stop' } satisfies ToWorker);
            setTimeout(() => void t.worker.terminate(), 2000).unref();
          }),
      ),
    );
    const native = loadNative();
    this.markDevs.clear();
    this.steering.close();
    if (this.ipipLink >= 0) native.close(this.ipipLink);
    for (const fd of this.fds) native.close(fd);
  }
}
