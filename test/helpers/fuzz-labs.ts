// The engine fuzz harness: directors for every forwarding method (labs), the invariants checked
// after every batch, the run loop, and the shrinking of a failure to a replayable reproducer.
//
// A run is a sequence of rounds; each round builds a fresh lab from its own seed and applies
// events to it: a batch of generated packets (fuzz-gen.ts), a clock advance (timers, reassembly
// expiry), or a control-plane change (dest weight 0 and back, delete and re-add, thresholds,
// another scheduler, persistence on or off, the expire_nodest_conn / conn_reuse_mode /
// expire_quiescent_template sysctls). After every event the output is judged by the oracle
// (fuzz-oracle.ts) and the engine's state by engineFindings(); a round ends by advancing the
// clock until everything has expired, which must leave the tables empty and every counter at
// zero. A failure is shrunk by replaying the round's events on fresh labs (delta debugging over
// events, then packets) and reported with its seed and the remaining packets in hex.

import { NIL } from '../../src/conn/conn-table';
import type { Engine } from '../../src/core/engine';
import {
  CONN_F_INACTIVE,
  CONN_F_NO_CPORT,
  CONN_F_TEMPLATE,
  type Dest,
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../../src/ip-vs';
import { TCP_S_ESTABLISHED } from '../../src/proto/tcp-states';
import { schedulerNames } from '../../src/sched/registry';
import { ipToU32 } from '../../src/wire/addr';
import { FRAG_COMPLETE } from '../../src/wire/reassembly';
import {
  DEV_MAC,
  DIRECTOR,
  destSpec,
  director,
  drops,
  RS_MAC,
  RS1,
  RS2,
  svcSpec,
  type TestDirector,
  VIP,
} from './engine-lab';
import { type FuzzInput, PacketFuzzer, Rng, type ServiceDesc, wire } from './fuzz-gen';
import { Allowance, noteInput, type OracleConfig, OutputOracle } from './fuzz-oracle';
import { toHex } from './packet-builder';
import { prng } from './prng';

/** Addresses beyond the shared lab ones: a second VIP and DR/TUN real servers. */
export const VIP2 = '192.168.0.3';
const RS3 = '172.16.0.3'; // DR, eth1
const RS4 = '172.16.0.4'; // TUN, MTU 1500
const RS5 = '172.16.0.5'; // TUN, MTU 576
const RS6 = '172.16.0.6'; // DR, eth2, MTU 1000
const RS7 = '172.16.0.7'; // DR whose MAC never resolves
const MAC3 = RS_MAC;
const MAC6 = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x06]);
const MAC7 = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x07]);

export type LabKind = 'nat' | 'dr-tun' | 'offload';
export const LAB_KINDS: readonly LabKind[] = ['nat', 'dr-tun', 'offload'];

const MASQ = FWD_MASQ;
const DR = FWD_DROUTE;
const TUN = FWD_TUNNEL;

/** The services of each lab (the generator aims at them; setup installs them). */
const SERVICES: Record<LabKind, ServiceDesc[]> = {
  nat: [
    { protocol: 6, vip: VIP, port: 80, dests: [d(RS1, 8080), d(RS2, 8080)] },
    { protocol: 6, vip: VIP, port: 21, dests: [d(RS1, 21), d(RS2, 21)] },
    { protocol: 6, vip: VIP, port: 443, persistent: true, dests: [d(RS1, 443), d(RS2, 443)] },
    { protocol: 17, vip: VIP, port: 53, dests: [d(RS1, 5353), d(RS2, 53)] },
    { protocol: 17, vip: VIP, port: 123, ops: true, dests: [d(RS1, 123)] },
    { protocol: 6, vip: VIP, port: 8000, dests: [{ addr: RS1, port: 8000, fwd: MASQ, weight: 0 }] },
    { protocol: 6, vip: VIP2, port: 0, persistent: true, dests: [d(RS1, 0), d(RS2, 0)] },
  ],
  'dr-tun': [
    { protocol: 6, vip: VIP, port: 80, dests: [d(RS3, 80, DR), d(RS4, 80, TUN), d(RS5, 80, TUN), d(RS1, 8080)] },
    { protocol: 17, vip: VIP, port: 53, dests: [d(RS3, 53, DR), d(RS4, 53, TUN), d(RS6, 53, DR)] },
    { protocol: 6, vip: VIP, port: 21, persistent: true, dests: [d(RS3, 21, DR), d(RS4, 21, TUN)] },
    { protocol: 6, vip: VIP, port: 25, dests: [d(RS7, 25, DR)] },
  ],
  offload: [
    { protocol: 6, vip: VIP, port: 80, dests: [d(RS1, 8080), d(RS3, 80, DR), d(RS4, 80, TUN)] },
    { protocol: 6, vip: VIP, port: 21, dests: [d(RS1, 21)] },
    { protocol: 17, vip: VIP, port: 53, dests: [d(RS1, 5353), d(RS3, 53, DR), d(RS4, 53, TUN)] },
    { protocol: 6, vip: VIP, port: 443, persistent: true, dests: [d(RS2, 443), d(RS5, 443, TUN)] },
  ],
};

