// The health monitor (src/health/monitor.ts) with an injected clock and scripted probe results:
// what a failure and a recovery do to the table (removal, inhibit_on_failure, misc_dynamic
// weights), quorum and the sorry server, the bound on checks in flight, and reloads that touch
// only what changed. The configurations go through the real keepalived.conf parser.

import { describe, expect, it } from 'vitest';
import { configText } from '../../src/cli/config-file';
import { DEFAULT_LIST_FORMAT } from '../../src/cli/lvsadm-args';
import { formatSave, NUMERIC_NAMES } from '../../src/cli/lvsadm-format';
import type { DestKey, DestSpec, ServiceKey, ServiceSpec } from '../../src/ctl/protocol';
import type { Checker } from '../../src/health/keepalived-conf';
import { parseKeepalivedConf } from '../../src/health/keepalived-conf';
import { HealthMonitor, type HealthTarget, RETRY_S } from '../../src/health/monitor';
import type { ProbeOutcome, ProbeTarget } from '../../src/health/probes';
import { FWD_DROUTE, FWD_MASQ } from '../../src/ip-vs';
import { director, svcSpec } from '../helpers/engine-lab';

/** A table that records every call and keeps the resulting state, as the Balancer would. */
class FakeTable implements HealthTarget {
  readonly calls: string[] = [];
  readonly services = new Map<string, { spec: ServiceSpec; dests: Map<string, DestSpec> }>();

  private svc(k: ServiceKey) {
    const s = this.services.get(`${k.addr}:${k.port}`);
    if (!s) throw Object.assign(new Error('No such service'), { errno: 'ESRCH' });
    return s;
  }
  async addService(spec: ServiceSpec) {
    this.calls.push(`A ${spec.addr}:${spec.port} ${spec.sched}`);
    if (this.services.has(`${spec.addr}:${spec.port}`))
      throw Object.assign(new Error('Service already exists'), { errno: 'EEXIST' });
    this.services.set(`${spec.addr}:${spec.port}`, { spec, dests: new Map() });
  }
  async editService(spec: ServiceSpec) {
    this.calls.push(`E ${spec.addr}:${spec.port} ${spec.sched}`);
    this.svc(spec).spec = spec;
  }
  async deleteService(k: ServiceKey) {
    this.calls.push(`D ${k.addr}:${k.port}`);
    this.svc(k);
    this.services.delete(`${k.addr}:${k.port}`);
  }
  async addDest(k: ServiceKey, d: DestSpec) {
    this.calls.push(`a ${k.port} ${d.addr}:${d.port} w${d.weight}`);
    const s = this.svc(k);
    if (s.dests.has(`${d.addr}:${d.port}`))
      throw Object.assign(new Error('Destination already exists'), { errno: 'EEXIST' });
    s.dests.set(`${d.addr}:${d.port}`, d);
  }
  async editDest(k: ServiceKey, d: DestSpec) {
    this.calls.push(`e ${k.port} ${d.addr}:${d.port} w${d.weight}`);
    this.svc(k).dests.set(`${d.addr}:${d.port}`, d);
  }
  async deleteDest(k: ServiceKey, d: DestKey) {
    this.calls.push(`d ${k.port} ${d.addr}:${d.port}`);
    this.svc(k).dests.delete(`${d.addr}:${d.port}`);
  }
  /** `service port` → "addr:port/weight" sorted. */
  dests(port = 80): string[] {
    const s = [...this.services.values()].find((x) => x.spec.port === port);
    return [...(s?.dests.values() ?? [])].map((d) => `${d.addr}:${d.port}/${d.weight}`).sort();
  }
}

/** Probe results by `TYPE addr:port` or `addr:port`, default ok; records each probe started. */
class FakeProber {
  readonly results = new Map<string, ProbeOutcome>();
  started: string[] = [];
  /** When set, probes wait until release() is called. */
  hold = false;
  private waiting: (() => void)[] = [];
  readonly probe = (c: Checker, rs: ProbeTarget): Promise<ProbeOutcome> => {
    const key = `${rs.addr}:${rs.port}`;
    this.started.push(`${c.type} ${key}`);
    const out = this.results.get(`${c.type} ${key}`) ?? this.results.get(key) ?? { ok: true, why: 'fine' };
    if (!this.hold) return Promise.resolve(out);
    return new Promise((r) => this.waiting.push(() => r(out)));
  };
  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }
  fail(key: string, why = 'connect: ECONNREFUSED'): void {
    this.results.set(key, { ok: false, why });
  }
  pass(key: string, weight?: number): void {
    this.results.set(key, { ok: true, why: 'fine', weight });
  }
}

