// The engine's IPv6 path (core/path6.ts, xmit/ipv6.ts) driven through the real Balancer: NAT
// both ways with full checksum verification, extension headers, persistence by prefix, ICMPv6
// it originates (echo replies, packet too big, port unreachable), and what it never forwards.

import { describe, expect, it } from 'vitest';
import { DEFAULT_LIST_FORMAT, type ListFormat } from '../../src/cli/lvsadm-args';
import { formatConnections } from '../../src/cli/lvsadm-format';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, IPPROTO_TCP, IPPROTO_UDP, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { formatConnFiles } from '../../src/procfs/conns';
import { ipv6Words } from '../../src/wire/addr6';
import { Ipv6View } from '../../src/wire/ipv6';
import { V_OK } from '../../src/wire/verdict';
import { VNET_F_NEEDS_CSUM } from '../../src/wire/vnet';
import { mayAnswer6 } from '../../src/xmit/ipv6';
import { DROP_NAMES } from '../../src/xmit/verdict';
import { DEV_MAC, destSpec, director, drops, RS_MAC, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { fromHex } from '../helpers/packet-builder';
import { decode6, fragment6, icmp6, reassemble6, tcp6, udp6 } from '../helpers/packet6';

const CLIENT6 = '2001:db8::2';
const VIP6 = '2001:db8:1::1';
const RS6A = '2001:db8:2::10';
const RS6B = '2001:db8:2::11';

/** The errno name a refused control-plane call fails with. */
async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { errno?: string }).errno;
  }
  return undefined;
}

const numeric: ListFormat = { ...DEFAULT_LIST_FORMAT, numeric: true };

async function natDirector(over: Parameters<typeof svcSpec>[2] = {}, dests = [RS6A]): Promise<TestDirector> {
  const d = director();
  const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10, ...over });
  await d.balancer.addService(svc);
  for (const rs of dests) await d.balancer.addDest(svc, destSpec(rs, 8080, { fwd: FWD_MASQ }));
  return d;
}

