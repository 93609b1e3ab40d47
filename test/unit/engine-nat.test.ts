// Golden NAT forwarding fixtures through the real engine on an in-memory PacketIo: each case a
// packet in, the exact packet out (or the drop reason), every output's checksums validated first.

import { beforeEach, describe, expect, it } from 'vitest';
import { IPPROTO_UDP } from '../../src/ip-vs';
import { TCP_S_CLOSE_WAIT, TCP_S_ESTABLISHED, TCP_S_SYN_RECV, TCP_S_TIME_WAIT } from '../../src/proto/tcp-states';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function tcp(src: string, sport: number, dst: string, dport: number, flags: string, payload = '', ttl = 63) {
  return packet()
    .ipv4({ src, dst, ttl, id: 0x1234 })
    .tcp({ sport, dport, flags, seq: 1000, ack: 2000 })
    .payload(payload)
    .build();
}

interface Fixture {
  description: string;
  input: Buffer;
  /** The exact bytes expected out (forwarded, or the reply to a dropped packet), or null for nothing. */
  expectedOutput: Buffer | null;
  /** The drop reason when the packet must be dropped (with expectedOutput: and answered with it). */
  expectedVerdict?: string;
}

/** The reset a kernel director's stack sends for a TCP segment to a virtual address (tcp-reset.ts). */
function reset(dport: number, sport: number, seq: number, ack: number, flags: string) {
  return packet()
    .ipv4({ src: VIP, dst: CLIENT, ttl: 64, id: 0, df: true })
    .tcp({ sport, dport, flags, seq, ack, window: 0 })
    .build();
}

function runFixtures(d: TestDirector, fixtures: Fixture[]): void {
  fixtures.forEach((f, i) => {
    const before = drops(d);
    const out = d.send(f.input);
    if (f.expectedVerdict !== undefined) {
      const after = drops(d);
      expect((after[f.expectedVerdict] ?? 0) - (before[f.expectedVerdict] ?? 0), `#${i + 1} ${f.description}`).toBe(1);
    }
    if (f.expectedOutput === null) {
      expect(out, `#${i + 1} ${f.description}: nothing sent`).toHaveLength(0);
    } else {
      expect(out, `#${i + 1} ${f.description}: one packet sent`).toHaveLength(1);
      expectValidPacket(out[0]);
      expect(out[0].toString('hex'), `#${i + 1} ${f.description}`).toBe(f.expectedOutput.toString('hex'));
    }
  });
}

