// Direct routing end to end: client, director and two real servers on one L2 segment; the real
// servers own the VIP on lo (lvs-realserver dr) and answer the client directly.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOffloadedTransfer, Lab, netnsUnavailable } from '../helpers/netns';
import { expectValidPacket } from '../helpers/packet-assert';
import { dotted, ipv4OfFrame, macString } from '../helpers/pcap';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns DR tests: ${why}`);

const VIP = '192.168.0.1';
const CLIENT = '192.168.0.2';

describe.skipIf(why !== undefined)('DR through lvsd in network namespaces', () => {
  const lab = new Lab('d');

  beforeAll(async () => {
    await lab.up('dr');
    await lab.startRealservers('dr', VIP);
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53, VIP);
    await lab.startLvsd();
    // No port: ipvsadm uses the service port, as DR requires.
    await lab.addVirtualService(['-t', `${VIP}:80`], ['192.168.0.11', '192.168.0.12'], '-g');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('balances curl requests rr over two DR servers, framed to their MACs, IP packet unchanged', async () => {
    expect(await lab.lvsadmOk('-L', '-n')).toContain(
      '  -> 192.168.0.11:80              Route   1      0          0         \n' +
        '  -> 192.168.0.12:80              Route   1      0          0         \n',
    );
    const dirMac = await lab.mac(lab.dir, 'eth0');
    const rsMacs = [await lab.mac(lab.rs[0], 'eth0'), await lab.mac(lab.rs[1], 'eth0')];
    const atDirector = await lab.capture(lab.dir, 'eth0', ['tcp', 'port', '80']);
    const atClient = await lab.capture(lab.client, 'eth0', ['tcp', 'port', '80']);
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      answers.push(r.stdout.trim());
    }
    expect(answers).toEqual(['rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1']);
    const dir = await atDirector.stop();
    const cli = await atClient.stop();

    // What the director sent: frames from its MAC to a real server's MAC, carrying client → VIP.
    const sent = dir.packets.filter((f) => macString(f, 6) === dirMac);
    expect(sent.length).toBeGreaterThanOrEqual(30);
    const clientSent = new Map<string, Buffer>();
    for (const f of cli.packets) {
      const ip = ipv4OfFrame(f);
      if (ip !== undefined && dotted(ip, 12) === CLIENT)
        clientSent.set(ip.subarray(4, 6).toString('hex') + ip.readUInt16BE(20), ip);
    }
    let compared = 0;
    for (const f of sent) {
      expect(rsMacs).toContain(macString(f, 0));
      const ip = ipv4OfFrame(f)!;
      expect([dotted(ip, 12), dotted(ip, 16)]).toEqual([CLIENT, VIP]);
      // The same packet the client sent (matched by IP id and source port), one hop older.
      const orig = clientSent.get(ip.subarray(4, 6).toString('hex') + ip.readUInt16BE(20));
      if (orig === undefined) continue;
      compared++;
      expect(ip[8]).toBe(orig[8] - 1);
      // Byte for byte but for the TTL, the header checksum and the TCP checksum (the client-side
      // capture sees it before veth's checksum offload fills it in). The director passes the
      // offload on (PACKET_VNET_HDR), so its frame may still carry the partial checksum.
      const strip = (b: Buffer) =>
        Buffer.concat([b.subarray(0, 8), b.subarray(12, 36), b.subarray(38)]).toString('hex');
      expect(strip(ip)).toBe(strip(orig));
      expectValidPacket(ip, { partialL4: true });
    }
    expect(compared).toBeGreaterThanOrEqual(30);
    // Replies never pass the director: nothing from the VIP on its wire, no outbound packets counted.
    expect(dir.packets.filter((f) => ipv4OfFrame(f) !== undefined && dotted(ipv4OfFrame(f)!, 12) === VIP)).toEqual([]);
    expect((await lab.engineStats()).stats.outPkts).toBe(0);
  });

  it('follows a real server replaced by another machine with the same IP (new MAC)', async () => {
    // The "new machine" announces itself with a gratuitous ARP, as Linux does on a MAC change
    // with arp_notify; the director's kernel updates its neighbour entry and lvsd follows.
    await lab.exec(lab.rs[0], ['sysctl', '-qw', 'net.ipv4.conf.eth0.arp_notify=1']);
    const newMac = '02:00:00:00:0b:01';
    await lab.exec(lab.rs[0], ['ip', 'link', 'set', 'dev', 'eth0', 'address', newMac]);
    await new Promise((r) => setTimeout(r, 1500));
    const atDirector = await lab.capture(lab.dir, 'eth0', ['tcp', 'dst', 'port', '80']);
    for (let i = 0; i < 4; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
    }
    const dirMac = await lab.mac(lab.dir, 'eth0');
    const toRs1 = (await atDirector.stop()).packets.filter(
      (f) => macString(f, 6) === dirMac && dotted(ipv4OfFrame(f)!, 16) === VIP,
    );
    const macs = new Set(toRs1.map((f) => macString(f, 0)));
    expect(macs).toContain(newMac);
    expect(macs.size).toBe(2);
  });

  it('moves a 1 MiB download and upload byte-identical, the upload as 64 KiB offload segments', async () => {
    // GSO frames leave on the packet socket with PACKET_VNET_HDR; the kernel segments them.
    await expectOffloadedTransfer(lab, VIP, 1024 * 1024);
  });

  it('answers UDP from the VIP through DR', async () => {
    await lab.addVirtualService(['-u', `${VIP}:53`], ['192.168.0.11', '192.168.0.12'], '-g');
    const answers = await lab.udpQueries(VIP, 53, 4);
    expect(answers).toHaveLength(4);
    for (const a of answers) expect(a).toMatch(/^192\.168\.0\.1:53 rs[12] q[0-3]$/);
    expect(answers.filter((a) => a.includes('rs1'))).toHaveLength(2);
  });
});