describe('engine: IPv6 NAT', () => {
  it('rewrites both directions with valid checksums and lists the connection in both formats', async () => {
    const d = await natDirector();
    const data = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    const [syn] = d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, hopLimit: 63 }));
    const s = decode6(syn);
    expect(s).toMatchObject({ src: CLIENT6, dst: RS6A, sport: 40000, dport: 8080, checksumOk: true });
    // Written back into the TUN, where the kernel's forward takes one off again.
    expect(s.hopLimit).toBe(64);
    const [synAck] = d.send(tcp6({ src: RS6A, dst: CLIENT6, sport: 8080, dport: 40000, flags: 'SA', hopLimit: 64 }));
    expect(decode6(synAck)).toMatchObject({ src: VIP6, dst: CLIENT6, sport: 80, dport: 40000, checksumOk: true });
    const [req] = d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'PA', payload: data }));
    const r = decode6(req);
    expect(r.checksumOk).toBe(true);
    expect(r.payload.subarray(20).toString()).toBe(data.toString());
    expect(drops(d)).toEqual({});

    const conns = d.connections();
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({ caddr: CLIENT6, vaddr: VIP6, daddr: RS6A, state: 'ESTABLISHED' });
    expect(formatConnections(conns, numeric)).toContain(
      '\nTCP 15:00  ESTABLISHED [2001:db8::2]:40000 [2001:db8:1::1]:80 [2001:db8:2::10]:8080\n',
    );
    // /proc/net/ip_vs_conn's IPv6 row: %pI6, no brackets.
    const { conn } = formatConnFiles(d.plane.connRowsNow());
    expect(conn).toContain(
      '\nTCP 2001:0db8:0000:0000:0000:0000:0000:0002 9C40 2001:0db8:0001:0000:0000:0000:0000:0001 0050 ' +
        '2001:0db8:0002:0000:0000:0000:0000:0010 1F90 ESTABLISHED     900\n',
    );
    const dest = d.balancer.snapshot().services[0].dests[0];
    expect(dest.stats).toMatchObject({ conns: 1, inPkts: 2, outPkts: 1 });
  });

  it('walks hop-by-hop, routing and destination options headers to the TCP header', async () => {
    // Built by scapy (see wire-ipv6.test.ts): 2001:db8::2 -> 2001:db8:1::1, TCP SYN 40000 -> 80.
    const ext = fromHex(`
      62 81 23 45 00 2c 00 3f 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
      20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01
      2b 00 01 04 00 00 00 00   3c 00 00 00 00 00 00 00   06 00 01 04 00 00 00 00
      9c 40 00 50 00 00 03 e8 00 00 00 00 50 02 fa f0 b9 03 00 00
    `);
    const d = await natDirector();
    const [out] = d.send(ext);
    const o = decode6(out);
    expect(o).toMatchObject({ dst: RS6A, sport: 40000, dport: 8080, nextHeader: 6, checksumOk: true });
    // The extension headers travel unchanged.
    expect(out.subarray(40, 64)).toEqual(ext.subarray(40, 64));
  });

  it('keeps a /64 on one real server with a persistent service, and lists its templates', async () => {
    const d = await natDirector({ protocol: IPPROTO_UDP, flags: SVC_F_PERSISTENT, timeout: 300, netmask: '64' }, [
      RS6A,
      RS6B,
    ]);
    const to = (src: string, sport: number) => decode6(d.send(udp6({ src, dst: VIP6, sport, dport: 80 }))[0]).dst;
    const first = to('2001:db8::2', 5000);
    expect(to('2001:db8::3', 5001)).toBe(first);
    expect(to('2001:db8::ffff:1', 5002)).toBe(first);
    // Another /64 is scheduled afresh (round robin: the other server).
    expect(to('2001:db8:0:1::2', 5003)).not.toBe(first);
    const templates = d.connections().filter((c) => c.cport === 0);
    expect(templates.map((t) => t.caddr).sort()).toEqual(['2001:db8:0:1::', '2001:db8::']);
    expect(d.balancer.snapshot().services[0].netmask).toBe('64');
  });

  it('answers an echo request to the VIP, and drops other ICMPv6 to it', async () => {
    const d = await natDirector();
    const [reply] = d.send(
      icmp6({ src: CLIENT6, dst: VIP6, type: 128, rest: 0x00070001, payload: Buffer.from('ping') }),
    );
    expect(decode6(reply)).toMatchObject({ src: VIP6, dst: CLIENT6, type: 129, rest: 0x00070001, checksumOk: true });
    expect(d.send(icmp6({ src: CLIENT6, dst: VIP6, type: 200 }))).toHaveLength(0);
    expect(drops(d)).toEqual({ no_service: 1 });
  });

  it('answers a packet over the path MTU with packet too big, quoting it as the client sent it', async () => {
    const d = await natDirector();
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, mtu: 1280, devMac: DEV_MAC });
    await d.balancer.refreshPaths();
    d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 }));
    const big = tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'A', payload: Buffer.alloc(1300) });
    const [ptb] = d.send(big);
    const p = decode6(ptb);
    expect(p).toMatchObject({ src: VIP6, dst: CLIENT6, type: 2, code: 0, rest: 1280, checksumOk: true });
    // As much of the packet as fits in 1280 bytes, to the VIP as sent.
    expect(ptb.length).toBe(1280);
    expect(p.payload.subarray(8, 48)).toEqual(big.subarray(0, 40));
    expect(drops(d)).toEqual({ frag_needed: 1 });
  });

  it('relays packet too big both ways, translated as the connection translates its packets', async () => {
    const d = await natDirector();
    const [toRs] = d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 }));
    // A router beyond the director: the packet we sent (client → RIP:8080) does not fit 1280.
    const fromRouter = icmp6({ src: '2001:db8:f::1', dst: CLIENT6, type: 2, rest: 1280, payload: toRs });
    const [relayed] = d.send(fromRouter);
    const r = decode6(relayed);
    expect(r).toMatchObject({ src: VIP6, dst: CLIENT6, type: 2, rest: 1280, checksumOk: true });
    const quoted = decode6(r.payload.subarray(8));
    expect(quoted).toMatchObject({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 });
    // The client's side: a reply (VIP:80 → client) too big for a link before the client.
    const [reply] = d.send(tcp6({ src: RS6A, dst: CLIENT6, sport: 8080, dport: 40000, flags: 'SA' }));
    const [back] = d.send(icmp6({ src: '2001:db8::fe', dst: VIP6, type: 2, rest: 1300, payload: reply }));
    const b = decode6(back);
    expect(b).toMatchObject({ src: '2001:db8::fe', dst: RS6A, type: 2, rest: 1300, checksumOk: true });
    expect(decode6(b.payload.subarray(8))).toMatchObject({ src: RS6A, dst: CLIENT6, sport: 8080, dport: 40000 });
    // About no connection: passed on unchanged from beyond, dropped to the VIP.
    const stray = icmp6({
      src: '2001:db8:f::1',
      dst: CLIENT6,
      type: 1,
      payload: udp6({ src: CLIENT6, dst: RS6B, sport: 9, dport: 9 }),
    });
    expect(d.send(stray)).toEqual([stray]);
    const noConn = udp6({ src: VIP6, dst: CLIENT6, sport: 80, dport: 1 });
    expect(d.send(icmp6({ src: CLIENT6, dst: VIP6, type: 3, payload: noConn }))).toHaveLength(0);
    expect(drops(d)).toEqual({ no_conn: 1 });
  });

  it('tells the client port unreachable when no real server is left, TCP and UDP alike', async () => {
    for (const protocol of [IPPROTO_TCP, IPPROTO_UDP]) {
      const d = await natDirector({ protocol }, []);
      const o = { src: CLIENT6, dst: VIP6, sport: 5000, dport: 80 };
      const [unreach] = d.send(protocol === IPPROTO_TCP ? tcp6(o) : udp6(o));
      const u = decode6(unreach);
      expect(u).toMatchObject({ src: VIP6, dst: CLIENT6, type: 1, code: 4, checksumOk: true });
      expect(u.payload.subarray(8, 48)).toEqual((protocol === IPPROTO_TCP ? tcp6(o) : udp6(o)).subarray(0, 40));
      expect(drops(d)).toEqual({ no_dest: 1 });
    }
  });

  it('never answers an ICMPv6 error, a multicast or unspecified source, or to a multicast destination', () => {
    const view = (b: Buffer) => {
      const v = new Ipv6View().reset(b, 0, b.length);
      expect(v.checkLen()).toBe(V_OK);
      return v;
    };
    const o = { src: CLIENT6, dst: VIP6, sport: 1, dport: 2 };
    expect(mayAnswer6(view(udp6(o)), 1, 4)).toBe(true);
    expect(mayAnswer6(view(icmp6({ src: CLIENT6, dst: VIP6, type: 1 })), 1, 4)).toBe(false);
    expect(mayAnswer6(view(icmp6({ src: CLIENT6, dst: VIP6, type: 128 })), 1, 4)).toBe(true);
    expect(mayAnswer6(view(udp6({ ...o, src: 'ff02::1' })), 1, 4)).toBe(false);
    expect(mayAnswer6(view(udp6({ ...o, src: '::' })), 1, 4)).toBe(false);
    expect(mayAnswer6(view(udp6({ ...o, dst: 'ff02::1' })), 1, 4)).toBe(false);
    // Packet too big may go to a multicast destination's sender (RFC 4443 2.4 e.3).
    expect(mayAnswer6(view(udp6({ ...o, dst: 'ff02::1' })), 2, 0)).toBe(true);
  });

  it('forwards what is not for a service unchanged, and drops the TUN’s own multicast', async () => {
    const d = await natDirector();
    const other = udp6({ src: '2001:db8:9::1', dst: '2001:db8:8::1', sport: 1, dport: 2 });
    expect(d.send(other)).toEqual([other]);
    // An MLD report the kernel sends on the TUN (from ::, to ff02::16).
    const mld = icmp6({ src: '::', dst: 'ff02::16', type: 143 });
    expect(d.send(mld)).toHaveLength(0);
    // A TCP packet to the VIP on a port without a service.
    expect(d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 1, dport: 81 }))).toHaveLength(0);
    expect(drops(d)).toEqual({ link_local: 1, no_service: 1 });
  });

  it('counts malformed IPv6 by reason and goes on forwarding', async () => {
    const d = await natDirector();
    const good = tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 });
    const truncated = good.subarray(0, 30);
    const longPayload = Buffer.from(good);
    longPayload.writeUInt16BE(200, 4);
    const badTcp = Buffer.from(good);
    badTcp[40 + 12] = 0x40;
    const out = d.send(truncated, longPayload, badTcp, good);
    expect(out).toHaveLength(1);
    expect(drops(d)).toEqual({ truncated: 1, bad_total_len: 1, bad_data_offset: 1 });
    expect(DROP_NAMES).toContain('link_local');
  });
});