function d(addr: string, port: number, fwd = MASQ): { addr: string; port: number; fwd: number } {
  return { addr, port, fwd };
}

const SCHEDULERS = schedulerNames();

/** One director under test, with what the oracle and the invariants need to know of it. */
export interface Lab {
  kind: LabKind;
  d: TestDirector;
  engine: Engine;
  services: ServiceDesc[];
  oracle: OutputOracle;
  /** Every dest object the lab ever had (deleted ones included). */
  dests: Dest[];
  maxPacket: number;
  vnet: number;
}

function svcKey(s: ServiceDesc) {
  return svcSpec(s.vip, s.port, { protocol: s.protocol });
}

/** Build a lab; `seed` also seeds Math.random while the engine is made (its IP ids, hash seeds). */
export async function createLab(kind: LabKind, seed: number): Promise<Lab> {
  const saved = Math.random;
  Math.random = prng(seed ^ 0x5bd1e995);
  let dir: TestDirector;
  try {
    dir = director({ offload: kind === 'offload' });
  } finally {
    Math.random = saved;
  }
  const r = new Rng(seed);
  const src = ipToU32(DIRECTOR);
  const path = (dev: string, mtu: number, mac?: Buffer) => ({ dev, src, mtu, devMac: DEV_MAC, mac });
  dir.host.paths.set(RS1, path('eth0', 1400));
  dir.host.paths.set(RS3, path('eth1', 1500, MAC3));
  dir.host.paths.set(RS4, path('eth1', 1500));
  dir.host.paths.set(RS5, path('eth1', 576));
  dir.host.paths.set(RS6, path('eth2', 1000, MAC6));
  dir.host.paths.set(RS7, path('eth1', 1500, MAC7));
  const services = SERVICES[kind];
  for (const s of services) {
    const flags = (s.persistent ? SVC_F_PERSISTENT : 0) | (s.ops ? SVC_F_ONEPACKET : 0);
    await dir.balancer.addService(
      svcSpec(s.vip, s.port, {
        protocol: s.protocol,
        sched: r.pick(SCHEDULERS),
        flags,
        timeout: s.persistent ? 120 : 0,
      }),
    );
    for (const x of s.dests) {
      await dir.balancer.addDest(svcKey(s), destSpec(x.addr, x.port, { fwd: x.fwd, weight: x.weight ?? 1 }));
    }
  }
  // RS7's neighbour entry goes away: its DR frames wait for a MAC that never comes.
  dir.host.paths.set(RS7, path('eth1', 1500));
  await dir.balancer.refreshPaths();
  if (kind === 'nat') dir.engine.replyMtu = 1400;
  const engine = dir.engine;
  const frameMtu = new Map<number, number>();
  for (const [dev, mtu] of [
    ['eth1', 1500],
    ['eth2', 1000],
  ] as const) {
    const i = dir.io.frameDevs.indexOf(dev);
    if (i > 0) frameMtu.set(i, mtu);
  }
  const cfg: OracleConfig = {
    vnet: dir.io.slab.vnetHdr,
    frameMtu,
    drMacs: new Set([MAC3, MAC6].map((m) => m.toString('hex'))),
    devMac: DEV_MAC,
    tunSrc: src,
    tunDests: new Map([
      [ipToU32(RS4), 1500],
      [ipToU32(RS5), 576],
    ]),
  };
  const lab: Lab = {
    kind,
    d: dir,
    engine,
    services,
    oracle: new OutputOracle(cfg),
    dests: [],
    maxPacket: dir.io.slab.maxPacket,
    vnet: dir.io.slab.vnetHdr,
  };
  collectDests(lab);
  return lab;
}

