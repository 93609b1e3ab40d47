// lvsd --max-conns through the engine (EngineOptions.maxConns): the connection table holds at most
// that many entries, persistence templates included. A new connection beyond it is dropped
// silently and counted as table_full (IPVS drops the packet when ip_vs_conn_new fails); packets
// of existing connections keep flowing; room comes back when entries expire or are removed.

import { beforeEach, describe, expect, it } from 'vitest';
import { CONN_F_TEMPLATE, FWD_MASQ, IPPROTO_UDP, SVC_F_ONEPACKET, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { type decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';
const MAX = 8;

function tcp(sport: number, flags: string, client = CLIENT): Buffer {
  return packet().ipv4({ src: client, dst: VIP, ttl: 63 }).tcp({ sport, dport: 80, flags }).build();
}

function udp(sport: number, client = CLIENT): Buffer {
  return packet().ipv4({ src: client, dst: VIP, ttl: 63 }).udp({ sport, dport: 53 }).payload('q').build();
}

/** A NAT real server's reply to the client's port `cport`. */
function reply(rs: string, cport: number): Buffer {
  return packet().ipv4({ src: rs, dst: CLIENT, ttl: 64 }).tcp({ sport: 80, dport: cport, flags: 'A' }).build();
}

/** Send one packet that must be forwarded: the one packet out, checksums valid. */
function forwarded(d: TestDirector, pkt: Buffer): ReturnType<typeof decodePacket> {
  const out = d.send(pkt);
  expect(out, 'one packet forwarded').toHaveLength(1);
  return expectValidPacket(out[0]);
}

function tableFull(d: TestDirector): number {
  return drops(d).table_full ?? 0;
}

/** Sum of every dest's counters: [ActiveConn, InActConn, PersistConn]. */
function destCounts(d: TestDirector): number[] {
  const sum = [0, 0, 0];
  for (const svc of d.engine.services.list) {
    for (const x of svc.dests) {
      sum[0] += x.activeConns;
      sum[1] += x.inactConns;
      sum[2] += x.persistConns;
    }
  }
  return sum;
}

function templates(d: TestDirector) {
  return d.connections().filter((c) => (c.flags & CONN_F_TEMPLATE) !== 0);
}

async function addNatService(d: TestDirector, port: number, over: Parameters<typeof svcSpec>[2] = {}): Promise<void> {
  const key = svcSpec(VIP, port, { sched: 'rr', ...over });
  await d.balancer.addService(key);
  await d.balancer.addDest(key, destSpec(RS1, port, { fwd: FWD_MASQ }));
  await d.balancer.addDest(key, destSpec(RS2, port, { fwd: FWD_MASQ }));
}

describe(`--max-conns ${MAX}: the connection table's hard limit`, () => {
  let d: TestDirector;

  beforeEach(async () => {
    d = director({ maxConns: MAX });
    await addNatService(d, 80);
    await addNatService(d, 53, { protocol: IPPROTO_UDP });
  });

  /** Open `n` TCP connections from client ports 40000.. (SYN only): the real server each went to. */
  function openTcp(n: number, from = 40000): string[] {
    return Array.from({ length: n }, (_, i) => forwarded(d, tcp(from + i, 'S')).dst);
  }

  it('creates and forwards exactly maxConns connections; the next TCP SYN and UDP datagram are dropped as table_full, nothing sent', () => {
    const rs = [...openTcp(MAX - 2), ...[5000, 5001].map((p) => forwarded(d, udp(p)).dst)];
    expect(rs).toEqual([RS2, RS1, RS2, RS1, RS2, RS1, RS2, RS1]);
    expect(d.engine.conns.count).toBe(MAX);

    expect(d.send(tcp(41000, 'S')), 'no reset, no ICMP for the dropped SYN').toEqual([]);
    expect(d.send(udp(6000)), 'no ICMP for the dropped datagram').toEqual([]);
    expect(drops(d)).toEqual({ table_full: 2 });
    // Nothing of the dropped ones was created or counted: the table, the totals and the dests.
    expect(d.engine.conns.count).toBe(MAX);
    expect(d.engine.stats.conns).toBe(MAX);
    expect(destCounts(d)).toEqual([0, MAX, 0]);
  });

  it('keeps forwarding both directions of existing connections while the table is full', () => {
    const rs = openTcp(MAX);
    for (let i = 0; i < MAX; i++) {
      const cport = 40000 + i;
      const inbound = forwarded(d, tcp(cport, 'A'));
      expect([inbound.dst, inbound.sport]).toEqual([rs[i], cport]);
      const outbound = forwarded(d, reply(rs[i], cport));
      expect([outbound.src, outbound.sport, outbound.dst, outbound.dport]).toEqual([VIP, 80, CLIENT, cport]);
      // A new connection in between still finds the table full.
      expect(d.send(tcp(41000 + i, 'S'))).toEqual([]);
    }
    expect(drops(d)).toEqual({ table_full: MAX });
    expect(destCounts(d), 'all established').toEqual([MAX, 0, 0]);
  });

  it('accepts exactly as many new connections as entries expired', () => {
    openTcp(MAX);
    // Half of them become established (900 s); the other half stay in SYN_RECV (60 s).
    for (let i = 0; i < MAX / 2; i++) forwarded(d, tcp(40000 + i, 'A'));
    expect(d.advance(59)).toBe(0);
    expect(d.send(tcp(41000, 'S'))).toEqual([]);
    expect(tableFull(d)).toBe(1);

    expect(d.advance(1), 'the SYN_RECV half expires at 60 s').toBe(MAX / 2);
    expect(d.engine.conns.count).toBe(MAX / 2);
    openTcp(MAX / 2, 42000);
    expect(d.send(tcp(43000, 'S'))).toEqual([]);
    expect(tableFull(d)).toBe(2);
    expect(d.engine.conns.count).toBe(MAX);
  });

  it('accepts a new connection on the port of a closed one it replaces (conn_reuse_mode), and no other', () => {
    openTcp(MAX);
    forwarded(d, tcp(40000, 'A'));
    forwarded(d, tcp(40000, 'R')); // ESTABLISHED → CLOSE
    expect(d.send(tcp(41000, 'S')), 'a CLOSE entry still takes its place').toEqual([]);
    // The SYN on the closed connection's tuple retires it and takes its place.
    expect(forwarded(d, tcp(40000, 'S')).flags).toBe('S');
    expect(d.engine.conns.count).toBe(MAX);
    expect(d.send(tcp(41001, 'S'))).toEqual([]);
    expect(drops(d)).toEqual({ table_full: 2 });
  });

  it('never fills with one-packet (--ops) UDP: 1500 datagrams in one second are all forwarded', async () => {
    await addNatService(d, 5353, { protocol: IPPROTO_UDP, flags: SVC_F_ONEPACKET });
    for (let i = 0; i < 1500; i++) {
      const pkt = packet()
        .ipv4({ src: CLIENT, dst: VIP, ttl: 63 })
        .udp({ sport: 10000 + i, dport: 5353 })
        .build();
      expect(d.send(pkt), `datagram ${i}`).toHaveLength(1);
    }
    expect(drops(d)).toEqual({});
    expect(d.engine.conns.count).toBe(0);
  });
});

describe('--max-conns at a power of two (1024): storage and limit are the same size', () => {
  it('takes a replacing connection in a full table: the retired entry frees its slot at once', async () => {
    const d = director({ maxConns: 1024 });
    // 1024 half-open connections would engage the SYN proxy (engine-syn-proxy.test.ts).
    d.engine.synProxy = 0;
    await addNatService(d, 80);
    for (let i = 0; i < 1024; i++) expect(d.send(tcp(20000 + i, 'S'))).toHaveLength(1);
    expect(d.send(tcp(40000, 'S'))).toEqual([]);
    forwarded(d, tcp(20000, 'A'));
    forwarded(d, tcp(20000, 'R'));
    forwarded(d, tcp(20000, 'S'));
    expect(d.engine.conns.count).toBe(1024);
    expect(drops(d)).toEqual({ table_full: 1 });
  });
});

describe(`--max-conns ${MAX} with a persistent service: templates count against the limit`, () => {
  const A = '192.168.1.10';
  const B = '192.168.1.20';
  let d: TestDirector;

  beforeEach(async () => {
    d = director({ maxConns: MAX });
    await addNatService(d, 80, { flags: SVC_F_PERSISTENT, timeout: 360 });
  });

  it("a client's first connection takes two entries (template and connection), its later ones one", () => {
    const rs = Array.from({ length: MAX - 1 }, (_, i) => forwarded(d, tcp(40000 + i, 'S', A)).dst);
    expect(new Set(rs)).toEqual(new Set([RS2]));
    expect(d.engine.conns.count).toBe(MAX);
    expect(templates(d)).toHaveLength(1);

    // Full: the client's next connection finds its template but no room for itself...
    expect(d.send(tcp(41000, 'S', A))).toEqual([]);
    // ...and a new client finds no room for its template.
    expect(d.send(tcp(41000, 'S', B))).toEqual([]);
    expect(drops(d)).toEqual({ table_full: 2 });
    expect(templates(d).map((t) => t.caddr)).toEqual([A]);
    expect(destCounts(d)).toEqual([0, MAX - 1, 1]);
  });

  it('a new client with room for its template only is dropped, keeps the template (as IPVS), and is sent by it later', () => {
    for (let i = 0; i < MAX - 2; i++) forwarded(d, tcp(40000 + i, 'S', A));
    expect(d.engine.conns.count).toBe(MAX - 1);
    // ip_vs_sched_persist creates B's template, then ip_vs_conn_new fails: the packet is dropped
    // and the template stays, controlling nothing, for its persistence timeout.
    expect(d.send(tcp(50000, 'S', B))).toEqual([]);
    expect(drops(d)).toEqual({ table_full: 1 });
    expect(d.engine.conns.count).toBe(MAX);
    const tB = templates(d).find((t) => t.caddr === B);
    expect(tB?.expires).toBe(360);
    // A's connections (SYN_RECV, 60 s) expire; both templates (360 s) remain.
    expect(d.advance(60)).toBe(MAX - 2);
    expect(templates(d).map((t) => t.caddr)).toEqual([A, B]);
    // B's retransmitted SYN goes where the template made for the dropped one says.
    expect(forwarded(d, tcp(50000, 'S', B)).dst).toBe(tB!.daddr);
    expect(d.engine.conns.count).toBe(3);
  });
});
