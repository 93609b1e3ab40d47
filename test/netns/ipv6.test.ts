// IPv6 through lvsd in network namespaces (netns/lab.sh with IPV6=1): real curl, ping and
// HTTP/UDP servers, lvsd started with its default flags (one engine per CPU), configured with
// lvsadm in ipvsadm's IPv6 syntax. The NAT lab puts the VIP on the client's LAN (lvsd answers
// neighbour solicitations for it); the routed lab puts the real servers two routers away behind
// a 1280-byte link, IPv6's minimum MTU, where only path MTU discovery through the director can
// make a transfer work (routers never fragment IPv6).

import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const ROOT = join(__dirname, '../..');
const why = netnsUnavailable();
if (why) console.warn(`skipping netns IPv6 tests: ${why}`);

const VIP = '2001:db8::1';
const URL_VIP = `[${VIP}]`;
const RS1 = '2001:db8:10::1';
const RS2 = '2001:db8:10::2';
const MIB = 1 << 20;

describe.skipIf(why !== undefined)('IPv6 NAT through lvsd', () => {
  const lab = new Lab('v6');

  beforeAll(async () => {
    await lab.up('nat', { IPV6: '1' });
    await lab.startHttpServers(80, '::');
    await lab.startUdpEchoServers(53, '::');
    await lab.startLvsd();
  });

  afterAll(async () => {
    await lab.down();
  });

  it('alternates rr over curl -6 requests and lists the service in ipvsadm’s IPv6 format', async () => {
    await lab.lvsadmOk('-A', '-t', `${URL_VIP}:80`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${URL_VIP}:80`, '-r', `[${RS1}]:80`, '-m');
    await lab.lvsadmOk('-a', '-t', `${URL_VIP}:80`, '-r', `[${RS2}]:80`, '-m');
    expect(await lab.lvsadmOk('-L', '-n')).toBe(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        `TCP  ${URL_VIP}:80 rr`,
        `  -> [${RS1}]:80          Masq    1      0          0         `,
        `  -> [${RS2}]:80          Masq    1      0          0         `,
        '',
      ].join('\n'),
    );
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await lab.curl(`http://${URL_VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      answers.push(r.stdout.trim());
    }
    expect(answers).toEqual(['rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1']);
    // The connections, in -c's and the kernel's /proc formats.
    const listed = await lab.lvsadmOk('-L', '-n', '-c');
    expect(listed).toMatch(
      new RegExp(`\\nTCP [0-9:]+ +TIME_WAIT +\\[2001:db8::2\\]:\\d+ +\\[${VIP}\\]:80 +\\[${RS1}\\]:80\\n`),
    );
    let proc = '';
    for (let i = 0; i < 30 && !proc.includes('TIME_WAIT'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      proc = readFileSync(`${lab.socket}.proc/net/ip_vs_conn`, 'utf8');
    }
    expect(proc).toMatch(
      /\nTCP 2001:0db8:0000:0000:0000:0000:0000:0002 [0-9A-F]{4} 2001:0db8:0000:0000:0000:0000:0000:0001 0050 2001:0db8:0010:0000:0000:0000:0000:000[12] 0050 TIME_WAIT +\d+\n/,
    );
  });

  it('carries 1 MiB down and 1 MiB up, identical', async () => {
    const t = await lab.transfer(URL_VIP, MIB, 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(new RegExp(`^rs[12] got ${MIB}\\n$`));
  });

  it('answers UDP through a persistent service with a /64 prefix, and ping of the VIP', async () => {
    await lab.lvsadmOk('-A', '-u', `${URL_VIP}:53`, '-s', 'rr', '-p', '60', '-M', '64');
    await lab.lvsadmOk('-a', '-u', `${URL_VIP}:53`, '-r', `[${RS1}]:53`, '-m');
    await lab.lvsadmOk('-a', '-u', `${URL_VIP}:53`, '-r', `[${RS2}]:53`, '-m');
    const replies = await lab.udpQueries(VIP, 53, 6);
    expect(replies).toHaveLength(6);
    // Every reply from the VIP, all from one real server (the client's /64 persists).
    expect(new Set(replies.map((r) => r.split(' ')[0].replace(/:\d+$/, '')))).toEqual(new Set([VIP]));
    expect(new Set(replies.map((r) => r.split(' ')[1]))).toHaveProperty('size', 1);
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`UDP  ${URL_VIP}:53 rr persistent 60 mask 64`);
    const ping = await lab.exec(lab.client, ['ping', '-6', '-c', '2', '-W', '2', VIP]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
  });

  it('carries UDP datagrams larger than the link both ways, in fragments', async () => {
    // 3000 bytes each way: the client's stack and the real server's cut them into fragments,
    // which lvsd reassembles, translates and cuts again.
    const script =
      'const s=require("dgram").createSocket("udp6");' +
      's.on("message",(m)=>{console.log(m.length+" "+m.subarray(0,4).toString());process.exit(0)});' +
      's.send(Buffer.alloc(3000,120),53,process.argv[1]);setTimeout(()=>process.exit(1),4000);';
    const r = await lab.exec(lab.client, [process.execPath, '-e', script, VIP]);
    // The answer came from the VIP (the socket takes no other), whole.
    expect(r.stdout.trim(), r.stderr).toMatch(/^3004 rs[12]$/);
  });

  it('balances marked IPv6 packets through a -f N -6 service', async () => {
    const MARKED = '2001:db8::50';
    // The operator's side: mark TCP to the address, and have the director receive it.
    await lab.markTcp('lvsmark6', MARKED, 80, 7);
    await lab.exec(lab.dir, ['sysctl', '-qw', 'net.ipv6.conf.cli0.proxy_ndp=1']);
    await lab.exec(lab.dir, ['ip', '-6', 'neigh', 'add', 'proxy', MARKED, 'dev', 'cli0']);
    await lab.lvsadmOk('-A', '-f', '7', '-6', '-s', 'rr');
    await lab.lvsadmOk('-a', '-f', '7', '-6', '-r', RS1, '-m');
    await lab.lvsadmOk('-a', '-f', '7', '-6', '-r', RS2, '-m');
    expect(await lab.lvsadmOk('-L', '-n')).toContain('FWM  7 IPv6 rr\n');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await lab.curl(`http://[${MARKED}]/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect([...seen].sort()).toEqual(['rs1', 'rs2']);
    await lab.lvsadmOk('-D', '-f', '7', '-6');
    await lab.exec(lab.dir, ['nft', 'delete', 'table', 'ip6', 'lvsmark6']);
  });

  it('saves the IPv6 table with -S and restores it with -R, unchanged', async () => {
    const saved = await lab.lvsadmOk('-S', '-n');
    expect(saved).toContain(`-A -u ${URL_VIP}:53 -s rr -p 60 -M 64\n`);
    expect(saved).toContain(`-a -t ${URL_VIP}:80 -r [${RS1}]:80 -m -w 1\n`);
    await lab.lvsadmOk('-C');
    const restored = await lab.lvsadmRestore(saved);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await lab.lvsadmOk('-S', '-n')).toBe(saved);
    const r = await lab.curl(`http://${URL_VIP}/`);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe.skipIf(why !== undefined)('IPv6 NAT real servers behind a 1280-byte link', () => {
  const lab = new Lab('v6r');

  beforeAll(async () => {
    await lab.up('routed', { IPV6: '1' });
    await lab.startHttpServers(80, '::');
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${URL_VIP}:80`], [`[${RS1}]:80`, `[${RS2}]:80`], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('relays the routers’ packet too big both ways: 1 MiB up and down, identical', async () => {
    const t = await lab.transfer(URL_VIP, MIB, 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(new RegExp(`^rs[12] got ${MIB}\\n$`));
    // The client learnt the path MTU from a packet too big that came from the VIP (the router's,
    // translated), quoting its own packet to the VIP.
    const route = await lab.exec(lab.client, ['ip', '-6', 'route', 'get', VIP]);
    expect(route.stdout).toMatch(/mtu 1280/);
  });
});

describe.skipIf(why !== undefined)('IPv6 direct routing through lvsd', () => {
  const lab = new Lab('v6d');
  const DR1 = '2001:db8::11';
  const DR2 = '2001:db8::12';

  beforeAll(async () => {
    await lab.up('dr', { IPV6: '1' });
    await lab.startRealservers('dr', VIP);
    await lab.startHttpServers(80, '::');
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${URL_VIP}:80`], [`[${DR1}]:80`, `[${DR2}]:80`], '-g');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('reaches both real servers, which answer the client from the VIP themselves', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await lab.curl(`http://${URL_VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect([...seen].sort()).toEqual(['rs1', 'rs2']);
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`  -> ${`[${DR1}]:80`.padEnd(28)} Route   1      `);
    // The client's neighbour entry for the VIP is the director's MAC: no real server answered
    // a neighbour solicitation for it.
    const dirMac = await lab.mac(lab.dir, 'eth0');
    const neigh = await lab.exec(lab.client, ['ip', '-6', 'neigh', 'show', VIP]);
    expect(neigh.stdout).toContain(`lladdr ${dirMac}`);
  });

  it('carries 1 MiB down and 1 MiB up, identical', async () => {
    const t = await lab.transfer(URL_VIP, MIB, 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(new RegExp(`^rs[12] got ${MIB}\\n$`));
  });
});

describe.skipIf(why !== undefined)('IPv6-in-IPv6 tunnelling through lvsd', () => {
  const lab = new Lab('v6t');
  const TUN1 = '2001:db8:10::1';
  const TUN2 = '2001:db8:10::2';

  beforeAll(async () => {
    // The real servers' LAN has an MTU of 1400, which only the router before it knows.
    await lab.up('tun', { IPV6: '1', RS_MTU: '1400' });
    await lab.startRealservers('tun', VIP);
    await lab.startHttpServers(80, '::');
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${URL_VIP}:80`], [`[${TUN1}]:80`, `[${TUN2}]:80`], '-i');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('reaches both real servers through IPv6-in-IPv6, decapsulated by lvs-realserver', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await lab.curl(`http://${URL_VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect([...seen].sort()).toEqual(['rs1', 'rs2']);
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`  -> ${`[${TUN1}]:80`.padEnd(28)} Tunnel  1      `);
  });

  it('learns the tunnel path MTU from the router and tells the client: 1 MiB both ways, identical', async () => {
    const t = await lab.transfer(URL_VIP, MIB, 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(new RegExp(`^rs[12] got ${MIB}\\n$`));
    // The router's packet too big (1400, about the tunnel packets) became one to the client:
    // 1400 less the outer header.
    const route = await lab.exec(lab.client, ['ip', '-6', 'route', 'get', VIP]);
    expect(route.stdout).toMatch(/mtu 1360/);
  });
});

describe.skipIf(why !== undefined)('IPv6 virtual servers from keepalived.conf, checked over IPv6', () => {
  const lab = new Lab('v6k');
  let rs1: ChildProcess | undefined;

  /** The real servers of the IPv6 service in `lvsadm -L -n`. */
  async function servers(): Promise<string[]> {
    const out = await lab.lvsadmOk('-L', '-n');
    return [...out.matchAll(/-> (\[[0-9a-f:]+\]:\d+) +Masq/g)].map((m) => m[1]!).sort();
  }

  async function until(want: string[]): Promise<string[]> {
    let got: string[] = [];
    for (let i = 0; i < 100; i++) {
      got = await servers();
      if (JSON.stringify(got) === JSON.stringify(want)) break;
      await new Promise((r) => setTimeout(r, 150));
    }
    return got;
  }

  beforeAll(async () => {
    await lab.up('nat', { IPV6: '1' });
    const server = (ns: string, name: string) =>
      lab.spawn(ns, [process.execPath, join(ROOT, 'netns/http-server.js'), name, '80', '::'], 'listening');
    rs1 = await server(lab.rs[0]!, 'rs1');
    await server(lab.rs[1]!, 'rs2');
    const conf = join(lab.tmp, 'keepalived.conf');
    writeFileSync(
      conf,
      `virtual_server ${VIP} 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server ${RS1} 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server ${RS2} 80 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
        }
    }
}
`,
    );
    await lab.startLvsd(['--keepalived-conf', conf]);
  });

  afterAll(async () => {
    await lab.down();
  });

  it('installs the service, takes a dead real server out and forwards to the other', async () => {
    expect(await until([`[${RS1}]:80`, `[${RS2}]:80`])).toEqual([`[${RS1}]:80`, `[${RS2}]:80`]);
    rs1!.kill('SIGKILL');
    expect(await until([`[${RS2}]:80`])).toEqual([`[${RS2}]:80`]);
    for (let i = 0; i < 3; i++) {
      const r = await lab.curl(`http://${URL_VIP}/`);
      expect(r.stdout.trim(), r.stderr).toBe('rs2');
    }
  });
});
