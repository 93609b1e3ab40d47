// The IPVS settings lvsd implements (src/ctl/sysctl.ts) and what each changes on the data path:
// conn_reuse_mode (a SYN on a finished connection's tuple), expire_nodest_conn (connections of a
// deleted or quiescent dest), sloppy_tcp (flows arriving mid-way), and the setting table itself
// (names, ranges, errors).

import { beforeEach, describe, expect, it } from 'vitest';
import { readSysctls, writeSysctl } from '../../src/ctl/sysctl';
import { FWD_DROUTE, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { TCP_S_CLOSE, TCP_S_ESTABLISHED, TCP_S_FIN_WAIT, TCP_S_TIME_WAIT } from '../../src/proto/tcp-states';
import { ipToU32 } from '../../src/wire/addr';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CLIENT = '192.168.0.2';
const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function tcp(flags: string, sport = 40000): Buffer {
  return packet().ipv4({ src: CLIENT, dst: VIP, ttl: 63 }).tcp({ sport, dport: 80, flags }).build();
}

describe('the setting table', () => {
  it('lists the kernel names with the kernel defaults', () => {
    expect(readSysctls(director().plane)).toEqual([
      { name: 'conn_reuse_mode', value: 1 },
      { name: 'expire_nodest_conn', value: 0 },
      { name: 'expire_quiescent_template', value: 0 },
      { name: 'sloppy_tcp', value: 0 },
      { name: 'sloppy_sctp', value: 0 },
      { name: 'drop_entry', value: 0 },
      { name: 'drop_packet', value: 0 },
      { name: 'secure_tcp', value: 0 },
      { name: 'amemthresh', value: 1024 },
      { name: 'am_droprate', value: 10 },
      { name: 'syn_proxy', value: 1024 },
    ]);
  });

  it('sets values in range and refuses the rest with ENOENT / EINVAL, changing nothing', () => {
    const { engine: e, plane } = director();
    expect(writeSysctl(plane, 'conn_reuse_mode', ' 3\n')).toBe(3);
    expect(e.connReuseMode).toBe(3);
    expect(() => writeSysctl(plane, 'nosuch', '1')).toThrow(expect.objectContaining({ errno: 'ENOENT' }));
    for (const bad of ['4', '-1', 'x', '', '1.5']) {
      expect(() => writeSysctl(plane, 'conn_reuse_mode', bad), bad).toThrow(
        expect.objectContaining({ errno: 'EINVAL' }),
      );
    }
    expect(e.connReuseMode).toBe(3);
  });
});

describe('conn_reuse_mode', () => {
  let d: TestDirector;
  /** A connection from CLIENT:40000 to RS2 (rr's first), walked into TIME_WAIT. */
  async function finished(fwd = FWD_MASQ): Promise<number> {
    d.host.paths.set(RS1, { dev: 'eth1', src: 0, mtu: 1500, devMac: Buffer.alloc(6, 2), mac: Buffer.alloc(6, 1) });
    d.host.paths.set(RS2, { dev: 'eth1', src: 0, mtu: 1500, devMac: Buffer.alloc(6, 2), mac: Buffer.alloc(6, 3) });
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd }));
    d.send(tcp('S'));
    const c = d.engine.conns.lookupIn(6, ipToU32(CLIENT), 40000, ipToU32(VIP), 80);
    d.engine.conns.state[c] = TCP_S_TIME_WAIT;
    return c;
  }
  const dst = (out: Buffer[]) => decodePacket(out[0]).dst;

  beforeEach(() => {
    d = director();
  });

  it('1 (default): a SYN on a TIME_WAIT tuple is scheduled afresh', async () => {
    await finished();
    expect(dst(d.send(tcp('S')))).toBe(RS1);
  });

  it("1: a SYN on the TIME_WAIT tuple of a deleted dest's connection is scheduled afresh, not dropped", async () => {
    await finished();
    await d.balancer.deleteDest(svcSpec(VIP, 80), destSpec(RS2, 80));
    expect(dst(d.send(tcp('S')))).toBe(RS1);
    expect(drops(d)).toEqual({});
  });

  it('0: the SYN revives the old entry and goes to the same dest', async () => {
    await finished();
    d.engine.connReuseMode = 0;
    expect(dst(d.send(tcp('S')))).toBe(RS2);
    expect(d.engine.services.list[0].stats.conns).toBe(1);
  });

  it('bit 2 also takes over a DR connection in FIN_WAIT; bit 1 alone does not', async () => {
    const c = await finished(FWD_DROUTE);
    d.engine.conns.state[c] = TCP_S_FIN_WAIT;
    const frameTo = (out: Buffer[]) => out[0].subarray(0, 6).toString('hex');
    expect(frameTo(d.send(tcp('S')))).toBe('030303030303'); // RS2 again
    d.engine.conns.state[c] = TCP_S_FIN_WAIT; // the revived entry moved on; put it back
    d.engine.connReuseMode = 3;
    expect(frameTo(d.send(tcp('S')))).toBe('010101010101'); // RS1: rescheduled
  });

  it('leaves a connection controlled by a persistence template alone', async () => {
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout: 360 }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ }));
    d.send(tcp('S'));
    const c = d.engine.conns.lookupIn(6, ipToU32(CLIENT), 40000, ipToU32(VIP), 80);
    d.engine.conns.state[c] = TCP_S_TIME_WAIT;
    d.send(tcp('S'));
    expect(d.engine.conns.lookupIn(6, ipToU32(CLIENT), 40000, ipToU32(VIP), 80)).toBe(c);
  });
});

