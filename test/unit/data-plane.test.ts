// The control plane's one way to the engine (core/data-plane.ts): what EnginePlane gathers is
// the engine's, as copies the control plane cannot change the engine through; what it sets
// reaches the data path.

import { describe, expect, it } from 'vitest';
import { FWD_MASQ, IPPROTO_TCP } from '../../src/ip-vs';
import { TCP_S_ESTABLISHED } from '../../src/proto/tcp-states';
import { D_NO_SERVICE } from '../../src/xmit/verdict';
import { destSpec, director, RS1, svcSpec, VIP } from '../helpers/engine-lab';
import { packet } from '../helpers/packet-builder';

const SYN = (sport: number, dport = 80) =>
  packet().ipv4({ src: '192.168.1.1', dst: VIP }).tcp({ sport, dport, flags: 'S' }).build();

describe('EnginePlane', () => {
  it("gathers the engine's counters as copies", async () => {
    const d = director();
    await d.balancer.addService(svcSpec(VIP, 80));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ }));
    expect(d.send(SYN(40000), SYN(40001))).toHaveLength(2);
    // Port 81 on the VIP has no service: dropped, and the client is answered with a reset.
    expect(d.send(SYN(40003, 81))).toHaveLength(1);
    const c = d.plane.countersNow();
    expect(c).toMatchObject({ conns: 2, rxPackets: 3, batches: 2, txPackets: 3 });
    expect(c.drops[D_NO_SERVICE]).toBe(1);
    expect(d.balancer.dropCounts(c.drops)).toEqual({ no_service: 1 });
    c.drops[D_NO_SERVICE] = 0;
    c.offload.gso = 99;
    expect(d.engine.drops[D_NO_SERVICE]).toBe(1);
    expect(d.engine.offload.gso).toBe(0);
    const rows = d.plane.connRowsNow();
    expect(rows.n).toBe(2);
    expect([...rows.cport.subarray(0, 2)].sort()).toEqual([40000, 40001]);
    expect(rows.stateNames[IPPROTO_TCP][rows.state[0]]).toBe('SYN_RECV');
  });

  it('sets timeouts and settings where the data path reads them', () => {
    const d = director();
    d.plane.setTimeout(IPPROTO_TCP, TCP_S_ESTABLISHED, 120);
    expect(d.engine.timeouts[IPPROTO_TCP][TCP_S_ESTABLISHED]).toBe(120);
    expect(d.balancer.getTimeouts().tcp).toBe(120);
    d.plane.setSetting('expireNodestConn', 1);
    expect(d.engine.expireNodestConn).toBe(1);
    // A defense setting re-decides the strategies at once: secure_tcp 3 is on now.
    d.plane.setSetting('secureTcp', 3);
    expect(d.engine.defense.secureTcpOn).toBe(true);
    expect(d.plane.setting('secureTcp')).toBe(3);
    d.plane.setFtpPorts([21, 2121]);
    expect([...d.engine.ftp.ports]).toEqual([21, 2121]);
  });
});
