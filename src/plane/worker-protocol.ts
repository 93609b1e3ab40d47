// The messages between lvsd's control plane (MultiPlane) and its engine threads
// (engine-worker.ts). Plain structured-clonable records; counters and dest state are shared
// memory inside them (table-image.ts), not copies.

import type { ConnRows } from '../conn/conn-rows';
import type { PlaneCounters, Setting } from '../core/data-plane';
import type { SyncConn } from '../wire/sync';
import type { TableImage } from './table-image';

/** What a worker is started with (workerData). */
export interface WorkerInit {
  /** This engine's number: its queue of the TUN and its slice of the shared counters. */
  k: number;
  engines: number;
  tunFd: number;
  tunName: string;
  offload: boolean;
  /** TUN mode may hand GSO packets to the kernel to segment (the main thread attached encap.c's program). */
  ipipGso: boolean;
  batch: number;
  /** Connections (and templates) at most, over all engines. */
  maxConns: number;
  /** Each engine's connection count, shared (ConnTable.total): engine k's at k. */
  connTotal: Int32Array;
  /**
   * The sockets the engine opened, [count, fd...] (shared): the control plane closes them when
   * the engine's thread ends without closing them itself.
   */
  sockets: Int32Array;
  /** The director's stats block (shared, a slice per engine). */
  stats: Float64Array;
  /** Everything the engine is told after it starts, replayed for a restarted worker. */
  replay: ToWorker[];
}

export type ToWorker =
  | { t: 'table'; image: TableImage }
  | { t: 'timeout'; protocol: number; state: number; seconds: number }
  | { t: 'setting'; name: Setting; value: number }
  | { t: 'ftpPorts'; ports: number[] }
  | { t: 'localAddrs'; addrs: number[] }
  | { t: 'replyMtu'; mtu: number }
  | { t: 'tick'; freePages: number }
  | { t: 'frameDev'; name: string; index: number }
  | { t: 'markDev'; mark: number; fd: number; name: string }
  | { t: 'closeMarkDev'; mark: number }
  | { t: 'syncSink'; on: boolean }
  | { t: 'applySync'; entries: SyncConn[] }
  | { t: 'counters'; id: number }
  | { t: 'connRows'; id: number }
  /** A reassembled datagram another engine handed over (its flow is this engine's). */
  | { t: 'packet'; bytes: Uint8Array }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'counters'; id: number; counters: PlaneCounters }
  | { t: 'connRows'; id: number; rows: ConnRows }
  | { t: 'sync'; entries: SyncConn[] }
  /** A reassembled datagram whose flow engine `to` holds. */
  | { t: 'handoff'; to: number; bytes: Uint8Array }
  | { t: 'log'; msg: string }
  | { t: 'stopped' };
