// A small fluent builder for test packets: one complete IPv4 packet with correct checksums.
//
//   packet().ipv4({ src: '10.0.0.1', dst: '192.168.0.1' }).tcp({ sport: 40000, dport: 80, flags: 'S' }).build()
//   packet().ipv4({ src, dst }).udp({ sport: 53000, dport: 53 }).payload(query).build()
//   packet().ipv4({ src, dst }).icmp({ type: 3, code: 4, rest: 1400, payload: quoted }).build()
//
// Built with the wire Reprs (so the Reprs get exercised by every test that builds a packet);
// test/helpers/packet-assert.ts checks packets with its own independent decoder.

import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../src/ip-vs';
import { ipToU32 } from '../../src/wire/addr';
import { ICMP, IcmpRepr } from '../../src/wire/icmp';
import { IPV4, Ipv4Repr, Ipv4View } from '../../src/wire/ipv4';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, TcpRepr } from '../../src/wire/tcp';
import { UDP, UdpRepr } from '../../src/wire/udp';

/** An address as a dotted quad or a host-order uint32. */
export type Addr = string | number;

export interface Ipv4Options {
  src: Addr;
  dst: Addr;
  ttl?: number;
  id?: number;
  tos?: number;
  df?: boolean;
  /** More-fragments flag. */
  mf?: boolean;
  /** Fragment offset in bytes (multiple of 8). */
  fragOffset?: number;
  /** Protocol number; defaults to that of the L4 header added, or 253 (experimental) if none. */
  protocol?: number;
  /** IPv4 option bytes, zero-padded to a multiple of 4 (IHL grows accordingly). */
  options?: Buffer;
}

export interface TcpOptions {
  sport: number;
  dport: number;
  /** Letters F S R P A U E C in any order, e.g. 'S', 'SA', 'PA', 'FA', 'R'. Default 'S'. */
  flags?: string;
  seq?: number;
  ack?: number;
  window?: number;
  urgent?: number;
  /** TCP option bytes, zero-padded to a multiple of 4. */
  options?: Buffer;
}

export interface UdpOptions {
  sport: number;
  dport: number;
  /** false: send a zero checksum ("none computed"). Default true. */
  checksum?: boolean;
}

export interface IcmpOptions {
  type: number;
  code?: number;
  /** The 4 type-specific bytes: (id << 16) | seq for echo, next-hop MTU for frag-needed. */
  rest?: number;
  /** Message body (echo data, quoted packet); if absent, .payload() is used. */
  payload?: Buffer;
}

const FLAG_BITS: Readonly<Record<string, number>> = {
  F: TCP_FIN,
  S: TCP_SYN,
  R: TCP_RST,
  P: TCP_PSH,
  A: TCP_ACK,
  U: TCP_URG,
  E: TCP_ECE,
  C: TCP_CWR,
};

/** 'SA' -> TCP_SYN | TCP_ACK. Throws on a letter that is not a flag. */
export function tcpFlags(letters: string): number {
  let flags = 0;
  for (const ch of letters) {
    const bit = FLAG_BITS[ch.toUpperCase()];
    if (bit === undefined)
      throw new Error(`unknown TCP flag letter ${JSON.stringify(ch)} in ${JSON.stringify(letters)}`);
    flags |= bit;
  }
  return flags;
}

/** An Addr as a host-order uint32. */
export function addr(a: Addr): number {
  return typeof a === 'number' ? a >>> 0 : ipToU32(a);
}

/** Bytes from a hex dump: whitespace, ':' and '#'-to-end-of-line comments ignored. */
export function fromHex(hex: string): Buffer {
  const clean = hex.replace(/#[^\n]*/g, '').replace(/[\s:]/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`not a hex byte string: ${JSON.stringify(hex)}`);
  return Buffer.from(clean, 'hex');
}

/** Bytes as a lowercase hex string, space-separated (for readable failure diffs). */
export function toHex(buf: Buffer): string {
  return buf.toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

function pad4(b: Buffer): Buffer {
  const rem = b.length & 3;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - rem)]);
}

type L4 =
  | { kind: 'none' }
  | { kind: 'tcp'; opts: TcpOptions }
  | { kind: 'udp'; opts: UdpOptions }
  | { kind: 'icmp'; opts: IcmpOptions };