describe('engine: IPv6 direct routing', () => {
  it('frames the packet unchanged for the real server’s MAC with EtherType 0x86DD', async () => {
    const d = director();
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 80, { fwd: FWD_DROUTE }));
    const syn = tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 });
    const [frame] = d.send(syn);
    expect(frame.subarray(0, 6)).toEqual(RS_MAC);
    expect(frame.subarray(6, 12)).toEqual(DEV_MAC);
    expect(frame.readUInt16BE(12)).toBe(0x86dd);
    expect(frame.subarray(14)).toEqual(syn);
    const [ack] = d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'A' }));
    expect(ack.subarray(14, 54)).toEqual(syn.subarray(0, 40));
    expect(d.connections()[0]).toMatchObject({ caddr: CLIENT6, daddr: RS6A, state: 'ESTABLISHED' });
    // Over the path MTU: packet too big to the client (IPv6 is not fragmented on the way).
    const [ptb] = d.send(
      tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'A', payload: Buffer.alloc(1500) }),
    );
    expect(decode6(ptb)).toMatchObject({ src: VIP6, dst: CLIENT6, type: 2, rest: 1500, checksumOk: true });
    expect(drops(d)).toEqual({ frag_needed: 1 });
  });

  it('holds the packets until the real server’s MAC is known', async () => {
    const d = director();
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, mtu: 1500, devMac: DEV_MAC });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 80, { fwd: FWD_DROUTE }));
    expect(d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 }))).toHaveLength(0);
    expect(drops(d)).toEqual({ neigh_miss: 1 });
  });
});

