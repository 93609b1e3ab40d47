// Builds services and dests for scheduler tests, and changes them the way the control plane does:
// a new dest goes to the head of svc.dests and the scheduler hears about it afterwards; a dest is
// announced to the scheduler before it leaves the list; a weight change is followed by updDest.

import {
  DEST_F_OVERLOAD,
  type Dest,
  IPPROTO_TCP,
  newDest,
  newService,
  type PktInfo,
  type Scheduler,
  type Service,
} from '../../src/ip-vs';

export const PKT: PktInfo = { protocol: IPPROTO_TCP, saddr: 0xc0a80001, daddr: 0x0a000001, sport: 40000, dport: 80 };

const names = new WeakMap<Dest, string>();
let nextId = 1;

export function ipv4(dotted: string): number {
  const p = dotted.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** A service using `sched`, with no dests yet and `initService` already called. */
export function makeService(sched: Scheduler): Service {
  const svc = newService(IPPROTO_TCP, ipv4('10.0.0.1'), 80, 0, sched);
  sched.initService?.(svc);
  return svc;
}

export interface DestSpec {
  /** Label the assertions use; also the dest's address when it is a dotted quad. */
  name: string;
  weight?: number;
  active?: number;
  inactive?: number;
  overloaded?: boolean;
}

function makeDest(svc: Service, spec: DestSpec): Dest {
  const dest = newDest(svc, /^\d+\.\d+\.\d+\.\d+$/.test(spec.name) ? ipv4(spec.name) : 0, 80);
  dest.id = nextId++;
  dest.weight = spec.weight ?? 1;
  dest.flags = spec.overloaded ? DEST_F_OVERLOAD : 0;
  dest.activeConns = spec.active ?? 0;
  dest.inactConns = spec.inactive ?? 0;
  names.set(dest, spec.name);
  return dest;
}

/** Adds a dest as the control plane does: insert at the head, then tell the scheduler. */
export function addDest(svc: Service, spec: DestSpec): Dest {
  const dest = makeDest(svc, spec);
  svc.dests.unshift(dest);
  svc.sched.addDest?.(svc, dest);
  return dest;
}

/** Removes a dest as the control plane does: tell the scheduler, then take it out of the list. */
export function delDest(svc: Service, dest: Dest): void {
  svc.sched.delDest?.(svc, dest);
  svc.dests.splice(svc.dests.indexOf(dest), 1);
}

/** Edits a dest's weight as the control plane does: change it, then updDest. */
export function setWeight(svc: Service, dest: Dest, weight: number): void {
  dest.weight = weight;
  svc.sched.updDest?.(svc, dest);
}

/** Sets or clears DEST_F_OVERLOAD (the connection code does this; schedulers are not told). */
export function setOverloaded(dest: Dest, on: boolean): void {
  dest.flags = on ? dest.flags | DEST_F_OVERLOAD : dest.flags & ~DEST_F_OVERLOAD;
}

/**
 * A service whose dests end up in `specs` order (specs[0] is dests[0]): they are added in reverse,
 * since each addition goes to the head. Returns the dests by name.
 */
export function serviceWith(sched: Scheduler, specs: DestSpec[]): { svc: Service; d: Record<string, Dest> } {
  const svc = makeService(sched);
  const d: Record<string, Dest> = {};
  for (let i = specs.length - 1; i >= 0; i--) d[specs[i].name] = addDest(svc, specs[i]);
  return { svc, d };
}

/**
 * A service that already holds `specs` (in that list order) when `sched` is bound to it, as when
 * `ipvsadm -E -s` switches the scheduler: `initService` sees every dest, no `addDest` runs.
 */
export function boundServiceWith(sched: Scheduler, specs: DestSpec[]): { svc: Service; d: Record<string, Dest> } {
  const svc = makeService(sched);
  const d: Record<string, Dest> = {};
  for (const spec of specs) {
    const dest = makeDest(svc, spec);
    d[spec.name] = dest;
    svc.dests.push(dest);
  }
  sched.initService?.(svc);
  return { svc, d };
}

/** The name of a dest, or null. */
export function nameOf(dest: Dest | null): string | null {
  return dest === null ? null : (names.get(dest) ?? `#${dest.id}`);
}

/** Schedules `count` times and returns the names picked, in order. */
export function pick(svc: Service, count: number): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) out.push(nameOf(svc.sched.schedule(svc, PKT, 0)));
  return out;
}

/** The names of the dests in list order. */
export function order(svc: Service): string[] {
  return svc.dests.map((x) => nameOf(x)!);
}