function collectDests(lab: Lab): void {
  for (const svc of lab.engine.services.list) for (const x of svc.dests) if (!lab.dests.includes(x)) lab.dests.push(x);
}

// ---------------------------------------------------------------------------------------------
// Engine invariants.

/**
 * The engine's bookkeeping, checked against its connection table:
 *  - conns.count equals the live entries forEach visits;
 *  - per dest, activeConns / inactConns / persistConns equal the live entries bound to it (by
 *    dest id) that are, respectively, non-template and active, non-template and inactive
 *    (CONN_F_INACTIVE), and templates; so their sum over all dests equals the live entries with
 *    a dest (conns.dest != NIL) - the kernel's ActiveConn/InActConn/PersistConn as newConn,
 *    expectConn and persistTemplate raise and connGone lowers them, setState moves them;
 *  - no counter is negative; no live entry points at a freed dest id; a deleted dest with no
 *    connections left has given its id back;
 *  - templates (and FTP control connections) control exactly the live entries that name them;
 *    the engine's count of connections waiting for a client port matches the flagged entries;
 *  - reassembly holds at most its byte cap and datagram count; the table holds at most three
 *    entries per packet ever received (connection, template, expected data connection).
 */
export function engineFindings(lab: Lab, pushed: number): string[] {
  const e = lab.engine;
  const conns = e.conns;
  const f: string[] = [];
  let visited = 0;
  let withDest = 0;
  let noCport = 0;
  // Per dest id: [active, inactive, persistent] entries; per entry: entries it controls.
  const byDest = new Int32Array(3 * 256);
  const controls = new Uint32Array(conns.capacity);
  const { live, flags: flagsOf, control, dest } = conns;
  const capacity = conns.capacity;
  for (let c = 0; c < capacity; c++) {
    if (live[c] !== 1) continue; // LIVE
    visited++;
    const flags = flagsOf[c];
    if ((flags & CONN_F_NO_CPORT) !== 0) noCport++;
    const t = control[c];
    if (t !== NIL) {
      if (t < 0 || t >= capacity || live[t] !== 1) f.push(`entry ${c} is controlled by entry ${t}, which is not live`);
      else controls[t]++;
    }
    const id = dest[c];
    if (id === NIL) continue;
    withDest++;
    if (id < 0 || id >= 256) f.push(`entry ${c} has dest id ${id}`);
    else byDest[3 * id + ((flags & CONN_F_TEMPLATE) !== 0 ? 2 : (flags & CONN_F_INACTIVE) !== 0 ? 1 : 0)]++;
  }
  for (let id = 0; id < 256; id++) {
    if (byDest[3 * id] + byDest[3 * id + 1] + byDest[3 * id + 2] > 0 && e.dests.get(id) === undefined) {
      f.push(`live entries point at freed dest id ${id}`);
    }
  }
  if (visited !== conns.count) f.push(`conns.count ${conns.count} but ${visited} live entries`);
  let counted = 0;
  conns.forEach((c) => {
    counted++;
    if (live[c] !== 1 || conns.nControl[c] !== controls[c]) {
      f.push(`entry ${c}: nControl ${conns.nControl[c]} but ${controls[c]} entries name it`);
    }
  });
  if (counted !== conns.count) f.push(`conns.count ${conns.count} but forEach visits ${counted}`);
  const waiting = e.expect.waitingForPort;
  if (waiting !== noCport) f.push(`${waiting} expected connections wait for a client port, but ${noCport} entries do`);
  let sum = 0;
  const liveServices = new Set(e.services.list);
  for (const x of lab.dests) {
    const registered = e.dests.get(x.id) === x;
    const at = 3 * x.id;
    const a = registered ? byDest[at] : 0;
    const i = registered ? byDest[at + 1] : 0;
    const p = registered ? byDest[at + 2] : 0;
    if (x.activeConns < 0 || x.inactConns < 0 || x.persistConns < 0) f.push(`${destName(x)}: a negative counter`);
    if (x.activeConns !== a || x.inactConns !== i || x.persistConns !== p) {
      f.push(
        `${destName(x)}: active/inactive/persistent ${x.activeConns}/${x.inactConns}/${x.persistConns}, table says ${a}/${i}/${p}`,
      );
    }
    if (registered) sum += x.activeConns + x.inactConns + x.persistConns;
    const inService = liveServices.has(x.svc) && x.svc.dests.includes(x);
    if (!inService && registered && a + i + p === 0) f.push(`${destName(x)}: deleted, no connections, id kept`);
  }
  if (sum !== withDest) f.push(`dest counters add up to ${sum}, ${withDest} live entries have a dest`);
  const fr = e.frags;
  if (fr.heldBytes < 0 || fr.heldBytes > fr.maxBytes)
    f.push(`reassembly holds ${fr.heldBytes} bytes (cap ${fr.maxBytes})`);
  if (fr.queues < 0 || fr.queues > fr.maxDatagrams) f.push(`reassembly has ${fr.queues} datagrams`);
  if (conns.count > 3 * pushed) f.push(`${conns.count} connections after ${pushed} packets`);
  if (e.rxPackets !== pushed) f.push(`rxPackets ${e.rxPackets}, ${pushed} pushed`);
  return f;
}

