// Upper and lower connection thresholds (-x / -y, REFERENCE.md §1.7) through the engine: the
// OVERLOAD flag goes up when a new connection brings a dest to its upper threshold, schedulers
// skip the dest while it is up, and it comes down as connections expire: below the lower
// threshold, or below 3/4 of the upper one when no lower threshold is set. An edit that raises
// or removes the upper threshold clears it at once.

import { beforeEach, describe, expect, it } from 'vitest';
import { DEST_F_OVERLOAD, type Dest, FWD_MASQ } from '../../src/ip-vs';
import { destSpec, director, drops, svcSpec, type TestDirector } from '../helpers/engine-lab';
import { decodePacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const VIP = '192.168.0.1';
const RS1 = '172.16.0.1';
const RS2 = '172.16.0.2';

function syn(client: number): Buffer {
  return packet()
    .ipv4({ src: `192.168.1.${client}`, dst: VIP, ttl: 63 })
    .tcp({ sport: 40000, dport: 80, flags: 'S' })
    .build();
}

function overloaded(d: Dest): boolean {
  return (d.flags & DEST_F_OVERLOAD) !== 0;
}

describe('thresholds', () => {
  let d: TestDirector;
  let rs1: Dest;

  async function setup(u: number, l: number): Promise<void> {
    await d.balancer.addService(svcSpec(VIP, 80, { sched: 'rr' }));
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ, uThreshold: u, lThreshold: l }));
    rs1 = d.engine.services.list[0].dests[0];
  }

  /** One new connection per second from client n (SYN_RECV: expires 60 s after it came). */
  function connect(n: number): number {
    const out = d.send(syn(n));
    d.advance(1);
    return out.length;
  }

  beforeEach(() => {
    d = director();
  });

  it('sets OVERLOAD at the upper threshold and refuses new connections while it is set', async () => {
    await setup(3, 0);
    expect([connect(1), connect(2)]).toEqual([1, 1]);
    expect(overloaded(rs1)).toBe(false);
    expect(connect(3)).toBe(1);
    expect(overloaded(rs1)).toBe(true);
    expect(connect(4)).toBe(1); // only ICMP port unreachable: no dest is usable
    expect(drops(d)).toEqual({ no_dest: 1 });
    expect(rs1.inactConns).toBe(3);
  });

  it('without a lower threshold clears below 3/4 of the upper one', async () => {
    await setup(4, 0);
    for (let n = 1; n <= 4; n++) connect(n); // conns made at t = 1000..1003
    expect(overloaded(rs1)).toBe(true);
    d.advance(56); // t = 1060: the first expires, 3 left: 3 * 4 = 12 is not < 4 * 3
    expect(rs1.inactConns).toBe(3);
    expect(overloaded(rs1)).toBe(true);
    d.advance(1); // 2 left: 8 < 12
    expect(rs1.inactConns).toBe(2);
    expect(overloaded(rs1)).toBe(false);
    expect(connect(9)).toBe(1);
  });

  it('with a lower threshold clears only below it', async () => {
    await setup(3, 1);
    for (let n = 1; n <= 3; n++) connect(n);
    expect(overloaded(rs1)).toBe(true);
    d.advance(57); // t = 1060: 2 left
    expect(overloaded(rs1)).toBe(true);
    d.advance(1); // 1 left: not below 1
    expect([rs1.inactConns, overloaded(rs1)]).toEqual([1, true]);
    d.advance(1); // 0 left
    expect(overloaded(rs1)).toBe(false);
  });

  it('sends new connections to the other dest while one is overloaded', async () => {
    await setup(1, 0);
    await d.balancer.addDest(svcSpec(VIP, 80), destSpec(RS2, 80, { fwd: FWD_MASQ }));
    const dsts = [1, 2, 3, 4].map((n) => decodePacket(d.send(syn(n))[0]).dst);
    // rr starts at the newest dest (RS2); RS1 takes one connection and is then skipped.
    expect(dsts).toEqual([RS2, RS1, RS2, RS2]);
  });

  it('an edit raising or removing the upper threshold clears OVERLOAD at once; lowering it does not', async () => {
    await setup(2, 0);
    connect(1);
    connect(2);
    expect(overloaded(rs1)).toBe(true);
    const edit = (u: number) =>
      d.balancer.editDest(svcSpec(VIP, 80), destSpec(RS1, 80, { fwd: FWD_MASQ, uThreshold: u, lThreshold: 0 }));
    await edit(1);
    expect(overloaded(rs1)).toBe(true);
    await edit(5);
    expect(overloaded(rs1)).toBe(false);
    await edit(2);
    connect(3);
    expect(overloaded(rs1)).toBe(true);
    await edit(0);
    expect(overloaded(rs1)).toBe(false);
  });
});
