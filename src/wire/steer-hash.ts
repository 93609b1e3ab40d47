// The flow hash that steers a packet to one queue of lvsd's multi-queue TUN, as the kernel runs
// it (the eBPF program in native/src/steer.c): both must agree bit for bit, so an engine can tell
// which engine owns a flow (a reassembled datagram, a synced connection) without asking.
//
// The key is the flow's client side: address and port. A packet to a virtual address comes from
// the client (its source); anything else is a reply on its way to the client (its destination).
// An ICMP error is steered by the packet it quotes, which went the other way. Fragments, and
// packets without ports, hash the address alone; so does everything, masked, while `addrMask` is
// set (lvsd sets it while a persistent service exists: the connections of a client's network
// must all reach the engine that holds their persistence template). A read past the packet's end ends the kernel's
// program with 0, and so here. IPv6 is steered to queue 0 (hash 0): one engine forwards it so far.

import { IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../ip-vs';

/** The 32-bit mix both sides use: fmix32(addr ^ port * 0x9e3779b1). */
export function steerMix(addr: number, port: number): number {
  let h = Math.imul(port, 0x9e3779b1) ^ addr;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hasPorts(protocol: number): boolean {
  return protocol === IPPROTO_TCP || protocol === IPPROTO_UDP || protocol === IPPROTO_SCTP;
}

function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/**
 * The steering hash of the IPv4 packet `b[off, off + len)` (the kernel takes it modulo the number
 * of queues). `isVip` answers for a host-order address; `clientIsSource` is the variant for input
 * devices that carry only requests (firewall-mark devices), which never consults it. `addrMask`:
 * the map holds the address 0 with this value (ports left out, the address masked).
 */
export function steerHash(
  b: Uint8Array,
  off: number,
  len: number,
  isVip: (addr: number) => boolean,
  clientIsSource: boolean,
  addrMask: number | null = null,
): number {
  // IPv6: queue 0, whose engine alone forwards IPv6 so far.
  if (len > 0 && b[off]! >>> 4 === 6) return 0;
  const h = steerKey(b, off, len, isVip, clientIsSource);
  if (h < 0) return 0;
  return steerKeyHash(keyAddr, keyPort, addrMask);
}

/** The hash of a flow whose client is `addr`:`port` (a synced connection's, say), as steerHash. */
export function steerKeyHash(addr: number, port: number, addrMask: number | null): number {
  return addrMask === null ? steerMix(addr, port) : steerMix((addr & addrMask) >>> 0, 0);
}

/** The key steerKey found (module state: no allocation per packet). */
let keyAddr = 0;
let keyPort = 0;

/** Find the client side's address and port into keyAddr/keyPort; -1 where the kernel's program reads past the end. */
function steerKey(
  b: Uint8Array,
  off: number,
  len: number,
  isVip: (addr: number) => boolean,
  clientIsSource: boolean,
): number {
  if (len < 20) return -1;
  const ihl = (b[off]! & 0x0f) << 2;
  let saddr = u32(b, off + 12);
  let daddr = u32(b, off + 16);
  let sport = 0;
  let dport = 0;
  const protocol = b[off + 9]!;
  const fragment = (u16(b, off + 6) & 0x3fff) !== 0;
  if (!fragment && protocol === IPPROTO_ICMP) {
    if (ihl + 1 > len) return -1;
    if (isIcmpError(b[off + ihl]!)) {
      const q = ihl + 8;
      if (q + 20 > len) return -1;
      saddr = u32(b, off + q + 12);
      daddr = u32(b, off + q + 16);
      const innerProto = b[off + q + 9]!;
      const l4 = q + ((b[off + q]! & 0x0f) << 2);
      if ((u16(b, off + q + 6) & 0x3fff) === 0 && hasPorts(innerProto)) {
        if (l4 + 4 > len) return -1;
        sport = u16(b, off + l4);
        dport = u16(b, off + l4 + 2);
      }
      // The quoted packet went the other way.
      if (clientIsSource || isVip(saddr)) return found(daddr, dport);
      return found(saddr, sport);
    }
  } else if (!fragment && hasPorts(protocol)) {
    if (ihl + 4 > len) return -1;
    sport = u16(b, off + ihl);
    dport = u16(b, off + ihl + 2);
  }
  if (clientIsSource || isVip(daddr)) return found(saddr, sport);
  return found(daddr, dport);
}

function found(addr: number, port: number): number {
  keyAddr = addr;
  keyPort = port;
  return 0;
}
