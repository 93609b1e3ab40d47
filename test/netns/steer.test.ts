// Queue steering of a multi-queue TUN, against the kernel: helpers/steer-probe.js opens a
// four-queue TUN in a private namespace, attaches the eBPF program (native/src/steer.c) and
// sends requests, NAT replies, fragments and ICMP errors into it. Both directions of every flow
// must arrive on one queue, the flows must spread over the queues, and the TypeScript mirror
// (src/wire/steer-hash.ts) must name the queue the kernel chose for every packet.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steerHash } from '../../src/wire/steer-hash';
import { required } from '../helpers/netns';

const NS = `lvst-steer-${process.pid}-${randomBytes(3).toString('hex')}`;
const PROBE = path.join(__dirname, 'helpers', 'steer-probe.js');
const QUEUES = 4;

interface Sent {
  flow: number | string;
  kind: string;
  hex: string;
}
interface Probe {
  queues: number;
  fds: number;
  sent: number;
  vips: string[];
  packets: Sent[];
  received: { queue: number; hex: string }[];
  receivedAddrOnly: { queue: number; hex: string }[];
}

function createNamespace(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('ip', ['netns', 'add', NS], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `ip netns add failed: ${(err as Error).message}`;
  }
}

const skipReason = required(createNamespace());

describe.skipIf(skipReason !== undefined)('multi-queue TUN steering (TUNSETSTEERINGEBPF)', () => {
  let r: Probe;
  const queueOf = new Map<string, number>();

  beforeAll(() => {
    const child = spawnSync('ip', ['netns', 'exec', NS, process.execPath, PROBE, String(QUEUES)], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (child.status !== 0) throw new Error(`steer-probe failed (${child.status}):\n${child.stderr}`);
    const lines = child.stdout.trim().split('\n');
    r = JSON.parse(lines[lines.length - 1]!) as Probe;
    for (const x of r.received) queueOf.set(x.hex, x.queue);
  });

  afterAll(() => {
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'pipe' });
  });

  it('opens one fd per queue and every packet sent arrives on exactly one of them', () => {
    expect(r.fds).toBe(QUEUES);
    expect(r.sent).toBe(r.packets.length);
    for (const p of r.packets) expect(queueOf.has(p.hex), `${p.flow} ${p.kind}`).toBe(true);
  });

  it('puts both directions of each flow, its fragments and the ICMP errors about it on one queue', () => {
    const byFlow = new Map<string, Set<number>>();
    for (const p of r.packets) {
      const key = String(p.flow);
      if (!byFlow.has(key)) byFlow.set(key, new Set());
      byFlow.get(key)!.add(queueOf.get(p.hex)!);
    }
    for (const [flow, queues] of byFlow) expect(queues.size, `flow ${flow}`).toBe(1);
    // Flow 0 has its request, reply and both ICMP errors: four packets, one queue.
    expect(r.packets.filter((p) => p.flow === 0)).toHaveLength(4);
  });

  it('spreads 64 flows over all four queues', () => {
    const perQueue = new Array<number>(QUEUES).fill(0);
    for (const p of r.packets) if (p.kind === 'request') perQueue[queueOf.get(p.hex)!]!++;
    for (const n of perQueue) expect(n).toBeGreaterThanOrEqual(6);
  });

  it('the TypeScript mirror names the queue the kernel chose for every packet', () => {
    const vips = new Set(r.vips.map((v) => v.split('.').reduce((a, o) => a * 256 + Number(o), 0)));
    const isVip = (a: number): boolean => vips.has(a);
    for (const p of r.packets) {
      const b = Buffer.from(p.hex, 'hex');
      expect(steerHash(b, 0, b.length, isVip, false) % QUEUES, `${p.flow} ${p.kind}`).toBe(queueOf.get(p.hex));
    }
  });

  it('with the address-only switch on, steers by the masked client address alone, and the mirror agrees', () => {
    const vips = new Set(r.vips.map((v) => v.split('.').reduce((a, o) => a * 256 + Number(o), 0)));
    const isVip = (a: number): boolean => vips.has(a);
    const q2 = new Map(r.receivedAddrOnly.map((x) => [x.hex, x.queue]));
    const byClient = new Map<number, Set<number>>();
    for (const p of r.packets) {
      const b = Buffer.from(p.hex, 'hex');
      expect(steerHash(b, 0, b.length, isVip, false, 0xffffff00) % QUEUES, `${p.flow} ${p.kind}`).toBe(q2.get(p.hex));
      if (p.kind === 'request') {
        const client = b.readUInt32BE(12) >>> 8;
        if (!byClient.has(client)) byClient.set(client, new Set());
        byClient.get(client)!.add(q2.get(p.hex)!);
      }
    }
    // The 64 flows come from eight /24 networks: each network on one queue.
    expect(byClient.size).toBe(8);
    for (const queues of byClient.values()) expect(queues.size).toBe(1);
  });
});
