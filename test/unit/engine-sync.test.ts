// Connection sync (REFERENCE.md §1.10) through two in-process directors: the master's engine
// offers connections to a SyncMaster when ip_vs_sync_conn would (TCP state changes, every 50th
// packet from the 3rd, templates with their connections), the messages are decoded by a
// SyncBackup on the second director, whose copies then carry the connection on after a failover.

import { beforeEach, describe, expect, it } from 'vitest';
import { applySyncConn } from '../../src/core/sync-apply';
import type { DaemonSpec } from '../../src/ctl/protocol';
import { CONN_F_SYNC, CONN_F_TEMPLATE, FWD_DROUTE, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { SyncBackup, SyncMaster } from '../../src/sync/daemon';
import { formatIpv6Words } from '../../src/wire/addr6';
import { decodeMessage, newSyncConn, type SyncConn } from '../../src/wire/sync';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';
import { decode6, tcp6 } from '../helpers/packet6';

const VIP = '192.168.0.1';
const CLIENT = '192.168.0.2';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

const SPEC: DaemonSpec = {
  state: 'master',
  mcastIfn: 'sync0',
  syncid: 5,
  maxlen: 1472,
  group: '224.0.0.81',
  port: 8848,
  ttl: 1,
};

function tcp(flags: string, sport = 40000, seq = 1000): Buffer {
  return packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).tcp({ sport, dport: 80, flags, seq, ack: 1 }).build();
}

function udp(sport: number): Buffer {
  return packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).udp({ sport, dport: 53 }).payload(Buffer.from('q')).build();
}

/** A master director with a SyncMaster whose messages land in `sent` (flushed by hand). */
function master(d: TestDirector, ms = { now: 0 }) {
  const sent: Buffer[] = [];
  const m = new SyncMaster(
    SPEC,
    (msg, size, done) => {
      sent.push(Buffer.from(msg.subarray(0, size)));
      done();
    },
    () => ms.now,
  );
  d.engine.syncSink = m;
  return { m, sent, ms };
}

function entries(msgs: Buffer[]): SyncConn[] {
  const out: SyncConn[] = [];
  for (const b of msgs) {
    expect(decodeMessage(b, 0, b.length, SPEC.syncid, newSyncConn(), (e) => out.push({ ...e }))).toBe(0);
  }
  return out;
}

async function natService(d: TestDirector, port = 80, protocol = 6, over = {}): Promise<void> {
  const key = svcSpec(VIP, port, { sched: 'rr', protocol, ...over });
  await d.balancer.addService(key);
  await d.balancer.addDest(key, destSpec(RS1, port, { fwd: FWD_MASQ }));
  await d.balancer.addDest(key, destSpec(RS2, port, { fwd: FWD_MASQ }));
}

describe('sync master', () => {
  let d: TestDirector;
  beforeEach(() => {
    d = director();
  });

  it('sends a TCP connection on its 3rd client packet, then at once on each state change but to ESTABLISHED', async () => {
    await natService(d);
    const { m, sent } = master(d);
    d.send(tcp('S'), tcp('A', 40000, 1001));
    m.send();
    expect(sent).toEqual([]); // SYN_RECV is not synced; ESTABLISHED waits for packet 3
    d.send(tcp('PA', 40000, 1001));
    m.send();
    expect(entries(sent.splice(0)).map((e) => [e.state, e.timeout, e.flags & 0x100])).toEqual([[1, 900, 0]]);
    d.send(tcp('PA', 40000, 1002));
    m.send();
    expect(sent).toEqual([]); // packet 4: nothing new
    d.send(tcp('FA', 40000, 1003));
    m.send();
    const [fin] = entries(sent);
    // The client's FIN moves IPVS's table to CLOSE_WAIT (60 s).
    expect(fin).toMatchObject({ state: 7, timeout: 60, protocol: 6, cport: 40000, vport: 80, dport: 80, fwmark: 0 });
    expect(fin!.daddr).toBe(0xac100002); // rr: the most recently added dest first
  });

  it('sends a UDP flow on packets 3, 53, 103, ... (sync_threshold 3 50)', async () => {
    await natService(d, 53, 17);
    const { m, sent } = master(d);
    const synced: number[] = [];
    for (let i = 1; i <= 110; i++) {
      d.send(udp(5000));
      m.send();
      if (sent.splice(0).length > 0) synced.push(i);
    }
    expect(synced).toEqual([3, 53, 103]);
  });

  it('sends a persistence template with every client packet of a connection it controls', async () => {
    // As the kernel with sync_refresh_period 0: a template passes ip_vs_sync_conn_needed each
    // time its connection is offered, whether or not the connection itself is sent.
    await natService(d, 80, 6, { flags: SVC_F_PERSISTENT, timeout: 300 });
    const { m, sent } = master(d);
    d.send(tcp('S'), tcp('A', 40000, 1001), tcp('PA', 40000, 1001));
    m.send();
    const got = entries(sent);
    expect(got.map((e) => [(e.flags & CONN_F_TEMPLATE) !== 0, e.cport, e.timeout])).toEqual([
      [true, 0, 300],
      [true, 0, 300],
      [false, 40000, 900],
      [true, 0, 300],
    ]);
  });

  it('packs entries into one message up to sync_maxlen and sends a waiting message after 2 s', async () => {
    await natService(d, 53, 17);
    const clock = { now: 0 };
    const { m, sent } = master(d, clock);
    for (let p = 0; p < 50; p++) d.send(udp(6000 + p), udp(6000 + p), udp(6000 + p));
    // 50 entries of 36 bytes: 40 fit in 1472 (8 + 40 * 36 = 1448), the 41st starts a new message.
    expect(sent.map((b) => [b.length, b[4]])).toEqual([[1448, 40]]);
    clock.now = 1999;
    m.flushIfOld();
    expect(sent).toHaveLength(1);
    clock.now = 2000;
    m.flushIfOld();
    expect(sent.map((b) => b[4])).toEqual([40, 10]);
    expect(m.counters).toMatchObject({ messages: 2, conns: 50 });
  });
});

