// npm run bench:engine — the packet engine alone, through the in-memory PacketIo (no syscalls):
// established-flow NAT packets per second (client → VIP data packets of open connections, each
// DNATed in place) and new connections per second (SYNs from distinct source ports).
// A benchmark, not a test: it prints numbers and asserts nothing.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EnginePlane } from '../src/core/data-plane';
import { Engine } from '../src/core/engine';
import { Balancer } from '../src/ctl/balancer';
import { NoHostNet } from '../src/ctl/host-net';
import { FWD_MASQ, IPPROTO_TCP } from '../src/ip-vs';
import { MemoryIo } from '../src/native/memory-io';
import { ipToU32 } from '../src/wire/addr';
import { Ipv4Repr } from '../src/wire/ipv4';
import { TCP_ACK, TCP_PSH, TCP_SYN, TcpRepr } from '../src/wire/tcp';

const VIP = '192.168.0.1';
const FLOWS = 1000;
const PAYLOAD = Buffer.alloc(64, 0x61);

function tcpPacket(src: number, sport: number, dst: number, dport: number, flags: number, payload: Buffer): Buffer {
  const t = new TcpRepr();
  t.srcPort = sport;
  t.dstPort = dport;
  t.flags = flags;
  t.seq = 1;
  t.ack = 1;
  const ip = new Ipv4Repr();
  ip.srcAddr = src;
  ip.dstAddr = dst;
  ip.protocol = IPPROTO_TCP;
  ip.ttl = 63;
  ip.payloadLen = t.bufferLen() + payload.length;
  const buf = Buffer.alloc(ip.bufferLen() + ip.payloadLen);
  ip.emit(buf, 0);
  t.emit(buf, ip.bufferLen(), src, dst, payload);
  return buf;
}

async function director(): Promise<{ engine: Engine; io: MemoryIo }> {
  const io = new MemoryIo(undefined, false);
  const engine = new Engine(io, { maxBatchesPerWakeup: 1 });
  // The SYN's own path (schedule, connection, DNAT), as the kernel takes it: the new-connection
  // and memory figures make far more half-open connections than the SYN proxy lets in.
  engine.synProxy = 0;
  const b = new Balancer(new EnginePlane(engine), new NoHostNet());
  const svc = { protocol: IPPROTO_TCP, addr: VIP, port: 80, fwmark: 0 };
  await b.addService({ ...svc, sched: 'wlc', flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' });
  for (const rs of ['172.16.0.1', '172.16.0.2']) {
    await b.addDest(svc, {
      addr: rs,
      port: 8080,
      fwd: FWD_MASQ,
      weight: 1,
      uThreshold: 0,
      lThreshold: 0,
      tunType: 0,
      tunPort: 0,
      tunFlags: 0,
    });
  }
  return { engine, io };
}

function measure(engine: Engine, seconds: number): number {
  const start = performance.now();
  let packets = 0;
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < 200; i++) {
      const n = engine.io.recv();
      engine.processBatch(n);
      packets += n;
    }
  }
  return packets / ((performance.now() - start) / 1000);
}

/** Rounds per figure: the machine's noise is large, so report the median and the spread. */
const ROUNDS = 7;

interface Figure {
  median: number;
  min: number;
  max: number;
}

async function rounds(run: () => number | Promise<number>): Promise<Figure> {
  const xs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) xs.push(await run());
  xs.sort((a, b) => a - b);
  return { median: xs[ROUNDS >> 1], min: xs[0], max: xs[ROUNDS - 1] };
}

async function established(seconds: number): Promise<Figure> {
  const { engine, io } = await director();
  const client = ipToU32('10.1.0.0');
  const vip = ipToU32(VIP);
  const syns: Buffer[] = [];
  const data: Buffer[] = [];
  for (let f = 0; f < FLOWS; f++) {
    const src = (client + (f >> 8)) >>> 0;
    const sport = 10000 + (f & 0xff);
    syns.push(tcpPacket(src, sport, vip, 80, TCP_SYN, Buffer.alloc(0)));
    data.push(tcpPacket(src, sport, vip, 80, TCP_ACK | TCP_PSH, PAYLOAD));
  }
  io.push(...syns);
  for (let n = io.recv(); n > 0; n = io.recv()) engine.processBatch(n);
  if (engine.conns.count !== FLOWS) throw new Error(`expected ${FLOWS} connections, have ${engine.conns.count}`);
  io.replayForever(data);
  measure(engine, 0.5); // warm-up
  const pps = await rounds(() => measure(engine, seconds / ROUNDS));
  const dropped = engine.drops.reduce((a, b) => a + b, 0);
  if (dropped > 0) throw new Error(`the benchmark dropped ${dropped} packets`);
  return pps;
}

function newConnections(seconds: number): Promise<Figure> {
  return rounds(() => newConnectionsOnce(seconds / ROUNDS));
}

async function newConnectionsOnce(seconds: number): Promise<number> {
  const { engine, io } = await director();
  const vip = ipToU32(VIP);
  // 64 k distinct clients × ports; connections expire after SYN_RECV's 60 s, beyond the run.
  const syns: Buffer[] = [];
  for (let f = 0; f < 65536; f++)
    syns.push(tcpPacket((ipToU32('10.2.0.0') + f) >>> 0, 20000, vip, 80, TCP_SYN, Buffer.alloc(0)));
  io.replayForever(syns);
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < seconds * 1000 && n < syns.length - 64) {
    const got = io.recv();
    engine.processBatch(got);
    n += got;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Force a full collection (the flag is set at start; see main). */
function collect(): void {
  (runInNewContext('gc') as () => void)();
}

/**
 * Bytes of memory per tracked connection, measured at 1,000,000 connections: the growth of the
 * heap plus array buffers between an empty engine and one tracking that many (all created by
 * real SYNs through `process`, each from its own client address and port).
 */
async function memoryPerConnection(count: number): Promise<number> {
  const { engine } = await director();
  const template = tcpPacket(0, 0, ipToU32(VIP), 80, TCP_SYN, Buffer.alloc(0));
  const buf = Buffer.alloc(template.length + 64);
  collect();
  const before = process.memoryUsage();
  const base = ipToU32('10.0.0.0');
  for (let i = 0; i < count; i++) {
    buf.set(template, 64);
    buf.writeUInt32BE((base + (i >>> 6)) >>> 0, 64 + 12);
    buf.writeUInt16BE(1024 + (i & 63), 64 + 20);
    engine.process(buf, 64, template.length);
  }
  if (engine.conns.count !== count) throw new Error(`expected ${count} connections, have ${engine.conns.count}`);
  collect();
  const after = process.memoryUsage();
  const grown = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  return grown / count;
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3);
  setFlagsFromString('--expose-gc');
  const pps = await established(seconds);
  const cps = await newConnections(seconds);
  const perConn = await memoryPerConnection(1_000_000);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  const fig = (f: Figure) => `${fmt(f.median)} [${fmt(f.min)}–${fmt(f.max)}]`;
  console.log(`engine (in-memory PacketIo, one core, node ${process.version}; median of ${ROUNDS} rounds [min–max])`);
  console.log(`  established NAT flows (${FLOWS} flows, 104-byte packets): ${fig(pps)} packets/s`);
  console.log(`  new connections (SYN → schedule wlc → conn → DNAT):     ${fig(cps)} conns/s`);
  console.log(`  memory per tracked connection at 1,000,000 connections: ${Math.round(perConn)} bytes`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