function destName(x: Dest): string {
  return `dest ${x.addr >>> 24}.${(x.addr >>> 16) & 255}.${(x.addr >>> 8) & 255}.${x.addr & 255}:${x.port}`;
}

// ---------------------------------------------------------------------------------------------
// Events and their application.

/** A control-plane change, replayable on a fresh lab of the same kind. */
export type ChurnOp =
  | { op: 'weight'; svc: number; dest: number; weight: number }
  | { op: 'delete'; svc: number; dest: number }
  | { op: 'add'; svc: number; dest: number }
  | { op: 'threshold'; svc: number; dest: number; upper: number; lower: number }
  | { op: 'service'; svc: number; sched: string; persistent: boolean }
  | { op: 'sysctl'; expireNodestConn: number; connReuseMode: number; expireQuiescentTemplate: number };

export type FuzzEvent =
  | { kind: 'push'; inputs: FuzzInput[] }
  | { kind: 'advance'; seconds: number }
  | { kind: 'churn'; churn: ChurnOp };

/** Applies events to one lab and judges the result of each. */
export class Session {
  pushed = 0;
  outputs = 0;
  /** Outputs by "device:protocol" (raw, tun, frame), for a look at what a run reached. */
  readonly seen = new Map<string, number>();
  /** IPv4 ids of dirty fragments -> when last seen (rule 8 of the oracle). */
  private readonly dirtyIds = new Map<number, number>();
  /** Header residues of fragments with a broken header -> when seen (their expiry ICMP quotes them). */
  private readonly fragHeaders = new Map<number, number>();
  private readonly allow = new Allowance();

  constructor(readonly lab: Lab) {}

  /** Apply one event; returns the findings (empty: all legal). */
  async apply(ev: FuzzEvent): Promise<string[]> {
    switch (ev.kind) {
      case 'push':
        return this.push(ev.inputs);
      case 'advance':
        return this.advance(ev.seconds);
      default:
        await applyChurn(this.lab, ev.churn);
        return engineFindings(this.lab, this.pushed);
    }
  }

  private push(inputs: FuzzInput[]): string[] {
    const lab = this.lab;
    const now = lab.d.clock.now;
    const allow = this.allow;
    allow.clear();
    for (const input of inputs) {
      // The engine reads at most maxPacket bytes of each (the fake TUN truncates, as a read would).
      const ip = input.ip.length > lab.maxPacket ? input.ip.subarray(0, lab.maxPacket) : input.ip;
      const facts = noteInput(ip, input.vnet, allow);
      if (facts.fragment && input.cleanFragment !== true) this.dirtyIds.set(facts.id, now);
      if (facts.fragment && facts.headerResidue > 0) this.fragHeaders.set(facts.headerResidue, now);
    }
    const frags = lab.engine.frags;
    const completeBefore = frags.counts[FRAG_COMPLETE];
    this.pushed += inputs.length;
    try {
      lab.d.io.push(...inputs.map(wire));
    } catch (err) {
      lab.d.io.takeSent();
      return [`exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`];
    }
    const dev = [...lab.d.io.sentDev];
    const out = lab.d.io.takeSent();
    this.count(out, dev);
    const completed = frags.counts[FRAG_COMPLETE] > completeBefore;
    const dirty = this.dirtyIds;
    const findings = [...lab.oracle.check(out, dev, allow, (id) => completed && dirty.has(id))];
    // The outputs the findings are about, in hex.
    const about = new Set(findings.map((x) => /^out\[(\d+)\]/.exec(x)?.[1]).filter((x) => x !== undefined));
    for (const i of about) findings.push(`  out[${i}] dev ${dev[Number(i)]}: ${toHex(out[Number(i)])}`);
    return [...findings, ...engineFindings(lab, this.pushed)];
  }