describe('engine: IPv6-in-IPv6 tunnelling', () => {
  async function tunDirector(mtu: number): Promise<TestDirector> {
    const d = director();
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, src6: ipv6Words('2001:db8::fe')!, mtu, devMac: DEV_MAC });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 80, { fwd: FWD_TUNNEL }));
    return d;
  }

  it('puts an outer IPv6 header (next header 41, director → real server) in front of the unchanged packet', async () => {
    const d = await tunDirector(1500);
    const syn = tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, hopLimit: 63 });
    const [out] = d.send(syn);
    const o = decode6(out);
    expect(o).toMatchObject({ src: '2001:db8::fe', dst: RS6A, nextHeader: 41, hopLimit: 64 });
    expect(out.subarray(40)).toEqual(syn);
    expect(d.connections()[0]).toMatchObject({ daddr: RS6A, state: 'SYN_RECV' });
  });

  it('answers packet too big with the path MTU less the outer header, and learns it from a router', async () => {
    const d = await tunDirector(1500);
    d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 }));
    const big = () =>
      tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'A', payload: Buffer.alloc(1400) });
    expect(decode6(d.send(big())[0]).nextHeader).toBe(41);
    // A router beyond reports 1400 for the tunnel packets: the next big one gets 1360.
    d.balancer.notePathMtu6(ipv6Words(RS6A)!, ipv6Words('2001:db8::fe')!, 1400);
    const [ptb] = d.send(big());
    expect(decode6(ptb)).toMatchObject({ src: VIP6, dst: CLIENT6, type: 2, rest: 1360, checksumOk: true });
    // A path that leaves less than IPv6's minimum MTU inside the tunnel: dropped, as the kernel's.
    const n = await tunDirector(1300);
    n.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 }));
    expect(n.send(big())).toHaveLength(0);
    expect(drops(n)).toEqual({ too_big: 1 });
  });
});

