// The virtual-service table as the control plane hands it to engines in other threads: plain,
// structured-clonable records (the counters and dest state travel as shared memory, not copies),
// and how an engine brings its own copy of the table to match one (applyTableImage). The engine's
// scheduler hooks run as the Balancer runs them in the single-engine case: delDest before a dest
// leaves the list, addDest and updDest after the list has its new order.

import { type DestRegistry, type ServiceTable, serviceKey } from '../core/services';
import { AF_INET6, type Dest, type FwdMethod, newDest, newService, type Service } from '../ip-vs';
import { getScheduler } from '../sched/registry';
import { CURSOR_INTS, sharesCursor, withSharedCursor } from './shared-cursor';
import { LOCALITY_INTS, sharesLocality, withSharedLocality } from './shared-locality';
import { SliceStats, type SumStats } from './shared-stats';

export interface DestImage {
  id: number;
  /**
   * Unique for the life of the control plane: a freed id may be given to a new dest, and shared
   * memory arrives as a new object with every message, so neither tells two dests apart.
   */
  uid: number;
  addr: number;
  port: number;
  af: number;
  addr6: Uint32Array | null;
  fwd: FwdMethod;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
  l2Dev: number;
  l2Header: Uint8Array | null;
  tunSrc: number;
  tunSrc6: Uint32Array | null;
  mtu: number;
  noRoute: boolean;
  /** Dest.shared (a SharedArrayBuffer view): the same counts and flags in every engine. */
  shared: Int32Array;
  stats: Float64Array;
}

export interface ServiceImage {
  protocol: number;
  addr: number;
  port: number;
  fwmark: number;
  af: number;
  addr6: Uint32Array | null;
  schedName: string;
  flags: number;
  timeout: number;
  netmask: number;
  peName: string;
  stats: Float64Array;
  /**
   * The scheduler's state shared by the engines (sharedSchedInts long): rr's and wrr's cursor
   * (shared-cursor.ts), lblc's and lblcr's log (shared-locality.ts).
   */
  cursor: Int32Array;
  /** In the service's order (the kernel's: the most recently added first). */
  dests: DestImage[];
}

export interface TableImage {
  /** Counts the images sent (shared-cursor.ts compares them). */
  version: number;
  /** The steering's address-only mask (multi-plane.ts), or null: address and port. */
  addrMask: number | null;
  services: ServiceImage[];
}

/** The image of the control plane's services (their stats are SumStats over shared memory). */
export function tableImage(
  services: readonly Service[],
  uidOf: (d: Dest) => number,
  cursorOf: (s: Service) => Int32Array,
  version: number,
  addrMask: number | null,
): TableImage {
  return {
    version,
    addrMask,
    services: services.map((s) => ({
      protocol: s.protocol,
      addr: s.addr,
      port: s.port,
      fwmark: s.fwmark,
      af: s.af,
      addr6: s.addr6,
      schedName: s.schedName,
      flags: s.flags,
      timeout: s.timeout,
      netmask: s.netmask,
      peName: s.peName,
      stats: (s.stats as SumStats).a,
      cursor: cursorOf(s),
      dests: s.dests.map((d) => ({
        id: d.id,
        uid: uidOf(d),
        addr: d.addr,
        port: d.port,
        af: d.af,
        addr6: d.addr6,
        fwd: d.fwd,
        weight: d.weight,
        uThreshold: d.uThreshold,
        lThreshold: d.lThreshold,
        tunType: d.tunType,
        tunPort: d.tunPort,
        tunFlags: d.tunFlags,
        l2Dev: d.l2Dev,
        l2Header: d.l2Header,
        tunSrc: d.tunSrc,
        tunSrc6: d.tunSrc6,
        mtu: d.mtu,
        noRoute: d.noRoute,
        shared: d.shared,
        stats: (d.stats as SumStats).a,
      })),
    })),
  };
}

/** Int32 slots of the shared scheduler state a service with scheduler `name` needs. */
export function sharedSchedInts(name: string): number {
  return sharesLocality(name) ? LOCALITY_INTS : CURSOR_INTS;
}

/** A service's identity across images: a number for IPv4 and marks, text for IPv6 (folds may collide). */
function keyOf(s: Pick<Service, 'protocol' | 'addr' | 'port' | 'fwmark' | 'af' | 'addr6'>): number | string {
  if (s.fwmark !== 0) return -(s.fwmark * 2 + (s.af === AF_INET6 ? 1 : 0));
  if (s.addr6 !== null) return `${s.protocol}/${s.addr6.join(':')}/${s.port}`;
  return serviceKey(s.protocol, s.addr, s.port);
}

