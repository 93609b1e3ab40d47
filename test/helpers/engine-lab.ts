// An in-process director for unit tests: an Engine on a MemoryIo with a fake clock, driven by the
// real Balancer (with no host side effects), plus the request specs lvsadm would send.

import { EnginePlane } from '../../src/core/data-plane';
import { Engine } from '../../src/core/engine';
import { Balancer, connSnapshots } from '../../src/ctl/balancer';
import { type DestPath, type HostAddr, hostAddrText, NoHostNet } from '../../src/ctl/host-net';
import type { ConnSnapshot, DestSpec, ServiceSpec } from '../../src/ctl/protocol';
import { FWD_MASQ, IPPROTO_TCP } from '../../src/ip-vs';
import { MemoryIo } from '../../src/native/memory-io';
import { Slab } from '../../src/native/packet-io';
import { ipToU32 } from '../../src/wire/addr';
import { DROP_NAMES } from '../../src/xmit/verdict';

/**
 * A host that records what the control plane asks of it and serves paths set by the test.
 * With `resolves` set, an address without a path has no route (as with lvsd's own routing).
 */
export class FakeHost extends NoHostNet {
  override resolves = false;
  override announces = true;
  readonly calls: string[] = [];
  /** Paths by real-server address (dotted). */
  readonly paths = new Map<string, DestPath>();
  /** The host's own addresses (localAddrs). */
  readonly local = new Set<number>();

  override localAddrs(): ReadonlySet<number> {
    return this.local;
  }
  /** announce() calls, as "ADDR on|off" (apart from `calls`, which the path tests compare whole). */
  readonly announcements: string[] = [];

  override async announce(a: HostAddr, on: boolean): Promise<void> {
    this.announcements.push(`${hostAddrText(a)} ${on ? 'on' : 'off'}`);
  }

  override async addVip(a: HostAddr): Promise<void> {
    this.calls.push(`addVip ${hostAddrText(a)}`);
  }
  override async delVip(a: HostAddr): Promise<void> {
    this.calls.push(`delVip ${hostAddrText(a)}`);
  }
  override async addNatServer(a: HostAddr, dev: string): Promise<void> {
    this.calls.push(`addNat ${hostAddrText(a)} ${dev}`);
  }
  override async delNatServer(a: HostAddr): Promise<void> {
    this.calls.push(`delNat ${hostAddrText(a)}`);
  }
  /** destPath() calls (each an `ip route get` in lvsd). */
  destPathCalls = 0;

  override async destPath(a: HostAddr, neighbour: boolean): Promise<DestPath | undefined> {
    this.destPathCalls++;
    const p = this.paths.get(hostAddrText(a));
    if (p === undefined) return undefined;
    return neighbour ? p : { ...p, mac: undefined };
  }
  override async neighbourMacs(): Promise<Map<number, { mac: Buffer; dev: string }>> {
    const out = new Map<number, { mac: Buffer; dev: string }>();
    for (const [addr, p] of this.paths) if (p.mac !== undefined) out.set(ipToU32(addr), { mac: p.mac, dev: p.dev });
    return out;
  }
  override async addDrServer(a: HostAddr, dev: string): Promise<void> {
    this.calls.push(`addDr ${hostAddrText(a)} ${dev}`);
  }
  override async delDrServer(a: HostAddr): Promise<void> {
    this.calls.push(`delDr ${hostAddrText(a)}`);
  }
  override async addFwmark(mark: number, dev: string, v6 = false): Promise<void> {
    this.calls.push(`addFwmark ${mark} ${dev}${v6 ? ' -6' : ''}`);
  }
  override async delFwmark(mark: number, v6 = false): Promise<void> {
    this.calls.push(`delFwmark ${mark}${v6 ? ' -6' : ''}`);
  }
}

/** The addresses and MACs the engine tests share: client, VIP, two real servers, the director. */
export const CLIENT = '192.168.0.2';
export const VIP = '192.168.0.1';
export const RS1 = '172.16.0.1';
export const RS2 = '172.16.0.2';
export const DIRECTOR = '10.0.0.254';
export const RS_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
export const DEV_MAC = Buffer.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);

export interface TestDirector {
  io: MemoryIo;
  engine: Engine;
  /** The engine as the control plane reaches it. */
  plane: EnginePlane;
  balancer: Balancer;
  clock: { now: number };
  host: FakeHost;
  /** Push packets, run the engine, return what it sent. */
  send(...packets: Buffer[]): Buffer[];
  /** Advance the fake clock by `seconds` and run the expiry tick. */
  advance(seconds: number): number;
  /** Every connection as `-L -c` lists it, taken now. */
  connections(): ConnSnapshot[];
}

/**
 * `offload`: the slab of an offload TUN (each pushed packet starts with its virtio_net_hdr);
 * `maxConns`: the engine's connection limit (lvsd --max-conns).
 */
export function director(opts: { offload?: boolean; maxConns?: number } = {}): TestDirector {
  const clock = { now: 1000 };
  const io = new MemoryIo(opts.offload ? Slab.forOffload() : new Slab());
  const engine = new Engine(io, { clock: () => clock.now, maxConns: opts.maxConns });
  const host = new FakeHost();
  const plane = new EnginePlane(engine);
  const balancer = new Balancer(plane, host);
  io.start(
    () => engine.poll(),
    (err) => {
      throw err;
    },
  );
  return {
    io,
    engine,
    plane,
    balancer,
    clock,
    host,
    send(...packets: Buffer[]): Buffer[] {
      io.push(...packets);
      return io.takeSent();
    },
    connections(): ConnSnapshot[] {
      return connSnapshots(plane.connRowsNow());
    },
    advance(seconds: number): number {
      clock.now += seconds;
      return engine.tick();
    },
  };
}

/** The engine's drop counters by name (only reasons that occurred). */
export function drops(d: TestDirector): Record<string, number> {
  const out: Record<string, number> = {};
  d.engine.drops.forEach((n, i) => {
    if (i > 0 && n > 0) out[DROP_NAMES[i]] = n;
  });
  return out;
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
