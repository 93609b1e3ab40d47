// The connection sync daemons (ip_vs_sync.c, REFERENCE.md §1.10), started and stopped with
// `lvsadm --start-daemon master|backup` / `--stop-daemon`:
//
// - master: the engine offers connections on the data path (core/sync-conn.ts → SyncMaster.add),
//   each is encoded at once into the current v1 message (src/wire/sync.ts); a message leaves
//   when the next entry would not fit in sync_maxlen, or when it has waited SYNC_FLUSH_MS.
//   It goes by UDP to the multicast group (224.0.0.81:8848 by default) out of the named
//   interface, with TTL 1 and no loopback.
// - backup: joins the group on the named interface and applies every entry of every message
//   whose syncid matches (0: any) to the data plane (core/sync-apply.ts): the backup then holds
//   copies of the master's connections, so after a failover their packets keep going to the
//   same real servers.
//
// Master and backup may run at the same time. Both are the control plane's (they run on the
// event loop between packet batches); the master's encoding is allocation-free per entry.

import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { DataPlane } from '../core/data-plane';
import type { SyncSink } from '../core/sync-conn';
import type { DaemonSpec } from '../ctl/protocol';
import { ExistsError, InvalidError, LvsError } from '../errors';
import {
  appendEntry,
  beginMessage,
  decodeMessage,
  entryLen,
  newSyncConn,
  SYNC_GROUP,
  SYNC_MAX_CONNS,
  SYNC_OK,
  SYNC_PORT,
  SYNC_REASON_NAMES,
  type SyncConn,
} from '../wire/sync';

/** A message waits at most this long for more entries (IPVS_SYNC_FLUSH_TIME, 2 s). */
export const SYNC_FLUSH_MS = 2000;
/** IPv4 + UDP headers: sync_maxlen is what is left of the MTU. */
const HLEN = 28;
const DEFAULT_TTL = 1;

/** Counters of one daemon (lvsd's metrics and tests read them). */
export interface SyncCounters {
  messages: number;
  conns: number;
  /** Master: sends that failed. Backup: messages dropped, by reason name. */
  errors: number;
  dropped: Record<string, number>;
}

function newCounters(): SyncCounters {
  return { messages: 0, conns: 0, errors: 0, dropped: {} };
}

/** The IPv4 address and MTU of interface `name` in this namespace. */
function interfaceInfo(name: string): { addr: string; mtu: number } {
  const list = networkInterfaces()[name];
  if (list === undefined) throw new LvsError('ENODEV', 'No such device');
  const v4 = list.find((a) => a.family === 'IPv4');
  if (v4 === undefined) throw new InvalidError(`interface ${name} has no IPv4 address`);
  return { addr: v4.address, mtu: readMtu(name) };
}

function readMtu(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim()) || 1500;
  } catch {
    return 1500;
  }
}

/**
 * Fill in the kernel's defaults (start_sync_thread): group 224.0.0.81, port 8848, TTL 1, and
 * sync_maxlen from the MTU: 1500 − 28 for a master, the interface MTU (at least 1500) − 28 for
 * a backup; a given maxlen is clamped to 1 (master) or 1024 (backup) .. 65507.
 */
export function daemonDefaults(spec: DaemonSpec, mtu: number): DaemonSpec {
  const backup = spec.state === 'backup';
  const linkMtu = backup ? Math.min(Math.max(mtu, 1500), 65535) : 1500;
  const maxlen = spec.maxlen !== 0 ? Math.min(Math.max(spec.maxlen, backup ? 1024 : 1), 65535 - HLEN) : linkMtu - HLEN;
  return {
    state: spec.state,
    mcastIfn: spec.mcastIfn,
    syncid: spec.syncid,
    maxlen,
    group: spec.group || SYNC_GROUP,
    port: spec.port || SYNC_PORT,
    ttl: spec.ttl || DEFAULT_TTL,
  };
}

/** The master: a SyncSink the engine feeds, sending v1 messages to the group. */
export class SyncMaster implements SyncSink {
  readonly counters = newCounters();
  private buf: Buffer;
  private size = 0;
  private firstUse = 0;
  private readonly timer: NodeJS.Timeout;
  /** Buffers of sent messages, back from the socket, for reuse. */
  private readonly pool: Buffer[] = [];

  /**
   * `transmit` sends `size` bytes of `msg` to the group and calls `done` once `msg` may be
   * reused; `clock` is in milliseconds.
   */
  constructor(
    readonly spec: DaemonSpec,
    private readonly transmit: (msg: Buffer, size: number, done: (err?: Error | null) => void) => void,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.buf = Buffer.alloc(spec.maxlen);
    this.timer = setInterval(() => this.flushIfOld(), SYNC_FLUSH_MS / 4);
    this.timer.unref();
  }