describe('engine: FTP over IPv6 through NAT', () => {
  async function ftpDirector(): Promise<TestDirector> {
    const d = director();
    const svc = svcSpec(VIP6, 21, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 21, { fwd: FWD_MASQ }));
    // The control connection, established.
    d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 21, flags: 'S' }));
    d.send(tcp6({ src: RS6A, dst: CLIENT6, sport: 21, dport: 40000, flags: 'SA' }));
    d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 21, flags: 'A' }));
    return d;
  }
  const cmd = (text: string) =>
    tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 21, flags: 'PA', payload: Buffer.from(text) });
  const reply = (text: string) =>
    tcp6({ src: RS6A, dst: CLIENT6, sport: 21, dport: 40000, flags: 'PA', payload: Buffer.from(text) });

  it('EPSV: the 229 reply makes the client’s data connection expected, to the real server’s port', async () => {
    const d = await ftpDirector();
    d.send(cmd('EPSV\r\n'));
    const [r] = d.send(reply('229 Entering Extended Passive Mode (|||50000|)\r\n'));
    // Unchanged but for the NAT: it names no address.
    expect(decode6(r).payload.subarray(20).toString()).toBe('229 Entering Extended Passive Mode (|||50000|)\r\n');
    const [data] = d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40010, dport: 50000, flags: 'S' }));
    expect(decode6(data)).toMatchObject({ src: CLIENT6, dst: RS6A, sport: 40010, dport: 50000, checksumOk: true });
    const conns = d.connections();
    expect(conns.map((c) => `${c.cport}>${c.vport}>${c.dport} ${c.state}`).sort()).toEqual([
      '40000>21>21 ESTABLISHED',
      '40010>50000>50000 SYN_RECV',
    ]);
  });

  it('EPRT |2|: the real server’s data connection from port 20 leaves from the VIP', async () => {
    const d = await ftpDirector();
    d.send(cmd('EPRT |2|2001:db8::2|40020|\r\n'));
    const [data] = d.send(tcp6({ src: RS6A, dst: CLIENT6, sport: 20, dport: 40020, flags: 'S' }));
    expect(decode6(data)).toMatchObject({ src: VIP6, dst: CLIENT6, sport: 20, dport: 40020, checksumOk: true });
    // PASV and PORT are IPv4's: nothing is expected from them on an IPv6 connection.
    d.send(cmd('PASV\r\n'));
    d.send(reply('227 Entering Passive Mode (10,0,0,1,195,80)\r\n'));
    expect(d.send(tcp6({ src: CLIENT6, dst: VIP6, sport: 40030, dport: 50000, flags: 'S' }))).toHaveLength(0);
  });
});

