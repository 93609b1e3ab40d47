// Persistence, one-packet scheduling and quiescent dests with real clients: lvsd in a director
// namespace, two real servers, curl and UDP from several client addresses.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns persistence tests: ${why}`);

const VIP = '192.168.0.1';

describe.skipIf(why !== undefined)('schedulers, persistence and --ops through lvsd in network namespaces', () => {
  const lab = new Lab('p');

  beforeAll(async () => {
    await lab.up();
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    await lab.startLvsd(['--metrics', '127.0.0.1:9101']);
    // Two more client addresses: .3 in the same /25 as .2, .130 in the other one.
    for (const a of ['192.168.0.3/24', '192.168.0.130/24']) {
      await lab.exec(lab.client, ['ip', 'addr', 'add', a, 'dev', 'eth0']);
    }
  });

  afterAll(async () => {
    await lab.down();
  });

  /**
   * Datagrams from a connected UDP socket to VIP:port for up to 2 s: the error code the socket
   * reports (an ICMP error reached it), or "silence".
   */
  async function udpOutcome(port: number): Promise<string> {
    const script =
      'const s=require("dgram").createSocket("udp4");s.on("error",(e)=>{console.log(e.code);process.exit(0)});' +
      `s.connect(${port},"${VIP}",()=>{s.send("q");setInterval(()=>s.send("q"),200)});` +
      'setTimeout(()=>{console.log("silence");process.exit(0)},2000);';
    return (await lab.exec(lab.client, [process.execPath, '-e', script])).stdout.trim();
  }

  /** The real server that answered a request from client address `src`. */
  async function from(src: string): Promise<string> {
    const r = await lab.curl(`http://${VIP}/`, ['--interface', src]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim();
  }

  it('-p with -M 255.255.255.128: clients in one masked network share a dest, the other network gets its own', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr', '-p', '360', '-M', '255.255.255.128');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
    const got: string[] = [];
    for (const src of ['192.168.0.2', '192.168.0.3', '192.168.0.130', '192.168.0.2', '192.168.0.130', '192.168.0.3']) {
      got.push(await from(src));
    }
    // rr schedules only when a network has no template yet: rs2 (added last) first, then rs1.
    expect(got).toEqual(['rs2', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2']);
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`TCP  ${VIP}:80 rr persistent 360 mask 255.255.255.128`);
    const templates = (await lab.lvsadmOk('-L', '-c', '-n'))
      .split('\n')
      .filter((l) => l.includes(' NONE '))
      .map((l) => l.replace(/\d\d:\d\d/, 'MM:SS').replace(/ +/g, ' '))
      .sort();
    expect(templates).toEqual([
      `TCP MM:SS NONE 192.168.0.0:0 ${VIP}:80 172.16.0.2:80`,
      `TCP MM:SS NONE 192.168.0.128:0 ${VIP}:80 172.16.0.1:80`,
    ]);
    await lab.lvsadmOk('-D', '-t', `${VIP}:80`);
  });

  it('sh keeps each client address on one dest; with -b sh-port one address spreads by port', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'sh');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
    for (const src of ['192.168.0.2', '192.168.0.3', '192.168.0.130']) {
      const got = new Set<string>();
      for (let i = 0; i < 4; i++) got.add(await from(src));
      expect(got.size, src).toBe(1);
    }
    await lab.lvsadmOk('-E', '-t', `${VIP}:80`, '-s', 'sh', '-b', 'sh-port');
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`TCP  ${VIP}:80 sh (sh-port)`);
    const spread = new Set<string>();
    for (let i = 0; i < 20; i++) spread.add(await from('192.168.0.2'));
    expect([...spread].sort()).toEqual(['rs1', 'rs2']);
    await lab.lvsadmOk('-D', '-t', `${VIP}:80`);
  });

  it('weight 0 drains a dest: new connections go elsewhere, an open one keeps being served', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
    // One keep-alive connection: a request, a pause while the test edits the weight, another request.
    const hold =
      'const s=require("net").connect(80,process.argv[1],()=>s.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));' +
      'let n=0;s.on("data",(d)=>{const who=String(d).trim().split("\\n").pop();console.log(who);' +
      'if(++n===1)setTimeout(()=>s.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"),1500);else s.end()});' +
      's.on("close",()=>process.exit(0));setTimeout(()=>process.exit(1),5000);';
    const holder = lab.exec(lab.client, [process.execPath, '-e', hold, VIP]);
    await new Promise((r) => setTimeout(r, 300));
    // rr gave the first connection to rs2 (added last): drain it.
    await lab.lvsadmOk('-e', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m', '-w', '0');
    const others: string[] = [];
    for (let i = 0; i < 4; i++) others.push(await from('192.168.0.2'));
    expect(others).toEqual(['rs1', 'rs1', 'rs1', 'rs1']);
    const r = await holder;
    expect(r.stdout.trim().split('\n')).toEqual(['rs2', 'rs2']);
    await lab.lvsadmOk('-D', '-t', `${VIP}:80`);
  });

  it('expire_nodest_conn: deleting the dest of an open connection stalls it (0) or resets it at once (1)', async () => {
    // A keep-alive client: one request, a pause while the test deletes its dest, a second
    // request on the same connection; a reset makes it start over on a new connection.
    const client =
      'const net=require("net");const [vip]=process.argv.slice(1);const req="GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n";' +
      'const who=(d)=>String(d).trim().split("\\n").pop();' +
      'const s=net.connect(80,vip,()=>s.write(req));let n=0;' +
      's.on("data",(d)=>{console.log(who(d));if(++n===1)setTimeout(()=>s.write(req),1000)});' +
      's.on("error",(e)=>{console.log(e.code);const t=net.connect(80,vip,()=>t.write(req));' +
      't.on("data",(d)=>{console.log(who(d));process.exit(0)})});' +
      'setTimeout(()=>{console.log("stalled");process.exit(0)},3000);';
    for (const [setting, want] of [
      ['0', ['rs2', 'stalled']],
      ['1', ['rs2', 'ECONNRESET', 'rs1']],
    ] as const) {
      expect(await lab.lvsadmOk('--sysctl', `expire_nodest_conn=${setting}`)).toBe(`expire_nodest_conn = ${setting}\n`);
      await lab.lvsadmOk('-A', '-t', `${VIP}:80`, '-s', 'rr');
      await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m');
      await lab.lvsadmOk('-a', '-t', `${VIP}:80`, '-r', '172.16.0.2:80', '-m');
      const run = lab.exec(lab.client, [process.execPath, '-e', client, VIP], 10_000);
      await new Promise((r) => setTimeout(r, 400));
      await lab.lvsadmOk('-d', '-t', `${VIP}:80`, '-r', '172.16.0.2:80');
      expect((await run).stdout.trim().split('\n'), `expire_nodest_conn=${setting}`).toEqual(want);
      await lab.lvsadmOk('-D', '-t', `${VIP}:80`);
    }
    await lab.lvsadmOk('--sysctl', 'expire_nodest_conn=0');
  });

  it('-f: a firewall-mark service balances what an nftables rule marks', async () => {
    const nft = (...args: string[]) => lab.exec(lab.dir, ['nft', ...args]);
    await lab.markTcp('lvsmark', '192.168.0.50', 8080, 7);
    // lvsd does not know the marked addresses: answering ARP for them is the operator's part
    // (proxy ARP answers only for an address routed out of another interface, here lo).
    await lab.exec(lab.dir, ['ip', 'route', 'add', '192.168.0.50/32', 'dev', 'lo']);
    await lab.exec(lab.dir, ['ip', 'neigh', 'add', 'proxy', '192.168.0.50', 'dev', 'cli0']);
    try {
      await lab.lvsadmOk('-A', '-f', '7', '-s', 'rr');
      await lab.lvsadmOk('-a', '-f', '7', '-r', '172.16.0.1:80', '-m');
      await lab.lvsadmOk('-a', '-f', '7', '-r', '172.16.0.2:80', '-m');
      expect(await lab.lvsadmOk('-L', '-n')).toContain('FWM  7 rr');
      const got: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await lab.curl('http://192.168.0.50:8080/');
        expect(r.code, r.stderr).toBe(0);
        got.push(r.stdout.trim());
      }
      expect(got).toEqual(['rs2', 'rs1', 'rs2', 'rs1']);
      await lab.lvsadmOk('-D', '-f', '7');
      expect((await lab.exec(lab.dir, ['ip', 'rule'])).stdout).not.toMatch(/fwmark 0x7/);
    } finally {
      await nft('delete', 'table', 'ip', 'lvsmark');
      await lab.exec(lab.dir, ['ip', 'neigh', 'del', 'proxy', '192.168.0.50', 'dev', 'cli0']);
      await lab.exec(lab.dir, ['ip', 'route', 'del', '192.168.0.50/32', 'dev', 'lo']);
    }
  });

  it('counts a UDP exchange exactly (--stats, /proc/net/ip_vs_stats) and keeps the kernel-format /proc files', async () => {
    await lab.lvsadmOk('-A', '-u', `${VIP}:53`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.1:53', '-m');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.2:53', '-m');
    await lab.lvsadmOk('-Z');
    const answers = await lab.udpQueries(VIP, 53, 6); // "192.168.0.1:53 rsN qI", one socket each
    expect(answers).toHaveLength(6);
    const inBytes = 6 * (28 + 2);
    const outBytes = answers.reduce((n, a) => n + 28 + a.split(' ').slice(1).join(' ').length, 0);
    const stats = await lab.lvsadmOk('-L', '-n', '--stats');
    expect(stats).toMatch(new RegExp(`UDP  ${VIP}:53 +6 +6 +6 +${inBytes} +${outBytes}\\n`));
    await new Promise((r) => setTimeout(r, 1200)); // the files are rewritten every second
    const proc = (rel: string) => readFileSync(`${lab.socket}.proc/${rel}`, 'utf8');
    // An independent reader of the kernel's formats: hex fields back to numbers and addresses.
    const hexAddr = (h: string) => [24, 16, 8, 0].map((s) => (Number.parseInt(h, 16) >>> s) & 255).join('.');
    const svcLine = proc('net/ip_vs')
      .split('\n')
      .find((l) => l.startsWith('UDP  '))!;
    const [, addr, port, sched] = /^UDP {2}([0-9A-F]{8}):([0-9A-F]{4}) (\S+) /.exec(svcLine)!;
    expect([hexAddr(addr!), Number.parseInt(port!, 16), sched]).toEqual([VIP, 53, 'rr']);
    const conns = proc('net/ip_vs_conn')
      .split('\n')
      .slice(1)
      .filter((l) => l.startsWith('UDP'))
      .map((l) => l.trim().split(/\s+/));
    expect(conns).toHaveLength(6);
    for (const c of conns) {
      expect([hexAddr(c[1]), hexAddr(c[3]), Number.parseInt(c[4], 16), c[7]]).toEqual(['192.168.0.2', VIP, 53, 'UDP']);
      expect(['172.16.0.1', '172.16.0.2']).toContain(hexAddr(c[5]));
    }
    const totals = proc('net/ip_vs_stats')
      .split('\n')[2]
      .trim()
      .split(/\s+/)
      .map((h) => Number.parseInt(h, 16));
    expect(totals).toEqual([6, 6, 6, inBytes, outBytes]);
    expect(proc('sys/net/ipv4/vs/conn_reuse_mode')).toBe('1\n');
    // A setting changed at run time reaches its file within a second (the files are rewritten
    // only when they change).
    await lab.lvsadmOk('--sysctl', 'sloppy_tcp=1');
    for (let i = 0; i < 30 && proc('sys/net/ipv4/vs/sloppy_tcp') !== '1\n'; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(proc('sys/net/ipv4/vs/sloppy_tcp')).toBe('1\n');
    await lab.lvsadmOk('--sysctl', 'sloppy_tcp=0');
    // The Prometheus endpoint agrees with --stats.
    const scrape = (await lab.exec(lab.dir, ['curl', '-sS', 'http://127.0.0.1:9101/metrics'])).stdout;
    const svc = `protocol="udp",address="${VIP}",port="53",scheduler="rr"`;
    const sample = (name: string) => new RegExp(`^${name}\\{${svc}\\} (\\d+)$`, 'm').exec(scrape)?.[1];
    expect(
      ['connections', 'incoming_packets', 'outgoing_packets', 'incoming_bytes', 'outgoing_bytes'].map((m) =>
        Number(sample(`lvs_service_${m}_total`)),
      ),
    ).toEqual([6, 6, 6, inBytes, outBytes]);
    expect(scrape).toMatch(/^# TYPE lvs_dropped_packets_total counter$/m);
    await lab.lvsadmOk('-D', '-u', `${VIP}:53`);
  });

  it('answers ping to a virtual address, and a client of a service without dests gets ICMP port unreachable', async () => {
    await lab.lvsadmOk('-A', '-u', `${VIP}:53`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.1:53', '-m', '-w', '0');
    const ping = await lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', VIP]);
    expect(ping.stdout).toMatch(/2 packets transmitted, 2 received/);
    // A connected UDP socket learns of the port unreachable as ECONNREFUSED.
    expect(await udpOutcome(53)).toBe('ECONNREFUSED');
    await lab.lvsadmOk('-D', '-u', `${VIP}:53`);
  });

  it("relays a NAT real server's port unreachable to the client (ECONNREFUSED on its UDP socket)", async () => {
    await lab.lvsadmOk('-A', '-u', `${VIP}:54`, '-s', 'rr');
    await lab.lvsadmOk('-a', '-u', `${VIP}:54`, '-r', '172.16.0.1:5454', '-m'); // nothing listens there
    expect(await udpOutcome(54)).toBe('ECONNREFUSED');
    await lab.lvsadmOk('-D', '-u', `${VIP}:54`);
  });

  it('--ops spreads one client port’s UDP datagrams over every dest, keeping no connection', async () => {
    await lab.lvsadmOk('-A', '-u', `${VIP}:53`, '-s', 'rr', '-o');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.1:53', '-m');
    await lab.lvsadmOk('-a', '-u', `${VIP}:53`, '-r', '172.16.0.2:53', '-m');
    expect(await lab.lvsadmOk('-L', '-n')).toContain(`UDP  ${VIP}:53 rr ops`);
    // Six datagrams from one socket (one source port), 50 ms apart.
    const script =
      'const s=require("dgram").createSocket("udp4");let i=0;' +
      `s.bind(5353,()=>{const t=setInterval(()=>{s.send("q"+i,53,"${VIP}");if(++i===6){clearInterval(t);setTimeout(()=>process.exit(0),200)}},50)});`;
    await lab.exec(lab.client, [process.execPath, '-e', script]);
    const stats = await lab.lvsadmOk('-L', '-n', '--stats');
    // Per dest: Conns and InPkts 3 each (every datagram scheduled on its own, rr alternating).
    expect(stats).toMatch(/-> 172\.16\.0\.1:53 +3 +3 /);
    expect(stats).toMatch(/-> 172\.16\.0\.2:53 +3 +3 /);
    // No connection from the sending port (earlier tests' UDP connections may still be listed).
    expect((await lab.lvsadmOk('-L', '-c', '-n')).split('\n').filter((l) => l.includes(':5353 '))).toEqual([]);
    await lab.lvsadmOk('-D', '-u', `${VIP}:53`);
  });
});