export class PacketBuilder {
  private ip?: Ipv4Options;
  private l4: L4 = { kind: 'none' };
  private body: Buffer = Buffer.alloc(0);

  ipv4(opts: Ipv4Options): this {
    this.ip = opts;
    return this;
  }

  tcp(opts: TcpOptions): this {
    this.l4 = { kind: 'tcp', opts };
    return this;
  }

  udp(opts: UdpOptions): this {
    this.l4 = { kind: 'udp', opts };
    return this;
  }

  icmp(opts: IcmpOptions): this {
    this.l4 = { kind: 'icmp', opts };
    return this;
  }

  /** Data after the L4 header (or after the IPv4 header if none); strings are UTF-8. */
  payload(data: string | Buffer): this {
    this.body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this;
  }

  build(): Buffer {
    const ip = this.ip;
    if (ip === undefined) throw new Error('packet(): call .ipv4({ src, dst }) before .build()');
    const src = addr(ip.src);
    const dst = addr(ip.dst);
    const l4 = this.encodeL4(src, dst);
    const ipOptions = ip.options === undefined ? Buffer.alloc(0) : pad4(ip.options);
    const headerLen = IPV4.MIN_HEADER + ipOptions.length;
    const out = Buffer.alloc(headerLen + l4.bytes.length);

    const repr = new Ipv4Repr();
    repr.srcAddr = src;
    repr.dstAddr = dst;
    repr.protocol = ip.protocol ?? l4.protocol;
    repr.ttl = ip.ttl ?? 64;
    repr.tos = ip.tos ?? 0;
    repr.id = ip.id ?? 0;
    repr.dontFrag = ip.df ?? false;
    repr.moreFrags = ip.mf ?? false;
    repr.fragOffset = ip.fragOffset ?? 0;
    repr.payloadLen = out.length - IPV4.MIN_HEADER;
    repr.emit(out, 0);
    if (ipOptions.length > 0) {
      // Ipv4Repr writes no options: widen the IHL, insert them, and recompute the checksum.
      out[IPV4.VER_IHL] = 0x40 | (headerLen >> 2);
      ipOptions.copy(out, IPV4.MIN_HEADER);
      new Ipv4View(out, 0, out.length).fillChecksum();
    }
    l4.bytes.copy(out, headerLen);
    return out;
  }

  private encodeL4(src: number, dst: number): { protocol: number; bytes: Buffer } {
    const l4 = this.l4;
    switch (l4.kind) {
      case 'none':
        return { protocol: 253, bytes: this.body };
      case 'tcp': {
        const o = l4.opts;
        const r = new TcpRepr();
        r.srcPort = o.sport;
        r.dstPort = o.dport;
        r.flags = tcpFlags(o.flags ?? 'S');
        r.seq = o.seq ?? 0;
        r.ack = o.ack ?? 0;
        r.window = o.window ?? 65535;
        r.urgent = o.urgent ?? 0;
        if (o.options !== undefined && o.options.length > 0) r.options = o.options;
        const bytes = Buffer.alloc(r.bufferLen() + this.body.length);
        r.emit(bytes, 0, src, dst, this.body);
        return { protocol: IPPROTO_TCP, bytes };
      }
      case 'udp': {
        const o = l4.opts;
        const r = new UdpRepr();
        r.srcPort = o.sport;
        r.dstPort = o.dport;
        r.withChecksum = o.checksum ?? true;
        const bytes = Buffer.alloc(UDP.HEADER + this.body.length);
        r.emit(bytes, 0, src, dst, this.body);
        return { protocol: IPPROTO_UDP, bytes };
      }
      case 'icmp': {
        const o = l4.opts;
        const body = o.payload ?? this.body;
        const r = new IcmpRepr();
        r.type = o.type;
        r.code = o.code ?? 0;
        r.rest = o.rest ?? 0;
        const bytes = Buffer.alloc(ICMP.HEADER + body.length);
        r.emit(bytes, 0, body);
        return { protocol: IPPROTO_ICMP, bytes };
      }
    }
  }
}

/** Start building a packet. */
export function packet(): PacketBuilder {
  return new PacketBuilder();
}