  /** Encode connection `e` into the current message (ip_vs_sync_conn). */
  add(e: SyncConn): void {
    const flags = e.flags;
    const len = entryLen(flags, e.af);
    if (this.size !== 0) {
      const pad = (4 - (this.size & 3)) & 3;
      if (this.size + pad + len > this.buf.length || this.buf[4] === SYNC_MAX_CONNS) this.send();
    }
    if (this.size === 0) {
      if (len + 8 > this.buf.length) return;
      this.size = beginMessage(this.buf, 0, this.spec.syncid);
      this.firstUse = this.clock();
    }
    this.size = appendEntry(this.buf, 0, this.size, e);
    this.counters.conns++;
  }

  /** Send what waited long enough (the master thread's 2-second limit). */
  flushIfOld(): void {
    if (this.size !== 0 && this.clock() - this.firstUse >= SYNC_FLUSH_MS) this.send();
  }

  /** Send the current message now. */
  send(): void {
    if (this.size === 0) return;
    const msg = this.buf;
    const size = this.size;
    this.buf = this.pool.pop() ?? Buffer.alloc(this.spec.maxlen);
    this.size = 0;
    this.counters.messages++;
    this.transmit(msg, size, (err) => {
      if (err) this.counters.errors++;
      this.pool.push(msg);
    });
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** The backup: receives the group's messages and applies them to the data plane. */
export class SyncBackup {
  readonly counters = newCounters();
  private readonly entry: SyncConn = newSyncConn();
  private readonly apply = (e: SyncConn): void => {
    this.counters.conns++;
    this.plane.applySync(e);
  };

  constructor(
    private readonly plane: DataPlane,
    readonly spec: DaemonSpec,
  ) {}

  /** Process one received datagram (ip_vs_process_message). */
  receive(buf: Buffer, off: number, len: number): void {
    if (len > this.spec.maxlen) len = this.spec.maxlen;
    this.counters.messages++;
    const why = decodeMessage(buf, off, len, this.spec.syncid, this.entry, this.apply);
    if (why !== SYNC_OK) {
      const name = SYNC_REASON_NAMES[why];
      this.counters.dropped[name] = (this.counters.dropped[name] ?? 0) + 1;
    }
  }
}

function bound(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address, exclusive: false }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/** The daemons of one lvsd: at most one master and one backup, each with its socket. */
export class SyncDaemons {
  master: SyncMaster | null = null;
  backup: SyncBackup | null = null;
  private masterSocket: Socket | null = null;
  private backupSocket: Socket | null = null;

  constructor(
    private readonly plane: DataPlane,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** --start-daemon: EEXIST when that daemon already runs ("Daemon has already run"). */
  async start(spec: DaemonSpec): Promise<void> {
    if ((spec.state === 'master' ? this.master : this.backup) !== null) throw new ExistsError('Daemon has already run');
    if (spec.group.includes(':')) throw new LvsError('EAFNOSUPPORT', 'IPv6 sync groups are not supported');
    const iface = interfaceInfo(spec.mcastIfn);
    const full = daemonDefaults(spec, iface.mtu);
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('error', (err) => this.log(`sync ${full.state}: ${err.message}`));
    try {
      if (full.state === 'master') {
        await bound(socket, 0, iface.addr);
        socket.setMulticastInterface(iface.addr);
        socket.setMulticastTTL(full.ttl);
        socket.setMulticastLoopback(false);
      } else {
        await bound(socket, full.port, full.group);
        socket.addMembership(full.group, iface.addr);
      }
    } catch (err) {
      socket.close();
      throw new InvalidError(`cannot start the ${full.state} sync daemon: ${(err as Error).message}`);
    }
    if (full.state === 'master') {
      const master = new SyncMaster(full, (msg, size, done) => socket.send(msg, 0, size, full.port, full.group, done));
      this.master = master;
      this.masterSocket = socket;
      this.plane.setSyncSink(master);
    } else {
      const backup = new SyncBackup(this.plane, full);
      socket.on('message', (msg) => backup.receive(msg, 0, msg.length));
      this.backup = backup;
      this.backupSocket = socket;
    }
    this.log(
      `sync daemon started: state = ${full.state.toUpperCase()}, mcast_ifn = ${full.mcastIfn}, syncid = ${full.syncid}`,
    );
  }

  /** --stop-daemon: ESRCH when that daemon does not run ("No daemon is running"). */
  stop(state: 'master' | 'backup'): void {
    if (state === 'master' && this.master !== null) {
      this.plane.setSyncSink(null);
      this.master.close();
      this.masterSocket?.close();
      this.master = null;
      this.masterSocket = null;
    } else if (state === 'backup' && this.backup !== null) {
      this.backupSocket?.close();
      this.backup = null;
      this.backupSocket = null;
    } else {
      throw new LvsError('ESRCH', 'No daemon is running');
    }
    this.log(`sync daemon stopped: state = ${state.toUpperCase()}`);
  }

  /** The running daemons, master first (as `ipvsadm -L --daemon` lists them). */
  list(): DaemonSpec[] {
    const out: DaemonSpec[] = [];
    if (this.master !== null) out.push(this.master.spec);
    if (this.backup !== null) out.push(this.backup.spec);
    return out;
  }

  close(): void {
    if (this.master !== null) this.stop('master');
    if (this.backup !== null) this.stop('backup');
  }
}
