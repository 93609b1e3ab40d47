// Seeded packet generation for the engine fuzz suite (test/unit/engine-fuzz.test.ts): valid
// "golden" packets of every kind a director meets, derived from a lab's services and from the
// flows it has already seen, then mutated.
//
//   golden kinds   TCP SYN / ACK / data / FIN / RST client -> VIP and the real server's replies;
//                  UDP both ways; ICMP echo; ICMP errors (dest unreachable, frag needed, time
//                  exceeded, ...) quoting TCP/UDP packets of live flows in both directions, also
//                  truncated, with quoted options, or nested; IPv4 fragments (clean splits in any
//                  order with duplicates, and dirty ones: random offsets, overlaps, huge offsets);
//                  IP and TCP options; FTP control traffic (PASV/EPSV, 227/229 replies, PORT/EPRT
//                  with sane, huge and malformed numbers, very long and pipelined lines) and the
//                  data connections it announces; bypass traffic and garbage.
//   mutations      truncation, junk extension, bit flips, random bytes at header offsets (version
//                  and IHL, total length, flags/fragment offset, protocol, TCP data offset, UDP
//                  length, ...), bad checksums; on an offload lab random virtio_net_hdr fields.
//   fix-ups        most mutated packets get their IPv4 header checksum recomputed (the kernel
//                  drops a bad one before the TUN, so only a few keep it), many their L4 checksum,
//                  so that mutated content also reaches the paths behind the parsers.
//
// Everything comes from one Rng, so a seed replays a run byte for byte. Packets are built with the
// fluent builder, then mutated as bytes; this file never imports the engine.

import { packet, addr as toU32 } from './packet-builder';
import { mulberry32 } from './prng';

/** A seeded source of random choices (mulberry32 underneath). */
export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  u32(): number {
    return this.next();
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.next(), i);
    for (; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}

/** A dest as a lab declares it. */
export interface DestDesc {
  addr: string;
  port: number;
  fwd: number;
  weight?: number;
}

/** A virtual service as a lab declares it (the generator aims traffic at it). */
export interface ServiceDesc {
  protocol: 6 | 17;
  vip: string;
  port: number;
  persistent?: boolean;
  /** One-packet scheduling (UDP). */
  ops?: boolean;
  dests: DestDesc[];
}

/** What the generator needs to know of a lab. */
export interface GenSpec {
  services: ServiceDesc[];
  /** Every packet carries a 10-byte virtio_net_hdr (offload TUN). */
  offload: boolean;
  /** Largest packet the lab's rx slot holds (longer ones are truncated by the fake TUN). */
  maxPacket: number;
}

/** Where the engine sent a flow (NAT: its real server address and port), if it tracks it. */
export type ConnPeek = (protocol: number, caddr: number, cport: number, vaddr: number, vport: number) => Peeked | null;

export interface Peeked {
  daddr: number;
  dport: number;
  /** A TCP connection in ESTABLISHED. */
  established: boolean;
}

/** One generated input. */
export interface FuzzInput {
  /** The IPv4 packet (possibly mutated into anything). */
  ip: Buffer;
  /** Offload labs: its virtio_net_hdr. */
  vnet?: Buffer;
  /** A fragment cut cleanly from a valid datagram (see fuzz-oracle.ts: reassembly relaxation). */
  cleanFragment?: boolean;
}

/** The bytes to push: the virtio_net_hdr (if any) and the packet. */
export function wire(input: FuzzInput): Buffer {
  return input.vnet === undefined ? input.ip : Buffer.concat([input.vnet, input.ip]);
}

// ---------------------------------------------------------------------------------------------
// Checksums (own implementation, like packet-assert.ts: nothing here trusts src/wire).

export function sumWords(buf: Buffer, from: number, to: number, init = 0): number {
  let s = init;
  let i = from;
  for (; i + 1 < to; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < to) s += buf[i] << 8;
  return s;
}

export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function pseudoSum(ip: Buffer, protocol: number, len: number): number {
  return sumWords(ip, 12, 20) + protocol + len;
}