/** A sync entry: an ESTABLISHED NAT connection of the client to RS1:80. */
function established(): SyncConn {
  return {
    ...newSyncConn(),
    protocol: 6,
    flags: FWD_MASQ,
    state: 1,
    caddr: 0xc0a80002,
    cport: 40000,
    vaddr: 0xc0a80001,
    vport: 80,
    daddr: 0xac100001,
    dport: 80,
    timeout: 900,
  };
}

describe('sync backup', () => {
  let primary: TestDirector;
  let backup: TestDirector;
  let b: SyncBackup;

  beforeEach(async () => {
    primary = director();
    backup = director();
    b = new SyncBackup(backup.plane, { ...SPEC, state: 'backup' });
  });

  function replicate(sent: Buffer[]): void {
    for (const msg of sent.splice(0)) b.receive(msg, 0, msg.length);
  }

  it('holds a copy of an established connection and forwards its next packet to the same real server', async () => {
    await natService(primary);
    // The backup lists its dests the other way round: scheduling there would pick RS1 first.
    const key = svcSpec(VIP, 80, { sched: 'rr' });
    await backup.balancer.addService(key);
    await backup.balancer.addDest(key, destSpec(RS2, 80, { fwd: FWD_MASQ }));
    await backup.balancer.addDest(key, destSpec(RS1, 80, { fwd: FWD_MASQ }));
    const { m, sent } = master(primary);
    const out = primary.send(tcp('S'), tcp('A', 40000, 1001), tcp('PA', 40000, 1001));
    expect(decodePacket(out[0]).dst).toBe(RS2);
    m.send();
    replicate(sent);

    const copies = backup.connections();
    expect(copies).toEqual([
      {
        protocol: 6,
        caddr: CLIENT,
        cport: 40000,
        vaddr: VIP,
        vport: 80,
        daddr: RS2,
        dport: 80,
        state: 'ESTABLISHED',
        expires: 900,
        flags: FWD_MASQ | CONN_F_SYNC,
      },
    ]);
    const rs2 = backup.engine.services.list[0].dests.find((x) => x.addr === 0xac100002)!;
    expect([rs2.activeConns, rs2.inactConns]).toEqual([1, 0]);
    // Failover: the client's next segment reaches the backup, which forwards it to RS2.
    const fwd = backup.send(tcp('PA', 40000, 1002));
    expect(fwd.map((p) => decodePacket(p).dst)).toEqual([RS2]);
    expect(backup.engine.synced).toEqual({ created: 1, updated: 0, ignored: 0 });
  });

  it('updates a copy in place: state, timeout, active/inactive counts', async () => {
    await natService(primary);
    await natService(backup);
    const { m, sent } = master(primary);
    primary.send(tcp('S'), tcp('A', 40000, 1001), tcp('PA', 40000, 1001));
    m.send();
    replicate(sent);
    primary.send(tcp('FA', 40000, 1002));
    m.send();
    replicate(sent);
    const [copy] = backup.connections();
    expect(copy).toMatchObject({ state: 'CLOSE_WAIT', expires: 60, flags: FWD_MASQ | CONN_F_SYNC | 0x100 });
    const dests = backup.engine.services.list[0].dests;
    expect(dests.map((x) => [x.activeConns, x.inactConns])).toEqual([
      [0, 1],
      [0, 0],
    ]);
    expect(backup.engine.synced).toMatchObject({ created: 1, updated: 1 });
  });

  it('keeps a copy without a dest until the service exists, then binds it with the dest method', async () => {
    await natService(primary);
    const { m, sent } = master(primary);
    primary.send(tcp('S'), tcp('A', 40000, 1001), tcp('PA', 40000, 1001));
    m.send();
    replicate(sent);
    expect(backup.connections()).toHaveLength(1);
    expect(backup.send(tcp('PA', 40000, 1002))).toEqual([]);
    expect(drops(backup)).toEqual({ dest_unavailable: 1 });
    const key = svcSpec(VIP, 80, { sched: 'rr' });
    await backup.balancer.addService(key);
    await backup.balancer.addDest(key, destSpec(RS2, 80, { fwd: FWD_MASQ }));
    expect(backup.send(tcp('PA', 40000, 1003)).map((p) => decodePacket(p).dst)).toEqual([RS2]);
    expect(backup.engine.services.list[0].dests[0].activeConns).toBe(1);
  });

  it("copies templates too: the client's next connection on the backup sticks to the same dest", async () => {
    await natService(primary, 80, 6, { flags: SVC_F_PERSISTENT, timeout: 300 });
    const key = svcSpec(VIP, 80, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout: 300 });
    await backup.balancer.addService(key);
    await backup.balancer.addDest(key, destSpec(RS2, 80, { fwd: FWD_MASQ }));
    await backup.balancer.addDest(key, destSpec(RS1, 80, { fwd: FWD_MASQ }));
    const { m, sent } = master(primary);
    primary.send(tcp('S'), tcp('A', 40000, 1001), tcp('PA', 40000, 1001));
    m.send();
    replicate(sent);
    // A new connection from the same client on the backup follows the template to RS2.
    expect(backup.send(tcp('S', 40001)).map((p) => decodePacket(p).dst)).toEqual([RS2]);
  });

  it("replaces a copy that goes to another real server, but not for a finished one's message", async () => {
    await natService(backup);
    const e = established();
    applySyncConn(backup.engine, e);
    applySyncConn(backup.engine, { ...e, daddr: 0xac100002, flags: FWD_MASQ | 0x100, state: 5 });
    expect(backup.connections().map((c) => c.daddr)).toEqual([RS1]);
    applySyncConn(backup.engine, { ...e, daddr: 0xac100002 });
    expect(backup.connections().map((c) => c.daddr)).toEqual([RS2]);
    const dests = backup.engine.services.list[0].dests;
    expect(dests.map((x) => x.addr === 0xac100002 && x.activeConns)).toContain(1);
    expect(dests.reduce((n, x) => n + x.activeConns + x.inactConns, 0)).toBe(1);
    expect(backup.engine.synced).toEqual({ created: 2, updated: 0, ignored: 1 });
  });

  it('ignores entries with an unknown protocol, state or family, and a DR copy takes the DR method', async () => {
    const key = svcSpec(VIP, 80, { sched: 'rr' });
    await backup.balancer.addService(key);
    await backup.balancer.addDest(key, destSpec(RS1, 80, { fwd: FWD_DROUTE }));
    const e = established();
    applySyncConn(backup.engine, { ...e, protocol: 132 });
    applySyncConn(backup.engine, { ...e, state: 11 });
    applySyncConn(backup.engine, { ...e, flags: CONN_F_TEMPLATE, state: 2, cport: 0 });
    // An address family that is neither IPv4 nor IPv6.
    applySyncConn(backup.engine, { ...e, af: 3 });
    expect(backup.engine.synced).toEqual({ created: 0, updated: 0, ignored: 4 });
    applySyncConn(backup.engine, e);
    expect(backup.connections().map((c) => c.flags)).toEqual([FWD_DROUTE | 0x0080 | CONN_F_SYNC]);
  });
});

