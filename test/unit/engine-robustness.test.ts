// Hostile input in process: random and mutated packets never make the engine throw, never send
// more than they received, and leave the connection counts consistent with the table.

import { describe, expect, it } from 'vitest';
import { IPPROTO_UDP } from '../../src/ip-vs';
import { destSpec, director, svcSpec } from '../helpers/engine-lab';
import { packet } from '../helpers/packet-builder';
import { prng } from '../helpers/prng';

describe('engine robustness', () => {
  it('survives 20,000 random and mutated packets with consistent counters (seed 20261126)', async () => {
    const d = director();
    await d.balancer.addService(svcSpec('192.168.0.1', 80, { sched: 'rr' }));
    await d.balancer.addService(svcSpec('192.168.0.1', 53, { protocol: IPPROTO_UDP, sched: 'wlc' }));
    for (const rs of ['172.16.0.1', '172.16.0.2']) {
      await d.balancer.addDest(svcSpec('192.168.0.1', 80), destSpec(rs, 8080));
      await d.balancer.addDest(svcSpec('192.168.0.1', 53, { protocol: IPPROTO_UDP }), destSpec(rs, 53));
    }
    const rand = prng(20261126);
    const int = (n: number) => Math.floor(rand() * n);
    const flags = ['S', 'SA', 'A', 'PA', 'FA', 'R', 'SR', 'F', ''];
    const seeds = [
      () =>
        packet()
          .ipv4({ src: `10.0.${int(4)}.${int(250) + 1}`, dst: '192.168.0.1' })
          .tcp({ sport: 1024 + int(64), dport: 80, flags: flags[int(flags.length)] })
          .payload('x'.repeat(int(40)))
          .build(),
      () =>
        packet()
          .ipv4({ src: `172.16.0.${1 + int(2)}`, dst: `10.0.${int(4)}.${int(250) + 1}` })
          .tcp({ sport: 8080, dport: 1024 + int(64), flags: flags[int(flags.length)] })
          .build(),
      () =>
        packet()
          .ipv4({ src: `10.0.0.${int(250) + 1}`, dst: '192.168.0.1' })
          .udp({ sport: 1024 + int(64), dport: 53 })
          .payload('q')
          .build(),
      () =>
        packet()
          .ipv4({ src: '10.0.0.1', dst: '192.168.0.1' })
          .icmp({ type: int(20), code: int(5) })
          .build(),
    ];
    let received = 0;
    let sent = 0;
    for (let round = 0; round < 400; round++) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        const kind = rand();
        let p: Buffer;
        if (kind < 0.1) {
          p = Buffer.from(Array.from({ length: int(80) }, () => int(256)));
        } else {
          p = seeds[int(seeds.length)]();
          if (kind < 0.6) {
            const flips = 1 + int(4);
            for (let f = 0; f < flips; f++) p[int(p.length)] = int(256);
          }
          if (rand() < 0.1) p = p.subarray(0, int(p.length));
        }
        batch.push(p);
      }
      received += batch.length;
      sent += d.send(...batch).length;
      if (round % 50 === 49) d.advance(30);
    }
    expect(sent).toBeLessThanOrEqual(received);
    expect(sent).toBeGreaterThan(0);
    let counted = 0;
    for (const svc of d.engine.services.list) {
      for (const dest of svc.dests) {
        expect(dest.activeConns).toBeGreaterThanOrEqual(0);
        expect(dest.inactConns).toBeGreaterThanOrEqual(0);
        counted += dest.activeConns + dest.inactConns;
      }
    }
    expect(counted).toBe(d.engine.conns.count);
    // Everything expires in the end and the counts return to zero.
    d.advance(1000);
    expect(d.engine.conns.count).toBe(0);
    for (const svc of d.engine.services.list) {
      for (const dest of svc.dests) expect([dest.activeConns, dest.inactConns]).toEqual([0, 0]);
    }
  });
});