describe('expire_nodest_conn', () => {
  let d: TestDirector;
  beforeEach(async () => {
    d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ }));
    expect(decodePacket(d.send(tcp('S'))[0]).dst).toBe(RS2);
    d.send(tcp('A'));
    await d.balancer.deleteDest(svcSpec(VIP, 80), destSpec(RS2, 80));
  });

  it('0 (default): packets of a deleted dest’s connection are dropped while it lives', () => {
    expect(d.send(tcp('A'), tcp('PA'))).toEqual([]);
    expect(drops(d)).toEqual({ dest_unavailable: 2 });
    expect(d.engine.conns.count).toBe(1);
  });

  it('1: the connection is expired at once; a SYN on its tuple goes to a live dest', () => {
    d.engine.expireNodestConn = 1;
    // Its next segment finds no connection: answered with a reset, so the client starts over.
    expect(d.send(tcp('A')).map((p) => decodePacket(p).flags)).toEqual(['R']);
    expect(drops(d)).toEqual({ no_conn: 1 });
    expect(d.engine.conns.count).toBe(0);
    expect(decodePacket(d.send(tcp('S'))[0]).dst).toBe(RS1);
  });

  it('1: a SYN on the tuple of a connection to a quiescent dest is rescheduled', async () => {
    const e = d.engine;
    e.expireNodestConn = 1;
    d.send(tcp('S', 41000)); // to RS1, the only dest left
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ }));
    await d.balancer.editDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ, weight: 0 }));
    expect(decodePacket(d.send(tcp('S', 41000))[0]).dst).toBe(RS2);
    e.expireNodestConn = 0;
    d.send(tcp('S', 41001)); // to RS2 (RS1 is quiescent)
    await d.balancer.editDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ, weight: 0 }));
    await d.balancer.editDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ, weight: 1 }));
    // Without the setting the SYN_RECV entry keeps its quiescent dest.
    expect(decodePacket(d.send(tcp('S', 41001))[0]).dst).toBe(RS2);
  });
});

describe('sloppy_tcp', () => {
  /** A director with a DR service over four real servers (mh, as every ECMP director has it). */
  async function drDirector(sched = 'mh'): Promise<TestDirector> {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80, { sched }));
    for (let i = 1; i <= 4; i++) {
      const rs = `172.16.0.${i}`;
      d.host.paths.set(rs, { dev: 'eth1', src: 0, mtu: 1500, devMac: Buffer.alloc(6, 9), mac: Buffer.alloc(6, i) });
      await d.balancer.addDest(svcSpec(VIP, 80), destSpec(rs, 80, { fwd: FWD_DROUTE }));
    }
    await d.balancer.refreshPaths();
    return d;
  }
  /** The real server (its MAC's last byte) a DR frame went to. */
  const frameTo = (out: Buffer[]) => out[0]?.[5];

  it('0 (default): a packet of a flow this director has not seen, not a SYN, is answered with a reset', async () => {
    const d = await drDirector();
    const out = d.send(tcp('A'));
    expect(decodePacket(out[0]).flags).toContain('R');
    expect(drops(d)).toEqual({ no_conn: 1 });
  });

  it('1: it is scheduled, the connection ESTABLISHED (an ACK) or CLOSE (a FIN) from NONE; a RST never', async () => {
    const d = await drDirector();
    writeSysctl(d.plane, 'sloppy_tcp', '1');
    expect(frameTo(d.send(tcp('A', 40001)))).toBeGreaterThan(0);
    const c = d.engine.conns.lookupIn(6, ipToU32(CLIENT), 40001, ipToU32(VIP), 80);
    expect(d.engine.conns.state[c]).toBe(TCP_S_ESTABLISHED);
    expect(d.connections()[0].state).toBe('ESTABLISHED');
    d.send(tcp('FA', 40002));
    const f = d.engine.conns.lookupIn(6, ipToU32(CLIENT), 40002, ipToU32(VIP), 80);
    expect(d.engine.conns.state[f]).toBe(TCP_S_CLOSE);
    expect(d.send(tcp('R', 40003))).toEqual([]);
    expect(drops(d)).toEqual({ no_conn: 1 });
  });

  it('1 with mh on every director: a flow moved to another director keeps its real server', async () => {
    // Two directors configured alike (the same dests added in the same order): each flow that
    // one has scheduled, the other schedules mid-way to the same real server.
    const a = await drDirector();
    const b = await drDirector();
    writeSysctl(b.plane, 'sloppy_tcp', '1');
    const moved: number[] = [];
    for (let i = 1; i <= 200; i++) {
      const from = (flags: string) =>
        packet()
          .ipv4({ src: `10.1.${i >> 8}.${i & 255}`, dst: VIP })
          .tcp({ sport: 40000, dport: 80, flags })
          .build();
      const first = frameTo(a.send(from('S')));
      expect(frameTo(b.send(from('A')))).toBe(first);
      moved.push(first!);
    }
    // ... and the flows are spread over all four.
    expect(new Set(moved).size).toBe(4);
  });

  it('1 with wlc instead: the moved flows land wherever that director balances them', async () => {
    const a = await drDirector('wlc');
    const b = await drDirector('wlc');
    writeSysctl(b.plane, 'sloppy_tcp', '1');
    b.send(tcp('S', 40999)); // b has balanced a flow of its own: the two directors' counts differ
    let same = 0;
    for (let port = 41000; port < 41100; port++) {
      if (frameTo(a.send(tcp('S', port))) === frameTo(b.send(tcp('A', port)))) same++;
    }
    // wlc follows each director's own counts: a quarter of the moved flows or so keep theirs.
    expect(same).toBeLessThan(50);
  });
});