describe('NAT engine: golden TCP fixtures (VIP:80 → RS:8080, RS port differs)', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 8080));
  });

  it('rewrites a whole connection both ways and walks the TCP states', () => {
    runFixtures(d, [
      {
        description: 'client SYN to the VIP is DNATed to RS1:8080, TTL and the rest untouched',
        input: tcp(CLIENT, 40000, VIP, 80, 'S'),
        expectedOutput: tcp(CLIENT, 40000, RS1, 8080, 'S'),
      },
      {
        description: 'RS1 SYN-ACK is SNATed back to VIP:80',
        input: tcp(RS1, 8080, CLIENT, 40000, 'SA'),
        expectedOutput: tcp(VIP, 80, CLIENT, 40000, 'SA'),
      },
      {
        description: 'client ACK with data follows the connection',
        input: tcp(CLIENT, 40000, VIP, 80, 'PA', 'GET / HTTP/1.0\r\n\r\n'),
        expectedOutput: tcp(CLIENT, 40000, RS1, 8080, 'PA', 'GET / HTTP/1.0\r\n\r\n'),
      },
      {
        description: 'RS1 reply with data (odd length) is SNATed',
        input: tcp(RS1, 8080, CLIENT, 40000, 'PA', 'HTTP/1.0 200 OK\r\n\r\nrs1'),
        expectedOutput: tcp(VIP, 80, CLIENT, 40000, 'PA', 'HTTP/1.0 200 OK\r\n\r\nrs1'),
      },
      {
        description: 'a second client port is a new connection',
        input: tcp(CLIENT, 40001, VIP, 80, 'S'),
        expectedOutput: tcp(CLIENT, 40001, RS1, 8080, 'S'),
      },
    ]);
    const dest = d.engine.services.list[0].dests[0];
    expect(dest.stats).toEqual({
      conns: 2,
      inPkts: 3,
      outPkts: 2,
      inBytes: expect.any(Number),
      outBytes: expect.any(Number),
    });
    expect(dest.activeConns).toBe(1);
    expect(dest.inactConns).toBe(1);
  });

  it('counts ActiveConn only in ESTABLISHED, as IPVS does, through open and close', () => {
    const conns = d.engine.conns;
    const dest = d.engine.services.list[0].dests[0];
    d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    const c = conns.lookupIn(6, 0xc0a80002, 40000, 0xc0a80001, 80);
    expect(conns.state[c]).toBe(TCP_S_SYN_RECV);
    expect([dest.activeConns, dest.inactConns]).toEqual([0, 1]);
    d.send(tcp(RS1, 8080, CLIENT, 40000, 'SA'));
    d.send(tcp(CLIENT, 40000, VIP, 80, 'A'));
    expect(conns.state[c]).toBe(TCP_S_ESTABLISHED);
    expect([dest.activeConns, dest.inactConns]).toEqual([1, 0]);
    d.send(tcp(CLIENT, 40000, VIP, 80, 'FA'));
    expect(conns.state[c]).toBe(TCP_S_CLOSE_WAIT);
    expect([dest.activeConns, dest.inactConns]).toEqual([0, 1]);
    d.send(tcp(RS1, 8080, CLIENT, 40000, 'FA'));
    expect(conns.state[c]).toBe(TCP_S_TIME_WAIT);
    expect(conns.timeout[c]).toBe(120);
  });

  it('drops what belongs to no connection, and counts why', () => {
    runFixtures(d, [
      {
        description: 'ACK without a connection: RST with seq = its ack',
        input: tcp(CLIENT, 40000, VIP, 80, 'A'),
        expectedOutput: reset(40000, 80, 2000, 0, 'R'),
        expectedVerdict: 'no_conn',
      },
      {
        description: 'FIN without ACK nor connection: RST+ACK acking seq + 4 bytes + FIN',
        input: tcp(CLIENT, 40000, VIP, 80, 'F', 'data'),
        expectedOutput: reset(40000, 80, 0, 1005, 'RA'),
        expectedVerdict: 'no_conn',
      },
      {
        description: 'SYN+RST does not schedule, and a RST is never answered',
        input: tcp(CLIENT, 40000, VIP, 80, 'SR'),
        expectedOutput: null,
        expectedVerdict: 'no_conn',
      },
      {
        description: 'VIP port with no service: SYN answered RST+ACK, as a closed port',
        input: tcp(CLIENT, 40000, VIP, 22, 'S'),
        expectedOutput: reset(40000, 22, 0, 1001, 'RA'),
        expectedVerdict: 'no_service',
      },
      {
        description: 'ICMP other than an echo request to the VIP',
        input: packet()
          .ipv4({ src: CLIENT, dst: VIP })
          .icmp({ type: 13, code: 0, rest: 0x00010001 })
          .payload('timestamp')
          .build(),
        expectedOutput: null,
        expectedVerdict: 'no_service',
      },
    ]);
    expect(d.engine.conns.count).toBe(0);
  });

  it('answers an echo request to the VIP as the director that owns it would', () => {
    const ping = packet()
      .ipv4({ src: CLIENT, dst: VIP, ttl: 63, tos: 0x10 })
      .icmp({ type: 8, code: 0, rest: 0x00010007 })
      .payload('ping payload')
      .build();
    const [reply] = d.send(ping);
    const r = expectValidPacket(reply!);
    expect([r.src, r.dst, r.ttl, r.tos, r.df, r.protocol]).toEqual([VIP, CLIENT, 64, 0x10, false, 1]);
    expect(r.icmp).toEqual({ type: 0, code: 0, rest: 0x00010007 });
    expect(r.payload.toString()).toBe('ping payload');
    // A corrupted request is dropped, as the kernel's icmp_rcv drops it.
    const bad = Buffer.from(ping);
    bad[bad.length - 1] ^= 0xff;
    expect(d.send(bad)).toEqual([]);
    expect(drops(d)).toEqual({ bad_checksum: 1 });
  });

  it('forwards traffic that is not for a virtual service unchanged (bypass)', () => {
    const own = tcp(RS1, 33000, '10.9.9.9', 443, 'S');
    runFixtures(d, [{ description: 'a NAT real server opens its own connection', input: own, expectedOutput: own }]);
  });

  it('reschedules a SYN that reuses the tuple of a connection in TIME_WAIT', async () => {
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 8080));
    const first = d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    d.send(tcp(CLIENT, 40000, VIP, 80, 'FA'));
    d.send(tcp(decodePacket(first[0]).dst, 8080, CLIENT, 40000, 'FA'));
    const again = d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    expect(decodePacket(again[0]).dst).not.toBe(decodePacket(first[0]).dst);
    expect(d.engine.conns.count).toBe(1);
    const total = d.engine.services.list[0].dests.reduce((n, x) => n + x.activeConns + x.inactConns, 0);
    expect(total).toBe(1);
  });

  it('expires connections on the tick and returns their counts to zero', () => {
    d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    const dest = d.engine.services.list[0].dests[0];
    expect(dest.inactConns).toBe(1);
    expect(d.advance(59)).toBe(0); // SYN_RECV lives 60 s
    expect(d.advance(1)).toBe(1);
    expect(d.engine.conns.count).toBe(0);
    expect(dest.inactConns).toBe(0);
    // A late segment finds no connection: the director answers with a reset.
    expect(decodePacket(d.send(tcp(CLIENT, 40000, VIP, 80, 'A'))[0]).flags).toBe('R');
  });

  it('drops packets of connections whose dest was deleted, and frees the dest afterwards', async () => {
    d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    const dest = d.engine.services.list[0].dests[0];
    await d.balancer.deleteDest(svcSpec(VIP, 80), { addr: RS1, port: 8080 });
    runFixtures(d, [
      {
        description: 'old conn, dest gone',
        input: tcp(CLIENT, 40000, VIP, 80, 'A'),
        expectedOutput: null,
        expectedVerdict: 'dest_unavailable',
      },
    ]);
    // A new connection finds no dest left: ICMP port unreachable, quoting the SYN (ip_vs_leave).
    const syn = tcp(CLIENT, 40001, VIP, 80, 'S');
    const [icmp] = d.send(syn);
    const e = expectValidPacket(icmp!);
    expect([e.src, e.dst, e.icmp]).toEqual([VIP, CLIENT, { type: 3, code: 3, rest: 0 }]);
    expect(e.payload.toString('hex')).toBe(syn.toString('hex'));
    expect(drops(d).no_dest).toBe(1);
    expect(d.engine.dests.get(dest.id)).toBe(dest);
    d.advance(60);
    expect(d.engine.dests.get(dest.id)).toBeUndefined();
  });

  it('counts packets the kernel refuses as tx_failed', () => {
    d.io.acceptLimit = 0;
    d.send(tcp(CLIENT, 40000, VIP, 80, 'S'));
    expect(drops(d).tx_failed).toBe(1);
  });
});

