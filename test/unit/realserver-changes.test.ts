// lvs-realserver's journal of host changes, against an in-memory host: every change is recorded in
// the state file before it is applied, what was already in place is neither changed nor undone,
// undo runs newest first and restores exact values, and a killed run's state file can be undone.
// Also the order in which the DR and TUN setups apply their changes.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { setupDr } from '../../src/realserver/dr-setup';
import {
  HostChanges,
  type HostLog,
  type HostOps,
  type HostState,
  ipv4ConfPath,
  readState,
  sysctlName,
  undoState,
} from '../../src/realserver/host-changes';
import { setupTun } from '../../src/realserver/tun-setup';

const dir = mkdtempSync(join(tmpdir(), 'lvs-rs-changes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ALL_ARP_IGNORE = ipv4ConfPath('all', 'arp_ignore');
const ALL_ARP_ANNOUNCE = ipv4ConfPath('all', 'arp_announce');
const ALL_RP_FILTER = ipv4ConfPath('all', 'rp_filter');

/** An in-memory host: interfaces with addresses, /proc/sys values, and a log of what was done. */
class FakeHost implements HostOps {
  readonly addrs = new Map<string, string[]>([
    ['lo', ['127.0.0.1/8']],
    ['eth0', ['10.0.0.2/24']],
  ]);
  readonly sysctls = new Map<string, string>([
    [ALL_ARP_IGNORE, '0'],
    [ALL_ARP_ANNOUNCE, '0'],
    [ALL_RP_FILTER, '1'],
    [ipv4ConfPath('default', 'rp_filter'), '1'],
    ['/proc/sys/net/ipv4/tcp_rmem', '4096\t131072\t6291456'],
  ]);
  /** Each action, in order: 'ip addr add ...', 'write <path> <value>'. */
  readonly actions: string[] = [];
  /** Called before each action is carried out (e.g. to look at the state file at that moment). */
  beforeAction: (action: string) => void = () => {};
  failOn: RegExp | undefined;
  running = new Set<number>();

  private act(action: string): void {
    this.beforeAction(action);
    if (this.failOn?.test(action)) throw new Error(`injected failure: ${action}`);
    this.actions.push(action);
  }

  async ip(args: readonly string[]): Promise<string> {
    const a = [...args];
    if (a[0] === '-j' && a[2] === 'addr' && a[3] === 'show') {
      const dev = a[5];
      const list = this.addrs.get(dev);
      if (list === undefined) throw new Error(`Device "${dev}" does not exist.`);
      return JSON.stringify([
        { ifname: dev, addr_info: list.map((c) => ({ local: c.split('/')[0], prefixlen: Number(c.split('/')[1]) })) },
      ]);
    }
    if (a[0] === 'link' && a[1] === 'show') {
      if (!this.addrs.has(a[3])) throw new Error(`Device "${a[3]}" does not exist.`);
      return '';
    }
    this.act(`ip ${a.join(' ')}`);
    if (a[0] === 'addr' && (a[1] === 'add' || a[1] === 'del')) {
      const [cidr, dev] = [a[2], a[4]];
      const list = this.addrs.get(dev);
      if (list === undefined) throw new Error(`Cannot find device "${dev}"`);
      const i = list.indexOf(cidr);
      if (a[1] === 'add') {
        if (i >= 0) throw new Error('RTNETLINK answers: File exists');
        list.push(cidr);
      } else {
        if (i < 0) throw new Error('RTNETLINK answers: Cannot assign requested address');
        list.splice(i, 1);
      }
    }
    return '';
  }

  readSysctl(path: string): string | undefined {
    return this.sysctls.get(path);
  }

  writeSysctl(path: string, value: string): void {
    if (!this.sysctls.has(path)) throw new Error(`ENOENT: ${path}`);
    this.act(`write ${sysctlName(path)} ${value}`);
    this.sysctls.set(path, value);
  }

  isRealserver(pid: number): boolean {
    return this.running.has(pid);
  }

  /** A device appears (TUN opened) / disappears (its fd closed), with its sysctls. */
  addDevice(dev: string): void {
    this.addrs.set(dev, []);
    this.sysctls.set(ipv4ConfPath(dev, 'rp_filter'), this.sysctls.get(ipv4ConfPath('default', 'rp_filter'))!);
  }

  removeDevice(dev: string): void {
    this.addrs.delete(dev);
    this.sysctls.delete(ipv4ConfPath(dev, 'rp_filter'));
  }
}

class Lines implements HostLog {
  readonly infos: string[] = [];
  readonly warns: string[] = [];
  info(msg: string): void {
    this.infos.push(msg);
  }
  warn(msg: string): void {
    this.warns.push(msg);
  }
}

let n = 0;
let host: FakeHost;
let log: Lines;
let file: string;

beforeEach(() => {
  host = new FakeHost();
  log = new Lines();
  file = join(dir, `state-${n++}`, 'rs.state'); // the directory does not exist yet
});

function journal(): HostChanges {
  const c = new HostChanges(host, file, 'dr', log, 4242);
  c.begin();
  return c;
}

function stateOnDisk(): HostState {
  return JSON.parse(readFileSync(file, 'utf8')) as HostState;
}

describe('HostChanges: making changes', () => {
  it('begin() writes an empty state file with the mode and pid (creating its directory)', () => {
    journal();
    expect(stateOnDisk()).toEqual({ version: 1, mode: 'dr', pid: 4242, changes: [] });
  });

  it('records each change in the state file before applying it', async () => {
    const c = journal();
    const seen: string[] = [];
    host.beforeAction = (action) => seen.push(`${action} | recorded: ${JSON.stringify(stateOnDisk().changes.at(-1))}`);
    c.setSysctl(ALL_ARP_IGNORE, '1');
    await c.addAddress('192.168.0.1/32', 'lo');
    expect(seen).toEqual([
      `write net.ipv4.conf.all.arp_ignore 1 | recorded: ${JSON.stringify({ kind: 'sysctl', path: ALL_ARP_IGNORE, old: '0', value: '1' })}`,
      `ip addr add 192.168.0.1/32 dev lo | recorded: ${JSON.stringify({ kind: 'addr', cidr: '192.168.0.1/32', dev: 'lo' })}`,
    ]);
    expect(log.infos).toEqual(['net.ipv4.conf.all.arp_ignore 0 -> 1', 'added 192.168.0.1/32 on lo']);
  });

  it('leaves what is already in place alone: neither recorded nor changed', async () => {
    host.addrs.get('lo')!.push('192.168.0.1/32');
    const c = journal();
    c.setSysctl(ALL_RP_FILTER, '1');
    c.raiseSysctl(ALL_ARP_IGNORE, 0);
    await c.addAddress('192.168.0.1/32', 'lo');
    expect(c.changes).toEqual([]);
    expect(host.actions).toEqual([]);
    expect(log.infos).toEqual(['192.168.0.1/32 is already on lo: left as it is']);
  });

  it('raiseSysctl keeps a higher (stricter) value and raises a lower one', () => {
    host.sysctls.set(ALL_ARP_IGNORE, '2');
    const c = journal();
    c.raiseSysctl(ALL_ARP_IGNORE, 1);
    c.raiseSysctl(ALL_ARP_ANNOUNCE, 2);
    expect(host.sysctls.get(ALL_ARP_IGNORE)).toBe('2');
    expect(host.sysctls.get(ALL_ARP_ANNOUNCE)).toBe('2');
    expect(c.changes).toEqual([{ kind: 'sysctl', path: ALL_ARP_ANNOUNCE, old: '0', value: '2' }]);
  });

  it('a change that fails to apply is taken off the record and the error is thrown', async () => {
    const c = journal();
    host.failOn = /addr add/;
    await expect(c.addAddress('192.168.0.1/32', 'lo')).rejects.toThrow('injected failure');
    host.failOn = /arp_ignore/;
    expect(() => c.setSysctl(ALL_ARP_IGNORE, '1')).toThrow('injected failure');
    expect(c.changes).toEqual([]);
    expect(stateOnDisk().changes).toEqual([]);
  });

  it('refuses a sysctl that does not exist', () => {
    expect(() => journal().setSysctl('/proc/sys/net/ipv4/conf/nope0/rp_filter', '0')).toThrow(
      'net.ipv4.conf.nope0.rp_filter does not exist',
    );
  });
});

describe('HostChanges: undoing', () => {
  it('undoAll() restores everything newest first, exact values included, and removes the state file', async () => {
    const rmem = '/proc/sys/net/ipv4/tcp_rmem';
    const c = journal();
    c.setSysctl(rmem, '4096 4096 4096');
    c.setSysctl(ALL_ARP_IGNORE, '1');
    await c.addAddress('192.168.0.1/32', 'lo');
    await c.addAddress('192.168.0.2/32', 'lo');
    host.actions.length = 0;
    log.infos.length = 0;

    await c.undoAll();
    expect(host.actions).toEqual([
      'ip addr del 192.168.0.2/32 dev lo',
      'ip addr del 192.168.0.1/32 dev lo',
      'write net.ipv4.conf.all.arp_ignore 0',
      'write net.ipv4.tcp_rmem 4096\t131072\t6291456',
    ]);
    expect(host.sysctls.get(rmem)).toBe('4096\t131072\t6291456');
    expect(host.addrs.get('lo')).toEqual(['127.0.0.1/8']);
    expect(log.infos).toEqual([
      'removed 192.168.0.2/32 from lo',
      'removed 192.168.0.1/32 from lo',
      'net.ipv4.conf.all.arp_ignore 1 -> 0 (restored)',
      'net.ipv4.tcp_rmem 4096 4096 4096 -> 4096\t131072\t6291456 (restored)',
    ]);
    expect(existsSync(file)).toBe(false);
  });

  it('keeps the state file in step while undoing: it always lists what is still to undo', async () => {
    const c = journal();
    c.setSysctl(ALL_ARP_IGNORE, '1');
    await c.addAddress('192.168.0.1/32', 'lo');
    const pending: number[] = [];
    host.beforeAction = () => pending.push(stateOnDisk().changes.length);
    await c.undoAll();
    expect(pending).toEqual([2, 1]);
  });

  it('skips what is already gone (removed by hand, or gone with its device)', async () => {
    const c = journal();
    await c.addAddress('192.168.0.1/32', 'lo');
    c.setSysctl(ALL_ARP_IGNORE, '1');
    host.addrs.set('lo', ['127.0.0.1/8']);
    host.sysctls.set(ALL_ARP_IGNORE, '0');
    host.actions.length = 0;
    await c.undoAll();
    expect(host.actions).toEqual([]);
    expect(log.warns).toEqual([]);
  });

  it('a TUN device is released by the live run (its fd closed), after its addresses and sysctls', async () => {
    const c = new HostChanges(host, file, 'tun', log, 4242);
    c.begin();
    host.addDevice('lvsrs0');
    c.recordTun('lvsrs0', () => {
      host.actions.push('close lvsrs0');
      host.removeDevice('lvsrs0');
    });
    c.setSysctl(ipv4ConfPath('lvsrs0', 'rp_filter'), '0');
    await c.addAddress('192.168.0.1/32', 'lvsrs0');
    host.actions.length = 0;
    await c.undoAll();
    expect(host.actions).toEqual([
      'ip addr del 192.168.0.1/32 dev lvsrs0',
      'write net.ipv4.conf.lvsrs0.rp_filter 1',
      'close lvsrs0',
    ]);
    expect(log.infos.at(-1)).toBe('removed TUN device lvsrs0');
  });
});

describe('undoState: what a killed run left', () => {
  function leftovers(changes: HostState['changes']): HostState {
    return { version: 1, mode: 'tun', pid: 999_999, changes };
  }

  it('undoes the recorded changes newest first', async () => {
    host.addrs.get('lo')!.push('192.168.0.1/32');
    host.sysctls.set(ALL_ARP_IGNORE, '1');
    await undoState(
      host,
      leftovers([
        { kind: 'sysctl', path: ALL_ARP_IGNORE, old: '0', value: '1' },
        { kind: 'addr', cidr: '192.168.0.1/32', dev: 'lo' },
      ]),
      log,
    );
    expect(host.actions).toEqual(['ip addr del 192.168.0.1/32 dev lo', 'write net.ipv4.conf.all.arp_ignore 0']);
  });

  it('a TUN device of that name still present is someone else’s (ours closed with the killed run): left alone', async () => {
    host.addDevice('lvsrs0');
    await undoState(host, leftovers([{ kind: 'tun', dev: 'lvsrs0' }]), log);
    expect(host.actions).toEqual([]);
    expect(host.addrs.has('lvsrs0')).toBe(true);
    expect(log.warns).toEqual([
      'lvsrs0 exists but is not the TUN device of the recorded run (that one closed with it): left alone',
    ]);
  });

  it('a recorded change whose undo fails is reported and the rest is still undone', async () => {
    host.sysctls.set(ALL_ARP_IGNORE, '1');
    host.sysctls.set(ALL_ARP_ANNOUNCE, '2');
    host.failOn = /arp_announce/;
    await undoState(
      host,
      leftovers([
        { kind: 'sysctl', path: ALL_ARP_IGNORE, old: '0', value: '1' },
        { kind: 'sysctl', path: ALL_ARP_ANNOUNCE, old: '0', value: '2' },
      ]),
      log,
    );
    expect(host.sysctls.get(ALL_ARP_IGNORE)).toBe('0');
    expect(log.warns).toEqual([
      'could not restore net.ipv4.conf.all.arp_announce to 0: injected failure: write net.ipv4.conf.all.arp_announce 0',
    ]);
  });
});

describe('readState', () => {
  it('is undefined when there is no state file, and throws for a file that is not one', () => {
    expect(readState(join(dir, 'absent.state'))).toBeUndefined();
    const bad = join(dir, 'bad.state');
    writeFileSync(bad, 'not json');
    expect(() => readState(bad)).toThrow('is not an lvs-realserver state file');
    writeFileSync(bad, '{"version":2}');
    expect(() => readState(bad)).toThrow('is not an lvs-realserver state file');
  });
});

describe('setups: what they change, in which order', () => {
  it('dr: arp_ignore and arp_announce on all before the VIPs go on lo (never a moment that ARP answers for a VIP)', async () => {
    const c = journal();
    await setupDr(c, ['192.168.0.1', '192.168.0.2']);
    expect(host.actions).toEqual([
      'write net.ipv4.conf.all.arp_ignore 1',
      'write net.ipv4.conf.all.arp_announce 2',
      'ip addr add 192.168.0.1/32 dev lo',
      'ip addr add 192.168.0.2/32 dev lo',
    ]);
  });

  it('tun: creates the device, brings it up, turns rp_filter off on it and on all, hides the VIPs from ARP as DR does, then adds them', async () => {
    const c = new HostChanges(host, file, 'tun', log, 4242);
    c.begin();
    const closed: number[] = [];
    const native = {
      openTun: (name: string) => {
        host.addDevice(name);
        return { fd: 77, name };
      },
      closeFd: (fd: number) => closed.push(fd),
    };
    expect(await setupTun(c, host, log, native, 'lvsrs0', ['192.168.0.1'])).toBe(77);
    expect(host.actions).toEqual([
      'ip link set dev lvsrs0 up',
      'write net.ipv4.conf.lvsrs0.rp_filter 0',
      'write net.ipv4.conf.all.rp_filter 0',
      'write net.ipv4.conf.all.arp_ignore 1',
      'write net.ipv4.conf.all.arp_announce 2',
      'ip addr add 192.168.0.1/32 dev lvsrs0',
    ]);
    expect(c.changes.map((x) => x.kind)).toEqual(['tun', 'sysctl', 'sysctl', 'sysctl', 'sysctl', 'addr']);
    await c.undoAll();
    expect(closed).toEqual([77]);
  });

  it('tun: refuses a device name that already exists (it is someone else’s)', async () => {
    const opened: string[] = [];
    const native = {
      openTun: (name: string) => {
        opened.push(name);
        return { fd: 1, name };
      },
      closeFd: () => {},
    };
    await expect(setupTun(journal(), host, log, native, 'eth0', ['192.168.0.1'])).rejects.toThrow(
      'device eth0 already exists',
    );
    expect(opened).toEqual([]);
  });
});
