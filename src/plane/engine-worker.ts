// One engine in its own thread (worker_threads): lvsd --workers N runs N of these, engine k on
// queue k of the multi-queue TUN that the main thread opened and steers (native/steering.ts). It
// keeps a copy of the control plane's table (table-image.ts), counts into its slice of the
// shared counters, and answers the control plane's questions (counters, connection copies) by
// message. Nothing here decides anything: MultiPlane (multi-plane.ts) is the other end.

import { parentPort, workerData } from 'node:worker_threads';
import { connRowsBuffers } from '../conn/conn-rows';
import { EnginePlane } from '../core/data-plane';
import { Engine } from '../core/engine';
import type { Dest } from '../ip-vs';
import { NativeIo } from '../native/native-io';
import { Slab } from '../native/packet-io';
import { steerHash } from '../wire/steer-hash';
import { newSyncConn, type SyncConn } from '../wire/sync';
import { SliceStats } from './shared-stats';
import { applyTableImage } from './table-image';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);

const slab = init.offload ? Slab.forOffload(init.batch) : new Slab(init.batch);
const io = NativeIo.onQueue(init.tunFd, init.tunName, slab);
const engine = new Engine(io, { maxConns: init.maxConns, stats: new SliceStats(init.stats, init.k) });
engine.conns.total = init.connTotal;
engine.ipipGso = init.ipipGso;
engine.conns.totalSlot = init.k;
const plane = new EnginePlane(engine);
/** Publish the sockets this engine opened (worker-protocol.ts WorkerInit.sockets). */
function publishSockets(): void {
  const fds = io.socketFds().slice(0, init.sockets.length - 1);
  for (let i = 0; i < fds.length; i++) Atomics.store(init.sockets, i + 1, fds[i]!);
  Atomics.store(init.sockets, 0, fds.length);
}
publishSockets();
/** The control plane's unique number of each dest copy (table-image.ts). */
const uids = new WeakMap<Dest, number>();
let appliedVersion = 0;
/** The steering's address-only mask, as the table image says. */
let addrMask: number | null = null;
const isVip = (a: number): boolean => engine.services.isVip(a);
// A datagram reassembled here belongs to the engine its flow is steered to (fragments were
// steered by address alone): hand it over when that is another one.
engine.handoff = (buf, off, len) => {
  const owner = steerHash(buf, off, len, isVip, false, addrMask) % init.engines;
  if (owner === init.k) return false;
  const bytes = new Uint8Array(len);
  bytes.set(buf.subarray(off, off + len));
  post({ t: 'handoff', to: owner, bytes }, [bytes.buffer]);
  return true;
};
const applied = (): number => appliedVersion;

/** Connections offered for sync, sent to the control plane's master daemon after each wake-up. */
let syncOut: SyncConn[] = [];
let syncFlush = false;
const syncSink = {
  add(e: SyncConn): void {
    syncOut.push(structuredClone(e));
    if (!syncFlush) {
      syncFlush = true;
      setImmediate(() => {
        syncFlush = false;
        post({ t: 'sync', entries: syncOut });
        syncOut = [];
      });
    }
  },
};

function handle(m: ToWorker): void {
  switch (m.t) {
    case 'table':
      appliedVersion = m.image.version;
      addrMask = m.image.addrMask;
      applyTableImage(engine.services, engine.dests, m.image, init.k, uids, applied);
      return;
    case 'timeout':
      plane.setTimeout(m.protocol, m.state, m.seconds);
      return;
    case 'setting':
      plane.setSetting(m.name, m.value);
      return;
    case 'ftpPorts':
      plane.setFtpPorts(m.ports);
      return;
    case 'localAddrs':
      plane.setLocalAddrs(new Set(m.addrs));
      return;
    case 'replyMtu':
      plane.setReplyMtu(m.mtu);
      return;
    case 'tick':
      plane.tick(m.freePages);
      return;
    case 'frameDev': {
      const index = io.openFrameDev(m.name);
      publishSockets();
      if (index !== m.index)
        post({ t: 'log', msg: `engine ${init.k}: frame device ${m.name} is ${index}, not ${m.index}` });
      return;
    }
    case 'markDev':
      io.addMarkDev(m.mark, m.fd, m.name);
      return;
    case 'closeMarkDev':
      io.closeMarkDev(m.mark);
      return;
    case 'syncSink':
      engine.syncSink = m.on ? syncSink : null;
      return;
    case 'applySync': {
      const e = newSyncConn();
      for (const entry of m.entries) plane.applySync(Object.assign(e, entry));
      return;
    }
    case 'counters':
      post({ t: 'counters', id: m.id, counters: plane.countersNow() });
      return;
    case 'connRows': {
      const rows = plane.connRowsNow();
      post({ t: 'connRows', id: m.id, rows }, connRowsBuffers(rows));
      return;
    }
    case 'packet':
      engine.processHanded(m.bytes);
      return;
    case 'stop':
      Atomics.store(init.sockets, 0, 0);
      io.close();
      post({ t: 'stopped' });
      port.close();
      return;
  }
}

for (const m of init.replay) handle(m);
port.on('message', (m: ToWorker) => {
  try {
    handle(m);
  } catch (err) {
    post({ t: 'log', msg: `engine ${init.k}: ${(err as Error).stack ?? String(err)}` });
  }
});
io.start(
  () => engine.poll(),
  (err) =>
    post({
      t: 'log',
      msg: `engine ${init.k}: data path error (processing continues): ${(err as Error)?.stack ?? String(err)}`,
    }),
);
post({ t: 'ready' });
