// The table as lvsd --workers hands it to its engines (src/plane/table-image.ts), the shared
// state they count into (Dest.shared, shared-stats.ts) and the shared rr/wrr cursor
// (shared-cursor.ts), with two engines' tables side by side in one thread: what one engine
// counts or picks, the other and the control plane see.

import { describe, expect, it } from 'vitest';
import { mergeConnRows } from '../../src/conn/conn-rows';
import { DestRegistry, ServiceTable } from '../../src/core/services';
import { connSnapshots } from '../../src/ctl/balancer';
import type { ConnSnapshot } from '../../src/ctl/protocol';
import {
  AF_INET6,
  type Dest,
  destBind,
  destSharedInts,
  destUnbind,
  newDest,
  newService,
  type Service,
} from '../../src/ip-vs';
import { LOCALITY_SLOTS } from '../../src/plane/shared-locality';
import { SliceStats, SumStats, statsBuffer } from '../../src/plane/shared-stats';
import { applyTableImage, sharedSchedInts, tableImage } from '../../src/plane/table-image';
import { lblcCached } from '../../src/sched/lblc';
import { lblcrServerSet } from '../../src/sched/lblcr';
import { getScheduler } from '../../src/sched/registry';
import { PKT } from '../helpers/sched-fixtures';
import { connRows } from '../helpers/snapshots';

const ENGINES = 2;

/** The control plane's side, as MultiPlane keeps it. */
class ControlTable {
  readonly services = new ServiceTable();
  readonly dests = new DestRegistry();
  private readonly uids = new WeakMap<Dest, number>();
  private readonly cursors = new WeakMap<Service, Int32Array>();
  private nextUid = 1;
  private version = 0;

  addService(port: number, sched: string): Service {
    const s = getScheduler(sched)!;
    const svc = newService(6, 0x0a000001, port, 0, s);
    s.initService?.(svc);
    svc.stats = new SumStats(statsBuffer(ENGINES));
    this.services.add(svc);
    return svc;
  }

  addDest(svc: Service, addr: number, weight = 1): Dest {
    const d = newDest(svc, addr, 80);
    d.weight = weight;
    const shared = new Int32Array(new SharedArrayBuffer(4 * destSharedInts(ENGINES)));
    shared.set(d.shared.subarray(0, destSharedInts(1)));
    d.shared = shared;
    d.stats = new SumStats(statsBuffer(ENGINES));
    this.dests.register(d);
    svc.dests.unshift(d);
    svc.sched.addDest?.(svc, d);
    return d;
  }

  removeDest(svc: Service, d: Dest): void {
    svc.sched.delDest?.(svc, d);
    svc.dests.splice(svc.dests.indexOf(d), 1);
    this.dests.retire(d);
  }

  image() {
    return tableImage(
      this.services.list,
      (d) => {
        const known = this.uids.get(d);
        if (known !== undefined) return known;
        const u = this.nextUid++;
        this.uids.set(d, u);
        return u;
      },
      (s) => {
        const known = this.cursors.get(s);
        if (known !== undefined && known.length >= sharedSchedInts(s.schedName)) return known;
        const c = new Int32Array(new SharedArrayBuffer(4 * sharedSchedInts(s.schedName)));
        this.cursors.set(s, c);
        return c;
      },
      ++this.version,
      null,
    );
  }
}

/** One engine's copy of the table. */
class EngineTable {
  readonly services = new ServiceTable();
  readonly dests = new DestRegistry();
  private readonly uids = new WeakMap<Dest, number>();
  private applied = 0;
  constructor(readonly k: number) {}

  apply(image: ReturnType<ControlTable['image']>): void {
    // A structured clone, as postMessage makes it: shared memory stays shared.
    const copy = structuredClone(image);
    this.applied = copy.version;
    applyTableImage(this.services, this.dests, copy, this.k, this.uids, () => this.applied);
  }

  svc(port: number): Service {
    return this.services.get(6, 0x0a000001, port)!;
  }

  pick(port: number, daddr = PKT.daddr): number {
    const svc = this.svc(port);
    return svc.sched.schedule(svc, { ...PKT, daddr }, 0)!.addr;
  }
}

function setup() {
  const cp = new ControlTable();
  const engines = [new EngineTable(0), new EngineTable(1)];
  const sync = () => {
    const image = cp.image();
    for (const e of engines) e.apply(image);
  };
  return { cp, engines, sync };
}