describe('engine: IPv6 firewall-mark services (-f N -6)', () => {
  it('takes marked IPv6 packets to the -6 service, IPv4 ones to -f N, one input device for both', async () => {
    const d = director();
    const mark4 = svcSpec('0.0.0.0', 0, { fwmark: 7, protocol: 0, sched: 'rr' });
    const mark6 = svcSpec('0.0.0.0', 0, { fwmark: 7, protocol: 0, sched: 'rr', netmask: '64', af: 10 });
    await d.balancer.addService(mark4);
    await d.balancer.addService(mark6);
    await d.balancer.addDest(mark4, destSpec('172.16.0.1', 0, { fwd: FWD_MASQ }));
    await d.balancer.addDest(mark6, destSpec(RS6A, 0, { fwd: FWD_MASQ }));
    expect(await errnoOf(d.balancer.addDest(mark6, destSpec('172.16.0.2', 0, { fwd: FWD_MASQ })))).toBe('EINVAL');
    expect(d.host.calls.filter((c) => c.startsWith('addFwmark'))).toEqual([
      'addFwmark 7 mark7',
      'addFwmark 7 mark7 -6',
    ]);
    d.io.pushMarked(7, tcp6({ src: CLIENT6, dst: '2001:db8:5::1', sport: 40000, dport: 443 }));
    const [out] = d.io.takeSent();
    expect(decode6(out!)).toMatchObject({ src: CLIENT6, dst: RS6A, dport: 443, checksumOk: true });
    const s = d.balancer.snapshot().services.find((x) => x.af === 10)!;
    expect(s).toMatchObject({ fwmark: 7, netmask: '64' });
    // Deleting one family's service keeps the device for the other.
    await d.balancer.deleteService(mark6);
    expect(d.host.calls.slice(-1)).toEqual(['delFwmark 7 -6']);
    expect(d.io.markDevs.has(7)).toBe(true);
    await d.balancer.deleteService(mark4);
    expect(d.io.markDevs.has(7)).toBe(false);
  });
});

describe('engine: IPv6 fragments', () => {
  it('reassembles a datagram to the VIP, NATs it, and sends it on in fragments no larger than it came', async () => {
    const d = await natDirector({ protocol: IPPROTO_UDP });
    const dgram = udp6({ src: CLIENT6, dst: VIP6, sport: 5000, dport: 80, payload: Buffer.alloc(3000, 7) });
    const frags = fragment6(dgram, 1280, 0xabcd);
    expect(frags).toHaveLength(3);
    // Out of order: held until the last one comes.
    expect(d.send(frags[2]!, frags[0]!)).toHaveLength(0);
    const out = d.send(frags[1]!);
    expect(out.length).toBe(3);
    for (const f of out) {
      expect(f.length).toBeLessThanOrEqual(1280);
      expect(f[6]).toBe(44);
    }
    const whole = decode6(reassemble6(out));
    expect(whole).toMatchObject({ src: CLIENT6, dst: RS6A, dport: 8080, checksumOk: true });
    expect(whole.payload.length).toBe(8 + 3000);
    // The real server's reply in fragments comes back from the VIP, in fragments.
    const reply = udp6({ src: RS6A, dst: CLIENT6, sport: 8080, dport: 5000, payload: Buffer.alloc(2000, 9) });
    const back = d.send(...fragment6(reply, 1400, 0x1234));
    expect(decode6(reassemble6(back))).toMatchObject({ src: VIP6, sport: 80, checksumOk: true });
    expect(drops(d)).toEqual({});
  });

  it('tunnels a reassembled datagram whole when it fits the path', async () => {
    const d = director();
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, src6: ipv6Words('2001:db8::fe')!, mtu: 9000, devMac: DEV_MAC });
    const svc = svcSpec(VIP6, 53, { protocol: IPPROTO_UDP, sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 53, { fwd: FWD_TUNNEL }));
    const dgram = udp6({ src: CLIENT6, dst: VIP6, sport: 5000, dport: 53, payload: Buffer.alloc(3000, 1) });
    const out = d.send(...fragment6(dgram, 1280, 77));
    expect(out).toHaveLength(1);
    expect(decode6(out[0]!.subarray(40))).toMatchObject({ dst: VIP6, checksumOk: true });
    expect(out[0]!.subarray(40)).toEqual(dgram);
  });

  it('answers a datagram that never completes with time exceeded after 60 s, and drops overlaps', async () => {
    const d = await natDirector({ protocol: IPPROTO_UDP });
    const frags = fragment6(
      udp6({ src: CLIENT6, dst: VIP6, sport: 5000, dport: 80, payload: Buffer.alloc(2000) }),
      1280,
      9,
    );
    d.send(frags[0]!);
    d.advance(30);
    expect(d.io.takeSent()).toHaveLength(0);
    d.advance(31);
    const [te] = d.io.takeSent();
    expect(decode6(te!)).toMatchObject({ src: VIP6, dst: CLIENT6, type: 3, code: 1, checksumOk: true });
    // A fragment overlapping one held discards the datagram.
    const again = fragment6(
      udp6({ src: CLIENT6, dst: VIP6, sport: 5001, dport: 80, payload: Buffer.alloc(2000) }),
      1280,
      10,
    );
    const overlap = Buffer.from(again[1]!);
    overlap.writeUInt16BE((overlap.readUInt16BE(42) - 8) | (overlap.readUInt16BE(42) & 1), 42);
    d.send(again[0]!, overlap);
    expect(drops(d)).toMatchObject({ frag_overlap: 1 });
    expect(d.engine.v6.frags.queues).toBe(0);
  });
});

