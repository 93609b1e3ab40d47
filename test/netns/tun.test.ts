// IP-in-IP tunnelling end to end: the real servers sit behind a router, decapsulate with
// lvs-realserver tun (this kernel has no ipip module: an eBPF program, or user space) and answer
// the client through the router.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOffloadedTransfer, Lab, netnsUnavailable } from '../helpers/netns';
import { dotted, ipv4OfFrame, macString } from '../helpers/pcap';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns TUN tests: ${why}`);

const VIP = '192.168.0.1';
const CLIENT = '192.168.0.2';
const DIRECTOR = '192.168.0.254';
const SIZE = 1024 * 1024;

async function tunLab(
  tag: string,
  rsMtu: number,
  realserver: string[] = [],
  env: Record<string, string> = {},
): Promise<Lab> {
  const lab = new Lab(tag);
  await lab.up('tun', { RS_MTU: String(rsMtu), ...env });
  await lab.startRealservers('tun', VIP, realserver);
  await lab.startHttpServers();
  await lab.startUdpEchoServers(53, VIP);
  await lab.startLvsd();
  await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-i');
  return lab;
}

/** A 1 MiB download and upload through the tunnel, byte-identical. */
async function transfer(lab: Lab): Promise<void> {
  // The upload comes as GSO packets, encapsulated whole for the kernel to cut.
  await expectOffloadedTransfer(lab, VIP, SIZE, 30);
}

describe.skipIf(why !== undefined)('TUN through lvsd in network namespaces', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await tunLab('t', 1500);
  });

  afterAll(async () => {
    await lab?.down();
  });

  it('balances curl requests rr over two tunnelled servers; the outer headers are right', async () => {
    expect(await lab.lvsadmOk('-L', '-n')).toContain(
      '  -> 172.16.0.1:80                Tunnel  1      0          0         \n' +
        '  -> 172.16.0.2:80                Tunnel  1      0          0         \n',
    );
    const dirMac = await lab.mac(lab.dir, 'eth0');
    const atDirector = await lab.capture(lab.dir, 'eth0');
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      expect(r.code, r.stderr).toBe(0);
      answers.push(r.stdout.trim());
    }
    expect(answers).toEqual(['rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1', 'rs2', 'rs1']);
    const dir = await atDirector.stop();

    const tunnelled = dir.packets
      .filter((f) => macString(f, 6) === dirMac)
      .map((f) => ipv4OfFrame(f))
      .filter((ip): ip is Buffer => ip !== undefined && ip[9] === 4);
    expect(tunnelled.length).toBeGreaterThanOrEqual(30);
    for (const outer of tunnelled) {
      const inner = outer.subarray(20);
      expect(outer[0]).toBe(0x45);
      expect(dotted(outer, 12)).toBe(DIRECTOR);
      expect(['172.16.0.1', '172.16.0.2']).toContain(dotted(outer, 16));
      expect(outer.readUInt16BE(2)).toBe(inner.readUInt16BE(2) + 20);
      expect(outer[1]).toBe(inner[1]); // TOS
      expect(outer[8]).toBe(inner[8]); // TTL
      expect(outer.readUInt16BE(6) & 0x4000).toBe(inner.readUInt16BE(6) & 0x4000); // DF
      expect([dotted(inner, 12), dotted(inner, 16), inner.readUInt16BE(22)]).toEqual([CLIENT, VIP, 80]);
    }
    // Replies go through the router, never through the director.
    const fromVip = dir.packets.filter((f) => {
      const ip = ipv4OfFrame(f);
      return ip !== undefined && dotted(ip, 12) === VIP;
    });
    expect(fromVip).toEqual([]);
    expect((await lab.engineStats()).stats.outPkts).toBe(0);
  });

  it('moves a 1 MiB download and upload byte-identical through the tunnel (PMTU discovery works)', async () => {
    const atDirector = await lab.capture(lab.dir, 'eth0', ['ip', 'proto', '4']);
    const atServers = await Promise.all(lab.rs.map((ns) => lab.capture(ns, 'eth0', ['ip', 'proto', '4'])));
    await transfer(lab);
    // The upload's GSO packets left the director whole, encapsulated (lvsd's ingress program on
    // its TUN, native/src/encap.c): IP-in-IP bigger than the MTU crosses the veths, the router
    // and the switch whole, and the kernel cuts it only where a link needs it. Each has the
    // outer header a segment gets, TTL as the inner packet's.
    const big = (frames: Buffer[]) =>
      frames.map((f) => ipv4OfFrame(f)).filter((ip): ip is Buffer => ip !== undefined && ip.readUInt16BE(2) > 1500);
    // The real server took them whole too: its decapsulator (native/src/decap.c) strips the
    // outer header of a GSO packet in the kernel, and the transfer above is byte-identical.
    const reached = (await Promise.all(atServers.map((c) => c.stop()))).flatMap((c) => big(c.packets));
    expect(reached.length).toBeGreaterThan(0);
    const whole = big((await atDirector.stop()).packets);
    expect(whole.length).toBeGreaterThan(0);
    for (const outer of whole) {
      const inner = outer.subarray(20);
      expect([dotted(outer, 12), outer[9], outer[8], outer.readUInt16BE(2)]).toEqual([
        DIRECTOR,
        4,
        inner[8],
        inner.readUInt16BE(2) + 20,
      ]);
      expect([dotted(inner, 12), dotted(inner, 16), inner.readUInt16BE(22)]).toEqual([CLIENT, VIP, 80]);
    }
    // Full-size client segments do not fit in a 1500-byte tunnel: the client was told so.
    expect((await lab.engineStats()).drops.frag_needed ?? 0).toBeGreaterThan(0);
  });

  it('answers UDP from the VIP through the tunnel', async () => {
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1', '172.16.0.2'], '-i');
    const answers = await lab.udpQueries(VIP, 53, 4);
    expect(answers).toHaveLength(4);
    for (const a of answers) expect(a).toMatch(/^192\.168\.0\.1:53 rs[12] q[0-3]$/);
  });
});

describe.skipIf(why !== undefined)(
  'TUN with a lower MTU on the real-server side of the router, decapsulated in user space',
  () => {
    let lab: Lab;

    beforeAll(async () => {
      // lvs-realserver --user-space: the segments the kernel cut from lvsd's GSO packets reach its
      // raw socket with their TCP checksums still partial, and go on into its TUN as such.
      lab = await tunLab('m', 1280, ['--user-space']);
    });

    afterAll(async () => {
      await lab?.down();
    });

    it('completes a 1 MiB upload and download: the router’s frag-needed reaches the client as a smaller MTU', async () => {
      await transfer(lab);
    });
  },
);

describe.skipIf(why !== undefined)('TUN where the router bridges the real servers’ LAN itself', () => {
  let lab: Lab;

  beforeAll(async () => {
    // A Linux bridge that carries the router's address has no encapsulation offloads: the
    // router cuts lvsd's IP-in-IP GSO packets into segments, which the real servers'
    // decapsulator (in the kernel) takes one by one, their TCP checksums still partial.
    lab = await tunLab('b', 1500, [], { TUN_RS_LAN: 'router' });
  });

  afterAll(async () => {
    await lab?.down();
  });

  it('moves a 1 MiB download and upload byte-identical; the real server sees only segments', async () => {
    const atServers = await Promise.all(lab.rs.map((ns) => lab.capture(ns, 'eth0', ['ip', 'proto', '4'])));
    await transfer(lab);
    const outer = (await Promise.all(atServers.map((c) => c.stop())))
      .flatMap((c) => c.packets)
      .map((f) => ipv4OfFrame(f))
      .filter((ip): ip is Buffer => ip !== undefined);
    // About 730 outer segments carry the upload; a capture on a loaded machine may miss some
    // (tcpdump's buffer overruns), so the count only proves the segments came: what matters is
    // that none of them is larger than the link.
    expect(outer.length).toBeGreaterThan(100);
    expect(outer.filter((ip) => ip.readUInt16BE(2) > 1500)).toEqual([]);
  });
});
