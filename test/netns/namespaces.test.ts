// One lvsd and any lvs-realserver per network namespace, with default paths, as kernel IPVS
// keeps one table per namespace: two complete labs (netns/lab.sh mixed: a NAT service with two
// NAT real servers and a DR service with two DR real servers each) run side by side with no
// --socket, LVS_SOCKET or --state anywhere, and `ip netns exec NS lvsadm` reaches NS's lvsd.
// A second start never deletes or takes over a live instance's files, and a leftovers record
// is applied only in the namespace that wrote it.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns namespace tests: ${why}`);

const DR_VIP = '192.168.0.1';
const NAT_VIP = '192.168.0.3';
const LVSD = join(ROOT, 'dist/cli/lvsd.js');
const LVS_REALSERVER = join(ROOT, 'dist/cli/lvs-realserver.js');
const NAT_RS = ['rs3', 'rs4'];

async function setUp(lab: Lab): Promise<void> {
  await lab.up('mixed');
  await lab.startHttpServers();
  await Promise.all(
    NAT_RS.map((rs) =>
      lab.spawn(`${lab.prefix}-${rs}`, [process.execPath, join(ROOT, 'netns/http-server.js'), rs, '80'], 'listening'),
    ),
  );
  await lab.startRealservers('dr', DR_VIP);
  await lab.startLvsd();
  await lab.addVirtualService(['-t', `${DR_VIP}:80`], ['192.168.0.11', '192.168.0.12'], '-g');
  await lab.addVirtualService(['-t', `${NAT_VIP}:80`], ['172.16.0.3:80', '172.16.0.4:80'], '-m');
}

/** The distinct answers to `n` requests from the lab's client to `vip`. */
async function answers(lab: Lab, vip: string, n = 6): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await lab.curl(`http://${vip}/`);
    expect(r.code, `${lab.prefix} ${vip}: ${r.stderr}`).toBe(0);
    seen.add(r.stdout.trim());
  }
  return [...seen].sort();
}