describe('engine: IPv6 with TUN offloads (partial checksums, TCPv6 GSO)', () => {
  /** The folded pseudo-header sum a GSO packet's partial TCP checksum holds (length 0, as Linux's). */
  function partialSum(p: Buffer): number {
    const ph = Buffer.alloc(40);
    p.copy(ph, 0, 8, 40);
    ph[39] = 6;
    let s = 0;
    for (let i = 0; i < 40; i += 2) s += ph.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  }
  /** A 4000-byte TCPv6 GSO packet (1400-byte segments) as the TUN hands it over, vnet header first. */
  function gso(): Buffer {
    const p = tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: 'PA', payload: Buffer.alloc(4000, 3) });
    p.writeUInt16BE(partialSum(p), 40 + 16);
    const h = Buffer.alloc(10);
    h[0] = VNET_F_NEEDS_CSUM;
    h[1] = 4; // TCPV6
    h.writeUInt16LE(60, 2);
    h.writeUInt16LE(1400, 4);
    h.writeUInt16LE(40, 6);
    h.writeUInt16LE(16, 8);
    return Buffer.concat([h, p]);
  }
  const syn = () => Buffer.concat([Buffer.alloc(10), tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 })]);

  it('NAT keeps a GSO packet whole for the kernel, its partial checksum following the addresses', async () => {
    const d = director({ offload: true });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 8080, { fwd: FWD_MASQ }));
    d.send(syn());
    const [out] = d.send(gso());
    expect(out!.subarray(0, 10)).toEqual(gso().subarray(0, 10));
    const p = out!.subarray(10);
    expect(decode6(p)).toMatchObject({ dst: RS6A, dport: 8080 });
    expect(p.length).toBe(40 + 20 + 4000);
    expect(p.readUInt16BE(56)).toBe(partialSum(p));
    expect(d.engine.offload.gso).toBe(1);
  });

  it('a tunnel cuts a GSO packet into whole segments, each in its own outer header', async () => {
    const d = director({ offload: true });
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, src6: ipv6Words('2001:db8::fe')!, mtu: 1500, devMac: DEV_MAC });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 80, { fwd: FWD_TUNNEL }));
    d.send(syn());
    const out = d.send(gso());
    expect(out).toHaveLength(3);
    const seqs = out.map((o) => {
      const inner = o.subarray(10 + 40);
      const dec = decode6(inner);
      expect(dec).toMatchObject({ dst: VIP6, checksumOk: true });
      expect(dec.payload.length - 20).toBeLessThanOrEqual(1400);
      return inner.readUInt32BE(44);
    });
    expect(seqs).toEqual([1000, 2400, 3800]);
  });

  it('DR hands the packet socket the GSO packet with offsets counted from the Ethernet header', async () => {
    const d = director({ offload: true });
    d.host.paths.set(RS6A, { dev: 'eth1', src: 0, mtu: 1500, devMac: DEV_MAC, mac: RS_MAC });
    const svc = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(svc);
    await d.balancer.addDest(svc, destSpec(RS6A, 80, { fwd: FWD_DROUTE }));
    d.send(syn());
    const [frame] = d.send(gso());
    expect([frame![1], frame!.readUInt16LE(2), frame!.readUInt16LE(4), frame!.readUInt16LE(6)]).toEqual([
      4, 74, 1400, 54,
    ]);
    expect(frame!.readUInt16BE(10 + 12)).toBe(0x86dd);
  });
});