describe('sync of IPv6 connections', () => {
  const VIP6 = '2001:db8:1::1';
  const CLIENT6 = '2001:db8::2';
  const RS6A = '2001:db8:2::10';
  const RS6B = '2001:db8:2::11';

  async function v6Service(d: TestDirector): Promise<void> {
    const key = svcSpec(VIP6, 80, { sched: 'rr', netmask: '128', af: 10 });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS6A, 80, { fwd: FWD_MASQ }));
    await d.balancer.addDest(key, destSpec(RS6B, 80, { fwd: FWD_MASQ }));
  }
  const seg = (flags: string) => tcp6({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags, hopLimit: 63 });

  it('a master sends them as IPv6 entries, and a backup takes them over to the same real server', async () => {
    const a = director();
    await v6Service(a);
    const { m, sent } = master(a);
    const first = decode6(a.send(seg('S'))[0]!).dst;
    a.send(tcp6({ src: first, dst: CLIENT6, sport: 80, dport: 40000, flags: 'SA' }));
    a.send(seg('A'), seg('PA'));
    m.send();
    const got = entries(sent);
    expect(got.length).toBeGreaterThan(0);
    const e = got[got.length - 1]!;
    expect(e.af).toBe(10);
    expect([0, 4, 8].map((at) => formatIpv6Words(e.addr6, at))).toEqual([CLIENT6, VIP6, first]);

    // The backup takes the copy; the client's next segment (no SYN: without the copy, no_conn)
    // goes where the master sent the connection.
    const b = director();
    await v6Service(b);
    for (const x of got) applySyncConn(b.engine, x);
    expect(b.connections()).toEqual([expect.objectContaining({ caddr: CLIENT6, vaddr: VIP6, daddr: first })]);
    expect(b.engine.synced.created).toBe(1);
    const [mid] = b.send(seg('PA'));
    expect(decode6(mid!)).toMatchObject({ dst: first, dport: 80, checksumOk: true });
    expect(drops(b)).toEqual({});
  });
});