  private advance(seconds: number): string[] {
    const lab = this.lab;
    const allow = this.allow;
    allow.clear();
    for (const r of this.fragHeaders.keys()) allow.ip.add(r);
    let findings: string[];
    try {
      lab.d.advance(seconds);
      const dev = [...lab.d.io.sentDev];
      const out = lab.d.io.takeSent();
      this.count(out, dev);
      findings = [...lab.oracle.check(out, dev, allow, () => false)];
    } catch (err) {
      findings = [`exception in tick: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`];
    }
    // Forget what can no longer complete (reassembly keeps a datagram 30 s from its first fragment).
    const limit = lab.d.clock.now - lab.engine.frags.timeoutSeconds - 1;
    for (const [id, t] of this.dirtyIds) if (t < limit) this.dirtyIds.delete(id);
    for (const [r, t] of this.fragHeaders) if (t < limit) this.fragHeaders.delete(r);
    return [...findings, ...engineFindings(lab, this.pushed)];
  }

  private count(out: Buffer[], dev: number[]): void {
    this.outputs += out.length;
    const skip = this.lab.vnet;
    for (let i = 0; i < out.length; i++) {
      const dv = dev[i];
      const at = dv === 0 ? 0 : dv === 255 ? skip : skip + 14;
      const p = out[i];
      const protocol = p.length > at + 9 ? p[at + 9] : -1;
      const name = protocol === 1 || protocol === 4 || protocol === 6 || protocol === 17 ? protocol : 'other';
      const key = `${dv === 0 ? 'raw' : dv === 255 ? 'tun' : 'frame'}:${name}`;
      this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
    }
  }

  /** Advance until everything has expired; then the tables must be empty and the counters zero. */
  async drain(): Promise<string[]> {
    const f: string[] = [];
    for (let i = 0; i < 8; i++) f.push(...this.advance(1000));
    const e = this.lab.engine;
    if (e.conns.count !== 0) f.push(`drained: ${e.conns.count} connections left`);
    if (e.frags.queues !== 0 || e.frags.heldBytes !== 0) f.push(`drained: ${e.frags.queues} datagrams held`);
    for (const x of this.lab.dests) {
      if (x.activeConns + x.inactConns + x.persistConns !== 0) {
        f.push(`drained: ${destName(x)} counts ${x.activeConns}/${x.inactConns}/${x.persistConns}`);
      }
    }
    return f;
  }
}

async function applyChurn(lab: Lab, c: ChurnOp): Promise<void> {
  const b = lab.d.balancer;
  if (c.op === 'sysctl') {
    lab.engine.expireNodestConn = c.expireNodestConn;
    lab.engine.connReuseMode = c.connReuseMode;
    lab.engine.expireQuiescentTemplate = c.expireQuiescentTemplate;
    return;
  }
  const s = lab.services[c.svc];
  const key = svcKey(s);
  if (c.op === 'service') {
    const flags = (c.persistent ? SVC_F_PERSISTENT : 0) | (s.ops ? SVC_F_ONEPACKET : 0);
    await b.editService(
      svcSpec(s.vip, s.port, { protocol: s.protocol, sched: c.sched, flags, timeout: c.persistent ? 120 : 0 }),
    );
    return;
  }
  const x = s.dests[c.dest];
  const present = lab.engine.services
    .get(s.protocol, ipToU32(s.vip), s.port)
    ?.dests.some((y) => y.addr === ipToU32(x.addr) && y.port === x.port);
  if (c.op === 'weight' && present) await b.editDest(key, destSpec(x.addr, x.port, { fwd: x.fwd, weight: c.weight }));
  if (c.op === 'threshold' && present) {
    const spec = { fwd: x.fwd, weight: x.weight ?? 1, uThreshold: c.upper, lThreshold: c.lower };
    await b.editDest(key, destSpec(x.addr, x.port, spec));
  }
  if (c.op === 'delete' && present) await b.deleteDest(key, { addr: x.addr, port: x.port });
  if (c.op === 'add' && !present) {
    await b.addDest(key, destSpec(x.addr, x.port, { fwd: x.fwd, weight: x.weight ?? 1 }));
    collectDests(lab);
  }
}