function conf(text: string, files: Record<string, string> = {}) {
  const all: Record<string, string> = { '/k/keepalived.conf': text, ...files };
  const c = parseKeepalivedConf('/k/keepalived.conf', (p) => {
    const t = all[p];
    if (t === undefined) throw new Error('ENOENT');
    return t;
  });
  expect(c.errors).toEqual([]);
  return c;
}

/** Let resolved probes' callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A monitor on a fake table, prober, clock and script runner. */
function setup(opts: { maxInFlight?: number } = {}) {
  const table = new FakeTable();
  const prober = new FakeProber();
  const clock = { t: 1000 };
  const scripts: string[] = [];
  const logs: string[] = [];
  const mon = new HealthMonitor(table, prober.probe, {
    now: () => clock.t,
    random: () => 0,
    runScript: (cmd) => scripts.push(cmd),
    log: (m) => logs.push(m),
    maxInFlight: opts.maxInFlight,
  });
  /** Advance the clock to `t`, run the due checks and let their results and table changes land. */
  const at = async (t: number) => {
    clock.t = t;
    await flush();
    mon.tick();
    await flush();
    await mon.settled();
  };
  return { table, prober, clock, scripts, logs, mon, at };
}

const TWO = (extra = '', rsExtra = '') => `
virtual_server 10.0.0.1 80 {
  delay_loop 10
  lvs_sched rr
  lvs_method NAT
  protocol TCP
  ${extra}
  real_server 10.1.0.1 80 {
    weight 2
    ${rsExtra}
    TCP_CHECK {
      connect_timeout 1
      retry 1
      delay_before_retry 2
    }
  }
  real_server 10.1.0.2 80 {
    weight 3
    ${rsExtra}
    TCP_CHECK {
      connect_timeout 1
      retry 1
      delay_before_retry 2
    }
  }
}
`;

