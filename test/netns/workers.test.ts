// lvsd --workers 2: two engines in two threads on two queues of a multi-queue TUN, steered by
// lvsd's eBPF program (both directions of a flow to one engine). Real curl and UDP clients,
// real servers, NAT: every connection must work whichever engine it lands on, the control plane
// must show one table (connections, counts and counters summed over the engines), lc must see
// every engine's connections, and persistence must hold across them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns worker tests: ${why}`);

const VIP = '192.168.0.1';

describe.skipIf(why !== undefined)('lvsd --workers 2 (one engine per TUN queue)', () => {
  const lab = new Lab('w');

  beforeAll(async () => {
    await lab.up();
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    await lab.startLvsd(['--workers', '2']);
  });

  afterAll(async () => {
    await lab.down();
  });

  it('forwards NAT connections on both engines; -L -n counts them all, -L -c lists them all', async () => {
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1:80', '172.16.0.2:80'], '-m');
    const seen = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect([...seen].sort()).toEqual(['rs1', 'rs2']);
    const engines = (await lab.engineStats()).engines;
    expect(engines).toHaveLength(2);
    // 24 client ports: both engines held connections (the chance of one engine taking all is 2^-23).
    for (const e of engines) expect(e.conns).toBeGreaterThan(0);
    expect(engines[0]!.conns + engines[1]!.conns).toBe(24);
    // The dest counts are shared: every closed connection is in one dest's InActConn.
    const listing = await lab.lvsadmOk('-L', '-n');
    const inact = [...listing.matchAll(/Masq {4}1 {6}0 {10}(\d+)/g)].map((m) => Number(m[1]));
    expect(
      inact.reduce((a, b) => a + b, 0),
      listing,
    ).toBe(24);
    const conns = (await lab.lvsadmOk('-L', '-c', '-n')).split('\n').filter((l) => l.startsWith('TCP'));
    expect(conns).toHaveLength(24);
    const stats = await lab.lvsadmOk('-L', '-n', '--stats', '-t', `${VIP}:80`);
    expect(stats).toMatch(new RegExp(`TCP  ${VIP.replace(/\./g, '\\.')}:80 +24 `));
  });

  it('forwards UDP through both engines', async () => {
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1:53', '172.16.0.2:53'], '-m');
    const answers = await lab.udpQueries(VIP, 53, 12);
    expect(answers).toHaveLength(12);
    // Every answer comes from the VIP, both servers answered, and both engines held connections.
    for (const a of answers) expect(a).toMatch(/^192\.168\.0\.1:53 rs[12] q\d+$/);
    expect(new Set(answers.map((a) => a.split(' ')[1])).size).toBe(2);
    const udp = (await lab.lvsadmOk('-L', '-c', '-n')).split('\n').filter((l) => l.startsWith('UDP'));
    expect(udp).toHaveLength(12);
    expect((await lab.engineStats()).drops).toEqual({});
  });

  it('fragmented datagrams reach the engine of their flow: 4000-byte UDP queries and answers, whole', async () => {
    // Fragments are steered by address alone; the engine that reassembles a datagram hands it to
    // the engine its flow is on when that is the other one (both directions: the answers are
    // fragmented by the real servers).
    const script =
      'const dgram=require("dgram");const n=8;let got=0;const bad=[];for(let i=0;i<n;i++){' +
      'const c=dgram.createSocket("udp4");const q=Buffer.alloc(4000,48+i);' +
      'c.on("message",(m)=>{if(m.length!==4004||!m.subarray(4).equals(q))bad.push(m.length);c.close();' +
      'if(++got===n){console.log(JSON.stringify({got,bad}));process.exit(0)}});c.send(q,53,process.argv[1]);}' +
      'setTimeout(()=>{console.log(JSON.stringify({got,bad}));process.exit(1)},4000);';
    const before = await lab.engineStats();
    const r = await lab.exec(lab.client, [process.execPath, '-e', script, VIP]);
    expect(JSON.parse(r.stdout), r.stderr).toEqual({ got: 8, bad: [] });
    const after = await lab.engineStats();
    expect(after.drops).toEqual(before.drops);
    // 16 datagrams reassembled (8 queries, 8 answers): some on the engine that did not hold the flow.
    expect(after.handed - before.handed).toBeGreaterThan(0);
  });

  it('lc sees the connections of both engines: held connections spread evenly', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:8080`, '-s', 'lc');
    await lab.lvsadmOk('-a', '-t', `${VIP}:8080`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:8080`, '-r', '172.16.0.2:80', '-m');
    // Eight connections from eight client ports (both engines), each opened once the one before
    // has its answer, and all held open: with shared counts each is scheduled seeing the others.
    const hold =
      'const n=8,ss=[];const next=()=>{if(ss.length===n){console.log("open");' +
      'setTimeout(()=>{for(const x of ss)x.destroy();process.exit(0)},2500);return}' +
      'const s=require("net").connect(8080,process.argv[1],()=>s.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));' +
      'ss.push(s);s.once("data",next)};next();';
    const holder = lab.exec(lab.client, [process.execPath, '-e', hold, VIP]);
    let listing = '';
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      listing = await lab.lvsadmOk('-L', '-n', '-t', `${VIP}:8080`);
      const active = [...listing.matchAll(/Masq {4}1 {6}(\d+)/g)].map((m) => Number(m[1]));
      if (active.reduce((a, b) => a + b, 0) === 8) break;
    }
    expect((await holder).stdout).toContain('open');
    // lc with shared counts: 4 and 4. Counted per engine, an engine that got an odd number of the
    // connections would have put one more on the same server as the other engine's odd one.
    const active = [...listing.matchAll(/Masq {4}1 {6}(\d+)/g)].map((m) => Number(m[1]));
    expect(active, listing).toEqual([4, 4]);
  });

  it('persistence holds across engines: every connection of a client reaches one real server', async () => {
    await lab.lvsadmOk('-A', '-t', `${VIP}:81`, '-s', 'rr', '-p', '60');
    await lab.lvsadmOk('-a', '-t', `${VIP}:81`, '-r', '172.16.0.1:80', '-m');
    await lab.lvsadmOk('-a', '-t', `${VIP}:81`, '-r', '172.16.0.2:80', '-m');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await lab.curl(`http://${VIP}:81/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect(seen.size).toBe(1);
    const templates = (await lab.lvsadmOk('-L', '-c', '-n'))
      .split('\n')
      .filter((l) => l.includes(':81 ') && l.includes('NONE'));
    expect(templates).toHaveLength(1);
  });

  it('lblc keeps one table across engines: every connection to the VIP reaches one real server', async () => {
    // lblc keys on the destination address, here always the VIP: one entry, one real server while
    // it is not overloaded, whichever engine schedules (an engine of its own would have let
    // wlc pick the other, less loaded one).
    await lab.lvsadmOk('-A', '-t', `${VIP}:82`, '-s', 'lblc');
    await lab.lvsadmOk('-a', '-t', `${VIP}:82`, '-r', '172.16.0.1:80', '-m', '-w', '100');
    await lab.lvsadmOk('-a', '-t', `${VIP}:82`, '-r', '172.16.0.2:80', '-m', '-w', '100');
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const r = await lab.curl(`http://${VIP}:82/`);
      expect(r.code, r.stderr).toBe(0);
      seen.add(r.stdout.trim());
    }
    expect(seen.size).toBe(1);
    const engines = (await lab.engineStats()).engines;
    for (const e of engines) expect(e.conns).toBeGreaterThan(0);
  });

  it('weight changes reach every engine: a weight-0 server gets no new connection', async () => {
    await lab.lvsadmOk('-e', '-t', `${VIP}:80`, '-r', '172.16.0.1:80', '-m', '-w', '0');
    for (let i = 0; i < 10; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('rs2');
    }
  });

  it('restarts an engine with the table: its connections are gone from the counts, new ones work', async () => {
    const before = await lab.lvsadmOk('-L', '-n');
    const engines = (await lab.engineStats()).engines;
    const inactBefore = [...before.matchAll(/Masq {4}\d+ +\d+ +(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(inactBefore).toBeGreaterThan(0);
    // lvsd's open fds: a restarted engine's sockets are closed with it, not leaked.
    const fdCount = async (): Promise<number> => {
      const script = `for p in $(ip netns pids ${lab.dir}); do [ "$(cat /proc/$p/comm)" = node ] && ls /proc/$p/fd | wc -l; done`;
      return Math.max(...(await lab.exec(lab.dir, ['sh', '-c', script])).stdout.trim().split(/\s+/).map(Number));
    };
    const fdsBefore = await fdCount();
    for (const k of [0, 1]) expect((await lab.control({ cmd: 'restart-engine', engine: k })).ok).toBe(true);
    expect(await fdCount()).toBe(fdsBefore);
    expect((await lab.control({ cmd: 'restart-engine', engine: 2 })).ok).toBe(false);
    expect(lab.lvsdOutput).toMatch(/engine 0 ended .*starting it again/);
    // The table is the same; the connections the engines held are gone, and so are their counts.
    const after = await lab.lvsadmOk('-L', '-n');
    expect(after.replace(/ +\d+ +\d+ +$/gm, '')).toBe(before.replace(/ +\d+ +\d+ +$/gm, ''));
    const stats = await lab.engineStats();
    expect(stats.engines.map((e) => e.conns)).toEqual([0, 0]);
    expect(engines.reduce((n, e) => n + e.conns, 0)).toBeGreaterThan(0);
    const counts = [...after.matchAll(/Masq {4}\d+ +(\d+) +(\d+)/g)].map((m) => Number(m[1]) + Number(m[2]));
    expect(
      counts.reduce((a, b) => a + b, 0),
      after,
    ).toBe(0);
    for (let i = 0; i < 6; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
    }
    const answers = await lab.udpQueries(VIP, 53, 6);
    expect(answers).toHaveLength(6);
  });
});