/** A random control-plane change (never touching RS7, whose re-add would wait for its MAC). */
function randomChurn(r: Rng, services: ServiceDesc[]): ChurnOp {
  if (r.chance(0.25)) {
    return {
      op: 'sysctl',
      expireNodestConn: r.int(2),
      connReuseMode: r.pick([0, 1, 2, 3]),
      expireQuiescentTemplate: r.int(2),
    };
  }
  const svc = r.int(services.length);
  if (r.chance(0.15)) return { op: 'service', svc, sched: r.pick(SCHEDULERS), persistent: r.chance(0.4) };
  const dest = r.int(services[svc].dests.length);
  if (services[svc].dests[dest].addr === RS7) return { op: 'weight', svc, dest, weight: 1 };
  if (r.chance(0.15)) {
    const upper = r.pick([0, 1, 2, 5]);
    return { op: 'threshold', svc, dest, upper, lower: upper === 0 ? 0 : r.int(upper + 1) };
  }
  const op = r.pick(['weight', 'weight', 'delete', 'add', 'add'] as const);
  return op === 'weight' ? { op, svc, dest, weight: r.pick([0, 0, 1, 3]) } : { op, svc, dest };
}

// ---------------------------------------------------------------------------------------------
// Runs, failures and shrinking.

export interface Failure {
  kind: LabKind;
  /** The round's seed: createLab(kind, seed) and new Rng(seed) replay it. */
  seed: number;
  /** Index of the failing event in the round. */
  event: number;
  findings: string[];
  /** The shrunk events, as text (packets in hex). */
  reproducer: string;
}

export interface RunResult {
  packets: number;
  outputs: number;
  rounds: number;
  failures: Failure[];
  /** Findings of known engine bugs (KNOWN_BUGS), by id: counted, not failures. */
  known: Record<string, number>;
  /** Where each known bug showed first: "round seed 0x..., event n". */
  firstSeen: Record<string, string>;
  /**
   * What the run reached, summed over its rounds: outputs by "device:protocol", drops by reason
   * ("drop:<name>"), FTP helper matches ("ftp:<kind>"), offload headers, reassembled datagrams.
   */
  coverage: Record<string, number>;
}

function addCoverage(into: Record<string, number>, s: Session): void {
  const add = (k: string, n: number) => {
    if (n > 0) into[k] = (into[k] ?? 0) + n;
  };
  for (const [k, n] of s.seen) add(k, n);
  for (const [k, n] of Object.entries(drops(s.lab.d))) add(`drop:${k}`, n);
  for (const [k, n] of Object.entries(s.lab.engine.ftp.counts)) add(`ftp:${k}`, n);
  add('offload:partial', s.lab.engine.offload.partial);
  add('offload:gso', s.lab.engine.offload.gso);
  add('reassembled', s.lab.engine.frags.counts[FRAG_COMPLETE]);
}

/**
 * Engine bugs this fuzzer found that are still open. Their findings are counted in
 * RunResult.known instead of failing a run (each has an it.fails reproducer in
 * test/unit/engine-fuzz.test.ts); `strict` runs (FUZZ_STRICT=1) fail on them too.
 */
export const KNOWN_BUGS: readonly { id: string; finding: RegExp; fatal?: boolean }[] = [];

/** Which known bugs count as failures: none (false), all (true), or the one with this id. */
export type Strict = boolean | string;

/**
 * The findings (context lines, which start with spaces, aside) that are no known bug, counting
 * the known ones in `known`; `fatal` when a known bug that corrupts the engine's state was seen.
 */
function classify(
  findings: string[],
  known: Record<string, number>,
  strict: Strict,
): { unknown: string[]; fatal: boolean; ids: string[] } {
  const unknown: string[] = [];
  const ids: string[] = [];
  let fatal = false;
  for (const f of findings) {
    if (f.startsWith(' ')) continue;
    const bug = strict === true ? undefined : KNOWN_BUGS.find((b) => b.id !== strict && b.finding.test(f));
    if (bug === undefined) {
      unknown.push(f);
    } else {
      known[bug.id] = (known[bug.id] ?? 0) + 1;
      ids.push(bug.id);
      fatal ||= bug.fatal === true;
    }
  }
  return { unknown, fatal, ids };
}

