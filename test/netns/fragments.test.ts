// Path MTU, fragments and TTL through NAT, end to end: the real servers sit behind a 1280-byte
// MTU link (their MSS tells the client; a DF segment that is still too big gets lvsd's
// frag-needed, which the unit tests cover); a 4000-byte UDP datagram (fragmented by the client) reaches a real
// server whole and its 4004-byte answer (fragmented by the real server) reaches the client
// whole; a packet with TTL 1 is answered with time exceeded.

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pattern } from '../../netns/pattern';
import { Lab, netnsUnavailable } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns fragment tests: ${why}`);

const VIP = '192.168.0.1';

/** From the client: one UDP datagram of `size` pattern bytes to VIP:53; prints the answer's length and whether it echoes the payload. */
const UDP_BIG = `
const dgram = require('dgram');
const size = Number(process.argv[1]);
const body = Buffer.alloc(size);
for (let i = 0; i < size; i++) body[i] = (i * 13) & 255;
const s = dgram.createSocket('udp4');
s.on('message', (m) => {
  const name = m.subarray(0, 4).toString();
  console.log(JSON.stringify({ len: m.length, name, same: m.subarray(4).equals(body) }));
  process.exit(0);
});
s.send(body, 53, '${VIP}');
setTimeout(() => { console.log('{"timeout":true}'); process.exit(1); }, 4000);
`;

describe.skipIf(why !== undefined)('NAT with a 1280-byte MTU towards the real servers', () => {
  const lab = new Lab('f');

  beforeAll(async () => {
    await lab.up('nat', { RS_MTU: '1280' });
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1', '172.16.0.2'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('moves 1 MiB each way byte-identical across the smaller MTU, nothing refused as too big', async () => {
    const t = await lab.transfer(VIP, 1 << 20);
    expect(t.got).toBe(t.want);
    expect(t.upload).toMatch(/^rs[12] got 1048576\n$/);
    const drops = (await lab.engineStats()).drops;
    expect([drops.too_big, drops.tx_failed]).toEqual([undefined, undefined]);
  });

  it('delivers a 4000-byte UDP datagram whole, and the 4004-byte answer whole', async () => {
    const before = await lab.engineStats();
    const r = await lab.exec(lab.client, [process.execPath, '-e', UDP_BIG, '4000']);
    expect(JSON.parse(r.stdout)).toEqual({ len: 4004, name: expect.stringMatching(/^rs[12] $/), same: true });
    const after = await lab.engineStats();
    // Three fragments each way were held, then one datagram forwarded each way.
    expect(after.stats.inPkts - before.stats.inPkts).toBe(1);
    expect(after.stats.outPkts - before.stats.outPkts).toBe(1);
    const dropped = Object.keys(after.drops).filter((k) => k.startsWith('frag_'));
    expect(dropped).toEqual([]);
  });

  it('answers a packet whose TTL runs out at the director with ICMP time exceeded', async () => {
    const r = await lab.exec(lab.client, ['ping', '-n', '-c', '1', '-W', '2', '-t', '1', VIP]);
    expect(r.stdout).toMatch(/From 192\.168\.0\.254 icmp_seq=1 Time to live exceeded/);
    const ok = await lab.exec(lab.client, ['ping', '-n', '-c', '1', '-W', '2', '-t', '2', VIP]);
    expect(ok.stdout).toMatch(/1 received/);
  });
});

describe.skipIf(why !== undefined)('NAT with the director as the bottleneck towards the client', () => {
  const lab = new Lab('g');

  beforeAll(async () => {
    // The director's link to the client takes 1280-byte packets; the client (MTU 1500) still
    // announces an MSS of 1460, so the real servers' full-size replies must learn the path MTU.
    await lab.up('nat', { DIR_CLIENT_MTU: '1280' });
    await lab.startHttpServers();
    // Without offloads every reply reaches lvsd at most MTU-sized (no GSO packet, which would
    // go through the kernel anyway): the raw-socket path is what is tested.
    await lab.startLvsd(['--no-offload']);
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('downloads 1 MiB byte-identical: the kernel answers frag-needed to the VIP and lvsd relays it to the real server', async () => {
    const before = await lab.engineStats();
    const r = await lab.exec(
      lab.client,
      ['sh', '-c', `curl -sS --max-time 20 http://${VIP}/bytes/1048576 | sha256sum`],
      30_000,
    );
    expect(r.stdout.split(' ')[0] + r.stderr).toBe(
      createHash('sha256')
        .update(pattern(1 << 20))
        .digest('hex'),
    );
    const after = await lab.engineStats();
    expect(after.drops.tx_failed ?? 0).toBe(before.drops.tx_failed ?? 0);
  });
});
