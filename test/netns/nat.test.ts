// NAT end to end: real lvsd in a director namespace, real HTTP/UDP servers in two real-server
// namespaces, real curl in a client namespace, configured with lvsadm exactly as ipvsadm. The
// first lvsd runs with --workers 1 (the engine on its main thread), the later ones with the
// default (an engine per CPU).

import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOffloadedTransfer, Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns NAT tests: ${why}`);

const VIP = '192.168.0.1';

describe.skipIf(why !== undefined)('NAT through lvsd in network namespaces', () => {
  const lab = new Lab('n');

  beforeAll(async () => {
    await lab.up();
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    // One engine on lvsd's main thread; the other labs run the default, one engine per CPU.
    await lab.startLvsd(['--workers', '1']);
  });

  afterAll(async () => {
    await lab.down();
  });

  it('listens on a control socket only its owner may use (mode 0600)', () => {
    expect(statSync(lab.socket).mode & 0o777).toBe(0o600);
  });

  it('runs the seed example: rr alternates exactly over 10 curl requests, and -L -n lists it', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
    expect(await lab.lvsadmOk('-L', '-n')).toBe(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        `TCP  ${VIP}:80 rr`,
        '  -> 172.16.0.1:80                Masq    1      0          0         ',
        '  -> 172.16.0.2:80                Masq    1      0          0         ',
        '',
      ].join('\n'),
    );
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      answers.push(r.stdout.trim());
    }
    // IPVS links each new dest at the head of the list, so rr starts with the last one added.
    expect(answers).toEqual(['rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1']);
    // Every connection closed and sits in TIME_WAIT: inactive, five per server.
    expect(await lab.lvsadmOk('-L', '-n')).toContain(
      [
        '  -> 172.16.0.1:80                Masq    1      0          5         ',
        '  -> 172.16.0.2:80                Masq    1      0          5         ',
      ].join('\n'),
    );
  });

  it('shows an open connection as ActiveConn and a closed one as InActConn', async () => {
    // A client that opens one connection, sends a request, and holds the socket open for 3 s.
    const hold =
      'const s=require("net").connect(80,process.argv[1],()=>s.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));' +
      's.once("data",()=>{console.log("open");setTimeout(()=>s.end(),3000)});s.on("close",()=>process.exit(0));';
    const holder = lab.exec(lab.client, [process.execPath, '-e', hold, VIP]);
    let listing = '';
    for (let i = 0; i < 20 && !/Masq {4}1 {6}1 /.test(listing); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listing = await lab.lvsadmOk('-L', '-n');
    }
    const active = listing.split('\n').filter((l) => /Masq {4}1 {6}1 {10}5 /.test(l));
    expect(active, listing).toHaveLength(1);
    expect((await holder).stdout).toContain('open');
    const after = await lab.lvsadmOk('-L', '-n');
    expect(
      after.split('\n').filter((l) => / 0 {10}6 {9}$/.test(l)),
      after,
    ).toHaveLength(1);
  });

  it('moves a 1 MiB download and upload byte-identical through NAT, as 64 KiB offload segments', async () => {
    // GSO segments are written back into the TUN for the kernel to forward.
    await expectOffloadedTransfer(lab, VIP, 1024 * 1024);
  });

  it('splits wrr 3:1 after editing the service and dests', async () => {
    await lab.lvsadmOk('-E', '-t', `${VIP}:80`, '-s', 'wrr');
    await lab.lvsadmOk('-e', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m', '-w', '3');
    await lab.lvsadmOk('-e', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m', '-w', '1');
    const count: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      const name = r.stdout.trim();
      count[name] = (count[name] ?? 0) + 1;
    }
    expect(count).toEqual({ rs1: 15, rs2: 5 });
  });

  it('answers UDP through NAT from the virtual address', async () => {
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1:53', '172.16.0.2:53'], '-m');
    const answers = await lab.udpQueries(VIP, 53, 4);
    expect(answers).toHaveLength(4);
    for (const a of answers) expect(a).toMatch(new RegExp(`^${VIP.replace(/\./g, '\\.')}:53 rs[12] q[0-3]$`));
    // Four client sockets (four source ports) → four connections, two per server under rr.
    expect(answers.filter((a) => a.includes('rs1'))).toHaveLength(2);
  });

  it('refuses bad commands with ipvsadm text and changes nothing', async () => {
    const before = await lab.lvsadmOk('-L', '-n');
    const r = await lab.lvsadm('-a', '-t', '10.1.1.1:80', '-r', '172.16.0.1:80', '-m');
    expect(r.code).toBe(255);
    expect(r.stderr).toBe('Service not defined\n');
    const dup = await lab.lvsadm('-A', '-t', `${VIP}:80`, '-s', 'rr');
    expect(dup.code).toBe(255);
    expect(dup.stderr).toBe('Service already exists\n');
    expect((await lab.lvsadm('-A', '-t', `${VIP}:81`, '-s', 'nosuch')).stderr).toBe(
      'Scheduler or persistence engine not found\n',
    );
    const after = await lab.lvsadmOk('-L', '-n');
    expect(after.replace(/ +\d+ +\d+ +$/gm, '')).toBe(before.replace(/ +\d+ +\d+ +$/gm, ''));
  });

  it('leaves no route, rule, proxy entry, sysctl or TUN device behind when lvsd stops', async () => {
    const forwardBefore = '0';
    expect(await lab.stopLvsd('SIGTERM')).toBe(0);
    expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).not.toMatch(/19542/);
    expect((await lab.exec(lab.dir, ['ip', 'route', 'show', 'table', '19542'])).stdout).toBe('');
    expect((await lab.exec(lab.dir, ['ip', 'neigh', 'show', 'proxy'])).stdout).toBe('');
    expect((await lab.exec(lab.dir, ['ip', 'link'])).stdout).not.toContain('lvs0');
    expect((await lab.exec(lab.dir, ['ip', 'route'])).stdout).not.toContain(VIP);
    expect((await lab.exec(lab.dir, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe(forwardBefore);
  });

  it('cleans up after a killed lvsd on the next start', async () => {
    await lab.startLvsd();
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).toMatch(/from 172\.16\.0\.1 iif br0 lookup 19542/);
    await lab.stopLvsd('SIGKILL');
    // Killed: the rule and the proxy entry are still there (the TUN went with the process).
    expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).toMatch(/lookup 19542/);
    expect((await lab.exec(lab.dir, ['ip', 'neigh', 'show', 'proxy'])).stdout).toContain(VIP);
    await lab.startLvsd();
    expect(lab.lvsdOutput).toContain('removing leftovers');
    // Of lvsd's rules only the new run's own is there (before local: ctl/intercept.ts).
    expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).toBe(
      '0:\tfrom all fwmark 0x4c560000/0xffff0000 lookup 19542\n0:\tfrom all lookup local\n' +
        '32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n',
    );
    expect((await lab.exec(lab.dir, ['ip', 'neigh', 'show', 'proxy'])).stdout).toBe('');
    expect(await lab.stopLvsd('SIGTERM')).toBe(0);
    expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).not.toMatch(/19542/);
    expect((await lab.exec(lab.dir, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('0');
  });

  it('forwards the same 1 MiB both ways with --no-offload, every packet at most MTU-sized', async () => {
    await lab.startLvsd(['--no-offload']);
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    const size = 1024 * 1024;
    const t = await lab.transfer(VIP, size);
    expect(t.got).toBe(t.want);
    expect(t.upload).toBe(`rs1 got ${size}\n`);
    const stats = await lab.engineStats();
    expect(stats.offload).toEqual({ partial: 0, gso: 0 });
    expect(stats.stats.inPkts).toBeGreaterThan(size / 1500);
    expect(await lab.stopLvsd('SIGTERM')).toBe(0);
  });
});
