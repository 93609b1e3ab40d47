// An in-process director for unit tests: an Engine on a MemoryIo with a fake clock, driven by the
// real Balancer (with no host side effects), plus the request specs lvsadm would send.

import { Engine } from '../../src/core/engine';
import { Balancer } from '../../src/ctl/balancer';
import { NoHostNet } from '../../src/ctl/host-net';
import type { DestSpec, ServiceSpec } from '../../src/ctl/protocol';
import { FWD_MASQ, IPPROTO_TCP } from '../../src/ip-vs';
import { MemoryIo } from '../../src/native/memory-io';

export interface TestDirector {
  io: MemoryIo;
  engine: Engine;
  balancer: Balancer;
  clock: { now: number };
  /** Push packets, run the engine, return what it sent. */
  send(...packets: Buffer[]): Buffer[];
  /** Advance the fake clock by `seconds` and run the expiry tick. */
  advance(seconds: number): number;
}

export function director(): TestDirector {
  const clock = { now: 1000 };
  const io = new MemoryIo();
  const engine = new Engine(io, { clock: () => clock.now });
  const balancer = new Balancer(engine, new NoHostNet());
  io.start(
    () => engine.poll(),
    (err) => {
      throw err;
    },
  );
  return {
    io,
    engine,
    balancer,
    clock,
    send(...packets: Buffer[]): Buffer[] {
      io.push(...packets);
      return io.takeSent();
    },
    advance(seconds: number): number {
      clock.now += seconds;
      return engine.tick();
    },
  };
}

export function svcSpec(addr: string, port: number, over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    protocol: IPPROTO_TCP,
    addr,
    port,
    fwmark: 0,
    sched: 'wlc',
    flags: 0,
    timeout: 0,
    netmask: '255.255.255.255',
    pe: '',
    ...over,
  };
}

export function destSpec(addr: string, port: number, over: Partial<DestSpec> = {}): DestSpec {
  return {
    addr,
    port,
    fwd: FWD_MASQ,
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
    tunType: 0,
    tunPort: 0,
    tunFlags: 0,
    ...over,
  };
}
