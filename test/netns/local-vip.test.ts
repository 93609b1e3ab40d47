// The VIP as a local address of the director, as in the LVS HOWTO, keepalived's
// virtual_ipaddress and the kernel's own IPVS selftest: lvsd takes the services' packets before
// local delivery (ctl/intercept.ts), and everything else to the VIP stays the host's.

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns local-VIP tests: ${why}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** lvsd's rules and nftables table are gone, and exactly one `local` rule is left, at 0. */
async function expectHostClean(lab: Lab): Promise<void> {
  const rules = await lab.exec(lab.dir, ['ip', 'rule', 'show']);
  expect(rules.stdout).toBe(
    '0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n',
  );
  expect((await lab.exec(lab.dir, ['nft', 'list', 'tables'])).stdout).toBe('');
}

// tools/testing/selftests/net/netfilter/ipvs.sh, step by step, with lvsadm for ipvsadm: client
// (ns0) on a bridge with the real server's second leg, the director (ns1) between them, the VIP
// on the director's lo, 32 random bytes through socat.
describe.skipIf(why !== undefined)("the kernel's IPVS selftest: VIP on the director's lo", () => {
  const VIP = '207.175.44.110';
  const PORT = '8080';
  let lab: Lab;

  afterEach(async () => {
    await lab.down();
  });

  async function setup(): Promise<void> {
    lab = new Lab('s');
    await lab.up('selftest');
  }

  /** server_listen, client_connect, verify_data. */
  async function testService(): Promise<void> {
    const infile = join(lab.tmp, 'in');
    const outfile = join(lab.tmp, 'out');
    writeFileSync(infile, randomBytes(32));
    const server = lab.exec(lab.rs[0], [
      'sh',
      '-c',
      `timeout 5 socat -u -4 TCP-LISTEN:${PORT},reuseaddr STDOUT > ${outfile}`,
    ]);
    await sleep(200);
    const client = await lab.exec(lab.client, [
      'sh',
      '-c',
      `timeout 2 socat -u -4 STDIN TCP:${VIP}:${PORT} < ${infile}`,
    ]);
    expect(client.code, client.stderr).toBe(0);
    await server;
    expect(readFileSync(outfile)).toEqual(readFileSync(infile));
  }

  async function common(): Promise<void> {
    await lab.exec(lab.client, ['ip', 'route', 'add', VIP, 'via', '10.0.0.1', 'dev', 'br0']);
    await lab.exec(lab.dir, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await lab.startLvsd();
  }

  it('DR: lvsadm -A, -a (the default, -g), then the VIP on lo:1 of director and real server', async () => {
    await setup();
    await common();
    const rs = lab.rs[0];
    await lab.lvsadmOk('-A', '-t', `${VIP}:${PORT}`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${VIP}:${PORT}`, '-r', `172.16.0.2:${PORT}`);
    await lab.exec(lab.dir, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo:1']);
    for (const s of ['all.arp_ignore=1', 'all.arp_announce=2', 'all.rp_filter=0', 'veth21.rp_filter=0']) {
      await lab.exec(rs, ['sysctl', '-qw', `net.ipv4.conf.${s}`]);
    }
    await lab.exec(rs, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo:1']);
    await testService();
    expect(await lab.lvsadmOk('-L', '-n')).toContain(
      `  -> 172.16.0.2:${PORT}              Route   1      0          1`,
    );
    await lab.stopLvsd();
    await expectHostClean(lab);
  });

  it('NAT: lvsadm -a -m, the VIP on lo:1, the real server routing through the director', async () => {
    await setup();
    await common();
    const rs = lab.rs[0];
    await lab.lvsadmOk('-A', '-t', `${VIP}:${PORT}`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-m', '-t', `${VIP}:${PORT}`, '-r', `172.16.0.2:${PORT}`);
    await lab.exec(lab.dir, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo:1']);
    await lab.exec(rs, ['ip', 'link', 'del', 'veth20']);
    await lab.exec(rs, ['ip', 'route', 'add', 'default', 'via', '172.16.0.1', 'dev', 'veth21']);
    await testService();
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`  -> 172.16.0.2:${PORT}              Masq    1`);
    await lab.stopLvsd();
    await expectHostClean(lab);
  });
});

/** A TCP listener of the director's own on VIP:port that answers "local" (an sshd stand-in). */
async function localListener(lab: Lab, vip: string, port: number): Promise<void> {
  const script = `require('net').createServer((s)=>s.end('local\\n')).listen(${port},'${vip}',()=>console.log('listening'))`;
  await lab.spawn(lab.dir, [process.execPath, '-e', script], 'listening');
}

/** What the director's own things on the VIP see: a TCP listener, ping, a fragmented datagram. */
async function expectHostKeepsTheRest(lab: Lab, vip: string): Promise<void> {
  const r = await lab.exec(lab.client, ['sh', '-c', `timeout 3 socat -u TCP:${vip}:2222 STDOUT`]);
  expect(r.stdout, r.stderr).toBe('local\n');
  // Ping is answered by the host: lvsd does not even see it.
  const before = (await lab.engineStats()).rxPackets;
  const ping = await lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', vip]);
  expect(ping.stdout).toMatch(/2 packets transmitted, 2 received/);
  expect((await lab.engineStats()).rxPackets).toBe(before);
  // A 3000-byte datagram to a port of the host's own arrives in fragments: lvsd takes them (it
  // cannot tell their port), reassembles, and hands the datagram to the local stack.
  const got = lab.exec(lab.dir, ['sh', '-c', `timeout 3 socat -u UDP-RECV:5353,bind=${vip} STDOUT | wc -c`]);
  await sleep(300);
  await lab.exec(lab.client, ['sh', '-c', `head -c 3000 /dev/urandom | socat -u STDIN UDP-SENDTO:${vip}:5353`]);
  expect((await got).stdout.trim()).toBe('3000');
}

describe.skipIf(why !== undefined)("NAT with the VIP on the director's client-side interface", () => {
  const VIP = '192.168.0.1';
  const lab = new Lab('l');

  beforeAll(async () => {
    await lab.up('nat');
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    await lab.exec(lab.dir, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'cli0']);
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1', '172.16.0.2'], '-m');
    await localListener(lab, VIP, 2222);
  });

  afterAll(async () => {
    await lab.down();
  });

  it('balances the services, offloaded TCP and fragmented UDP included', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push((await lab.curl(`http://${VIP}/`)).stdout.trim());
    expect(answers.sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
    const t = await lab.transfer(VIP, 1 << 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(/^rs[12] got 1048576/);
    expect((await lab.engineStats()).offload.gso).toBeGreaterThan(0);
    // 3000 bytes each way: fragments to the service, reassembled, NATed, and the reply's too.
    const big = 'x'.repeat(3000);
    const script =
      'const c=require("dgram").createSocket("udp4");c.on("message",(m)=>{console.log(m.length+" "+m.subarray(0,4));process.exit(0)});' +
      `c.send(Buffer.from("${big}"),53,"${VIP}");setTimeout(()=>process.exit(1),3000);`;
    const r = await lab.exec(lab.client, [process.execPath, '-e', script]);
    expect(r.stdout).toMatch(/^3004 rs[12] \n$/);
  });

  it('leaves the rest to the host: a listener on another port, ping, its own datagrams', async () => {
    await expectHostKeepsTheRest(lab, VIP);
  });

  it('keeps taking the services when the VIP is removed and added again', async () => {
    await lab.exec(lab.dir, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'cli0']);
    // Not local: lvsd answers ARP for it again and owns all of it, as before.
    await sleep(1500);
    expect((await lab.exec(lab.dir, ['ip', 'neigh', 'show', 'proxy'])).stdout).toContain(VIP);
    expect((await lab.curl(`http://${VIP}/`)).stdout).toMatch(/^rs[12]/);
    await lab.exec(lab.dir, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'cli0']);
    await sleep(1500);
    expect((await lab.exec(lab.dir, ['ip', 'neigh', 'show', 'proxy'])).stdout).not.toContain(VIP);
    expect((await lab.curl(`http://${VIP}/`)).stdout).toMatch(/^rs[12]/);
    const r = await lab.exec(lab.client, ['sh', '-c', `timeout 3 socat -u TCP:${VIP}:2222 STDOUT`]);
    expect(r.stdout).toBe('local\n');
  });

  it('takes what a firewall-mark service marks, to the local VIP too', async () => {
    const nft = (...args: string[]) => lab.exec(lab.dir, ['nft', ...args]);
    await lab.markTcp('usermark', VIP, 8080, 7);
    await lab.lvsadmOk('-A', '-f', '7', '-s', 'rr');
    await lab.lvsadmOk('-a', '-f', '7', '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-f', '7', '-r', '172.16.0.2:80', '-m');
    const got: string[] = [];
    for (let i = 0; i < 2; i++) got.push((await lab.curl(`http://${VIP}:8080/`)).stdout.trim());
    expect(got.sort()).toEqual(['rs1', 'rs2']);
    await lab.lvsadmOk('-D', '-f', '7');
    await nft('delete', 'table', 'ip', 'usermark');
  });

  it('after a kill, the next lvsd removes the leftovers; on exit it leaves nothing, local first', async () => {
    const first = /^0:\tfrom all fwmark 0x4c560000\/0xffff0000 lookup 19542\n0:\tfrom all lookup local\n/;
    expect((await lab.exec(lab.dir, ['ip', 'rule', 'show'])).stdout).toMatch(first);
    await lab.stopLvsd('SIGKILL');
    await lab.startLvsd();
    // The new lvsd has no services yet: its rule, then local, then the kernel's.
    expect((await lab.exec(lab.dir, ['ip', 'rule', 'show'])).stdout).toMatch(new RegExp(`${first.source}32766:`));
    await lab.stopLvsd();
    await expectHostClean(lab);
  });
});

for (const mode of ['dr', 'tun'] as const) {
  describe.skipIf(why !== undefined)(`${mode.toUpperCase()} with the VIP on the director's LAN interface`, () => {
    const VIP = '192.168.0.1';
    const lab = new Lab(mode === 'dr' ? 'm' : 'n');
    const servers = mode === 'dr' ? ['192.168.0.11', '192.168.0.12'] : ['172.16.0.1', '172.16.0.2'];

    beforeAll(async () => {
      await lab.up(mode);
      await lab.startRealservers(mode, VIP);
      await lab.startHttpServers();
      await lab.startLvsd();
      await lab.addVirtualService(['-t', `${VIP}:80`], servers, mode === 'dr' ? '-g' : '-i');
      // Added after the service, as keepalived does on becoming master.
      await lab.exec(lab.dir, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
      await localListener(lab, VIP, 2222);
    });

    afterAll(async () => {
      await lab.down();
    });

    it('balances the service and leaves the rest to the host', async () => {
      const answers: string[] = [];
      for (let i = 0; i < 4; i++) answers.push((await lab.curl(`http://${VIP}/`)).stdout.trim());
      expect(answers.sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
      await expectHostKeepsTheRest(lab, VIP);
    });
  });
}