describe('table images (lvsd --workers)', () => {
  it('carries IPv6 services and dests whole, telling apart two services whose folds are equal', () => {
    const { cp, engines, sync } = setup();
    const a = Uint32Array.from([0x20010db8, 0, 0, 1]);
    const b = Uint32Array.from([0x20010db8, 1, 1, 1]);
    for (const words of [a, b]) {
      const svc = cp.addService(80, 'rr');
      cp.services.remove(svc);
      svc.af = AF_INET6;
      svc.addr6 = words;
      svc.addr = (0x20010db8 ^ 1) >>> 0;
      cp.services.add(svc);
      const d = cp.addDest(svc, 7);
      d.af = AF_INET6;
      d.addr6 = Uint32Array.from([0xfd000000, 0, 0, words[3] + 9]);
    }
    sync();
    sync();
    for (const e of engines) {
      expect(e.services.list).toHaveLength(2);
      for (const words of [a, b]) {
        const copy = e.services.get6(6, words, 0, 80)!;
        expect([copy.af, [...copy.addr6!]]).toEqual([AF_INET6, [...words]]);
        expect(copy.dests.map((d) => [d.af, [...d.addr6!]])).toEqual([[AF_INET6, [0xfd000000, 0, 0, words[3] + 9]]]);
      }
    }
  });

  it('gives every engine the services and dests in the control plane order, by the same ids', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'wlc');
    const a = cp.addDest(svc, 1);
    const b = cp.addDest(svc, 2);
    sync();
    for (const e of engines) {
      const copy = e.svc(80);
      expect(copy).not.toBe(svc);
      expect(copy.dests.map((d) => [d.id, d.addr])).toEqual([
        [b.id, 2],
        [a.id, 1],
      ]);
      expect(e.dests.get(a.id)!.addr).toBe(1);
    }
  });

  it('shares each dest’s counts and flags: what one engine binds, the others and the control plane see', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'lc');
    const a = cp.addDest(svc, 1);
    const b = cp.addDest(svc, 2);
    sync();
    const [e0, e1] = engines as [EngineTable, EngineTable];
    // lc in engine 0 picks b (the head) and binds a connection there; engine 1 must now pick a.
    expect(e0.pick(80)).toBe(2);
    destBind(e0.dests.get(b.id)!, 0);
    expect(e1.pick(80)).toBe(1);
    destBind(e1.dests.get(a.id)!, 0);
    expect([a.activeConns, b.activeConns]).toEqual([1, 1]);
    // An engine that is gone takes its connections with it.
    b.forgetEngine(0);
    expect([a.activeConns, b.activeConns]).toEqual([1, 0]);
    destUnbind(e1.dests.get(a.id)!, 0);
    expect(a.activeConns).toBe(0);
  });

  it('counts traffic per engine and sums it for the control plane; zeroing clears every slice', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'rr');
    cp.addDest(svc, 1);
    sync();
    const [e0, e1] = engines as [EngineTable, EngineTable];
    expect(e0.svc(80).stats).toBeInstanceOf(SliceStats);
    e0.svc(80).stats.inPkts += 3;
    e1.svc(80).stats.inPkts += 4;
    e1.svc(80).stats.inBytes += 100;
    expect(svc.stats.inPkts).toBe(7);
    expect(svc.stats.inBytes).toBe(100);
    svc.stats.inPkts = 0;
    expect([svc.stats.inPkts, e0.svc(80).stats.inPkts, e1.svc(80).stats.inPkts]).toEqual([0, 0, 0]);
  });

  it('rr goes round once per service, whichever engine picks', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'rr');
    for (const addr of [3, 2, 1]) cp.addDest(svc, addr);
    sync();
    const picks = [0, 1, 1, 0, 1, 0, 0, 1].map((k) => engines[k]!.pick(80));
    expect(picks).toEqual([1, 2, 3, 1, 2, 3, 1, 2]);
  });

  it('wrr interleaves by weight once per service across engines', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'wrr');
    cp.addDest(svc, 2, 1);
    cp.addDest(svc, 1, 3);
    sync();
    const picks = [1, 0, 1, 1, 0, 0, 1, 0].map((k) => engines[k]!.pick(80));
    expect(picks).toEqual([1, 1, 1, 2, 1, 1, 1, 2]);
  });

  it('lblc keeps one table per service: a destination address goes where another engine sent it', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'lblc');
    const a = cp.addDest(svc, 1, 10);
    cp.addDest(svc, 2, 10);
    sync();
    const [e0, e1] = engines as [EngineTable, EngineTable];
    expect(e0.pick(80)).toBe(2);
    // With a connection on 2, wlc alone would pick 1; lblc keeps the address on 2 (not
    // overloaded), in engine 1 as well, which never scheduled it.
    destBind(e0.dests.get(svc.dests[0]!.id)!, 0);
    expect(e1.pick(80)).toBe(2);
    // A new address picked by engine 1 is engine 0's too, from its next pick on.
    expect(e1.pick(80, 0x0a000009)).toBe(1);
    expect(lblcCached(e0.svc(80), 0x0a000009)).toBeNull();
    e0.pick(80, 0x0a000007);
    expect(lblcCached(e0.svc(80), 0x0a000009)?.addr).toBe(1);
    // Re-pointed in one engine (its dest gone from the table), re-pointed in the other.
    cp.removeDest(svc, a);
    sync();
    expect(e0.pick(80, 0x0a000009)).toBe(2);
    expect(lblcCached(e1.svc(80), 0x0a000009)).toBeNull();
    expect(e1.pick(80, 0x0a000009)).toBe(2);
  });

  it('lblcr keeps one set per destination address across engines; a restarted engine replays the log', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'lblcr');
    cp.addDest(svc, 1, 1);
    cp.addDest(svc, 2, 1);
    sync();
    const [e0, e1] = engines as [EngineTable, EngineTable];
    expect(e0.pick(80)).toBe(2);
    // 2 overloaded (2 active > weight 1, while 1 has none): the set grows by wlc's pick, 1.
    const two = e0.dests.get(svc.dests[0]!.id)!;
    destBind(two, 0);
    destBind(two, 0);
    expect(e1.pick(80)).toBe(1);
    const addrs = (e: EngineTable) => lblcrServerSet(e.svc(80), PKT.daddr).map((d) => d.addr);
    expect(addrs(e1)).toEqual([1, 2]);
    expect(addrs(e0)).toEqual([2]);
    e0.pick(80);
    expect(addrs(e0)).toEqual([1, 2]);
    // An engine started now (a restarted worker) begins with what the log holds.
    const fresh = new EngineTable(1);
    fresh.apply(cp.image());
    fresh.pick(80, 0x0a000005);
    expect(addrs(fresh)).toEqual([1, 2]);
    expect(LOCALITY_SLOTS).toBeGreaterThan(3);
  });

  it('a dest change reaches every engine; a pick made on the older table is not taken over', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'rr');
    const c = cp.addDest(svc, 3);
    cp.addDest(svc, 2);
    cp.addDest(svc, 1);
    sync();
    const [e0, e1] = engines as [EngineTable, EngineTable];
    expect(e0.pick(80)).toBe(1);
    // Weight 0 for 3: engine 1 has the change, engine 0 has not seen it yet and picks on.
    c.weight = 0;
    svc.sched.updDest?.(svc, c);
    const image = cp.image();
    e1.apply(image);
    expect(e0.pick(80)).toBe(2);
    expect(e0.pick(80)).toBe(3);
    // Engine 1 starts from its own state (reset by the change), not from engine 0's old pick.
    expect([e1.pick(80), e1.pick(80), e1.pick(80)]).toEqual([1, 2, 1]);
    e0.apply(image);
    expect([e0.pick(80), e1.pick(80)]).toEqual([2, 1]);
  });

  it('a freed id given to a new dest replaces the old copy; removed services and dests leave', () => {
    const { cp, engines, sync } = setup();
    const svc = cp.addService(80, 'rr');
    const a = cp.addDest(svc, 1);
    cp.addService(81, 'wlc');
    sync();
    const [e0] = engines as [EngineTable];
    const oldCopy = e0.dests.get(a.id)!;
    cp.removeDest(svc, a);
    const b = cp.addDest(svc, 2);
    expect(b.id).toBe(a.id);
    sync();
    const copy = e0.dests.get(b.id)!;
    expect(copy).not.toBe(oldCopy);
    expect(copy.addr).toBe(2);
    expect(e0.svc(80).dests).toEqual([copy]);
    cp.services.remove(cp.services.get(6, 0x0a000001, 81)!);
    sync();
    expect(e0.services.list.map((s) => s.port)).toEqual([80]);
  });
});

describe('mergeConnRows (the engines’ connection copies as one)', () => {
  const conn = (cport: number, state: string, protocol = 6): ConnSnapshot => ({
    protocol,
    caddr: '192.168.0.2',
    cport,
    vaddr: '192.168.0.1',
    vport: 80,
    daddr: '172.16.0.1',
    dport: 80,
    state,
    expires: 60,
    flags: 0,
  });

  it('lists every engine’s connections, in engine order, each with its own state names', () => {
    const e0 = [conn(40000, 'ESTABLISHED'), conn(40001, 'SYN_RECV')];
    const e1 = [conn(40002, 'UDP', 17)];
    const merged = mergeConnRows([connRows(e0), connRows(e1), connRows([])]);
    expect(merged.n).toBe(3);
    expect(connSnapshots(merged)).toEqual([...e0, ...e1]);
  });
});
