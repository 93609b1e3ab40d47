// The health monitor: keepalived's check daemon inside lvsd. It owns the virtual services of a
// keepalived.conf (src/health/keepalived-conf.ts), runs every real server's checkers on their
// schedule (src/health/checker-state.ts) with a bounded number in flight, and keeps the table
// in step with what the checks say:
//
// - a real server that is up is a dest at its weight (a MISC_CHECK with misc_dynamic may change
//   that weight); one that is down is removed, or kept at weight 0 with inhibit_on_failure;
// - a virtual server whose live weight falls below `quorum` (with `hysteresis`) has lost quorum:
//   quorum_down runs and, when it has a sorry_server, the sorry server replaces its real servers
//   until quorum returns (sorry_server_inhibit keeps it at weight 0 meanwhile);
// - notify_up / notify_down / quorum_up / quorum_down commands run detached, never awaited.
//
// The table is changed by reconciling: every change of state computes the dests each service
// should have and applies the difference to what this monitor installed. A reload does the same
// with the new configuration, so services and dests that did not change are not touched and keep
// their connections. Rules added with plain `lvsadm -a` are never touched.
//
// Times are seconds on the injected clock; the probes and scripts are injected too, so the whole
// policy is unit-testable without sockets.

import type {
  DestKey,
  DestSpec,
  HealthCounters,
  RealServerSnapshot,
  ServiceKey,
  ServiceSpec,
  VirtualServerSnapshot,
} from '../ctl/protocol';
import { errnoOf } from '../errors';
import { ipVsProtoName } from '../ip-vs';
import { CheckerState, QuorumState, RealServerHealth } from './checker-state';
import {
  type Checker,
  destSpec,
  destSpecs,
  type KeepalivedConf,
  type RealServer,
  toIpvsServices,
  type VirtualServer,
  type VirtualServerGroup,
} from './keepalived-conf';
import { type ProbeOutcome, type ProbeTarget, type ScriptRunner, spawnScript } from './probes';

/** The control-plane verbs the monitor drives (Balancer has them). */
export interface HealthTarget {
  addService(spec: ServiceSpec): Promise<void>;
  editService(spec: ServiceSpec): Promise<void>;
  deleteService(key: ServiceKey): Promise<void>;
  addDest(key: ServiceKey, spec: DestSpec): Promise<void>;
  editDest(key: ServiceKey, spec: DestSpec): Promise<void>;
  deleteDest(key: ServiceKey, dkey: DestKey): Promise<void>;
}

export type Prober = (checker: Checker, rs: ProbeTarget) => Promise<ProbeOutcome>;

export interface MonitorOptions {
  /** Checks in flight at most (the rest wait for a free slot). */
  maxInFlight?: number;
  now?: () => number;
  random?: () => number;
  runScript?: ScriptRunner;
  log?: (msg: string) => void;
}

/** Default bound on concurrent checks. */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** How often due checks are looked for, milliseconds. */
export const TICK_MS = 100;
/** Seconds before a refused table change is tried again. */
export const RETRY_S = 5;

// ---------------------------------------------------------------------------------------------
// Per-server state

interface CheckerRun {
  readonly checker: Checker;
  readonly state: CheckerState;
  inFlight: boolean;
  /** The last probe's reason (empty before the first). */
  why: string;
}

interface ServerState {
  rs: RealServer;
  checks: CheckerRun[];
  /** Over the checks' states: up while all of them are. */
  health: RealServerHealth;
  /** The weight in effect while up: the configured one, or the last misc_dynamic one. */
  weight: number;
  /** Engine-clock time of the last up/down change (or of the start). */
  since: number;
}

interface VirtualState {
  vs: VirtualServer;
  /** The services it stands for (one per group member), with their specs. */
  services: ServiceSpec[];
  servers: ServerState[];
  quorum: QuorumState;
}

/** A service's key in the monitor's maps, and how log lines name it. */
function svcId(k: ServiceKey): string {
  return k.fwmark ? `FWM ${k.fwmark}` : `${ipVsProtoName(k.protocol)} ${k.addr}:${k.port}`;
}