function unknownFindings(findings: string[], known: Record<string, number>, strict: Strict): string[] {
  return classify(findings, known, strict).unknown;
}

const BATCH = 32;

/** The seed of round `i` of a run seeded `seed` on labs of `kind`. */
export function roundSeed(seed: number, kind: LabKind, i: number): number {
  return (Math.imul(seed ^ (LAB_KINDS.indexOf(kind) * 0x9e3779b9), 0x85ebca6b) + i * 0x632be5ab) >>> 0;
}

/**
 * Fuzz labs of `kind` with `packets` packets in rounds of `roundPackets`. A round stops at its
 * first failure (its state is suspect); the run goes on with the next round.
 */
export async function fuzz(opts: {
  kind: LabKind;
  seed: number;
  packets: number;
  roundPackets: number;
  maxFailures?: number;
  shrink?: boolean;
  strict?: Strict;
}): Promise<RunResult> {
  const result: RunResult = {
    packets: 0,
    outputs: 0,
    rounds: 0,
    failures: [],
    known: {},
    firstSeen: {},
    coverage: {},
  };
  for (let i = 0; result.packets < opts.packets; i++) {
    const seed = roundSeed(opts.seed, opts.kind, i);
    const want = Math.min(opts.roundPackets, opts.packets - result.packets);
    const round = await fuzzRound(opts.kind, seed, want, result.known, opts.strict ?? false, result.firstSeen);
    result.rounds++;
    result.packets += round.session.pushed;
    result.outputs += round.session.outputs;
    addCoverage(result.coverage, round.session);
    if (round.failure !== undefined) {
      result.failures.push(round.failure);
      if (opts.shrink !== false)
        round.failure.reproducer = await shrink(round.failure, round.log, opts.strict ?? false);
      if (result.failures.length >= (opts.maxFailures ?? 5)) break;
    }
  }
  return result;
}

/** The events of one round, generated on the fly against the lab they drive. */
export async function fuzzRound(
  kind: LabKind,
  seed: number,
  packets: number,
  known: Record<string, number> = {},
  strict: Strict = false,
  firstSeen: Record<string, string> = {},
): Promise<{ session: Session; log: FuzzEvent[]; failure?: Failure }> {
  const lab = await createLab(kind, seed);
  const session = new Session(lab);
  const r = new Rng(seed);
  const conns = lab.engine.conns;
  const fuzzer = new PacketFuzzer(
    { services: lab.services, offload: lab.vnet !== 0, maxPacket: lab.maxPacket },
    r,
    (p, ca, cp, va, vp) => {
      const c = conns.lookupIn(p, ca, cp, va, vp);
      if (c === NIL) return null;
      return { daddr: conns.daddr[c], dport: conns.dport[c], established: conns.state[c] === TCP_S_ESTABLISHED };
    },
  );
  const log: FuzzEvent[] = [];
  let sinceAdvance = 0;
  while (session.pushed < packets) {
    const events: FuzzEvent[] = [{ kind: 'push', inputs: fuzzer.batch(Math.min(BATCH, packets - session.pushed)) }];
    sinceAdvance++;
    if (sinceAdvance >= 8 || r.chance(0.2)) {
      sinceAdvance = 0;
      const x = r.float();
      const seconds = x < 0.7 ? r.range(1, 3) : x < 0.9 ? r.range(10, 60) : x < 0.98 ? r.range(100, 1000) : 4000;
      events.push({ kind: 'advance', seconds });
    }
    if (r.chance(0.03)) events.push({ kind: 'churn', churn: randomChurn(r, lab.services) });
    for (const ev of events) {
      log.push(ev);
      const findings = await session.apply(ev);
      const c = classify(findings, known, strict);
      for (const id of c.ids) firstSeen[id] ??= `round seed 0x${seed.toString(16)}, event ${log.length - 1}`;
      if (c.unknown.length > 0) {
        return { session, log, failure: { kind, seed, event: log.length - 1, findings, reproducer: '' } };
      }
      // A known bug broke the engine's state: what follows would only be its consequences.
      if (c.fatal) return { session, log };
    }
  }
  const findings = await session.drain();
  if (unknownFindings(findings, known, strict).length > 0) {
    log.push({ kind: 'advance', seconds: 8000 });
    return { session, log, failure: { kind, seed, event: log.length - 1, findings, reproducer: '' } };
  }
  return { session, log };
}

