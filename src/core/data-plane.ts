// The seam between the control plane and the data path (shared/DESIGN.md's "one narrow
// data-plane interface"): everything the Balancer, the sync daemons, /proc and the metrics do
// to the packet engine or ask of it goes through DataPlane, never through the engine's fields.
// With one engine it is EnginePlane below; with one engine per queue it is where a table change
// fans out to every engine and where counters and connection copies are gathered from all.

import { type ConnRows, copyConnRows } from '../conn/conn-rows';
import type { Dest, Service, Stats } from '../ip-vs';
import { FRAG_COMPLETE } from '../wire/reassembly';
import type { SyncConn } from '../wire/sync';
import type { Engine } from './engine';
import { applySyncConn } from './sync-apply';
import type { SyncSink } from './sync-conn';

/** The virtual services as the data path sees them, read-only. */
export interface ServiceView {
  readonly list: readonly Service[];
  get(protocol: number, addr: number, port: number): Service | undefined;
  /** Exactly the IPv6 service <protocol, the address at words[off..off+3], port>. */
  get6(protocol: number, words: Uint32Array, off: number, port: number): Service | undefined;
  findMark(mark: number, af?: number): Service | undefined;
  isVip(addr: number): boolean;
  isVip6(words: Uint32Array, off: number): boolean;
}

/** The IPVS settings the data path reads (sysctl.ts names them as /proc/sys/net/ipv4/vs/*). */
export type Setting = EngineSetting | DefenseSetting;
type EngineSetting =
  | 'connReuseMode'
  | 'expireNodestConn'
  | 'expireQuiescentTemplate'
  | 'sloppyTcp'
  | 'sloppySctp'
  | 'synProxy';
type DefenseSetting = 'dropEntry' | 'dropPacket' | 'secureTcp' | 'amemthresh' | 'amDroprate';

const DEFENSE_SETTINGS: ReadonlySet<Setting> = new Set([
  'dropEntry',
  'dropPacket',
  'secureTcp',
  'amemthresh',
  'amDroprate',
]);

function isDefense(name: Setting): name is DefenseSetting {
  return DEFENSE_SETTINGS.has(name);
}

/** The data path's own counters, beside the IPVS stats blocks. */
export interface PlaneCounters {
  /** Connections tracked (templates included). */
  conns: number;
  rxPackets: number;
  batches: number;
  txPackets: number;
  /** Drops by reason (index = verdict; index 0 unused), a copy. */
  drops: Float64Array;
  offload: { partial: number; gso: number };
  reassembly: { datagrams: number; bytes: number; completed: number; expired: number };
  synced: { created: number; updated: number; ignored: number };
  /** Reassembled datagrams one engine handed to another (the one holding their flow). */
  handed: number;
  /** The SYN proxy (core/syn-proxy.ts): cookies sent, ACKs accepted and rejected, and now. */
  synProxy: SynProxyCounters;
  /** Per engine: connections held and packets read (one entry with one engine). */
  engines: { conns: number; rxPackets: number }[];
}

export interface SynProxyCounters {
  cookies: number;
  accepted: number;
  rejected: number;
  /** SYNs sent again to a real server (the client sent more while it had not answered). */
  resent: number;
  /** Real servers that refused a proxied connection (the client was reset). */
  reset: number;
  /** Half-open TCP connections, and proxied ones waiting for their real server. */
  halfOpen: number;
  waiting: number;
}

export interface DataPlane {
  readonly services: ServiceView;
  /** The director's global stats block (/proc/net/ip_vs_stats). */
  readonly stats: Stats;
  addService(svc: Service): void;
  /** Remove `svc`; true when it was the last service on its address (the VIP may go). */
  removeService(svc: Service): boolean;
  /** Give `dest` its id, so connections can name it (before it is linked to its service). */
  addDest(dest: Dest): void;
  /** Unlinked `dest` is gone for new connections; its id is freed with its last connection. */
  retireDest(dest: Dest): void;
  /** An input device for packets with firewall mark `mark`; returns its name. */
  openMarkDev(mark: number): string;
  closeMarkDev(mark: number): void;
  /** A link-layer output on interface `dev` (DR); returns its index for dests to name. */
  openFrameDev(dev: string): number;
  /** Timeout (seconds) of `protocol`'s `state`. */
  timeout(protocol: number, state: number): number;
  setTimeout(protocol: number, state: number, seconds: number): void;
  setting(name: Setting): number;
  setSetting(name: Setting, value: number): void;
  /** The TCP ports whose NAT connections get the FTP helper. */
  setFtpPorts(ports: Iterable<number>): void;
  /** Where connections worth syncing are offered (a master sync daemon), or null. */
  setSyncSink(sink: SyncSink | null): void;
  /** Apply one connection of a received sync message (a backup's work). */
  applySync(e: SyncConn): void;
  /** The director's own addresses: a virtual address among them is also a local one. */
  setLocalAddrs(addrs: ReadonlySet<number>): void;
  /** The director's smallest link MTU, for the ICMP errors it originates. */
  setReplyMtu(mtu: number): void;
  /** Once a second: expire what is due; `freePages` re-decides the defense strategies. */
  tick(freePages: number): void;
  /**
   * The services or dests changed in place (settings, weights, paths): engines that keep a copy
   * of the table take the new one (the control plane calls it after every change).
   */
  tableChanged(): void;
  /** Packet engines (lvsd --workers). */
  readonly engines: number;
  /** Stop engine `k` and start it again with the table (its connections are lost). */
  restartEngine(k: number): Promise<void>;
  /** The data path's counters, summed over its engines. */
  counters(): Promise<PlaneCounters>;
  /** A copy of every connection, for `-L -c` and /proc/net/ip_vs_conn. */
  connRows(): Promise<ConnRows>;
}