function destId(k: DestKey): string {
  return `${k.addr}:${k.port}`;
}

/** The virtual server's identity across reloads: its target and protocol. */
function vsId(vs: VirtualServer): string {
  const t = vs.target;
  if (t.kind === 'addr') return `${vs.protocol} ${t.addr}:${t.port}`;
  if (t.kind === 'fwmark') return `FWM ${t.fwmark}`;
  return `${vs.protocol} group ${t.name}`;
}

/** Without source positions: two checkers equal here are the same checker after a reload. */
function checkerFingerprint(c: Checker): string {
  const { pos: _pos, ...rest } = c;
  return JSON.stringify(rest);
}

function sameSpec(a: object, b: object): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---------------------------------------------------------------------------------------------

export class HealthMonitor {
  private virtuals: VirtualState[] = [];
  /** What this monitor put in the table: service id → its spec and dests (dest id → spec). */
  private readonly installed = new Map<string, { spec: ServiceSpec; dests: Map<string, DestSpec> }>();
  /** Each running checker's server and virtual server (rebuilt by load()). */
  private owner = new Map<CheckerRun, { v: VirtualState; s: ServerState }>();
  /** Every checker, in configuration order, and where tick() starts looking for due ones. */
  private runs: CheckerRun[] = [];
  private cursor = 0;
  private inFlight = 0;
  /** Table changes refused (what → the message logged), and when to try them again. */
  private readonly refused = new Map<string, string>();
  private retryAt: number | null = null;
  /** After shutdown() results still arriving are ignored: nothing changes any more. */
  private shutDown = false;
  private timer: NodeJS.Timeout | undefined;
  /** Table changes run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly runScript: ScriptRunner;
  private readonly log: (msg: string) => void;
  readonly counters = {
    checksOk: 0,
    checksFailed: 0,
    transitionsUp: 0,
    transitionsDown: 0,
    quorumLost: 0,
    quorumGained: 0,
  };

  constructor(
    private readonly target: HealthTarget,
    private readonly probe: Prober,
    opts: MonitorOptions = {},
  ) {
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.now = opts.now ?? (() => performance.now() / 1000);
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => {});
    this.runScript = opts.runScript ?? spawnScript(this.log);
  }

  /** Check every TICK_MS until stop(). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * lvsd is stopping: nothing changes any more, and for virtual servers with `omega` the
   * notify_down command of every real server that is up and the quorum_down command where
   * quorum holds run (keepalived's omega).
   */
  shutdown(): void {
    this.stop();
    this.shutDown = true;
    for (const v of this.virtuals) {
      if (!v.vs.omega) continue;
      for (const s of v.servers) if (s.health.up && s.rs.notifyDown) this.runScript(s.rs.notifyDown);
      if (v.quorum.has && v.vs.quorumDown) this.runScript(v.vs.quorumDown);
    }
  }

  /** Resolves when every table change asked for so far is done. */
  settled(): Promise<void> {
    return this.queue;
  }

  /**
   * Take `conf` as the configuration: the first time, install it; later (a reload), apply only
   * the difference. Servers whose checkers did not change keep their state. Resolves when the
   * table matches.
   */
  load(conf: Pick<KeepalivedConf, 'virtualServers' | 'groups'>): Promise<void> {
    const now = this.now();
    const old = new Map(this.virtuals.map((v) => [vsId(v.vs), v]));
    const next: VirtualState[] = [];
    const seen = new Set<string>();
    for (const vs of conf.virtualServers) {
      const id = vsId(vs);
      if (seen.has(id)) {
        this.log(`health: ${id} is configured twice; the second one is ignored`);
        continue;
      }
      seen.add(id);
      next.push(this.virtualState(vs, conf.groups, old.get(id), now));
    }
    this.virtuals = next;
    this.owner = new Map();
    for (const v of next) for (const s of v.servers) for (const c of s.checks) this.owner.set(c, { v, s });
    this.runs = [...this.owner.keys()];
    this.cursor = 0;
    for (const v of next) this.updateQuorum(v, false);
    return this.enqueue(() => this.reconcile());
  }