describe('HealthMonitor: failures and recoveries', () => {
  it('installs the service with every real server up, unless alpha starts them down', async () => {
    const { table, mon } = setup();
    await mon.load(conf(TWO()));
    expect(table.calls[0]).toBe('A 10.0.0.1:80 rr');
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    expect(table.services.get('10.0.0.1:80')?.spec.protocol).toBe(6);
    expect([...table.services.get('10.0.0.1:80')!.dests.values()].every((d) => d.fwd === FWD_MASQ)).toBe(true);

    const b = setup();
    await b.mon.load(conf(TWO('alpha')));
    expect(b.table.dests()).toEqual([]);
    await b.at(1000);
    expect(b.table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
  });

  it('removes a server after retry failures delay_before_retry apart, and adds it back on the first success', async () => {
    const { table, prober, mon, at, logs, scripts } = setup();
    await mon.load(conf(TWO('', 'notify_down "/bin/down.sh"\n    notify_up "/bin/up.sh"')));
    await at(1000); // the first checks (warmup 0): both fine
    expect(prober.started).toHaveLength(2);
    prober.fail('10.1.0.2:80');
    await at(1010); // first failure: a retry 2 s later
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    await at(1011);
    expect(prober.started).toHaveLength(4); // nothing was due
    await at(1012); // the retry fails too: down, removed
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    expect(table.calls.at(-1)).toBe('d 80 10.1.0.2:80');
    expect(logs.at(-1)).toBe(
      'health: TCP 10.0.0.1:80 -> 10.1.0.2:80 TCP_CHECK down (connect: ECONNREFUSED): real server down, removed',
    );
    expect(scripts).toEqual(['/bin/down.sh']);
    // Down: checked every delay_loop; the first success brings it back with its weight.
    prober.pass('10.1.0.2:80');
    await at(1021);
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    await at(1022);
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    expect(scripts).toEqual(['/bin/down.sh', '/bin/up.sh']);
    expect(logs.at(-1)).toMatch(/10\.1\.0\.2:80 TCP_CHECK up \(fine\): real server up, weight 3$/);
    expect(mon.stats()).toMatchObject({ transitionsDown: 1, transitionsUp: 1, serversUp: 2, serversDown: 0 });
  });

  it('with inhibit_on_failure keeps a failed server at weight 0 and restores its weight', async () => {
    const { table, prober, mon, at } = setup();
    await mon.load(conf(TWO('inhibit_on_failure')));
    prober.fail('10.1.0.1:80');
    await at(1000);
    await at(1002);
    expect(table.dests()).toEqual(['10.1.0.1:80/0', '10.1.0.2:80/3']);
    expect(table.calls.at(-1)).toBe('e 80 10.1.0.1:80 w0');
    prober.pass('10.1.0.1:80');
    await at(1012);
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    expect(mon.snapshot()[0].servers[0]).toMatchObject({ state: 'up', weight: 2, inTable: true });
  });

  it('a server is down while any of its checkers is, and up again when all are', async () => {
    const { table, prober, mon, at, logs } = setup();
    await mon.load(
      conf(`
virtual_server 10.0.0.1 80 {
  delay_loop 10
  real_server 10.1.0.1 80 {
    TCP_CHECK {
      retry 0
    }
    MISC_CHECK {
      misc_path "/bin/x"
      retry 0
    }
  }
}`),
    );
    prober.fail('MISC_CHECK 10.1.0.1:80', 'exit 1');
    await at(1000);
    expect(prober.started).toEqual(['TCP_CHECK 10.1.0.1:80', 'MISC_CHECK 10.1.0.1:80']);
    expect(table.dests()).toEqual([]);
    prober.fail('TCP_CHECK 10.1.0.1:80');
    await at(1010);
    expect(logs.at(-1)).toMatch(/TCP_CHECK down \(connect: ECONNREFUSED\): real server stays down$/);
    prober.pass('MISC_CHECK 10.1.0.1:80');
    await at(1020);
    expect(table.dests()).toEqual([]);
    expect(logs.at(-1)).toMatch(/MISC_CHECK up \(fine\): real server stays down$/);
    prober.pass('TCP_CHECK 10.1.0.1:80');
    await at(1030);
    expect(table.dests()).toEqual(['10.1.0.1:80/1']);
    expect(mon.snapshot()[0].servers[0].checkers).toEqual([
      { type: 'TCP_CHECK', up: true, why: 'fine' },
      { type: 'MISC_CHECK', up: true, why: 'fine' },
    ]);
  });

  it('takes a misc_dynamic weight from the check, and keeps it while the server is up', async () => {
    const { table, prober, mon, at, logs } = setup();
    await mon.load(
      conf(`
virtual_server 10.0.0.1 80 {
  lvs_sched wrr
  real_server 10.1.0.1 80 {
    weight 4
    MISC_CHECK {
      misc_path "/bin/w"
      misc_dynamic
      delay_loop 5
      retry 0
    }
  }
}`),
    );
    await at(1000);
    expect(table.dests()).toEqual(['10.1.0.1:80/4']);
    prober.pass('10.1.0.1:80', 9);
    await at(1005);
    expect(table.dests()).toEqual(['10.1.0.1:80/9']);
    expect(logs.at(-1)).toBe('health: TCP 10.0.0.1:80 -> 10.1.0.1:80 MISC_CHECK asks for weight 9 (was 4)');
    prober.fail('10.1.0.1:80', 'exit 1');
    await at(1010);
    expect(table.dests()).toEqual([]);
    prober.pass('10.1.0.1:80'); // exit 0: up, weight unchanged (9)
    await at(1015);
    expect(table.dests()).toEqual(['10.1.0.1:80/9']);
  });
});

describe('HealthMonitor: quorum and the sorry server', () => {
  const SORRY = TWO(
    'quorum 3\n  hysteresis 1\n  sorry_server 10.2.0.9 8080\n  quorum_up "/bin/qup"\n  quorum_down "/bin/qdown"',
  );

  it('replaces the real servers by the sorry server when the live weight falls below quorum - hysteresis', async () => {
    const { table, prober, mon, at, scripts, logs } = setup();
    await mon.load(conf(SORRY));
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    prober.fail('10.1.0.2:80');
    await at(1000);
    await at(1002); // 10.1.0.2 down: live weight 2, not below 3 - 1
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    expect(mon.snapshot()[0]).toMatchObject({ hasQuorum: true, liveWeight: 2 });
    prober.fail('10.1.0.1:80');
    await at(1010);
    await at(1012); // live weight 0 < 2: quorum lost
    expect(table.dests()).toEqual(['10.2.0.9:8080/1']);
    expect(scripts).toEqual(['/bin/qdown']);
    expect(logs).toContain(
      'health: TCP 10.0.0.1:80 lost quorum (live weight 0 < 2); sorry server 10.2.0.9:8080 in, real servers out',
    );
    expect(mon.snapshot()[0].servers.at(-1)).toMatchObject({ addr: '10.2.0.9', state: 'sorry', weight: 1 });
    // 10.1.0.1 (weight 2) back: 2 < quorum + hysteresis = 4, so the sorry server stays.
    prober.pass('10.1.0.1:80');
    await at(1022);
    expect(table.dests()).toEqual(['10.2.0.9:8080/1']);
    // Both back: 5 >= 4, quorum regained, the sorry server leaves.
    prober.pass('10.1.0.2:80');
    await at(1032);
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    expect(scripts).toEqual(['/bin/qdown', '/bin/qup']);
    expect(mon.stats()).toMatchObject({ quorumLost: 1, quorumGained: 1 });
  });

  it('with sorry_server_inhibit keeps the sorry server in the table at weight 0 while quorum holds', async () => {
    const { table, mon } = setup();
    await mon.load(conf(TWO('sorry_server 10.2.0.9 8080\n  sorry_server_inhibit\n  sorry_server_lvs_method DR')));
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3', '10.2.0.9:8080/0']);
    expect(table.services.get('10.0.0.1:80')!.dests.get('10.2.0.9:8080')!.fwd).toBe(FWD_DROUTE);
    expect(mon.snapshot()[0].servers.at(-1)).toMatchObject({ state: 'standby', inTable: true });
  });

  it('starts on the sorry server when every real server starts down (alpha)', async () => {
    const { table, mon } = setup();
    await mon.load(conf(TWO('alpha\n  sorry_server 10.2.0.9 8080')));
    expect(table.dests()).toEqual(['10.2.0.9:8080/1']);
  });
});

describe('HealthMonitor: refused table changes', () => {
  it('logs a refused change once and tries it again every RETRY_S until it is accepted', async () => {
    const { table, mon, at, logs } = setup();
    let refuse = 3;
    const addDest = table.addDest.bind(table);
    table.addDest = async (k, d) => {
      if (d.addr === '10.1.0.2' && refuse-- > 0) throw new Error('Network is unreachable');
      return addDest(k, d);
    };
    await mon.load(conf(TWO()));
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    expect(logs).toEqual(['health: cannot add 10.1.0.2:80 in TCP 10.0.0.1:80: Network is unreachable']);
    await at(1000 + RETRY_S - 0.5);
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    await at(1000 + RETRY_S); // refused again: not logged again
    await at(1000 + 2 * RETRY_S); // and again
    expect(table.dests()).toEqual(['10.1.0.1:80/2']);
    await at(1000 + 3 * RETRY_S);
    expect(table.dests()).toEqual(['10.1.0.1:80/2', '10.1.0.2:80/3']);
    expect(logs).toHaveLength(1);
  });
});

describe('HealthMonitor: omega', () => {
  it('runs notify_down of the live real servers and quorum_down at shutdown, with omega only', async () => {
    const text = TWO('omega\n  quorum_down "/bin/qdown"', 'notify_down "/bin/down.sh"');
    const a = setup();
    await a.mon.load(conf(text));
    a.prober.fail('10.1.0.2:80');
    await a.at(1000);
    await a.at(1002);
    a.prober.fail('10.1.0.1:80');
    await a.at(1010); // 10.1.0.1's first failure: its retry is due at 1012
    a.prober.hold = true;
    await a.at(1012); // that retry is in flight when lvsd stops
    a.scripts.length = 0;
    a.mon.shutdown();
    expect(a.scripts).toEqual(['/bin/down.sh', '/bin/qdown']);
    // Its result, the failure that would take 10.1.0.1 down, changes nothing any more.
    a.prober.release();
    await a.at(1013);
    expect(a.scripts).toEqual(['/bin/down.sh', '/bin/qdown']);
    expect(a.table.dests()).toEqual(['10.1.0.1:80/2']);

    const b = setup();
    await b.mon.load(conf(text.replace('omega', '')));
    b.mon.shutdown();
    expect(b.scripts).toEqual([]);
  });
});

describe('HealthMonitor: scheduling', () => {
  it('keeps at most maxInFlight checks running; the rest start as slots free up', async () => {
    const { prober, mon, at } = setup({ maxInFlight: 3 });
    const many = Array.from({ length: 8 }, (_, i) => `real_server 10.1.0.${i + 1} 80 {\nTCP_CHECK {\n}\n}`).join('\n');
    await mon.load(conf(`virtual_server 10.0.0.1 80 {\ndelay_loop 10\n${many}\n}`));
    prober.hold = true;
    await at(1000);
    expect(prober.started).toHaveLength(3);
    expect(mon.stats().inFlight).toBe(3);
    await at(1000.1);
    expect(prober.started).toHaveLength(3);
    prober.release();
    await at(1000.2);
    expect(prober.started).toHaveLength(6);
    prober.release();
    await at(1000.3);
    expect(prober.started).toHaveLength(8);
    prober.release();
    await at(1000.4);
    expect(mon.stats()).toMatchObject({ inFlight: 0, checksOk: 8 });
  });

  it('gives the slots in turn: a checker retrying at once cannot starve the others', async () => {
    const { prober, mon, at } = setup({ maxInFlight: 1 });
    const rs = (n: number) => `real_server 10.1.0.${n} 80 {\nTCP_CHECK {\nretry 5\ndelay_before_retry 0\n}\n}`;
    await mon.load(conf(`virtual_server 10.0.0.1 80 {\ndelay_loop 10\n${rs(1)}\n${rs(2)}\n${rs(3)}\n}`));
    prober.fail('10.1.0.1:80'); // retried with no delay: due again as soon as it returns
    prober.hold = true;
    for (let i = 0; i < 4; i++) {
      await at(1000 + i * 0.1);
      prober.release();
    }
    expect(prober.started).toEqual([
      'TCP_CHECK 10.1.0.1:80',
      'TCP_CHECK 10.1.0.2:80',
      'TCP_CHECK 10.1.0.3:80',
      'TCP_CHECK 10.1.0.1:80',
    ]);
  });

  it('counts a probe that throws or rejects as a failed check', async () => {
    const table = new FakeTable();
    let n = 0;
    const mon = new HealthMonitor(
      table,
      () => {
        if (n++ === 0) throw new Error('boom');
        return Promise.reject(new Error('bang'));
      },
      { now: () => 5, random: () => 0, log: () => {} },
    );
    await mon.load(
      conf(
        'virtual_server 10.0.0.1 80 {\nreal_server 10.1.0.1 80 {\nTCP_CHECK {\nretry 0\n}\n}\nreal_server 10.1.0.2 80 {\nTCP_CHECK {\nretry 0\n}\n}\n}',
      ),
    );
    mon.tick();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await mon.settled();
    expect(mon.stats()).toMatchObject({ checksFailed: 2, serversDown: 2 });
    expect(mon.snapshot()[0].servers.map((s) => s.checkers[0].why)).toEqual(['boom', 'bang']);
  });
});

describe('HealthMonitor: reload applies only the difference', () => {
  it('leaves unchanged services and dests alone, edits what changed, adds and removes the rest', async () => {
    const { table, prober, mon, at } = setup();
    const second = 'virtual_server 10.0.0.1 443 {\nlvs_sched wlc\nreal_server 10.1.0.1 443 {\nTCP_CHECK {\n}\n}\n}\n';
    await mon.load(conf(TWO() + second));
    prober.fail('10.1.0.1:80');
    await at(1000);
    await at(1002);
    expect(table.dests()).toEqual(['10.1.0.2:80/3']);
    table.calls.length = 0;

    // Same port-80 service with rs2's weight changed; the 443 one dropped; a new 8080 one.
    const third = 'virtual_server 10.0.0.1 8080 {\nlvs_sched sh\nreal_server 10.1.0.1 8080 {\nweight 5\n}\n}\n';
    await mon.load(conf(`# a comment shifts every line\n${TWO().replace('weight 3', 'weight 4')}${third}`));
    expect(table.calls).toEqual([
      'D 10.0.0.1:443',
      'e 80 10.1.0.2:80 w4',
      'A 10.0.0.1:8080 sh',
      'a 8080 10.1.0.1:8080 w5',
    ]);
    // rs1 kept its checker state across the reload: still down, not re-added.
    expect(table.dests()).toEqual(['10.1.0.2:80/4']);
    expect(mon.snapshot()[0].servers[0]).toMatchObject({ state: 'down', inTable: false });

    // A changed checker is a new checker: rs1 starts over (up, since no alpha).
    table.calls.length = 0;
    await mon.load(
      conf(`${TWO().replace('delay_before_retry 2', 'delay_before_retry 3').replace('weight 3', 'weight 4')}${third}`),
    );
    expect(table.calls).toEqual(['a 80 10.1.0.1:80 w2']);

    // A scheduler change edits the service in place.
    table.calls.length = 0;
    await mon.load(conf(`${TWO().replace('lvs_sched rr', 'lvs_sched wrr').replace('weight 3', 'weight 4')}${third}`));
    expect(table.calls).toEqual(['E 10.0.0.1:80 wrr']);

    // An empty configuration removes everything the monitor installed, and nothing else.
    await table.addService({
      protocol: 6,
      addr: '10.9.9.9',
      port: 80,
      fwmark: 0,
      sched: 'rr',
      flags: 0,
      timeout: 0,
      netmask: '255.255.255.255',
      pe: '',
    });
    table.calls.length = 0;
    await mon.load(conf('# nothing'));
    expect(table.calls.sort()).toEqual(['D 10.0.0.1:80', 'D 10.0.0.1:8080']);
    expect([...table.services.keys()]).toEqual(['10.9.9.9:80']);
  });

  it('ignores a probe result that arrives after its checker was removed by a reload', async () => {
    const { table, prober, mon, at } = setup();
    await mon.load(conf(TWO()));
    prober.hold = true;
    prober.fail('10.1.0.1:80');
    await at(1000);
    await mon.load(conf(TWO().replace(/real_server 10\.1\.0\.1 80 \{[^}]*\}[^}]*\}/, '')));
    prober.release();
    await at(1000.1);
    expect(table.dests()).toEqual(['10.1.0.2:80/3']);
    expect(mon.stats()).toMatchObject({ checksFailed: 0, serversUp: 1 });
  });
});

