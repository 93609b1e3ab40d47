// The fuzz oracle: is what the engine sent legal, given what it received? Decided from bytes
// alone, with its own decoder and the generator's checksum sums (like packet-assert.ts, nothing
// from src/wire), fast enough to judge millions of packets, and returning findings instead of
// throwing.
//
// What is legal (the rules, and why):
//
//  1. Framing by output device. TX_DEV_RAW (0): a bare IPv4 packet. TX_DEV_TUN (255): the
//     packet, after a 10-byte virtio_net_hdr on an offload lab. A frame device (1..254, opened
//     by the engine): [virtio_net_hdr on offload labs] + Ethernet header (a DR real server's MAC,
//     the director interface's MAC, type 0x0800) + the packet. Any other device is illegal.
//  2. Every packet: version 4, IHL >= 5 and inside the packet, total length equal to the bytes
//     sent (no truncation, no padding).
//  3. Checksums are inherited, never introduced. The engine, like IPVS, does not verify the
//     checksums of what it forwards (the kernel checked the IPv4 header before the TUN; L4
//     checksums are the end hosts' business), and it updates them incrementally (RFC 1624),
//     which carries a sender's error over exactly: the one's-complement residue of the sum over
//     header (IPv4), or pseudo-header + segment (TCP, UDP over its length field), or message
//     (ICMP) stays what it was. So each output checksum must verify, or have a residue that one
//     of the batch's inputs had. A rewrite that is wrong (a missed port, a stale length, a
//     partial checksum sent on a raw socket) changes the residue and is caught; an engine-made
//     header (ICMP error, RST, echo reply, tunnel header, fragment, GSO segment) must verify.
//     (A wrong residue that happens to equal another input's slips through: rare, never a false
//     alarm. Outputs of a clock tick may carry the residues of broken fragment headers received
//     in the last reassembly timeout: the expiry ICMP quotes them.)
//  4. Partial checksums. An offload output whose virtio_net_hdr says NEEDS_CSUM is judged as the
//     kernel or NIC will finish it: the checksum is completed at csum_start + csum_offset first
//     (offsets from the IPv4 header on the TUN, from the Ethernet header in a frame), then rule 3
//     applies; an offload input with NEEDS_CSUM contributes the residue of its completed form.
//     csum_start/csum_offset must lie in the packet (TCP/UDP: exactly their checksum field);
//     GSO (TCPV4 only) needs NEEDS_CSUM, TCP and gso_size > 0, and in a DR frame each segment
//     it stands for must fit the path MTU. Other flag bits (DATA_VALID) pass as the TUN set them.
//  5. L4 structure. TCP: at least 20 bytes, data offset in [20, segment length]. UDP: at least 8
//     bytes, length field in [8, payload length] (a shorter UDP length is forwarded as received,
//     as IPVS does). ICMP and other protocols are opaque apart from rule 3 (bypass forwards them
//     as received, however short). ICMP errors: a quoted IPv4 header present in full must have
//     an inherited checksum residue too (the relay updates it incrementally); and no ICMP error
//     is about an ICMP error (RFC 1122 3.2.2), unless such a one came in (relayed, bypassed).
//  6. Fragments are only ever made by the engine (it reassembles all it receives): DR frames and
//     IP-in-IP outer packets. Each must fit its path MTU, non-last ones carry multiples of 8
//     bytes, and the fragments of one datagram leave in order in the same batch and reassemble
//     into a legal packet.
//  7. IP-in-IP from the director (tunnel source) to a TUN real server: an engine header (rule 3:
//     must verify), at most the path MTU, around exactly one whole, unfragmented, legal packet.
//  8. Reassembled datagrams. Their L4 checksum is only the oracle's business when every fragment
//     that may have gone into them was cut cleanly from a valid datagram (fuzz-gen.ts); datagrams
//     whose IPv4 id a dirty fragment used recently are exempt from rule 3 at L4 (`relaxL4`).

import { fold, pseudoSum, sumWords } from './fuzz-gen';

const ETH_LEN = 14;
const TX_DEV_RAW = 0;
const TX_DEV_TUN = 255;

/** One's-complement residue mod 0xffff: 0 for a checksum that verifies (0 and 0xffff are one value). */
function residue(s: number): number {
  return s % 0xffff;
}

function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** The checksum residues inputs carried: what outputs may inherit (0, "verifies", always may). */
export class Allowance {
  readonly ip = new Set<number>([0]);
  readonly l4 = new Set<number>([0]);
  /**
   * ICMP errors that came with a partial checksum, as "type/code src" and "type/code >dst": a
   * relay keeps one of the two addresses (KNOWN_BUGS in fuzz-labs.ts: icmp-relay-partial).
   */
  readonly partialIcmp = new Set<string>();
  /** ICMP errors about ICMP errors that came in, as "type/code/quoted type": relayed or bypassed. */
  readonly nested = new Set<string>();