  private virtualState(
    vs: VirtualServer,
    groups: ReadonlyMap<string, VirtualServerGroup>,
    prev: VirtualState | undefined,
    now: number,
  ): VirtualState {
    const services = toIpvsServices(vs, groups).map((s) => s.svc);
    const servers = vs.realServers.map((rs) => {
      const was = prev?.servers.find((s) => s.rs.addr === rs.addr && s.rs.port === rs.port);
      return this.serverState(rs, was, now);
    });
    const quorum = new QuorumState(vs.quorum, vs.hysteresis);
    if (prev) quorum.has = prev.quorum.has;
    return { vs, services, servers, quorum };
  }

  /** A server's state, carried over from `was` when its checkers are the same. */
  private serverState(rs: RealServer, was: ServerState | undefined, now: number): ServerState {
    const same =
      was !== undefined &&
      was.checks.length === rs.checkers.length &&
      rs.checkers.every((c, i) => checkerFingerprint(c) === checkerFingerprint(was.checks[i].checker));
    if (same) {
      // Same checks: keep their state; a new configured weight applies from now on.
      const weight = was.rs.weight === rs.weight ? was.weight : rs.weight;
      return { rs, checks: was.checks, health: was.health, weight, since: was.since };
    }
    const checks = rs.checkers.map((checker) => ({
      checker,
      state: new CheckerState(checker, now, this.random),
      inFlight: false,
      why: '',
    }));
    const health = new RealServerHealth(checks.map((c) => c.state));
    return { rs, checks, health, weight: rs.weight, since: now };
  }

  // ---- checking ----

