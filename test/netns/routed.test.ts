// NAT real servers behind routers (netns/lab.sh routed): client ── director ── rtr ══ a
// 1280-byte link ══ rtr2 ── rs1, rs2. Two things kernel IPVS gets right that depend on the
// layout: a router's "fragmentation needed" about a packet the director forwarded reaches the
// client translated (ip_vs_out_icmp), so its TCP lowers its segment size instead of stalling;
// and a real server added before the director has a route to it is accepted, and served once
// the route appears.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns routed tests: ${why}`);

const VIP = '192.168.0.1';
const MIB = 1 << 20;

/** Distinct answers of `n` requests to the VIP (each a new connection). */
async function answers(lab: Lab, n: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await lab.curl(`http://${VIP}/`);
    expect(r.code, r.stderr).toBe(0);
    seen.add(r.stdout.trim());
  }
  return [...seen].sort();
}

describe.skipIf(why !== undefined)('NAT real servers two routers beyond the director', () => {
  const lab = new Lab('rt');

  beforeAll(async () => {
    await lab.up('routed');
    await lab.startHttpServers();
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1:80', '172.16.0.2:80'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('relays the routers’ fragmentation needed: 1 MiB up and down through the 1280-byte link, identical', async () => {
    // The client starts with 1460-byte segments; only the router before the narrow link knows.
    const t = await lab.transfer(VIP, MIB, 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(new RegExp(`^rs[12] got ${MIB}\\n$`));
    // The client learnt the path MTU from an error that came from the VIP (the router's,
    // translated), quoting its own packet to the VIP.
    const route = await lab.exec(lab.client, ['ip', 'route', 'get', VIP]);
    expect(route.stdout).toMatch(/mtu 1280/);
  });

  it('relays a router’s time exceeded to the client as from the VIP, quoting what the client sent', async () => {
    // TTL 2: the director's forwarding leaves 1, the first router sends time exceeded.
    const script =
      'import socket,sys\n' +
      's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n' +
      's.setsockopt(socket.SOL_IP,socket.IP_TTL,2)\n' +
      's.setsockopt(socket.SOL_IP,11,1)\n' +
      's.settimeout(3)\n' +
      's.connect((sys.argv[1],53))\n' +
      's.send(b"q")\n' +
      'try:\n  s.recv(100)\nexcept OSError as e:\n  print(e.errno)\n' +
      'm=s.recvmsg(512,512,socket.MSG_ERRQUEUE)\n' +
      'print("from",socket.inet_ntoa(m[1][0][2][20:24]) if m[1] else "none")\n';
    await lab.lvsadmOk('-A', '-u', `${VIP}:53`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.1:53', '-m');
    const r = await lab.exec(lab.client, ['python3', '-c', script, VIP]);
    // EHOSTUNREACH (113) on the connected socket, and the offender the error queue names is
    // the VIP: the client's stack matched the error to its socket to VIP:53.
    expect(r.stdout, r.stderr).toBe(`113\nfrom ${VIP}\n`);
    await lab.lvsadmOk('-D', '-u', `${VIP}:53`);
  });
});

describe.skipIf(why !== undefined)('a real server added before the director has a route to it', () => {
  const lab = new Lab('nr');

  beforeAll(async () => {
    await lab.up('routed', { NO_RS_ROUTE: '1' });
    await lab.startHttpServers();
  });

  afterAll(async () => {
    await lab.down();
  });

  it('is accepted by lvsadm and the config file, dropped as no_route meanwhile, served once the route appears', async () => {
    // A saved table, restored at boot before the network is up.
    const conf = join(lab.tmp, 'lvsd.conf');
    writeFileSync(conf, `-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r 172.16.0.1:80 -m -w 1\n`);
    await lab.startLvsd(['--config-file', conf]);
    expect(lab.lvsdOutput).toContain('2 commands applied, 0 refused');
    // And one more the way a boot script adds it.
    const add = await lab.lvsadm('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
    expect([add.code, add.stderr]).toEqual([0, '']);
    const listing = await lab.lvsadmOk('-L', '-n');
    expect(listing, listing).toContain(
      [
        `TCP  ${VIP}:80 rr`,
        '  -> 172.16.0.1:80                Masq    1      0          0         ',
        '  -> 172.16.0.2:80                Masq    1      0          0         ',
      ].join('\n'),
    );
    const r = await lab.curl(`http://${VIP}/`, ['--max-time', '1']);
    expect(r.code).not.toBe(0);
    expect((await lab.engineStats()).drops.no_route ?? 0).toBeGreaterThan(0);

    await lab.exec(lab.dir, ['ip', 'route', 'add', '172.16.0.0/24', 'via', '10.1.0.2']);
    // lvsd looks for the missing routes every second.
    await new Promise((res) => setTimeout(res, 2500));
    expect(await answers(lab, 6)).toEqual(['rs1', 'rs2']);
    const rules = await lab.exec(lab.dir, ['ip', 'rule', 'show']);
    expect(rules.stdout).toMatch(/from 172\.16\.0\.1 iif up0 lookup 19542/);
    expect(rules.stdout).toMatch(/from 172\.16\.0\.2 iif up0 lookup 19542/);
  });
});