describe.skipIf(why !== undefined)('two complete labs at once, all with default paths', () => {
  const a = new Lab('nsa', { defaultPaths: true });
  const b = new Lab('nsb', { defaultPaths: true });

  beforeAll(async () => {
    await Promise.all([setUp(a), setUp(b)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a.down(), b.down()]);
  });

  it('each lab is served by its own lvsd and real servers, NAT and DR', async () => {
    for (const lab of [a, b]) {
      expect(await answers(lab, DR_VIP)).toEqual(['rs1', 'rs2']);
      expect(await answers(lab, NAT_VIP)).toEqual(['rs3', 'rs4']);
    }
  });

  it('keeps each namespace’s files in its own directory, and lvsadm with no flag reaches its own', async () => {
    expect(a.socket).not.toBe(b.socket);
    for (const lab of [a, b]) {
      expect(existsSync(lab.socket)).toBe(true);
      expect(existsSync(`${lab.socket}.state`)).toBe(true);
      expect(existsSync(join(dirname(lab.socket), 'proc/net/ip_vs'))).toBe(true);
    }
    await a.lvsadmOk('-A', '-u', '10.99.0.1:53');
    expect(await a.lvsadmOk('-L', '-n')).toContain('UDP  10.99.0.1:53 wlc');
    expect(await b.lvsadmOk('-L', '-n')).not.toContain('10.99.0.1');
    // The kernel-format /proc files of A's own lvsd (rewritten every second) show it too.
    const procIpVs = join(dirname(a.socket), 'proc/net/ip_vs');
    for (let i = 0; i < 30 && !readFileSync(procIpVs, 'utf8').includes('UDP  0A630001:0035 wlc'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(readFileSync(procIpVs, 'utf8')).toContain('UDP  0A630001:0035 wlc');
    expect(readFileSync(join(dirname(b.socket), 'proc/net/ip_vs'), 'utf8')).not.toContain('0A630001');
    await a.lvsadmOk('-D', '-u', '10.99.0.1:53');
  });

  it('refuses a second lvsd in the same namespace and leaves the first one’s files and rules alone', async () => {
    const stateBefore = readFileSync(`${a.socket}.state`, 'utf8');
    const rulesBefore = (await a.exec(a.dir, ['ip', 'rule', 'show'])).stdout;
    const second = await a.exec(a.dir, [process.execPath, LVSD, '--tun', 'lvs9']);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(
      `another lvsd is running with control socket ${a.socket} in this network namespace`,
    );
    expect(second.stderr).not.toContain('removing leftovers');
    expect(readFileSync(`${a.socket}.state`, 'utf8')).toBe(stateBefore);
    expect((await a.exec(a.dir, ['ip', 'rule', 'show'])).stdout).toBe(rulesBefore);
    expect(await answers(a, NAT_VIP)).toEqual(['rs3', 'rs4']);
  });

  it('refuses a second lvs-realserver with the same journal, and the first keeps the VIP', async () => {
    const second = await a.exec(a.rs[0], [process.execPath, LVS_REALSERVER, 'dr', '--vip', DR_VIP]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/another lvs-realserver is running with \S+realserver-dr\.state/);
    expect((await a.exec(a.rs[0], ['ip', '-4', 'addr', 'show', 'dev', 'lo'])).stdout).toContain(`${DR_VIP}/32`);
    expect(await answers(a, DR_VIP)).toEqual(['rs1', 'rs2']);
  });

  it('stops one lab’s lvsd by its PID (SIGTERM): its files go, the other lab goes on', async () => {
    const sock = a.socket;
    expect(await a.stopLvsd()).toBe(0);
    expect(existsSync(dirname(sock))).toBe(false);
    expect((await a.lvsadm('-L', '-n')).stderr).toContain("Can't initialize ipvs");
    expect(await answers(b, DR_VIP)).toEqual(['rs1', 'rs2']);
    expect(await answers(b, NAT_VIP)).toEqual(['rs3', 'rs4']);
  });

  it('applies a leftovers record only in the namespace that wrote it', async () => {
    // The record a killed lvsd would leave, with a change that would show: a sysctl lvsd never
    // sets itself.
    const sysctl = '/proc/sys/net/ipv4/icmp_echo_ignore_all';
    const record = (netns: { inode: number; cookie: string }, old = '1') =>
      JSON.stringify({
        netns,
        tun: 'lvs0',
        table: 19542,
        rulePref: 19542,
        rules: [],
        proxies: [],
        sysctls: { [sysctl]: old },
      });
    const inode = Number(/netns-(\d+)/.exec(a.socket)![1]);
    // lvsd removed its directory when it stopped; a killed one would have left it.
    const leave = (text: string) => {
      mkdirSync(dirname(a.socket), { recursive: true });
      writeFileSync(`${a.socket}.state`, text);
    };
    const sysctlIn = async () => (await a.exec(a.dir, ['cat', sysctl])).stdout.trim();

    // Made in an earlier namespace that had the same inode: it went, and its changes with it.
    leave(record({ inode, cookie: '0' }));
    await a.startLvsd();
    expect(a.lvsdOutput).toContain('its network namespace no longer exists');
    expect(await sysctlIn()).toBe('0');
    expect(await a.stopLvsd()).toBe(0);

    // Made in another namespace that still exists (a --socket shared across namespaces): refused.
    const other = Number(/netns-(\d+)/.exec(b.socket)![1]);
    leave(record({ inode: other, cookie: '0' }));
    const refused = await a.exec(a.dir, [process.execPath, LVSD]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`another network namespace (net:[${other}]), which still exists`);
    expect(existsSync(`${a.socket}.state`)).toBe(true);

    // Made here: undone, as after any killed run.
    const here = JSON.parse(
      (
        await a.exec(a.dir, [
          process.execPath,
          '-p',
          `JSON.stringify(require(${JSON.stringify(join(ROOT, 'dist/run-dir.js'))}).currentNetns())`,
        ])
      ).stdout,
    );
    await a.exec(a.dir, ['sh', '-c', `echo 1 > ${sysctl}`]);
    leave(record({ ...here, inode }, '0'));
    await a.startLvsd();
    expect(a.lvsdOutput).toContain('removing leftovers of a previous run');
    expect(await sysctlIn()).toBe('0');
  });
});