  /** Start the checks that are due, as many as the in-flight bound allows. */
  tick(): void {
    const now = this.now();
    if (this.retryAt !== null && now >= this.retryAt) {
      this.retryAt = null;
      void this.enqueue(() => this.reconcile());
    }
    // Round the list from where the last full tick stopped, so checks that are due again at
    // once (retries without delay_before_retry) cannot keep the others from a slot.
    const n = this.runs.length;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const c = this.runs[i];
      if (c.inFlight || c.state.next > now) continue;
      if (this.inFlight >= this.maxInFlight) {
        this.cursor = i;
        return;
      }
      this.launch(this.owner.get(c)!.s.rs, c);
    }
  }

  private launch(rs: RealServer, c: CheckerRun): void {
    c.inFlight = true;
    this.inFlight++;
    let probing: Promise<ProbeOutcome>;
    try {
      probing = this.probe(c.checker, { addr: rs.addr, port: rs.port });
    } catch (err) {
      probing = Promise.resolve({ ok: false, why: (err as Error).message });
    }
    probing
      .catch((err: Error): ProbeOutcome => ({ ok: false, why: err.message }))
      .then((out) => {
        c.inFlight = false;
        this.inFlight--;
        this.recorded(c, out);
      });
  }

  /** Apply one probe's outcome to its checker, server and virtual server. */
  private recorded(c: CheckerRun, out: ProbeOutcome): void {
    // A reload may have dropped the checker while it ran.
    const owner = this.owner.get(c);
    if (!owner || this.shutDown) return;
    const { v, s } = owner;
    const now = this.now();
    if (out.ok) this.counters.checksOk++;
    else this.counters.checksFailed++;
    c.why = out.why;
    const checkerWasUp = c.state.up;
    const serverChange = s.health.result(s.checks.indexOf(c), out.ok, now);
    const change = c.state.up === checkerWasUp ? null : c.state.up ? 'up' : 'down';
    const where = `${vsId(v.vs)} -> ${destId(s.rs)}`;
    let changed = change !== null;
    if (out.ok && out.weight !== undefined && out.weight !== s.weight) {
      this.log(`health: ${where} ${c.checker.type} asks for weight ${out.weight} (was ${s.weight})`);
      s.weight = out.weight;
      changed = true;
    }
    if (change !== null) {
      let effect: string;
      if (serverChange === 'down') {
        s.since = now;
        this.counters.transitionsDown++;
        effect = s.rs.inhibitOnFailure
          ? 'real server down, weight 0 (inhibit_on_failure)'
          : 'real server down, removed';
        if (s.rs.notifyDown) this.runScript(s.rs.notifyDown);
      } else if (serverChange === 'up') {
        s.since = now;
        this.counters.transitionsUp++;
        effect = `real server up, weight ${s.weight}`;
        if (s.rs.notifyUp) this.runScript(s.rs.notifyUp);
      } else {
        effect = s.health.up ? 'real server stays up' : 'real server stays down';
      }
      this.log(`health: ${where} ${c.checker.type} ${change} (${out.why}): ${effect}`);
    }
    if (!changed) return;
    this.updateQuorum(v, true);
    void this.enqueue(() => this.reconcile());
  }

  private liveWeight(v: VirtualState): number {
    let w = 0;
    for (const s of v.servers) if (s.health.up) w += s.weight;
    return w;
  }

  private updateQuorum(v: VirtualState, notify: boolean): void {
    const live = this.liveWeight(v);
    const change = v.quorum.update(live);
    if (change === null) return;
    const id = vsId(v.vs);
    const sorry = v.vs.sorryServer;
    if (change === 'down') {
      this.counters.quorumLost++;
      const extra = sorry ? `; sorry server ${destId(sorry)} in, real servers out` : '';
      this.log(`health: ${id} lost quorum (live weight ${live} < ${v.vs.quorum - v.vs.hysteresis})${extra}`);
      if (v.vs.quorumDown) this.runScript(v.vs.quorumDown);
    } else {
      this.counters.quorumGained++;
      const extra = sorry ? `; sorry server ${destId(sorry)} out, real servers in` : '';
      this.log(`health: ${id} regained quorum (live weight ${live} >= ${v.vs.quorum + v.vs.hysteresis})${extra}`);
      if (notify && v.vs.quorumUp) this.runScript(v.vs.quorumUp);
    }
  }

  // ---- the table ----

  /** The dests virtual server `v` should have now, by dest id. */
  private desired(v: VirtualState): Map<string, DestSpec> {
    const out = new Map<string, DestSpec>();
    const specs = destSpecs(v.vs);
    const sorryIn = !v.quorum.has && v.vs.sorryServer !== null;
    v.servers.forEach((s, i) => {
      const spec = specs[i];
      const up = s.health.up && !sorryIn;
      if (up) out.set(destId(spec), { ...spec, weight: s.weight });
      else if (s.rs.inhibitOnFailure) out.set(destId(spec), { ...spec, weight: 0 });
    });
    const sorry = v.vs.sorryServer;
    if (sorry && (sorryIn || v.vs.sorryServerInhibit) && !out.has(destId(sorry))) {
      const method = v.vs.sorryServerMethod ?? v.vs.method;
      const spec = destSpec(v.vs, {
        ...sorry,
        method,
        tunnel: null,
        weight: sorryIn ? 1 : 0,
        uThreshold: 0,
        lThreshold: 0,
      });
      out.set(destId(sorry), spec);
    }
    return out;
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const p = this.queue.then(job, job);
    this.queue = p.catch(() => {});
    return this.queue;
  }

  /** Make the table hold exactly what the configuration and the checks ask for. */
  private async reconcile(): Promise<void> {
    const want = new Map<string, { spec: ServiceSpec; dests: Map<string, DestSpec> }>();
    for (const v of this.virtuals) {
      const dests = this.desired(v);
      for (const spec of v.services) want.set(svcId(spec), { spec, dests });
    }
    for (const [id, have] of this.installed) {
      if (want.has(id)) continue;
      await this.apply(`delete service ${id}`, () => this.target.deleteService(have.spec));
      this.installed.delete(id);
    }
    for (const [id, w] of want) {
      let have = this.installed.get(id);
      if (!have) {
        const ok = await this.apply(`add service ${id}`, async () => {
          try {
            await this.target.addService(w.spec);
          } catch (err) {
            // Already there (an lvsadm rule, a config file): take it over.
            if (errnoOf(err) !== 'EEXIST') throw err;
            await this.target.editService(w.spec);
          }
        });
        if (!ok) continue;
        have = { spec: w.spec, dests: new Map() };
        this.installed.set(id, have);
      } else if (!sameSpec(have.spec, w.spec)) {
        await this.apply(`edit service ${id}`, () => this.target.editService(w.spec));
        have.spec = w.spec;
      }
      for (const [did, spec] of have.dests) {
        if (w.dests.has(did)) continue;
        await this.apply(`delete ${did} from ${id}`, async () => {
          try {
            await this.target.deleteDest(w.spec, spec);
          } catch (err) {
            if (errnoOf(err) !== 'ENOENT') throw err;
          }
        });
        have.dests.delete(did);
      }
      for (const [did, spec] of w.dests) {
        const cur = have.dests.get(did);
        if (cur && sameSpec(cur, spec)) continue;
        const ok = await this.apply(`${cur ? 'edit' : 'add'} ${did} in ${id}`, async () => {
          if (cur) return this.target.editDest(w.spec, spec);
          try {
            await this.target.addDest(w.spec, spec);
          } catch (err) {
            if (errnoOf(err) !== 'EEXIST') throw err;
            await this.target.editDest(w.spec, spec);
          }
        });
        if (ok) have.dests.set(did, spec);
      }
    }
  }

  /**
   * One table change. A refused one (lvsadm changed the table under the monitor, a fwmark
   * device could not be opened, ...) is logged once while it keeps failing the same way and
   * tried again RETRY_S later. A real server without a route is not refused: lvsd accepts it,
   * as the kernel does, and steers it once a route appears.
   */
  private async apply(what: string, fn: () => Promise<void>): Promise<boolean> {
    try {
      await fn();
      this.refused.delete(what);
      return true;
    } catch (err) {
      const msg = `health: cannot ${what}: ${(err as Error).message}`;
      if (this.refused.get(what) !== msg) this.log(msg);
      this.refused.set(what, msg);
      this.retryAt = this.now() + RETRY_S;
      return false;
    }
  }

  /** Whether `key` is one of the services this monitor installed (and keeps). */
  owns(key: ServiceKey): boolean {
    return this.installed.has(svcId(key));
  }

  // ---- what lvsadm and the metrics see ----

  snapshot(): VirtualServerSnapshot[] {
    const now = this.now();
    return this.virtuals.map((v) => {
      const desired = this.desired(v);
      const servers: RealServerSnapshot[] = v.servers.map((s) => {
        const d = desired.get(destId(s.rs));
        return {
          addr: s.rs.addr,
          port: s.rs.port,
          state: s.health.up ? 'up' : 'down',
          weight: d?.weight ?? 0,
          inTable: d !== undefined,
          since: Math.max(0, Math.floor(now - s.since)),
          checkers: s.checks.map((c) => ({ type: c.checker.type, up: c.state.up, why: c.why })),
        };
      });
      const sorry = v.vs.sorryServer;
      if (sorry) {
        const d = desired.get(destId(sorry));
        servers.push({
          addr: sorry.addr,
          port: sorry.port,
          state: !v.quorum.has ? 'sorry' : 'standby',
          weight: d?.weight ?? 0,
          inTable: d !== undefined,
          since: 0,
          checkers: [],
        });
      }
      return {
        label: vsId(v.vs),
        quorum: v.vs.quorum,
        hysteresis: v.vs.hysteresis,
        liveWeight: this.liveWeight(v),
        hasQuorum: v.quorum.has,
        servers,
      };
    });
  }

  stats(): HealthCounters {
    let up = 0;
    let down = 0;
    for (const v of this.virtuals) for (const s of v.servers) s.health.up ? up++ : down++;
    return { ...this.counters, serversUp: up, serversDown: down, inFlight: this.inFlight };
  }
}