describe('NAT engine: UDP', () => {
  it('rewrites a request and its response, keeping a zero checksum zero', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 53, { protocol: IPPROTO_UDP, sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 53, { protocol: IPPROTO_UDP }), destSpec(RS1, 5353));
    const udp = (src: string, sport: number, dst: string, dport: number, body: string, checksum = true) =>
      packet().ipv4({ src, dst, ttl: 63 }).udp({ sport, dport, checksum }).payload(body).build();
    runFixtures(d, [
      {
        description: 'request DNATed',
        input: udp(CLIENT, 5000, VIP, 53, 'query'),
        expectedOutput: udp(CLIENT, 5000, RS1, 5353, 'query'),
      },
      {
        description: 'response SNATed',
        input: udp(RS1, 5353, CLIENT, 5000, 'answer!'),
        expectedOutput: udp(VIP, 53, CLIENT, 5000, 'answer!'),
      },
      {
        description: 'zero checksum stays zero',
        input: udp(CLIENT, 5001, VIP, 53, 'nocsum', false),
        expectedOutput: udp(CLIENT, 5001, RS1, 5353, 'nocsum', false),
      },
    ]);
    const dest = d.engine.services.list[0].dests[0];
    expect([dest.activeConns, dest.inactConns]).toEqual([0, 2]);
    expect(d.engine.conns.timeout[d.engine.conns.lookupIn(17, 0xc0a80002, 5000, 0xc0a80001, 53)]).toBe(300);
  });
});

describe('NAT engine: scheduling', () => {
  it('alternates rr between two dests, newest dest first as IPVS lists them', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80));
    const picks: string[] = [];
    for (let i = 0; i < 6; i++) picks.push(decodePacket(d.send(tcp(CLIENT, 41000 + i, VIP, 80, 'S'))[0]).dst);
    expect(picks).toEqual([RS2, RS1, RS2, RS1, RS2, RS1]);
  });

  it('splits wrr 3:1', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'wrr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { weight: 3 }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { weight: 1 }));
    const count: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const dst = decodePacket(d.send(tcp(CLIENT, 42000 + i, VIP, 80, 'S'))[0]).dst;
      count[dst] = (count[dst] ?? 0) + 1;
    }
    expect(count).toEqual({ [RS1]: 30, [RS2]: 10 });
  });
});

describe('engine: malformed input is dropped and counted, never thrown', () => {
  it('counts each kind of malformed packet by reason and keeps forwarding', async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80));
    const good = tcp(CLIENT, 40000, VIP, 80, 'S');
    const truncated = good.subarray(0, 10);
    const badVersion = Buffer.from(good);
    badVersion[0] = 0x55;
    const badIhl = Buffer.from(good);
    badIhl[0] = 0x44;
    const longTotal = Buffer.from(good);
    longTotal.writeUInt16BE(good.length + 100, 2);
    const shortDataOff = Buffer.from(good);
    shortDataOff[20 + 12] = 0x40;
    const longDataOff = Buffer.from(good);
    longDataOff[20 + 12] = 0xf0;
    const truncatedTcp = Buffer.from(good.subarray(0, 30));
    truncatedTcp.writeUInt16BE(30, 2);
    const out = d.send(truncated, badVersion, badIhl, longTotal, shortDataOff, longDataOff, truncatedTcp, good);
    expect(out).toHaveLength(1);
    expect(decodePacket(out[0]).dst).toBe(RS1);
    expect(drops(d)).toEqual({
      truncated: 2,
      bad_version: 1,
      bad_ihl: 1,
      bad_total_len: 1,
      bad_data_offset: 2,
    });
  });
});