/** The data plane of one engine. */
export class EnginePlane implements DataPlane {
  constructor(readonly engine: Engine) {}

  get services(): ServiceView {
    return this.engine.services;
  }

  get stats(): Stats {
    return this.engine.stats;
  }

  addService(svc: Service): void {
    this.engine.services.add(svc);
  }

  removeService(svc: Service): boolean {
    return this.engine.services.remove(svc);
  }

  addDest(dest: Dest): void {
    this.engine.dests.register(dest);
  }

  retireDest(dest: Dest): void {
    this.engine.dests.retire(dest);
  }

  openMarkDev(mark: number): string {
    return this.engine.io.openMarkDev(mark);
  }

  closeMarkDev(mark: number): void {
    this.engine.io.closeMarkDev(mark);
  }

  openFrameDev(dev: string): number {
    return this.engine.io.openFrameDev(dev);
  }

  timeout(protocol: number, state: number): number {
    return this.engine.timeouts[protocol][state];
  }

  setTimeout(protocol: number, state: number, seconds: number): void {
    this.engine.timeouts[protocol][state] = seconds;
  }

  setting(name: Setting): number {
    return isDefense(name) ? this.engine.defense[name] : this.engine[name];
  }

  setSetting(name: Setting, value: number): void {
    const e = this.engine;
    if (isDefense(name)) {
      e.defense[name] = value;
      // The kernel's proc handler re-decides the strategies at once.
      e.defense.update();
    } else {
      e[name] = value;
    }
  }

  setFtpPorts(ports: Iterable<number>): void {
    const set = this.engine.ftp.ports;
    set.clear();
    for (const p of ports) set.add(p);
  }

  setSyncSink(sink: SyncSink | null): void {
    this.engine.syncSink = sink;
  }

  applySync(e: SyncConn): void {
    applySyncConn(this.engine, e);
  }

  setLocalAddrs(addrs: ReadonlySet<number>): void {
    this.engine.services.setLocalAddrs(addrs);
  }

  setReplyMtu(mtu: number): void {
    this.engine.replyMtu = mtu;
  }

  tick(freePages: number): void {
    this.engine.defense.update(freePages);
    this.engine.tick();
  }

  tableChanged(): void {
    // The one engine shares the control plane's objects.
  }

  readonly engines = 1;

  async restartEngine(): Promise<void> {
    // The one engine runs on lvsd's own thread: there is nothing to restart it from.
    throw new Error('the engine runs on the main thread (lvsd --workers 1): it cannot be restarted');
  }

  async counters(): Promise<PlaneCounters> {
    return this.countersNow();
  }

  async connRows(): Promise<ConnRows> {
    return this.connRowsNow();
  }

  countersNow(): PlaneCounters {
    const e = this.engine;
    const f = e.frags;
    const f6 = e.v6.frags;
    return {
      conns: e.conns.count + e.v6.conns.count,
      rxPackets: e.rxPackets,
      batches: e.batches,
      txPackets: e.txPackets,
      drops: e.drops.slice(),
      offload: { ...e.offload },
      reassembly: {
        datagrams: f.queues + f6.queues,
        bytes: f.heldBytes + f6.heldBytes,
        completed: f.counts[FRAG_COMPLETE] + f6.counts[FRAG_COMPLETE],
        expired: f.expired + f6.expired,
      },
      synced: { ...e.synced },
      handed: e.handed.out,
      synProxy: { ...e.proxy.counts, halfOpen: e.proxy.halfOpen, waiting: e.proxy.waitingCount },
      engines: [{ conns: e.conns.count + e.v6.conns.count, rxPackets: e.rxPackets }],
    };
  }

  connRowsNow(): ConnRows {
    const e = this.engine;
    const names: Record<number, readonly string[]> = {};
    for (const h of e.protos) if (h !== undefined) names[h.protocol] = h.stateNames;
    return copyConnRows(e.conns, e.now, names, e.v6.conns);
  }
}
