// The packet being decided: one context, reused for every packet, that the engine's hooks, the
// ICMP relay, the application helpers and the transmitters all take (the kernel passes a
// struct sk_buff and its parsed struct ip_vs_iphdr the same way). It holds the parsed views,
// the offload state read from the virtio_net_hdr, the dest of the connection being
// transmitted, and what a transmitter decided to send; and it reaches the batch's output.
// Nothing in it is allocated per packet.

import type { ConnTable } from '../conn/conn-table';
import type { Dest } from '../ip-vs';
import type { PacketMeta, ProtoHandler } from '../proto/proto';
import { Ipv4View } from '../wire/ipv4';
import { Ipv6View } from '../wire/ipv6';
import type { TxBatch } from './tx-batch';

export class PacketContext {
  /** The packet's IPv4 header, re-pointed at each packet (checkLen passed). */
  readonly ip = new Ipv4View();
  /** An IPv6 packet's header (core/path6.ts), re-pointed at each such packet. */
  readonly ip6 = new Ipv6View();
  /** Its flow: protocol, addresses, ports and TCP flags (what schedulers and state tables read). */
  readonly meta: PacketMeta = { protocol: 0, saddr: 0, daddr: 0, sport: 0, dport: 0, tcpFlags: 0 };
  /** Its protocol handler, the handler's view pointed at the L4 header. */
  l4: ProtoHandler;
  /** The dest of the connection being transmitted. */
  dest: Dest;
  /** Firewall mark of the packet (that of the device it was read from; 0: none). */
  mark = 0;
  /** Set by a transmitter returning TX: the bytes to send and the device (txDev) to send them on. */
  outOff = 0;
  outLen = 0;
  outDev = 0;
  /** Payload bytes per segment when it is a TCP GSO packet, else 0. */
  gsoSize = 0;
  /** Start of its partial L4 checksum region from the IPv4 header; 0: complete. */
  csumStart = 0;
  /** Offset of the partial checksum field from csumStart. */
  csumOffset = 0;
  /**
   * It is a datagram reassembled from fragments (in the slab's big slot, a zeroed
   * virtio_net_hdr before it with offloads): routed ones go back through the TUN, so the
   * kernel fragments them again on the way out.
   */
  reassembled = false;
  /**
   * An IPv6 datagram reassembled here: the largest fragment it came in, the size it leaves in
   * again when it is larger (the kernel's netfilter defragmentation does the same).
   */
  fragSize6 = 0;
  /**
   * The smallest MTU of the director's own links: a NAT reply above it may not fit the link
   * towards its client, so it goes through the kernel's forward path (which fragments it or
   * answers frag-needed) instead of the raw socket (which would refuse it).
   */
  replyMtu = 0xffff;
  /**
   * The kernel segments IP-in-IP GSO packets lvsd writes back into its TUN (lvsd's ingress
   * program, native/src/encap.c, is attached): TUN mode hands it whole GSO packets.
   */
  ipipGso = false;

  constructor(
    /** The connection table (transmitters read the connection's addresses and ports). */
    readonly conns: ConnTable,
    /** The IPv6 connection table (the IPv6 transmitters read its full addresses). */
    readonly conns6: ConnTable,
    /** The batch's output. */
    readonly tx: TxBatch,
    /** Bytes of virtio_net_hdr before each received packet: 10 with TUN offloads, else 0. */
    readonly vnetHdr: number,
    /** Largest packet a receive slot holds (how far a helper may grow one). */
    private readonly maxPacket: number,
    l4: ProtoHandler,
    /** A placeholder until the first connection's dest is set (never transmitted to). */
    dest: Dest,
  ) {
    this.l4 = l4;
    this.dest = dest;
  }

  /** Queue one more output packet now (generated ICMP, fragments). False when the batch is full. */
  queue(off: number, len: number, dev: number): boolean {
    return this.tx.queue(off, len, dev);
  }

  /** A free generated-packet slot (TxBatch.genSlot): queue it before asking for the next. */
  genSlot(): number {
    return this.tx.genSlot();
  }

  /** Largest packet a generated slot holds. */
  get slotCapacity(): number {
    return this.tx.slotCapacity;
  }

  /** The next IPv4 identification for a header this director originates. */
  nextIpId(): number {
    return this.tx.nextIpId();
  }

  /** Largest the packet may grow to (an application helper's rewrite): its slot's room. */
  packetRoom(): number {
    return this.reassembled ? 0xffff : Math.min(0xffff, this.maxPacket);
  }
}