/** What a finding is about, without positions and numbers: two findings with it are "the same bug". */
export function signature(finding: string): string {
  return finding
    .replace(/^out\[\d+\] dev \d+( inner)?( \(reassembled\))?: /, '')
    .replace(/\d+/g, 'N')
    .split('\n')[0];
}

/**
 * Replay `events` on a fresh lab; true when a finding with signature `sig` shows up (before any
 * other finding that is no known bug, unless `strict`).
 */
export async function reproduces(
  kind: LabKind,
  seed: number,
  events: FuzzEvent[],
  sig: string,
  strict: Strict = false,
): Promise<boolean> {
  const s = new Session(await createLab(kind, seed));
  for (const ev of events) {
    const f = unknownFindings(await s.apply(ev), {}, strict);
    if (f.some((x) => signature(x) === sig)) return true;
    if (f.length > 0) return false;
  }
  const f = unknownFindings(await s.drain(), {}, strict);
  return f.some((x) => signature(x) === sig);
}

const SHRINK_BUDGET = 400;

/**
 * Shrink a failure: the failing event alone if that suffices; else delta debugging over the
 * earlier events, then dropping packets one at a time. Returns the result as text.
 */
export async function shrink(failure: Failure, log: FuzzEvent[], strict: Strict): Promise<string> {
  const sig = signature(unknownFindings(failure.findings, {}, strict)[0]);
  let budget = SHRINK_BUDGET;
  const tryEvents = async (evs: FuzzEvent[]) =>
    budget-- > 0 && (await reproduces(failure.kind, failure.seed, evs, sig, strict));
  let events = log.slice(0, failure.event + 1);
  if (!(await tryEvents(events))) return `(does not replay)\n${formatEvents(events.slice(-1))}`;
  const last = events[events.length - 1];
  if (await tryEvents([last])) {
    events = [last];
  } else {
    let prefix = events.slice(0, -1);
    let n = 2;
    while (prefix.length > 0 && budget > 0) {
      const size = Math.ceil(prefix.length / n);
      let reduced = false;
      for (let i = 0; i < prefix.length; i += size) {
        const candidate = [...prefix.slice(0, i), ...prefix.slice(i + size)];
        if (await tryEvents([...candidate, last])) {
          prefix = candidate;
          n = Math.max(n - 1, 2);
          reduced = true;
          break;
        }
      }
      if (!reduced) {
        if (size === 1) break;
        n = Math.min(prefix.length, n * 2);
      }
    }
    events = [...prefix, last];
  }
  // Packets, one at a time.
  for (let e = 0; e < events.length && budget > 0; e++) {
    const ev = events[e];
    if (ev.kind !== 'push') continue;
    for (let i = ev.inputs.length - 1; i >= 0 && budget > 0; i--) {
      const fewer: FuzzEvent = { kind: 'push', inputs: ev.inputs.filter((_, j) => j !== i) };
      const candidate = [...events.slice(0, e), fewer, ...events.slice(e + 1)];
      if (await tryEvents(candidate)) {
        events = candidate;
        events[e] = fewer;
        ev.inputs = fewer.inputs;
      }
    }
  }
  return formatEvents(events);
}

/** Events as text: one line per packet (its wire bytes, virtio_net_hdr first on offload labs). */
export function formatEvents(events: FuzzEvent[]): string {
  const lines: string[] = [];
  for (const ev of events) {
    if (ev.kind === 'push') {
      lines.push(`push ${ev.inputs.length}:`);
      for (const input of ev.inputs) lines.push(`  ${wire(input).toString('hex')}`);
    } else if (ev.kind === 'advance') {
      lines.push(`advance ${ev.seconds}`);
    } else {
      lines.push(`churn ${JSON.stringify(ev.churn)}`);
    }
  }
  return lines.join('\n');
}

/** A failure as a report: where to replay it, what broke, the shrunk events. */
export function formatFailure(f: Failure): string {
  return [
    `lab ${f.kind}, round seed ${f.seed} (0x${f.seed.toString(16)}), event ${f.event}`,
    ...f.findings.slice(0, 12),
    'reproducer:',
    f.reproducer,
  ].join('\n');
}