/** Recompute the IPv4 header checksum when the IHL lies inside the buffer. */
export function fixIpChecksum(ip: Buffer): void {
  if (ip.length < 20) return;
  const ihl = (ip[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > ip.length) return;
  ip.writeUInt16BE(0, 10);
  ip.writeUInt16BE(~fold(sumWords(ip, 0, ihl)) & 0xffff, 10);
}

/** The L4 range [ihl, end) of an unfragmented packet whose lengths are sane, or null. */
function l4Range(ip: Buffer): { ihl: number; end: number } | null {
  if (ip.length < 20 || ip[0] >> 4 !== 4) return null;
  const ihl = (ip[0] & 0x0f) * 4;
  const total = ip.readUInt16BE(2);
  if (ihl < 20 || total < ihl || total > ip.length) return null;
  if ((ip.readUInt16BE(6) & 0x3fff) !== 0) return null;
  return { ihl, end: total };
}

/**
 * Recompute the L4 checksum (TCP, UDP over its length field, ICMP) of an unfragmented packet;
 * `partial`: write the folded pseudo-header sum instead (an offload TUN's partial checksum).
 */
export function fixL4Checksum(ip: Buffer, partial = false): void {
  const r = l4Range(ip);
  if (r === null) return;
  const { ihl, end } = r;
  const p = ip[9];
  if (p === 6 && end - ihl >= 20) {
    ip.writeUInt16BE(0, ihl + 16);
    const ps = pseudoSum(ip, 6, end - ihl);
    ip.writeUInt16BE(partial ? fold(ps) : ~fold(sumWords(ip, ihl, end, ps)) & 0xffff, ihl + 16);
  } else if (p === 17 && end - ihl >= 8) {
    let len = ip.readUInt16BE(ihl + 4);
    if (len < 8 || len > end - ihl) len = end - ihl;
    ip.writeUInt16BE(0, ihl + 6);
    const ps = pseudoSum(ip, 17, len);
    const c = partial ? fold(ps) : ~fold(sumWords(ip, ihl, ihl + len, ps)) & 0xffff;
    ip.writeUInt16BE(c === 0 && !partial ? 0xffff : c, ihl + 6);
  } else if (p === 1 && end - ihl >= 4) {
    // ICMP has no pseudo-header: its partial checksum is 0.
    ip.writeUInt16BE(0, ihl + 2);
    if (!partial) ip.writeUInt16BE(~fold(sumWords(ip, ihl, end)) & 0xffff, ihl + 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses and building blocks.

const CLIENTS = [
  '10.0.0.1',
  '10.0.0.2',
  '10.0.0.3',
  '10.0.0.4',
  '10.0.1.7',
  '10.0.1.8',
  '10.2.3.4',
  '10.9.8.7',
  '172.20.0.9',
  '192.168.7.7',
];
/** Hosts that are neither clients, VIPs nor real servers: bypass traffic and routers. */
const STRANGERS = ['10.200.0.1', '10.200.0.2', '8.8.8.8', '203.0.113.9', '172.16.0.99'];
const ROUTERS = ['10.99.0.1', '10.99.0.2'];

const TCP_FLAGS = ['S', 'SA', 'A', 'PA', 'FA', 'R', 'RA', 'SR', 'SF', 'F', '', 'SAFRPUEC', 'U', 'EC', 'SE'];

function ipOptions(r: Rng): Buffer {
  switch (r.int(8)) {
    case 0:
      return Buffer.alloc(r.range(1, 40), 1); // NOPs
    case 1: {
      const slots = r.range(1, 9); // record route
      const o = Buffer.alloc(3 + 4 * slots);
      o[0] = 7;
      o[1] = o.length;
      o[2] = 4;
      return o;
    }
    case 2: {
      const o = Buffer.alloc(4 + 4 * r.range(1, 9)); // timestamp
      o[0] = 0x44;
      o[1] = o.length;
      o[2] = 5;
      return o;
    }
    case 3:
      return Buffer.from([0x94, 4, 0, 0]); // router alert (copied)
    case 4:
      return Buffer.from([0x83, 7, 4, 10, 0, 0, 1]); // loose source route (copied)
    case 5:
      return Buffer.from([7, 0xff, 4]); // record route with a length running off the header
    case 6:
      return Buffer.from([0x88, 1]); // a copied option whose length is too small
    default:
      return r.bytes(r.range(1, 40)); // junk
  }
}

function tcpOptions(r: Rng): Buffer {
  switch (r.int(6)) {
    case 0:
      return Buffer.from([2, 4, 0x05, 0xb4]); // MSS 1460
    case 1:
      return Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    case 2:
      return Buffer.from([1, 1, 4, 2]); // NOP NOP SACK-permitted
    case 3:
      return Buffer.from([5, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // a SACK block
    case 4:
      return Buffer.from([2, 0xff]); // a length running off the header
    default:
      return r.bytes(r.range(1, 40));
  }
}

function payload(r: Rng, max: number): Buffer {
  const n = r.chance(0.5) ? r.int(64) : r.chance(0.9) ? r.int(Math.min(max, 1500)) : r.int(max + 1);
  return r.chance(0.3) ? Buffer.from('x'.repeat(n)) : r.bytes(n);
}

interface IpKnobs {
  id?: number;
  df?: boolean;
  options?: Buffer;
}

function ipKnobs(r: Rng): { ttl: number; tos: number; df: boolean; id: number; options?: Buffer } {
  return {
    ttl: r.chance(0.9) ? r.pick([63, 64, 62]) : r.int(256),
    tos: r.chance(0.8) ? 0 : r.int(256),
    df: r.chance(0.6),
    id: 0x8000 | r.int(0x8000),
    options: r.chance(0.08) ? ipOptions(r) : undefined,
  };
}

function tcpPacket(
  r: Rng,
  src: number,
  dst: number,
  sport: number,
  dport: number,
  flags: string,
  seq: number,
  ack: number,
  body: Buffer,
  k: IpKnobs = {},
): Buffer {
  const ip = ipKnobs(r);
  return packet()
    .ipv4({ src, dst, ...ip, ...stripUndefined(k) })
    .tcp({
      sport,
      dport,
      flags,
      seq: seq >>> 0,
      ack: ack >>> 0,
      window: r.chance(0.9) ? 65535 : r.int(0x10000),
      urgent: r.chance(0.05) ? r.int(0x10000) : 0,
      options: r.chance(0.15) ? tcpOptions(r) : undefined,
    })
    .payload(body)
    .build();
}

function udpPacket(
  r: Rng,
  src: number,
  dst: number,
  sport: number,
  dport: number,
  body: Buffer,
  k: IpKnobs = {},
): Buffer {
  const ip = ipKnobs(r);
  return packet()
    .ipv4({ src, dst, ...ip, ...stripUndefined(k) })
    .udp({ sport, dport, checksum: r.chance(0.9) })
    .payload(body)
    .build();
}

function icmpPacket(
  r: Rng,
  src: number,
  dst: number,
  type: number,
  code: number,
  rest: number,
  body: Buffer,
  k: IpKnobs = {},
): Buffer {
  const ip = ipKnobs(r);
  return packet()
    .ipv4({ src, dst, ...ip, ...stripUndefined(k) })
    .icmp({ type, code, rest: rest >>> 0, payload: body })
    .build();
}

function stripUndefined(k: IpKnobs): IpKnobs {
  const o: IpKnobs = {};
  if (k.id !== undefined) o.id = k.id;
  if (k.df !== undefined) o.df = k.df;
  if (k.options !== undefined) o.options = k.options;
  return o;
}

function octets(a: number): number[] {
  return [a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff];
}

// ---------------------------------------------------------------------------------------------
// FTP control payloads.

/** A number field of an FTP command or reply: mostly sane, sometimes huge or malformed. */
function ftpNumber(r: Rng, sane: number): string {
  switch (r.int(14)) {
    case 0:
      return '999';
    case 1:
      return '4294967296';
    case 2:
      return '-1';
    case 3:
      return '';
    case 4:
      return `000${sane}`;
    case 5:
      return '1e3';
    default:
      return String(sane);
  }
}

function sixTuple(r: Rng, a: number, port: number): string {
  const parts = [...octets(a), port >> 8, port & 0xff];
  if (r.chance(0.15)) return parts.map((n) => ftpNumber(r, n)).join(r.chance(0.1) ? ';' : ',');
  const s = parts.join(',');
  return r.chance(0.05) ? `${s},7` : s;
}

function lineEnd(r: Rng): string {
  return r.chance(0.75) ? '\r\n' : r.pick(['\r', '\n', '', ' \r\n', '\r\r\n']);
}

function longLine(r: Rng): string {
  return `${r.pick(['NOOP ', '', '227 ', 'PORT '])}${'A'.repeat(r.range(200, 1400))}${lineEnd(r)}`;
}

/** Client -> server control text; `dataPort` is what a PORT/EPRT announces. */
function ftpCommand(r: Rng, client: number, dataPort: number): { text: string; kind: 'pasv' | 'port' | 'other' } {
  const kw = (s: string) => (r.chance(0.2) ? s.toLowerCase() : s);
  switch (r.int(9)) {
    case 0:
      return { text: `${kw('PASV')}${lineEnd(r)}`, kind: 'pasv' };
    case 1:
      return { text: `${kw('EPSV')}${r.pick(['', ' 1', ' 2', ' ALL'])}${lineEnd(r)}`, kind: 'pasv' };
    case 2:
    case 3: {
      const a = r.chance(0.8) ? client : r.u32();
      return {
        text: `${kw('PORT')}${r.pick([' ', ' ', '  ', ''])}${sixTuple(r, a, dataPort)}${lineEnd(r)}`,
        kind: 'port',
      };
    }
    case 4: {
      const a = octets(r.chance(0.8) ? client : r.u32()).join('.');
      const d = r.pick(['|', '|', '!', '1', '.', ' ']);
      const port = r.chance(0.8) ? String(dataPort) : ftpNumber(r, r.pick([0, 65536, 99999, 65535]));
      return { text: `${kw('EPRT')} ${d}${r.pick(['1', '2', ''])}${d}${a}${d}${port}${d}${lineEnd(r)}`, kind: 'port' };
    }
    case 5:
      return { text: longLine(r), kind: 'other' };
    case 6: {
      // Pipelined: the interesting command on a later line.
      const inner = ftpCommand(r, client, dataPort);
      return { text: `NOOP\r\nTYPE I\r\n${inner.text}`, kind: inner.kind };
    }
    case 7:
      return { text: r.pick(['USER ftp\r\n', 'RETR x\r\n', 'LIST\r\n', 'QUIT\r\n', 'PASVX\r\n']), kind: 'other' };
    default:
      return { text: r.bytes(r.int(64)).toString('latin1'), kind: 'other' };
  }
}

/** Server -> client control text; `rs` and `dataPort` go into a 227 or 229 reply. */
function ftpReply(r: Rng, rs: number, dataPort: number): string {
  if (r.chance(0.05)) {
    // A 227 at the end of a segment that nearly fills the 1984-byte rx slot: the rewrite to the
    // VIP makes it longer ("1,2,3,4" grows by four), and it must not grow out of its slot.
    const a = r.chance(0.5) ? rs : 0x01020304;
    return `${'1'.repeat(r.range(1820, 1900))}\r\n227 Entering Passive Mode (${sixTuple(r, a, dataPort)})\r\n`;
  }
  switch (r.int(8)) {
    case 0:
    case 1:
      return `227 Entering Passive Mode (${sixTuple(r, rs, dataPort)})${r.pick(['.', ''])}${lineEnd(r)}`;
    case 2:
      return `227 =${sixTuple(r, rs, dataPort)}${lineEnd(r)}`;
    case 3:
      return `229 Entering Extended Passive Mode (|||${r.chance(0.8) ? dataPort : ftpNumber(r, 70000)}|)${lineEnd(r)}`;
    case 4:
      return longLine(r);
    case 5:
      return `150 ok\r\n227 Entering Passive Mode (${sixTuple(r, rs, dataPort)})\r\n`;
    case 6:
      return r.pick(['220 hello\r\n', '200 ok\r\n', '226 done\r\n', '227 (\r\n', '229 (|||)\r\n']);
    default:
      return r.bytes(r.int(80)).toString('latin1');
  }
}

// ---------------------------------------------------------------------------------------------
// Flows and the generator.

interface Flow {
  protocol: 6 | 17;
  client: number;
  cport: number;
  vip: number;
  vport: number;
  svc: ServiceDesc | undefined;
  ftp: boolean;
  seqC: number;
  seqS: number;
  /**
   * TCP handshake script: 0 the client's SYN went, 1 the server's SYN+ACK went, 2 the client's
   * ACK went (ESTABLISHED on the director: the FTP helper looks only then). Scripted steps are
   * followed most of the time, so connections get established; the rest is free-form.
   */
  phase: number;
  /** A PASV/EPSV was sent; the next server reply may be a 227/229. */
  passive: boolean;
  /**
   * Active FTP data connection: the real server opens it from its port 20 (server side known
   * once the control connection's real server is known).
   */
  activeFrom?: { rs: number; rport: number };
}

/** Pending FTP data connections the generator announced. */
interface DataPlan {
  client: number;
  vip: number;
  port: number;
  /** Active: the real server (and its port 20) connects to the client's port. */
  rs?: number;
}

const MAX_FLOWS = 48;

/** Generates the inputs for one lab, from the lab's services and what the engine tracks. */
export class PacketFuzzer {
  private readonly flows: Flow[] = [];
  private readonly plans: DataPlan[] = [];
  /** Fragments generated for later batches. */
  private readonly pending: FuzzInput[] = [];
  private cleanId = 0;
  private readonly vips: number[];

  constructor(
    private readonly spec: GenSpec,
    private readonly r: Rng,
    private readonly peek: ConnPeek,
  ) {
    this.vips = [...new Set(spec.services.map((s) => toU32(s.vip)))];
  }

  /** `n` inputs (pending fragments from earlier batches first, up to a few). */
  batch(n: number): FuzzInput[] {
    const out: FuzzInput[] = [];
    for (let i = 0; i < 4 && this.pending.length > 0 && out.length < n; i++) out.push(this.pending.shift()!);
    while (out.length < n) {
      for (const input of this.next()) {
        if (out.length < n) out.push(input);
        else this.pending.push(input);
      }
    }
    if (this.pending.length > 256) this.pending.splice(0, this.pending.length - 256);
    return out;
  }

  /** One generated item: usually one packet, a set of fragments for the fragment kind. */
  private next(): FuzzInput[] {
    const r = this.r;
    const x = r.float();
    if (x < 0.08) return this.fragments();
    let ip: Buffer;
    if (x < 0.22) ip = this.newFlow();
    else if (x < 0.46) ip = this.clientPacket();
    else if (x < 0.64) ip = this.serverPacket();
    else if (x < 0.69) ip = this.dataConnection();
    else if (x < 0.77) ip = this.icmpError();
    else if (x < 0.83) ip = this.icmpOther();
    else if (x < 0.92) ip = this.bypassTraffic();
    else ip = this.garbage();
    const scripted = this.scripted;
    this.scripted = false;
    return [this.finish(ip, scripted ? 0.1 : 0.45)];
  }

  /** The packet being made follows a script (handshake, FTP): mutated less, so scripts get through. */
  private scripted = false;

  /** Offload header, mutation and fix-ups for a golden packet. */
  private finish(golden: Buffer, mutateP = 0.45): FuzzInput {
    const r = this.r;
    let ip = golden;
    let vnet: Buffer | undefined;
    let partial = false;
    if (this.spec.offload) {
      ({ vnet, partial } = this.offloadHeader(ip));
      if (partial) fixL4Checksum(ip, true);
    }
    if (r.chance(mutateP)) {
      ip = mutate(r, ip);
      if (r.chance(0.85)) {
        if (r.chance(0.5)) fixL4Checksum(ip, partial);
        fixIpChecksum(ip);
      }
    }
    if (vnet !== undefined && r.chance(0.08)) mutateVnet(r, vnet, ip);
    return vnet === undefined ? { ip } : { ip, vnet };
  }

  /** A virtio_net_hdr for a golden packet: none, a partial checksum, or TCP GSO. */
  private offloadHeader(ip: Buffer): { vnet: Buffer; partial: boolean } {
    const r = this.r;
    const vnet = Buffer.alloc(10);
    const rg = l4Range(ip);
    const p = ip[9];
    if (rg !== null && p === 1 && rg.end - rg.ihl >= 8 && r.chance(0.1)) {
      // Another protocol's partial checksum (the engine accepts one anywhere inside the packet).
      vnet[0] = 1;
      vnet.writeUInt16LE(rg.ihl, 6);
      vnet.writeUInt16LE(2, 8);
      return { vnet, partial: true };
    }
    if (rg === null || (p !== 6 && p !== 17) || r.chance(0.5)) return { vnet, partial: false };
    const ihl = rg.ihl;
    vnet[0] = 1; // NEEDS_CSUM
    vnet.writeUInt16LE(ihl, 6);
    vnet.writeUInt16LE(p === 6 ? 16 : 6, 8);
    const payloadLen = rg.end - ihl - (p === 6 ? (ip[ihl + 12] >> 4) * 4 : 8);
    if (p === 6 && payloadLen > 1 && r.chance(0.5)) {
      vnet[1] = 1; // GSO_TCPV4
      vnet.writeUInt16LE(ihl + (ip[ihl + 12] >> 4) * 4, 2);
      vnet.writeUInt16LE(r.chance(0.8) ? r.pick([1448, 1460, 536, 8948]) : r.range(1, payloadLen), 4);
    } else {
      vnet.writeUInt16LE(ihl + 8, 2);
    }
    return { vnet, partial: true };
  }

  // -- flows ------------------------------------------------------------------------------------

  private payloadMax(): number {
    // Offload labs take 64 KiB packets (GSO); others mostly stay below the 1984-byte rx slot.
    return this.spec.offload ? (this.r.chance(0.1) ? 30000 : 3000) : 2000;
  }

  /** A service to open a flow to; FTP control connections are favoured (the helper needs them). */
  private pickService(): ServiceDesc {
    const ftp = this.spec.services.find((s) => s.protocol === 6 && s.port === 21);
    return ftp !== undefined && this.r.chance(0.25) ? ftp : this.r.pick(this.spec.services);
  }

  private newFlow(): Buffer {
    const r = this.r;
    const svc = this.pickService();
    // Sometimes a port no service has (no_service; FTP data fallback for TCP >= 1024).
    const vport = r.chance(0.1) ? r.pick([20, 1023, 1024, 30000, 65535, 0]) : svc.port;
    const f: Flow = {
      protocol: svc.protocol,
      client: toU32(r.pick(CLIENTS)),
      cport: r.chance(0.7) ? 40000 + r.int(24) : r.range(1, 65535),
      vip: toU32(svc.vip),
      vport,
      svc,
      ftp: svc.protocol === 6 && svc.port === 21 && vport === 21,
      seqC: r.u32(),
      seqS: r.u32(),
      phase: 0,
      passive: false,
    };
    if (svc.port === 0 && vport === 0) f.vport = r.range(1, 65535);
    this.remember(f);
    if (f.protocol === 17) return udpPacket(r, f.client, f.vip, f.cport, f.vport, payload(r, this.payloadMax()));
    const flags = r.chance(0.85) ? 'S' : r.pick(TCP_FLAGS);
    if (flags !== 'S') f.phase = 2;
    this.scripted = f.ftp;
    f.seqC = (f.seqC + 1) >>> 0;
    return tcpPacket(r, f.client, f.vip, f.cport, f.vport, flags, f.seqC - 1, 0, payload(r, r.chance(0.9) ? 0 : 200));
  }

  private remember(f: Flow): void {
    if (this.flows.length >= MAX_FLOWS) this.flows.splice(this.r.int(this.flows.length), 1);
    this.flows.push(f);
  }

  /** A flow to continue: one in its handshake (`phase`), an FTP control flow, or any recent one. */
  private someFlow(phase = -1): Flow | undefined {
    const r = this.r;
    const flows = this.flows;
    if (flows.length === 0) return undefined;
    if (phase >= 0 && r.chance(0.6)) {
      const mid = flows.filter((f) => f.protocol === 6 && f.phase === phase);
      if (mid.length > 0) return r.pick(mid);
    }
    if (r.chance(0.3)) {
      const ftp = flows.filter((f) => f.ftp && f.phase === 2);
      if (ftp.length > 0) return r.pick(ftp);
    }
    // Favour recent flows (they are more likely to be live).
    const n = flows.length;
    return flows[r.chance(0.6) ? n - 1 - r.int(Math.min(n, 6)) : r.int(n)];
  }

  /** The real server end of a flow as the engine tracks it, else a guess from the service's dests. */
  private serverSide(f: Flow): { addr: number; port: number } {
    if (f.activeFrom !== undefined) return { addr: f.activeFrom.rs, port: f.activeFrom.rport };
    const seen = this.peek(f.protocol, f.client, f.cport, f.vip, f.vport);
    if (seen !== null && this.r.chance(0.95)) return { addr: seen.daddr, port: seen.dport };
    const dests = f.svc?.dests ?? [];
    if (dests.length === 0 || this.r.chance(0.1)) return { addr: toU32(this.r.pick(STRANGERS)), port: f.vport };
    const d = this.r.pick(dests);
    return { addr: toU32(d.addr), port: d.port === 0 ? f.vport : d.port };
  }

  private clientPacket(): Buffer {
    const r = this.r;
    const f = this.someFlow(1);
    if (f === undefined) return this.newFlow();
    if (f.activeFrom !== undefined) {
      // The client's side of an active FTP data connection: to VIP:20.
      const flags = r.pick(['A', 'PA', 'FA', 'R']);
      return tcpPacket(r, f.client, f.vip, f.cport, 20, flags, f.seqC, f.seqS, payload(r, 200));
    }
    if (f.protocol === 17) return udpPacket(r, f.client, f.vip, f.cport, f.vport, payload(r, this.payloadMax()));
    let body: Buffer;
    let flags: string;
    const ftpReady = f.ftp && f.phase === 2 && r.chance(0.7);
    const conn = ftpReady ? this.peek(6, f.client, f.cport, f.vip, f.vport) : null;
    if (ftpReady && conn === null && r.chance(0.8)) {
      // The control connection is gone (or never made it): open it again.
      this.scripted = true;
      f.phase = 0;
      f.seqC = (f.seqC + 1) >>> 0;
      return tcpPacket(r, f.client, f.vip, f.cport, f.vport, 'S', f.seqC - 1, 0, Buffer.alloc(0));
    }
    if ((f.phase === 1 && r.chance(0.9)) || (conn !== null && !conn.established && r.chance(0.8))) {
      this.scripted = true;
      f.phase = 2;
      flags = 'A';
      body = Buffer.alloc(0);
    } else if (ftpReady) {
      this.scripted = true;
      const plan: DataPlan = { client: f.client, vip: f.vip, port: 1024 + r.int(60000) };
      const cmd = ftpCommand(r, f.client, plan.port);
      body = Buffer.from(cmd.text, 'latin1');
      flags = 'PA';
      f.passive = cmd.kind === 'pasv';
      if (cmd.kind === 'port') {
        const rs = this.serverSide(f);
        plan.rs = rs.addr;
        this.plan(plan);
      }
    } else {
      flags = this.freeFlags(f);
      body = flags.includes('P') ? payload(r, this.payloadMax()) : Buffer.alloc(0);
    }
    // Retransmissions now and then (the sequence fix-ups must cope).
    const seq = r.chance(0.1) ? f.seqC - body.length : f.seqC;
    f.seqC = (f.seqC + body.length + (flags.includes('S') || flags.includes('F') ? 1 : 0)) >>> 0;
    return tcpPacket(r, f.client, f.vip, f.cport, f.vport, flags, seq, f.seqS, body);
  }

  /** Flags of a segment off the script: mostly data and acks; FIN, RST and oddities now and then. */
  private freeFlags(f: Flow): string {
    const r = this.r;
    if (r.chance(f.ftp ? 0.95 : 0.6)) return r.pick(['A', 'PA', 'PA']);
    return r.pick(['FA', 'R', 'S', 'SA', ...TCP_FLAGS]);
  }

  private serverPacket(): Buffer {
    const r = this.r;
    const f = this.someFlow(0);
    if (f === undefined) return this.newFlow();
    const rs = this.serverSide(f);
    if (f.protocol === 17) return udpPacket(r, rs.addr, f.client, rs.port, f.cport, payload(r, this.payloadMax()));
    let body: Buffer = Buffer.alloc(0);
    let flags = this.freeFlags(f);
    if (f.phase === 0 && r.chance(0.9)) {
      this.scripted = true;
      f.phase = 1;
      flags = 'SA';
    } else if (f.ftp && f.phase === 2 && (f.passive || r.chance(0.3))) {
      this.scripted = true;
      const port = 1024 + r.int(60000);
      const text = ftpReply(r, rs.addr, port);
      body = Buffer.from(text, 'latin1');
      flags = 'PA';
      if (text.startsWith('227') || text.startsWith('229') || text.includes('\n227')) {
        this.plan({ client: f.client, vip: f.vip, port });
      }
    } else if (flags.includes('P')) {
      body = payload(r, this.payloadMax());
    }
    const seq = r.chance(0.1) ? f.seqS - body.length : f.seqS;
    f.seqS = (f.seqS + body.length + (flags.includes('S') || flags.includes('F') ? 1 : 0)) >>> 0;
    return tcpPacket(r, rs.addr, f.client, rs.port, f.cport, flags, seq, f.seqC, body);
  }

  private plan(p: DataPlan): void {
    if (this.plans.length >= 16) this.plans.shift();
    this.plans.push(p);
  }

  /** An FTP data connection the generator announced: passive from the client, active from the RS. */
  private dataConnection(): Buffer {
    const r = this.r;
    const p = this.plans.length > 0 ? this.plans.splice(r.int(this.plans.length), 1)[0] : undefined;
    if (p === undefined) return this.newFlow();
    const f: Flow = {
      protocol: 6,
      client: p.client,
      cport: p.rs === undefined ? 40000 + r.int(1000) : p.port,
      vip: p.vip,
      vport: p.rs === undefined ? p.port : 20,
      svc: undefined,
      ftp: false,
      seqC: r.u32(),
      seqS: r.u32(),
      phase: 0,
      passive: false,
    };
    if (p.rs !== undefined) {
      f.activeFrom = { rs: p.rs, rport: 20 };
      this.remember(f);
      // The real server connects from port 20 to the port the client announced.
      return tcpPacket(r, p.rs, p.client, 20, p.port, r.chance(0.9) ? 'S' : 'SA', f.seqS, 0, Buffer.alloc(0));
    }
    this.remember(f);
    return tcpPacket(r, f.client, f.vip, f.cport, f.vport, 'S', f.seqC, 0, Buffer.alloc(0));
  }

  // -- ICMP -------------------------------------------------------------------------------------

  /** An ICMP error quoting a packet of a flow (either direction) or of nothing. */
  private icmpError(): Buffer {
    const r = this.r;
    const f = this.someFlow();
    const [type, code] = r.pick([
      [3, 3],
      [3, 4],
      [3, 1],
      [3, 13],
      [11, 0],
      [11, 1],
      [4, 0],
      [5, 1],
      [12, 0],
      [3, r.int(16)],
      [r.int(20), r.int(20)],
    ] as const);
    const rest =
      type === 3 && code === 4 ? r.pick([0, 68, 576, 1000, 1400, 1500, 0xffff]) : r.chance(0.9) ? 0 : r.u32();
    let quotedSrc: number;
    let quotedDst: number;
    let sport: number;
    let dport: number;
    let protocol: number;
    let outerSrc: number;
    let outerDst: number;
    if (f === undefined || r.chance(0.1)) {
      quotedSrc = r.u32();
      quotedDst = toU32(r.pick(this.vips));
      sport = r.int(0x10000);
      dport = r.int(0x10000);
      protocol = r.pick([6, 17]);
      outerSrc = toU32(r.pick(ROUTERS));
      outerDst = r.chance(0.5) ? toU32(r.pick(this.vips)) : r.u32();
    } else {
      const rs = this.serverSide(f);
      protocol = f.protocol;
      if (r.chance(0.5)) {
        // From the real server (or a router behind it) about the client's packet it got.
        quotedSrc = f.client;
        quotedDst = rs.addr;
        sport = f.cport;
        dport = rs.port;
        outerSrc = r.chance(0.85) ? rs.addr : toU32(r.pick(ROUTERS));
        outerDst = f.client;
      } else {
        // From a router towards the VIP about the reply that left the director.
        quotedSrc = f.vip;
        quotedDst = f.client;
        sport = f.activeFrom !== undefined ? 20 : f.vport;
        dport = f.cport;
        outerSrc = toU32(r.pick(ROUTERS));
        outerDst = f.vip;
      }
    }
    const quoted = this.quotedPacket(protocol, quotedSrc, quotedDst, sport, dport);
    return icmpPacket(r, outerSrc, outerDst, type, code, rest, quoted, { df: r.chance(0.3) });
  }

  /** What an ICMP error quotes: an IPv4 header (options, odd lengths) and some of its L4 header. */
  private quotedPacket(protocol: number, src: number, dst: number, sport: number, dport: number): Buffer {
    const r = this.r;
    // Mostly 8 bytes of a short packet; sometimes all of a big one (as much as Linux quotes, or
    // more: a DF error over a tunnel's or DR path's MTU).
    const big = r.chance(0.15);
    const body = payload(r, big ? 1400 : 100);
    const inner =
      protocol === 6
        ? tcpPacket(r, src, dst, sport, dport, r.pick(['S', 'A', 'PA']), r.u32(), r.u32(), body)
        : udpPacket(r, src, dst, sport, dport, body);
    const ihl = (inner[0] & 0x0f) * 4;
    let q: Buffer;
    switch (big ? 2 : r.int(8)) {
      case 0:
        q = inner.subarray(0, r.int(ihl + 8)); // truncated: no full L4 ports
        break;
      case 1: {
        // Nested: the quoted packet is itself an ICMP error quoting the flow's packet.
        const nested = icmpPacket(r, dst, src, 3, 3, 0, inner.subarray(0, ihl + 8));
        q = nested.subarray(0, Math.min(nested.length, r.chance(0.5) ? 28 : nested.length));
        break;
      }
      case 2:
        q = inner; // the whole packet
        break;
      case 3:
        q = Buffer.from(inner.subarray(0, ihl + 8));
        q.writeUInt16BE(r.int(0x10000), 2); // a quoted total length describing something else
        break;
      default:
        q = inner.subarray(0, ihl + 8);
    }
    if (r.chance(0.1)) {
      q = Buffer.from(q);
      if (q.length >= 12) q.writeUInt16BE(r.int(0x10000), 10); // bad quoted header checksum
    }
    return q;
  }

  private icmpOther(): Buffer {
    const r = this.r;
    const vip = r.pick(this.vips);
    const echo = r.u32();
    switch (r.int(5)) {
      case 0:
      case 1:
        return icmpPacket(r, toU32(r.pick(CLIENTS)), vip, 8, 0, echo, payload(r, 1400));
      case 2:
        return icmpPacket(r, toU32(r.pick(CLIENTS)), vip, r.pick([0, 13, 8]), r.int(3), echo, payload(r, 64));
      case 3:
        return icmpPacket(r, toU32(r.pick(STRANGERS)), toU32(r.pick(CLIENTS)), 8, 0, echo, payload(r, 64));
      default:
        return icmpPacket(r, r.u32(), r.chance(0.5) ? vip : r.u32(), r.int(256), r.int(256), r.u32(), payload(r, 64));
    }
  }

  // -- other traffic ----------------------------------------------------------------------------

  private bypassTraffic(): Buffer {
    const r = this.r;
    const src = toU32(r.pick([...STRANGERS, ...CLIENTS]));
    const dst = toU32(r.pick(STRANGERS));
    switch (r.int(5)) {
      case 0:
        return tcpPacket(
          r,
          src,
          dst,
          r.int(0x10000),
          r.int(0x10000),
          r.pick(TCP_FLAGS),
          r.u32(),
          r.u32(),
          payload(r, 1400),
        );
      case 1:
        return udpPacket(r, src, dst, r.int(0x10000), r.int(0x10000), payload(r, 1400));
      case 2: {
        // IP-in-IP from outside, carrying a packet to a VIP: forwarded as is.
        const inner = tcpPacket(r, src, r.pick(this.vips), 40000, 80, 'S', r.u32(), 0, Buffer.alloc(0));
        return packet().ipv4({ src, dst, protocol: 4 }).payload(inner).build();
      }
      case 3:
        // Another protocol to a VIP (no_service) or elsewhere.
        return packet()
          .ipv4({ src, dst: r.chance(0.5) ? r.pick(this.vips) : dst, protocol: r.pick([47, 50, 132, 4, 41, 0, 255]) })
          .payload(payload(r, 200))
          .build();
      default:
        return tcpPacket(
          r,
          src,
          r.pick(this.vips),
          r.int(0x10000),
          r.int(0x10000),
          r.pick(TCP_FLAGS),
          r.u32(),
          r.u32(),
          payload(r, 100),
        );
    }
  }

  private garbage(): Buffer {
    const r = this.r;
    if (r.chance(0.5)) return r.bytes(r.int(80));
    // A valid-looking IPv4 header over random bytes.
    const b = r.bytes(20 + r.int(120));
    b[0] = 0x45;
    b.writeUInt16BE(b.length, 2);
    b.writeUInt16BE(0, 6);
    if (r.chance(0.5)) b.writeUInt32BE(toU32(r.pick(this.vips)), 16);
    b[9] = r.pick([1, 6, 17, r.int(256)]);
    fixIpChecksum(b);
    return b;
  }

  // -- fragments --------------------------------------------------------------------------------

  /** A datagram cut into fragments: cleanly (any order, duplicates, one missing) or dirtily. */
  private fragments(): FuzzInput[] {
    const r = this.r;
    const whole = this.datagram();
    const clean = r.chance(0.6);
    const id = clean ? this.cleanId++ & 0x7fff : 0x8000 | r.int(64);
    whole.writeUInt16BE(id, 4);
    whole.writeUInt16BE(0, 6);
    fixIpChecksum(whole);
    const parts = clean ? this.cleanSplit(whole) : this.dirtySplit(whole);
    const out: FuzzInput[] = [];
    for (const ip of parts) {
      let input: FuzzInput = { ip, cleanFragment: clean };
      if (this.spec.offload) input.vnet = Buffer.alloc(10);
      if (!clean && r.chance(0.3)) input = this.finish(ip);
      out.push(input);
    }
    return out;
  }

  /** A whole datagram to fragment: to a service, a reply, an echo, or bypass traffic. */
  private datagram(): Buffer {
    const r = this.r;
    const size = r.chance(0.8) ? r.range(9, 3000) : r.range(3000, this.spec.offload ? 20000 : 12000);
    const body = r.bytes(size);
    const f = this.someFlow();
    const vip = r.pick(this.vips);
    const k: IpKnobs = r.chance(0.1) ? { options: ipOptions(r) } : {};
    switch (r.int(5)) {
      case 0:
        if (f !== undefined) {
          return f.protocol === 6
            ? tcpPacket(r, f.client, f.vip, f.cport, f.vport, r.pick(['S', 'PA']), f.seqC, f.seqS, body, k)
            : udpPacket(r, f.client, f.vip, f.cport, f.vport, body, k);
        }
        return udpPacket(r, toU32(r.pick(CLIENTS)), vip, 40000, 53, body, k);
      case 1: {
        if (f === undefined) return udpPacket(r, toU32(r.pick(CLIENTS)), vip, 40000, 53, body, k);
        const rs = this.serverSide(f);
        return f.protocol === 6
          ? tcpPacket(r, rs.addr, f.client, rs.port, f.cport, 'PA', f.seqS, f.seqC, body, k)
          : udpPacket(r, rs.addr, f.client, rs.port, f.cport, body, k);
      }
      case 2:
        // An echo request, or an ICMP error (errors about errors are never sent: RFC 1122).
        return r.chance(0.5)
          ? icmpPacket(r, toU32(r.pick(CLIENTS)), vip, 8, 0, r.u32(), body, k)
          : icmpPacket(r, toU32(r.pick(ROUTERS)), vip, 3, 4, 1400, this.quotedPacket(6, vip, r.u32(), 80, 40000), k);
      case 3: {
        const svc = this.pickService();
        return svc.protocol === 6
          ? tcpPacket(r, toU32(r.pick(CLIENTS)), toU32(svc.vip), 40000 + r.int(24), svc.port, 'S', r.u32(), 0, body, k)
          : udpPacket(r, toU32(r.pick(CLIENTS)), toU32(svc.vip), 40000 + r.int(24), svc.port, body, k);
      }
      default:
        return udpPacket(r, toU32(r.pick(STRANGERS)), toU32(r.pick(STRANGERS)), 1, 2, body, k);
    }
  }

  /** Fragment `whole` at 8-byte multiples; every fragment's bytes are the datagram's own. */
  private cleanSplit(whole: Buffer): Buffer[] {
    const r = this.r;
    const ihl = (whole[0] & 0x0f) * 4;
    const len = whole.length - ihl;
    const unit = 8 * r.range(Math.max(1, Math.ceil(len / 8 / 60)), Math.max(1, Math.min(185, Math.ceil(len / 8))));
    const parts: Buffer[] = [];
    for (let start = 0; start < len; start += unit) {
      const end = Math.min(len, start + unit);
      parts.push(fragment(whole, start, end, end < len));
    }
    if (parts.length === 1) parts[0] = fragment(whole, 0, len, true); // keep it a fragment
    if (r.chance(0.3)) r.shuffle(parts);
    if (r.chance(0.2)) parts.splice(r.int(parts.length + 1), 0, Buffer.from(r.pick(parts))); // a resend
    if (r.chance(0.08) && len > 16) {
      // An overlap carrying the same bytes: the whole datagram is discarded.
      const s = 8 * r.int(Math.floor((len - 1) / 8));
      parts.splice(r.int(parts.length + 1), 0, fragment(whole, s, Math.min(len, s + 16), s + 16 < len));
    }
    if (r.chance(0.1)) parts.splice(r.int(parts.length), 1); // one never arrives: expiry
    return parts;
  }

  /** Fragments with random offsets, lengths, flags and contents. */
  private dirtySplit(whole: Buffer): Buffer[] {
    const r = this.r;
    const ihl = (whole[0] & 0x0f) * 4;
    const len = whole.length - ihl;
    const parts: Buffer[] = [];
    const n = r.range(1, 6);
    for (let i = 0; i < n; i++) {
      let start: number;
      let end: number;
      switch (r.int(5)) {
        case 0:
          start = 0x1fff * 8; // the largest offset
          end = start + r.int(64);
          break;
        case 1:
          start = 8 * r.int(0x2000);
          end = start + r.int(1480);
          break;
        default:
          start = 8 * r.int(Math.ceil(len / 8) + 1);
          end = Math.min(start + r.int(1500), start + len);
      }
      const mf = r.chance(0.6);
      // Bytes of the datagram where it has them, else random ones (overlaps then differ).
      const data = start < len ? whole.subarray(ihl + start, ihl + end) : r.bytes(Math.max(0, end - start));
      const f = fragmentBytes(whole, ihl, data, start, end, mf);
      if (r.chance(0.2)) f[1] = (f[1] & ~3) | r.int(4); // ECN codepoints that may not mix
      if (r.chance(0.1)) f.writeUInt16BE(f.readUInt16BE(6) | 0x4000, 6); // DF on a fragment
      fixIpChecksum(f);
      parts.push(f);
    }
    return parts;
  }
}

/** Fragment [start, end) of the datagram `whole` (its header, offset and MF set, checksum fixed). */
function fragment(whole: Buffer, start: number, end: number, mf: boolean): Buffer {
  const ihl = (whole[0] & 0x0f) * 4;
  const f = fragmentBytes(whole, ihl, whole.subarray(ihl + start, ihl + end), start, end, mf);
  fixIpChecksum(f);
  return f;
}

/** Header of `whole` and `data` as payload [start, end) (zero-filled where data is short). */
function fragmentBytes(whole: Buffer, ihl: number, data: Buffer, start: number, end: number, mf: boolean): Buffer {
  const f = Buffer.alloc(ihl + Math.max(0, end - start));
  whole.copy(f, 0, 0, ihl);
  data.copy(f, ihl, 0, Math.min(data.length, f.length - ihl));
  f.writeUInt16BE(f.length & 0xffff, 2);
  f.writeUInt16BE(((start >> 3) & 0x1fff) | (mf ? 0x2000 : 0), 6);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/** IPv4 header offsets worth corrupting: version/IHL, TOS, total length, flags/offset, TTL, protocol, ... */
const IP_FIELDS = [0, 0, 1, 2, 3, 3, 6, 6, 7, 8, 9, 9, 10, 12, 16, 19];

/** One to three mutations of a copy of `ip`. */
export function mutate(r: Rng, golden: Buffer): Buffer {
  let b: Buffer = Buffer.from(golden);
  const n = r.range(1, 3);
  for (let i = 0; i < n; i++) b = mutateOnce(r, b);
  return b;
}

function mutateOnce(r: Rng, b: Buffer): Buffer {
  if (b.length === 0) return r.bytes(r.int(40));
  const ihl = Math.max(20, (b[0] & 0x0f) * 4);
  switch (r.int(12)) {
    case 0: {
      // Truncate; half the time keep the total length consistent with it.
      const n = r.int(b.length);
      const t = Buffer.from(b.subarray(0, n));
      if (n >= 4 && r.chance(0.5)) t.writeUInt16BE(n, 2);
      return t;
    }
    case 1: {
      // Junk after the packet: link padding, or counted in the total length.
      const t = Buffer.concat([b, r.bytes(r.range(1, 64))]);
      if (t.length >= 4 && r.chance(0.5) && t.length <= 0xffff) t.writeUInt16BE(t.length, 2);
      return t;
    }
    case 2:
    case 3: {
      const flips = r.range(1, 4);
      for (let i = 0; i < flips; i++) {
        const at = r.chance(0.7) ? r.int(Math.min(b.length, ihl + 40)) : r.int(b.length);
        b[at] = b[at] ^ (1 << r.int(8));
      }
      return b;
    }
    case 4: {
      const at = r.pick(IP_FIELDS);
      if (at < b.length)
        b[at] = r.chance(0.5) ? r.int(256) : r.pick([0x00, 0xff, 0x45, 0x46, 0x4f, 0x44, 0x40, 0x20, 0x3f]);
      return b;
    }
    case 5: {
      // TCP data offset / flags, UDP length, ICMP type and code.
      const at = ihl + r.pick([4, 5, 12, 12, 13, 0, 1, 2, 3]);
      if (at < b.length) b[at] = r.int(256);
      return b;
    }
    case 6:
      if (b.length >= 8) b.writeUInt16BE(r.pick([0x2000, 0x1fff, 0x3fff, 0x4000, 0x2001, r.int(0x10000)]), 6);
      return b;
    case 7:
      if (b.length >= 4)
        b.writeUInt16BE(r.pick([0, 19, 20, b.length - 1, b.length + 1, 0xffff, r.int(0x10000)]) & 0xffff, 2);
      return b;
    case 8: {
      // A bad L4 checksum (TCP, UDP, ICMP field positions).
      const at = ihl + r.pick([16, 6, 2]);
      if (at + 1 < b.length) b.writeUInt16BE(r.int(0x10000), at);
      return b;
    }
    case 9:
      if (b.length >= 12) b.writeUInt16BE(r.int(0x10000), 10); // bad header checksum
      return b;
    case 10: {
      // A stretch of random bytes.
      const at = r.int(b.length);
      r.bytes(Math.min(b.length - at, r.range(1, 16))).copy(b, at);
      return b;
    }
    default: {
      // UDP length field.
      const at = ihl + 4;
      if (at + 1 < b.length) b.writeUInt16BE(r.pick([0, 7, 8, b.length - ihl, b.length - ihl + 1, r.int(0x10000)]), at);
      return b;
    }
  }
}

/** Random virtio_net_hdr fields (offload labs). */
function mutateVnet(r: Rng, vnet: Buffer, ip: Buffer): void {
  const ihl = ip.length > 0 ? (ip[0] & 0x0f) * 4 : 20;
  switch (r.int(6)) {
    case 0:
      vnet[0] = r.int(256);
      break;
    case 1:
      vnet[1] = r.pick([0, 1, 3, 4, 0x81, r.int(256)]);
      break;
    case 2:
      vnet.writeUInt16LE(r.pick([0, 1, 0xffff, 536, r.int(0x10000)]), 4);
      break;
    case 3:
      vnet.writeUInt16LE(r.pick([0, ihl, ihl + 4, 20, ip.length, 0xffff, r.int(0x10000)]), 6);
      break;
    case 4:
      vnet.writeUInt16LE(r.pick([0, 2, 6, 16, 18, 0xffff, r.int(0x10000)]), 8);
      break;
    default:
      r.bytes(10).copy(vnet);
  }
}
