// The IPVS settings lvsd implements (src/ctl/sysctl.ts) and what each changes on the data path:
// conn_reuse_mode (a SYN on a finished connection's tuple), expire_nodest_conn (connections of a
// deleted or quiescent dest), and the setting table itself (names, ranges, errors).

import { beforeEach, describe, expect, it } from 'vitest';
import { readSysctls, writeSysctl } from '../../src/ctl/sysctl';
import { FWD_DROUTE, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { TCP_S_FIN_WAIT, TCP_S_TIME_WAIT } from '../../src/proto/tcp-states';
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
      { name: 'drop_entry', value: 0 },
      { name: 'drop_packet', value: 0 },
      { name: 'secure_tcp', value: 0 },
      { name: 'amemthresh', value: 1024 },
      { name: 'am_droprate', value: 10 },
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
