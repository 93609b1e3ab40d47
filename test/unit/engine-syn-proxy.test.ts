// The SYN proxy (core/syn-proxy.ts, setting syn_proxy): cookies made and checked on their own,
// then whole handshakes through the real engine on an in-memory PacketIo: the SYN-ACK the
// director answers with, the SYN it sends the real server for a valid cookie, the kept first
// data, the sequence shift for the rest of the connection, a refusal passed on, and when the
// proxy engages.

import { beforeEach, describe, expect, it } from 'vitest';
import { COOKIE_MSS, CookieJar, mssIndex, synMss } from '../../src/core/syn-proxy';
import { describeConn } from '../../src/core/sync-conn';
import { writeSysctl } from '../../src/ctl/sysctl';
import { CONN_F_OUT_SEQ, FWD_TUNNEL, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { TCP_S_CLOSE, TCP_S_ESTABLISHED, TCP_S_SYN_RECV } from '../../src/proto/tcp-states';
import { newSyncConn } from '../../src/wire/sync';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const MSS_1460 = Buffer.from([2, 4, 0x05, 0xb4]);

function tcp(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  flags: string,
  seq: number,
  ack: number,
  payload = '',
  options?: Buffer,
): Buffer {
  return packet()
    .ipv4({ src, dst, ttl: 63, id: 0x1234 })
    .tcp({ sport, dport, flags, seq, ack, window: 5000, options })
    .payload(payload)
    .build();
}

describe('SYN cookies', () => {
  const secret = Uint32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const jar = new CookieJar(secret);
  const [a, b, ports, isn] = [0xc0a80002, 0xc0a80001, (40000 << 16) | 80, 0x12345678];

  it('bring back the MSS index they were made with, in their period and the next', () => {
    for (let m = 0; m < COOKIE_MSS.length; m++) {
      const c = jar.make(a, b, ports, isn, 77, m);
      expect(jar.check(a, b, ports, isn, c, 77)).toBe(m);
      expect(jar.check(a, b, ports, isn, c, 78)).toBe(m);
      expect(jar.check(a, b, ports, isn, c, 79)).toBe(-1);
      expect(jar.check(a, b, ports, isn, c, 76)).toBe(-1);
    }
    // The 8-bit period wraps.
    expect(jar.check(a, b, ports, isn, jar.make(a, b, ports, isn, 255, 2), 256)).toBe(2);
  });

  it('are refused for another flow, another ISN, another secret or any other number', () => {
    const c = jar.make(a, b, ports, isn, 5, 3);
    expect(jar.check(a + 1, b, ports, isn, c, 5)).toBe(-1);
    expect(jar.check(a, b + 1, ports, isn, c, 5)).toBe(-1);
    expect(jar.check(a, b, ports + 1, isn, c, 5)).toBe(-1);
    expect(jar.check(a, b, ports, isn + 1, c, 5)).toBe(-1);
    expect(new CookieJar(Uint32Array.from([9, 2, 3, 4, 5, 6, 7, 8])).check(a, b, ports, isn, c, 5)).toBe(-1);
    let accepted = 0;
    for (let i = 0; i < 100000; i++) if (jar.check(a, b, ports, isn, (c + 1 + i * 7919) >>> 0, 5) >= 0) accepted++;
    expect(accepted).toBe(0);
  });

  it('carry the largest of 536, 1300, 1440, 1460 not above the client MSS', () => {
    expect([100, 536, 1299, 1300, 1439, 1440, 1459, 1460, 9000].map((m) => COOKIE_MSS[mssIndex(m)])).toEqual([
      536, 536, 536, 1300, 1300, 1440, 1440, 1460, 1460,
    ]);
    const syn = (opts: number[]) => {
      const p = tcp(CLIENT, 1, VIP, 80, 'S', 1, 0, '', Buffer.from(opts));
      return synMss(p, 20, (p[32] >> 4) << 2);
    };
    expect(syn([1, 1, 4, 2, 2, 4, 0x05, 0x78])).toBe(1400);
    expect(syn([4, 2, 1, 1])).toBe(536);
    // A malformed option list ends the walk.
    expect(syn([8, 0, 2, 4, 0x05, 0xb4, 0, 0])).toBe(536);
  });
});

describe('the SYN proxy in the engine (NAT VIP:80 → RS1:8080)', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 8080));
  });

  /** The client's SYN answered with a cookie; returns the cookie. */
  function handshake(sport = 40000): number {
    const [synAck] = d.send(tcp(CLIENT, sport, VIP, 80, 'S', 1000, 0, '', MSS_1460));
    const s = expectValidPacket(synAck);
    expect(s).toMatchObject({ src: VIP, dst: CLIENT, sport: 80, dport: sport, flags: 'SA', ack: 1001, window: 29200 });
    return s.seq!;
  }

  it('answers a SYN itself, opens the real server for the returning cookie, and shifts the rest', () => {
    writeSysctl(d.plane, 'syn_proxy', '1');
    const cookie = handshake();
    expect(d.connections()).toHaveLength(0);

    // The client's ACK brings the cookie back: the real server is sent the client's SYN.
    let out = d.send(tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 1));
    expect(out).toHaveLength(1);
    const syn = expectValidPacket(out[0]);
    expect(syn).toMatchObject({
      src: CLIENT,
      dst: RS1,
      sport: 40000,
      dport: 8080,
      flags: 'S',
      seq: 1000,
      window: 5000,
    });
    expect(out[0].subarray(40, 44)).toEqual(MSS_1460);
    expect(d.connections()).toMatchObject([
      { state: 'SYN_RECV', caddr: CLIENT, cport: 40000, daddr: RS1, dport: 8080 },
    ]);
    expect(d.engine.proxy.counts).toMatchObject({ cookies: 1, accepted: 1 });

    // Its request comes before the real server answered, in two segments, the first one twice:
    // each kept once, and the SYN sent again for every one.
    out = d.send(
      tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 1, 'GET '),
      tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 1, 'GET '),
      tcp(CLIENT, 40000, VIP, 80, 'PA', 1005, cookie + 1, '/'),
    );
    expect(out.map((p) => decodePacket(p).flags)).toEqual(['S', 'S', 'S']);

    // The real server's SYN-ACK: answered with the client's ACK, then the kept request follows.
    out = d.send(tcp(RS1, 8080, CLIENT, 40000, 'SA', 7000, 1001));
    expect(out).toHaveLength(3);
    const ack = expectValidPacket(out[0]);
    expect(ack).toMatchObject({ src: CLIENT, dst: RS1, sport: 40000, dport: 8080, flags: 'A', seq: 1001, ack: 7001 });
    const req = out.slice(1).map((p) => expectValidPacket(p));
    expect(req.map((r) => [r.dst, r.dport, r.flags, r.seq, r.ack, r.payload.toString()])).toEqual([
      [RS1, 8080, 'A', 1001, 7001, 'GET '],
      [RS1, 8080, 'PA', 1005, 7001, '/'],
    ]);
    const [conn] = d.connections();
    expect(conn.state).toBe('ESTABLISHED');

    // From now on the real server's sequence numbers are shifted into the cookie's space.
    out = d.send(tcp(RS1, 8080, CLIENT, 40000, 'PA', 7001, 1006, 'HTTP'));
    expect(expectValidPacket(out[0])).toMatchObject({
      src: VIP,
      sport: 80,
      dst: CLIENT,
      seq: (cookie + 1) >>> 0,
      ack: 1006,
    });
    out = d.send(tcp(CLIENT, 40000, VIP, 80, 'FA', 1006, (cookie + 5) >>> 0));
    expect(expectValidPacket(out[0])).toMatchObject({ dst: RS1, seq: 1006, ack: 7005, flags: 'FA' });
    expect(drops(d)).toEqual({});
  });

  it('keeps the shift in the sync message, as the FTP helper its fix-ups', () => {
    writeSysctl(d.plane, 'syn_proxy', '1');
    const cookie = handshake();
    d.send(tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 1));
    d.send(tcp(RS1, 8080, CLIENT, 40000, 'SA', 7000, 1001));
    const c = d.engine.conns.lookupIn(6, 0xc0a80002, 40000, 0xc0a80001, 80);
    const e = describeConn(d.engine, d.engine.conns, c, newSyncConn());
    expect(e.flags & CONN_F_OUT_SEQ).toBe(CONN_F_OUT_SEQ);
    expect(e.state).toBe(TCP_S_ESTABLISHED);
    const delta = (cookie - 7000) >>> 0;
    expect(e.outSeq).toEqual({ initSeq: 7000, delta, previousDelta: delta });
  });

  it('passes a refusal on: the client is reset at the cookie sequence', () => {
    writeSysctl(d.plane, 'syn_proxy', '1');
    const cookie = handshake();
    d.send(tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 1));
    const out = d.send(tcp(RS1, 8080, CLIENT, 40000, 'RA', 0, 1001));
    expect(expectValidPacket(out[0])).toMatchObject({
      src: VIP,
      sport: 80,
      dst: CLIENT,
      dport: 40000,
      flags: 'R',
      seq: (cookie + 1) >>> 0,
    });
    expect(d.engine.conns.state[d.engine.conns.lookupIn(6, 0xc0a80002, 40000, 0xc0a80001, 80)]).toBe(TCP_S_CLOSE);
    expect(d.engine.proxy.counts.reset).toBe(1);
  });

  it('refuses an ACK without a valid cookie as before (reset, no_conn), counted', () => {
    writeSysctl(d.plane, 'syn_proxy', '1');
    const cookie = handshake();
    const out = d.send(tcp(CLIENT, 40000, VIP, 80, 'A', 1001, cookie + 2));
    expect(decodePacket(out[0]).flags).toBe('R');
    expect(drops(d)).toEqual({ no_conn: 1 });
    expect(d.engine.proxy.counts.rejected).toBe(1);
    expect(d.connections()).toHaveLength(0);
  });

  it('engages at syn_proxy half-open connections and lets go when they are gone', () => {
    writeSysctl(d.plane, 'syn_proxy', '3');
    for (let p = 1; p <= 3; p++) {
      const [fwd] = d.send(tcp(CLIENT, p, VIP, 80, 'S', 1000, 0));
      expect(decodePacket(fwd).dst).toBe(RS1);
    }
    expect(d.engine.proxy.halfOpen).toBe(3);
    handshake(4);
    // One completes: below 3 again, and the next SYN goes to the real server; the one after it not.
    d.send(tcp(CLIENT, 1, VIP, 80, 'A', 1001, 1));
    expect(d.engine.proxy.halfOpen).toBe(2);
    expect(decodePacket(d.send(tcp(CLIENT, 5, VIP, 80, 'S', 1000, 0))[0]).dst).toBe(RS1);
    handshake(6);
    // Half-open connections that time out leave the count too.
    d.advance(61);
    expect(d.engine.proxy.halfOpen).toBe(0);
    expect(d.engine.conns.state[d.engine.conns.lookupIn(6, 0xc0a80002, 1, 0xc0a80001, 80)]).toBe(TCP_S_ESTABLISHED);
  });

  it('leaves services alone that have a DR or TUN real server, or the FTP helper', async () => {
    writeSysctl(d.plane, 'syn_proxy', '1');
    d.host.paths.set('10.0.0.9', { dev: 'eth1', src: 0x0a0000fe, mtu: 1500, devMac: Buffer.alloc(6) });
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec('10.0.0.9', 80, { fwd: FWD_TUNNEL }));
    await d.balancer.addService(svcSpec(VIP, 21, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 21), destSpec(RS1, 21));
    const out = d.send(tcp(CLIENT, 40000, VIP, 21, 'S', 1000, 0), tcp(CLIENT, 40001, VIP, 80, 'S', 1000, 0));
    expect(out.map((p) => decodePacket(p).flags)).not.toContain('SA');
    expect(d.engine.proxy.counts.cookies).toBe(0);
    expect(d.engine.conns.state[d.engine.conns.lookupIn(6, 0xc0a80002, 40000, 0xc0a80001, 21)]).toBe(TCP_S_SYN_RECV);
  });

  it('is off with syn_proxy 0', () => {
    writeSysctl(d.plane, 'syn_proxy', '0');
    const [fwd] = d.send(tcp(CLIENT, 40000, VIP, 80, 'S', 1000, 0));
    expect(decodePacket(fwd).dst).toBe(RS1);
  });
});

describe('the SYN proxy with a persistent NAT service', () => {
  it('schedules the cookie ACK through the client’s template: every connection to one real server', async () => {
    const d = director();
    const key = svcSpec(VIP, 80, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout: 300 });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 8080));
    await d.balancer.addDest(key, destSpec('172.16.0.2', 8080));
    writeSysctl(d.plane, 'syn_proxy', '1');
    const dests = new Set<string>();
    for (let port = 40000; port < 40004; port++) {
      const [synAck] = d.send(tcp(CLIENT, port, VIP, 80, 'S', 1000, 0, '', MSS_1460));
      const cookie = decodePacket(synAck).seq!;
      const [syn] = d.send(tcp(CLIENT, port, VIP, 80, 'A', 1001, cookie + 1));
      dests.add(decodePacket(syn).dst);
    }
    expect(dests.size).toBe(1);
    // One template (NONE, port 0) and four connections.
    const conns = d.connections();
    expect(conns.filter((c) => c.cport === 0)).toHaveLength(1);
    expect(conns.filter((c) => c.cport !== 0)).toHaveLength(4);
  });
});