/** What decides scheduling: a change calls the scheduler's updDest. */
function configChanged(d: Dest, i: DestImage): boolean {
  return (
    d.fwd !== i.fwd ||
    d.weight !== i.weight ||
    d.uThreshold !== i.uThreshold ||
    d.lThreshold !== i.lThreshold ||
    d.tunType !== i.tunType ||
    d.tunPort !== i.tunPort ||
    d.tunFlags !== i.tunFlags
  );
}

function copyDest(d: Dest, i: DestImage): void {
  d.fwd = i.fwd;
  d.weight = i.weight;
  d.uThreshold = i.uThreshold;
  d.lThreshold = i.lThreshold;
  d.tunType = i.tunType;
  d.tunPort = i.tunPort;
  d.tunFlags = i.tunFlags;
  d.l2Dev = i.l2Dev;
  d.l2Header = i.l2Header === null ? null : Buffer.from(i.l2Header.buffer, i.l2Header.byteOffset, i.l2Header.length);
  d.tunSrc = i.tunSrc;
  d.tunSrc6 = i.tunSrc6;
  d.mtu = i.mtu;
  d.noRoute = i.noRoute;
}

/**
 * Make engine `k`'s table (`services`, `dests`) equal to `image`: services and dests are matched
 * by key and id (and shared state, since a freed id may name a new dest), kept objects are
 * updated in place so scheduler state and connections stay with them.
 */
export function applyTableImage(
  services: ServiceTable,
  dests: DestRegistry,
  image: TableImage,
  k: number,
  uids: WeakMap<Dest, number>,
  /** The version of the image the engine has applied (this one, once this call started). */
  applied: () => number,
): void {
  const existing = new Map<number | string, Service>();
  for (const s of services.list) existing.set(keyOf(s), s);
  for (const si of image.services) {
    const key = keyOf(si);
    let svc = existing.get(key);
    existing.delete(key);
    const named = getScheduler(si.schedName);
    if (named === undefined) continue;
    const sched = sharesCursor(named.name)
      ? withSharedCursor(named, si.cursor, applied)
      : sharesLocality(named.name)
        ? withSharedLocality(named, si.cursor)
        : named;
    if (svc === undefined) {
      svc = newService(si.protocol, si.addr, si.port, si.fwmark, sched);
      svc.af = si.af;
      svc.addr6 = si.addr6;
      svc.stats = new SliceStats(si.stats, k);
      svc.flags = si.flags;
      svc.timeout = si.timeout;
      svc.netmask = si.netmask;
      svc.peName = si.peName;
      sched.initService?.(svc);
      services.add(svc);
    } else {
      svc.flags = si.flags;
      svc.timeout = si.timeout;
      svc.netmask = si.netmask;
      svc.peName = si.peName;
      if (svc.schedName !== si.schedName) {
        svc.sched.doneService?.(svc);
        svc.sched = sched;
        svc.schedName = sched.name;
        svc.schedData = undefined;
        sched.initService?.(svc);
      }
    }
    applyDests(svc, si.dests, dests, k, uids);
  }
  for (const gone of existing.values()) {
    for (const d of gone.dests) {
      gone.sched.delDest?.(gone, d);
      dests.retire(d);
    }
    gone.sched.doneService?.(gone);
    services.remove(gone);
  }
}

function applyDests(
  svc: Service,
  images: DestImage[],
  dests: DestRegistry,
  k: number,
  uids: WeakMap<Dest, number>,
): void {
  const old = new Map<number, Dest>();
  for (const d of svc.dests) old.set(d.id, d);
  const next: Dest[] = [];
  const added: Dest[] = [];
  const changed: Dest[] = [];
  for (const di of images) {
    let d = old.get(di.id);
    if (d !== undefined && uids.get(d) !== di.uid) d = undefined;
    if (d === undefined) {
      d = newDest(svc, di.addr, di.port);
      d.af = di.af;
      d.addr6 = di.addr6;
      uids.set(d, di.uid);
      d.shared = di.shared;
      d.countAs(k);
      d.stats = new SliceStats(di.stats, k);
      copyDest(d, di);
      dests.registerAs(d, di.id);
      added.push(d);
    } else {
      old.delete(di.id);
      if (configChanged(d, di)) changed.push(d);
      copyDest(d, di);
    }
    next.push(d);
  }
  for (const gone of old.values()) {
    svc.sched.delDest?.(svc, gone);
    // Its id may already name the dest that replaced it (registered above): leave that alone.
    if (dests.get(gone.id) === gone) dests.retire(gone);
  }
  svc.dests = next;
  for (const d of added) svc.sched.addDest?.(svc, d);
  for (const d of changed) svc.sched.updDest?.(svc, d);
}