  clear(): void {
    this.nested.clear();
    this.ip.clear();
    this.ip.add(0);
    this.l4.clear();
    this.l4.add(0);
    this.partialIcmp.clear();
  }
}

export interface InputFacts {
  /** The packet passes the engine's IPv4 length checks and is a fragment. */
  fragment: boolean;
  id: number;
  /** Residue of its IPv4 header (when it has a whole one), else -1. */
  headerResidue: number;
}

/**
 * Record what an input (as the engine reads it: `ip` after any virtio_net_hdr `vnet`) may pass
 * on: its header, L4 and quoted-header residues, completed first when its header says
 * NEEDS_CSUM. Returns facts the runner uses for fragment bookkeeping.
 */
export function noteInput(ip: Buffer, vnet: Buffer | undefined, into: Allowance): InputFacts {
  const facts: InputFacts = { fragment: false, id: 0, headerResidue: -1 };
  if (ip.length < 20 || ip[0] >> 4 !== 4) return facts;
  const ihl = (ip[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > ip.length) return facts;
  facts.headerResidue = residue(sumWords(ip, 0, ihl));
  into.ip.add(facts.headerResidue);
  const total = ip.readUInt16BE(2);
  if (total < ihl || total > ip.length) return facts;
  facts.id = ip.readUInt16BE(4);
  if ((ip.readUInt16BE(6) & 0x3fff) !== 0) {
    facts.fragment = true;
    return facts;
  }
  let p = ip.subarray(0, total);
  if (vnet !== undefined && (vnet[0] & 1) !== 0) {
    const start = vnet.readUInt16LE(6);
    const offset = vnet.readUInt16LE(8);
    if (start >= ihl && start + offset + 2 <= total) {
      p = completed(p, start, offset);
      if (p[9] === 1 && total - ihl >= 8 && isIcmpError(p[ihl])) {
        const tc = `${p[ihl]}/${p[ihl + 1]}`;
        into.partialIcmp.add(`${tc} ${p.readUInt32BE(12)}`);
        into.partialIcmp.add(`${tc} >${p.readUInt32BE(16)}`);
      }
    }
  }
  noteL4(p, ihl, into);
  return facts;
}

function noteL4(p: Buffer, ihl: number, into: Allowance): void {
  const r = l4Residue(p, ihl);
  if (r >= 0) into.l4.add(r);
  const q = quotedResidue(p, ihl);
  if (q >= 0) into.ip.add(q);
  const n = aboutIcmpError(p, ihl);
  if (n !== '') into.nested.add(n);
}

/**
 * For an ICMP error quoting an ICMP error (whole enough to tell): "type/code/quoted type"; else
 * ''. RFC 1122 3.2.2: no ICMP error is sent about an ICMP error.
 */
function aboutIcmpError(p: Buffer, ihl: number): string {
  if (p[9] !== 1 || p.length - ihl < 8 + 20 || !isIcmpError(p[ihl])) return '';
  const q = ihl + 8;
  const qihl = (p[q] & 0x0f) * 4;
  if (p[q] >> 4 !== 4 || qihl < 20 || p[q + 9] !== 1 || (p.readUInt16BE(q + 6) & 0x1fff) !== 0) return '';
  if (q + qihl >= p.length || !isIcmpError(p[q + qihl])) return '';
  return `${p[ihl]}/${p[ihl + 1]}/${p[q + qihl]}`;
}

/** The L4 residue of an unfragmented packet (TCP, UDP with a checksum, ICMP), else -1. */
function l4Residue(p: Buffer, ihl: number): number {
  const len = p.length - ihl;
  switch (p[9]) {
    case 6:
      return len >= 20 ? residue(sumWords(p, ihl, p.length, pseudoSum(p, 6, len))) : -1;
    case 17: {
      if (len < 8) return -1;
      const udpLen = p.readUInt16BE(ihl + 4);
      if (udpLen < 8 || udpLen > len || p.readUInt16BE(ihl + 6) === 0) return -1;
      return residue(sumWords(p, ihl, ihl + udpLen, pseudoSum(p, 17, udpLen)));
    }
    case 1:
      return residue(sumWords(p, ihl, p.length));
    default:
      return -1;
  }
}

/** Residue of the IPv4 header an ICMP error quotes, when it is there in full; else -1. */
function quotedResidue(p: Buffer, ihl: number): number {
  if (p[9] !== 1 || p.length - ihl < 8 + 20 || !isIcmpError(p[ihl])) return -1;
  const q = ihl + 8;
  const qihl = (p[q] & 0x0f) * 4;
  if (p[q] >> 4 !== 4 || qihl < 20 || q + qihl > p.length) return -1;
  return residue(sumWords(p, q, q + qihl));
}

/** A copy of `p` with its partial checksum finished at start + offset, as a NIC finishes it. */
function completed(p: Buffer, start: number, offset: number): Buffer {
  const c = Buffer.from(p);
  let v = ~fold(sumWords(c, start, c.length)) & 0xffff;
  if (v === 0 && c[9] === 17) v = 0xffff;
  c.writeUInt16BE(v, start + offset);
  return c;
}

/** The lab facts the oracle checks outputs against. */
export interface OracleConfig {
  /** 10 on offload labs, else 0. */
  vnet: number;
  /** Frame device number -> MTU of the DR path on it. */
  frameMtu: Map<number, number>;
  /** DR real servers' MACs (hex) and the director interface's MAC. */
  drMacs: Set<string>;
  devMac: Buffer;
  /** The tunnel source address and the TUN real servers (address -> path MTU). */
  tunSrc: number;
  tunDests: Map<number, number>;
}

/** Fragments of one datagram being collected from one batch's output. */
interface Train {
  header: Buffer;
  parts: Buffer[];
  next: number;
  where: string;
}

export class OutputOracle {
  readonly findings: string[] = [];
  private readonly trains = new Map<string, Train>();
  private allow = new Allowance();
  private relax: (id: number) => boolean = () => false;

  constructor(private readonly cfg: OracleConfig) {}

  /**
   * Judge one batch's output: `out[i]` went to device `dev[i]`. `allow` holds what the batch's
   * inputs carried; `relaxL4(id)` exempts reassembled datagrams (rule 8). Returns the findings.
   */
  check(out: Buffer[], dev: number[], allow: Allowance, relaxL4: (id: number) => boolean): string[] {
    this.findings.length = 0;
    this.trains.clear();
    this.allow = allow;
    this.relax = relaxL4;
    if (out.length !== dev.length) this.fail('output', `${out.length} packets but ${dev.length} devices`);
    for (let i = 0; i < out.length; i++) this.checkOne(out[i], dev[i], `out[${i}] dev ${dev[i]}`);
    for (const t of this.trains.values()) this.fail(t.where, 'fragments of a datagram missing from the batch');
    return this.findings;
  }

  private fail(where: string, what: string): void {
    this.findings.push(`${where}: ${what}`);
  }

  private checkOne(b: Buffer, dev: number, where: string): void {
    const vnetLen = this.cfg.vnet;
    if (dev === TX_DEV_RAW) {
      this.checkIp(b, where, null, 0);
      return;
    }
    if (dev === TX_DEV_TUN) {
      if (b.length < vnetLen) {
        this.fail(where, 'shorter than its virtio_net_hdr');
        return;
      }
      const vnet = vnetLen === 0 ? null : b.subarray(0, vnetLen);
      this.checkIp(b.subarray(vnetLen), where, vnet, 0);
      return;
    }
    const mtu = this.cfg.frameMtu.get(dev);
    if (mtu === undefined) {
      this.fail(where, 'sent on a device the engine never opened');
      return;
    }
    if (b.length < vnetLen + ETH_LEN) {
      this.fail(where, 'frame shorter than its headers');
      return;
    }
    const eth = b.subarray(vnetLen, vnetLen + ETH_LEN);
    if (!this.cfg.drMacs.has(eth.subarray(0, 6).toString('hex'))) this.fail(where, 'frame to an unknown MAC');
    if (!eth.subarray(6, 12).equals(this.cfg.devMac)) this.fail(where, 'frame not from the interface MAC');
    if (eth.readUInt16BE(12) !== 0x0800) this.fail(where, 'frame type is not IPv4');
    const vnet = vnetLen === 0 ? null : b.subarray(0, vnetLen);
    this.checkIp(b.subarray(vnetLen + ETH_LEN), where, vnet, ETH_LEN, mtu);
  }

  /**
   * One IPv4 packet. `vnet`: its virtio_net_hdr (offsets from `base` bytes before the packet);
   * `mtu`: the path MTU it must fit (DR frames, tunnel packets).
   */
  private checkIp(p: Buffer, where: string, vnet: Buffer | null, base: number, mtu = 0): void {
    if (p.length < 20) {
      this.fail(where, `${p.length} bytes: shorter than an IPv4 header`);
      return;
    }
    if (p[0] >> 4 !== 4) {
      this.fail(where, `IPv4 version ${p[0] >> 4}`);
      return;
    }
    const ihl = (p[0] & 0x0f) * 4;
    if (ihl < 20 || ihl > p.length) {
      this.fail(where, `IHL ${ihl} bytes in a ${p.length}-byte packet`);
      return;
    }
    const total = p.readUInt16BE(2);
    if (total !== p.length) {
      this.fail(where, `total length ${total}, ${p.length} bytes sent`);
      return;
    }
    if (!this.allow.ip.has(residue(sumWords(p, 0, ihl)))) this.fail(where, 'IPv4 header checksum broken');
    const ff = p.readUInt16BE(6);
    const isFragment = (ff & 0x3fff) !== 0;
    let gsoSegment = 0;
    if (vnet !== null) {
      const v = this.checkVnet(p, ihl, vnet, base, where, isFragment);
      if (v === null) return;
      if (v.start >= 0) {
        const done = completed(p, v.start, v.offset);
        const r = l4Residue(done, ihl);
        if (r >= 0 && !this.allow.l4.has(r) && !this.relax(p.readUInt16BE(4)) && this.allow.l4.has(l4Residue(p, ihl))) {
          // Told apart from other broken checksums: what the kernel would then "complete" is
          // already a whole checksum.
          this.fail(where, 'virtio_net_hdr says NEEDS_CSUM, but the checksum is already complete');
          return;
        }
        p = done;
      }
      gsoSegment = v.gsoSize === 0 ? 0 : Math.min(total, ihl + tcpHeaderLen(p, ihl) + v.gsoSize);
    }
    if (mtu !== 0 && (gsoSegment !== 0 ? gsoSegment : total) > mtu) {
      this.fail(where, `${gsoSegment !== 0 ? 'GSO segment' : 'packet'} over the path MTU ${mtu}`);
    }
    if (isFragment) {
      this.collectFragment(p, ihl, where, mtu);
      return;
    }
    this.checkL4(p, ihl, where);
  }

  /** Rule 4. Returns the checksum to complete (start -1: none) and GSO size, or null if broken. */
  private checkVnet(
    p: Buffer,
    ihl: number,
    vnet: Buffer,
    base: number,
    where: string,
    isFragment: boolean,
  ): { start: number; offset: number; gsoSize: number } | null {
    const flags = vnet[0];
    const gso = vnet[1];
    if (gso !== 0 && gso !== 1) this.fail(where, `virtio_net_hdr gso_type ${gso}`);
    let start = -1;
    let offset = 0;
    const protocol = p[9];
    if ((flags & 1) !== 0) {
      start = vnet.readUInt16LE(6) - base;
      offset = vnet.readUInt16LE(8);
      const own = protocol === 6 ? 16 : protocol === 17 ? 6 : -1;
      if (start < ihl || start + offset + 2 > p.length || (own >= 0 && (start !== ihl || offset !== own))) {
        this.fail(where, `partial checksum at ${start}+${offset} in a ${p.length}-byte packet`);
        return null;
      }
      if (isFragment) this.fail(where, 'a fragment with a partial checksum');
    }
    let gsoSize = 0;
    if (gso === 1) {
      gsoSize = vnet.readUInt16LE(4);
      if ((flags & 1) === 0 || protocol !== 6 || gsoSize === 0 || isFragment) {
        this.fail(where, `GSO header on ${isFragment ? 'a fragment' : `protocol ${protocol}`}, size ${gsoSize}`);
        return null;
      }
      if (p.length - ihl < 20) return null;
    }
    return { start, offset, gsoSize };
  }

  private checkL4(p: Buffer, ihl: number, where: string, reassembled = false): void {
    const len = p.length - ihl;
    const relaxed = this.relax(p.readUInt16BE(4));
    switch (p[9]) {
      case 6: {
        if (len < 20) {
          this.fail(where, `TCP segment of ${len} bytes`);
          return;
        }
        const doff = tcpHeaderLen(p, ihl);
        if (doff < 20 || doff > len) {
          this.fail(where, `TCP data offset ${doff} in ${len} bytes`);
          return;
        }
        break;
      }
      case 17: {
        if (len < 8) {
          this.fail(where, `UDP datagram of ${len} bytes`);
          return;
        }
        const udpLen = p.readUInt16BE(ihl + 4);
        if (udpLen < 8 || udpLen > len) {
          this.fail(where, `UDP length ${udpLen} in ${len} bytes`);
          return;
        }
        break;
      }
      case 4:
        this.checkTunnel(p, ihl, where, reassembled);
        return;
    }
    const nested = aboutIcmpError(p, ihl);
    if (nested !== '' && !this.allow.nested.has(nested))
      this.fail(where, `an ICMP error (${nested}) about an ICMP error`);
    const r = l4Residue(p, ihl);
    const q = quotedResidue(p, ihl);
    const badL4 = r >= 0 && !relaxed && !this.allow.l4.has(r);
    const badQuoted = q >= 0 && !this.allow.ip.has(q);
    if (!badL4 && !badQuoted) return;
    // Told apart: an ICMP error relayed from one that came with a partial checksum.
    const tc = len >= 2 ? `${p[ihl]}/${p[ihl + 1]}` : '';
    const partial = this.allow.partialIcmp;
    const relayed =
      p[9] === 1 && (partial.has(`${tc} ${p.readUInt32BE(12)}`) || partial.has(`${tc} >${p.readUInt32BE(16)}`));
    const prefix = relayed ? 'ICMP error relayed from one with a partial checksum: ' : '';
    if (badL4) this.fail(where, `${prefix}${relayed ? 'checksum' : `protocol ${p[9]} checksum`} broken`);
    if (badQuoted) this.fail(where, `${prefix}quoted IPv4 header checksum broken`);
  }

  /** The path MTU of a tunnel packet the engine made (rule 7), or undefined for any other packet. */
  private tunnelMtu(p: Buffer): number | undefined {
    return p[9] === 4 && p.readUInt32BE(12) === this.cfg.tunSrc ? this.cfg.tunDests.get(p.readUInt32BE(16)) : undefined;
  }

  /**
   * Rule 7 (IP-in-IP made by the engine; `reassembled`: from its outer fragments, already judged
   * one by one); anything else with protocol 4 is bypassed as it came.
   */
  private checkTunnel(p: Buffer, ihl: number, where: string, reassembled: boolean): void {
    const mtu = this.tunnelMtu(p);
    if (mtu === undefined) return;
    if (residue(sumWords(p, 0, ihl)) !== 0) this.fail(where, 'tunnel header checksum broken');
    if (!reassembled && p.length > mtu) this.fail(where, `tunnel packet of ${p.length} bytes over the path MTU ${mtu}`);
    this.checkIp(p.subarray(ihl), `${where} inner`, null, 0);
  }

  /** Rule 6: collect the engine's fragments of one datagram, in order; judge it when whole. */
  private collectFragment(p: Buffer, ihl: number, where: string, mtu: number): void {
    if (mtu === 0) {
      const tunnelMtu = this.tunnelMtu(p);
      if (tunnelMtu === undefined) {
        this.fail(where, 'a fragment the engine did not make (not DR, not a tunnel)');
        return;
      }
      if (p.length > tunnelMtu) this.fail(where, `tunnel fragment of ${p.length} bytes over the path MTU ${tunnelMtu}`);
    }
    const ff = p.readUInt16BE(6);
    const offset = (ff & 0x1fff) * 8;
    const mf = (ff & 0x2000) !== 0;
    const len = p.length - ihl;
    if (mf && (len & 7) !== 0) this.fail(where, `non-last fragment with ${len} payload bytes`);
    if (offset + len > 0xffff - 20) this.fail(where, 'fragment beyond 65535 bytes');
    const key = `${p.readUInt32BE(12)}>${p.readUInt32BE(16)}/${p[9]}#${p.readUInt16BE(4)}`;
    let t = this.trains.get(key);
    if (offset === 0) {
      if (t !== undefined) this.fail(t.where, 'fragments of a datagram missing from the batch');
      t = { header: Buffer.from(p.subarray(0, ihl)), parts: [], next: 0, where };
      this.trains.set(key, t);
    }
    if (t === undefined || offset !== t.next) {
      this.fail(where, `fragment at ${offset} out of order`);
      return;
    }
    t.parts.push(p.subarray(ihl));
    t.next = offset + len;
    if (mf) return;
    this.trains.delete(key);
    const whole = Buffer.concat([t.header, ...t.parts]);
    if (whole.length > 0xffff) {
      this.fail(where, 'fragments add up to more than 65535 bytes');
      return;
    }
    whole.writeUInt16BE(whole.length, 2);
    whole.writeUInt16BE(0, 6);
    whole.writeUInt16BE(0, 10);
    whole.writeUInt16BE(~fold(sumWords(whole, 0, t.header.length)) & 0xffff, 10);
    this.checkL4(whole, t.header.length, `${t.where} (reassembled)`, true);
  }
}

function tcpHeaderLen(p: Buffer, ihl: number): number {
  return p.length >= ihl + 13 ? (p[ihl + 12] >> 4) * 4 : 0;
}