describe('HealthMonitor on the real control plane', () => {
  it('installs a virtual_server_group as one service per member (addresses and fwmarks), each with the dests', async () => {
    const d = director();
    let fail = false;
    const mon = new HealthMonitor(
      d.balancer,
      async () => (fail ? { ok: false, why: 'x' } : { ok: true, why: 'fine' }),
      {
        log: () => {},
        now: () => 0,
        random: () => 0,
      },
    );
    await mon.load(
      conf(
        'virtual_server_group web {\n 10.0.0.1-2 80\n fwmark 5\n}\nvirtual_server group web {\n lvs_sched rr\n real_server 10.1.0.1 80 {\n  weight 2\n  TCP_CHECK {\n   retry 0\n  }\n }\n}\n',
      ),
    );
    const rules = () => formatSave(d.balancer.snapshot(), { ...DEFAULT_LIST_FORMAT, numeric: true }, NUMERIC_NAMES);
    expect(rules()).toBe(
      [
        '-A -t 10.0.0.1:80 -s rr',
        '-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2',
        '-A -t 10.0.0.2:80 -s rr',
        '-a -t 10.0.0.2:80 -r 10.1.0.1:80 -m -w 2',
        '-A -f 5 -s rr',
        '-a -f 5 -r 10.1.0.1:80 -m -w 2',
        '',
      ].join('\n'),
    );
    expect(mon.snapshot().map((v) => v.label)).toEqual(['TCP group web']);
    // One failure (retry 0) takes the server out of all three.
    fail = true;
    mon.tick();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await mon.settled();
    expect(rules()).toBe(['-A -t 10.0.0.1:80 -s rr', '-A -t 10.0.0.2:80 -s rr', '-A -f 5 -s rr', ''].join('\n'));
  });

  it("drives a Balancer, and lvsd's config file leaves the monitor's services to keepalived.conf", async () => {
    const d = director();
    const mon = new HealthMonitor(d.balancer, async () => ({ ok: true, why: 'fine' }), { log: () => {} });
    await mon.load(conf(TWO()));
    await d.balancer.addService(svcSpec('10.0.0.2', 80, { sched: 'rr' }));
    expect(formatSave(d.balancer.snapshot(), { ...DEFAULT_LIST_FORMAT, numeric: true }, NUMERIC_NAMES)).toBe(
      [
        '-A -t 10.0.0.1:80 -s rr',
        '-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2',
        '-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 3',
        '-A -t 10.0.0.2:80 -s rr',
        '',
      ].join('\n'),
    );
    expect(mon.owns({ protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 })).toBe(true);
    expect(configText(d.balancer, (k) => mon.owns(k))).toBe(
      '# lvsd configuration: the virtual services (lvsadm -S -n), rewritten on every change\n' +
        '-A -t 10.0.0.2:80 -s rr\n' +
        '--set 900 120 300\n',
    );
  });
});
