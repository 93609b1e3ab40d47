// IP-in-IP decapsulation for a real server in TUN mode (REFERENCE.md §1.3 "TUN / IP-in-IP"): the
// director wraps the client's packet in an outer IPv4 header (protocol 4, RS address as the
// destination); the real server strips it and hands the inner packet to its own stack, which owns
// the VIP and answers the client directly. This kernel has no `ipip` module, so lvs-realserver
// does in user space what net/ipv4/ipip.c + ip_tunnel_rcv() would do:
//
//   outer  valid IPv4 header, protocol 4, not a fragment (the stack reassembles before a raw
//          socket sees the datagram), total length = the bytes received
//   inner  valid IPv4 header with a good checksum, total length <= the bytes after the outer
//          header (link padding beyond it is cut off), destination one of the VIPs
//   ECN    RFC 6040 as INET_ECN_decapsulate(): outer CE marks an ECN-capable inner packet CE;
//          outer CE over a not-ECN-capable inner packet is dropped
//   TCP    a checksum left partial is passed on as partial: an inner segment the director's
//          kernel cut from a GSO packet (lvsd's IP-in-IP segmentation, native/src/encap.c), or
//          the whole GSO packet, may cross veth with its checksum still to be done
//          (CHECKSUM_PARTIAL), which a raw socket cannot tell; its field then holds the folded
//          pseudo-header sum. Such a packet is flagged (`partial`) and written into the TUN with
//          a virtio_net_hdr saying NEEDS_CSUM, as the kernel had it; the local stack trusts it
//          as it trusts its own. A complete checksum that happens to equal that sum (1 in
//          65536) is trusted the same way. A whole GSO packet is larger than the link MTU: the
//          local stack takes it as it is.
//
// Pure: no I/O, no allocation per packet. One Decapsulator serves every datagram; decide() returns
// a numeric verdict (DECAP_OK or the drop reason) and counts it.

import { IPPROTO_IPIP, IPPROTO_TCP } from '../ip-vs';
import { fold, pseudoHeaderSum } from '../wire/checksum';
import { Ipv4View } from '../wire/ipv4';
import { V_BAD_TOTAL_LEN, V_OK, V_TRUNCATED } from '../wire/verdict';

/** Decapsulated: the inner packet is at innerOff, innerLen bytes. */
export const DECAP_OK = 0;
/** The datagram did not fit its receive slot (recvBatch reports it with length 0). */
export const DROP_OVERSIZE = 1;
/** Fewer bytes than an outer IPv4 header (or its IHL) needs. */
export const DROP_OUTER_TRUNCATED = 2;
/** Outer header with a bad version, IHL or total length. */
export const DROP_OUTER_MALFORMED = 3;
/** Outer header checksum does not verify. */
export const DROP_OUTER_BAD_CHECKSUM = 4;
/** Outer header is a fragment. */
export const DROP_OUTER_FRAGMENT = 5;
/** Outer protocol is not 4 (IP-in-IP). */
export const DROP_NOT_IPIP = 6;
/** Fewer bytes after the outer header than the inner header or its total length says. */
export const DROP_INNER_TRUNCATED = 7;
/** Inner header with a bad version, IHL or total length below its header. */
export const DROP_INNER_MALFORMED = 8;
/** Inner header checksum does not verify. */
export const DROP_INNER_BAD_CHECKSUM = 9;
/** Inner destination is not one of the VIPs this real server serves. */
export const DROP_NOT_VIP = 10;
/** Outer ECN is CE but the inner packet is not ECN-capable (RFC 6040 section 4.2). */
export const DROP_ECN = 11;

export type DecapVerdict = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11;

/** Counter names, indexed by verdict. */
export const DECAP_VERDICT_NAMES: readonly string[] = [
  'decapsulated',
  'oversize',
  'outer_truncated',
  'outer_malformed',
  'outer_bad_checksum',
  'outer_fragment',
  'not_ipip',
  'inner_truncated',
  'inner_malformed',
  'inner_bad_checksum',
  'not_vip',
  'ecn',
];

export const DECAP_VERDICT_COUNT = 12;

/** The two ECN bits of the TOS byte (RFC 3168). */
const ECN_MASK = 0x03;
const ECN_NOT_ECT = 0x00;
const ECN_CE = 0x03;

/** What the decapsulation loop needs of a decapsulator (this IPv4 one, or decap6.ts's). */
export interface InnerDecider {
  /** Count and return the verdict on buf[off, off + len); on DECAP_OK the fields below are set. */
  decide(buf: Buffer, off: number, len: number): DecapVerdict;
  innerOff: number;
  innerLen: number;
  /** Where the inner packet's L4 header starts, from innerOff. */
  innerHeaderLen: number;
  /** The inner TCP checksum is partial (decap.ts's file comment). */
  partial: boolean;
  readonly partials: number;
  readonly counters: Float64Array;
}

export class Decapsulator implements InnerDecider {
  private readonly vips: Uint32Array;
  private readonly outer = new Ipv4View();
  private readonly inner = new Ipv4View();
  /** After decide() returned DECAP_OK: offset and length (its total length) of the inner packet. */
  innerOff = 0;
  innerLen = 0;
  /** Its IPv4 header length (where its TCP header starts). */
  innerHeaderLen = 0;
  /** How many datagrams got each verdict, indexed by verdict (DECAP_VERDICT_NAMES). */
  readonly counters = new Float64Array(DECAP_VERDICT_COUNT);
  /** After DECAP_OK: the inner TCP checksum is partial (its field holds the pseudo-header sum). */
  partial = false;
  /** Inner TCP packets delivered with a partial checksum. */
  partials = 0;

  /** `vips`: host-order uint32 addresses whose packets this real server accepts. */
  constructor(vips: readonly number[]) {
    this.vips = Uint32Array.from(vips);
  }

  /**
   * Decide about the datagram buf[off, off + len) read from a protocol-4 raw socket (outer IPv4
   * header first). Counts the verdict and returns it; on DECAP_OK sets innerOff/innerLen. May
   * rewrite the inner TOS byte (ECN CE, checksum updated); nothing else is changed.
   */
  decide(buf: Buffer, off: number, len: number): DecapVerdict {
    const v = this.classify(buf, off, len);
    this.counters[v]++;
    return v;
  }

  private classify(buf: Buffer, off: number, len: number): DecapVerdict {
    if (len === 0) return DROP_OVERSIZE;

    const outer = this.outer.reset(buf, off, len);
    const ov = outer.checkLen();
    if (ov !== V_OK) return ov === V_TRUNCATED ? DROP_OUTER_TRUNCATED : DROP_OUTER_MALFORMED;
    if (!outer.verifyChecksum()) return DROP_OUTER_BAD_CHECKSUM;
    if (outer.isFragment) return DROP_OUTER_FRAGMENT;
    if (outer.protocol !== IPPROTO_IPIP) return DROP_NOT_IPIP;

    const innerOff = outer.payloadOffset;
    const avail = outer.payloadLen;
    const inner = this.inner.reset(buf, innerOff, avail);
    const iv = inner.checkLen();
    if (iv !== V_OK) {
      if (iv === V_TRUNCATED) return DROP_INNER_TRUNCATED;
      // The header itself is whole here, so totalLen is readable: a length beyond the bytes that
      // came is a truncated packet; one below the header length is malformed.
      if (iv === V_BAD_TOTAL_LEN && inner.totalLen > avail) return DROP_INNER_TRUNCATED;
      return DROP_INNER_MALFORMED;
    }
    if (!inner.verifyChecksum()) return DROP_INNER_BAD_CHECKSUM;
    if (!this.isVip(inner.dstAddr)) return DROP_NOT_VIP;

    if ((outer.tos & ECN_MASK) === ECN_CE) {
      const innerTos = inner.tos;
      if ((innerTos & ECN_MASK) === ECN_NOT_ECT) return DROP_ECN;
      if ((innerTos & ECN_MASK) !== ECN_CE) inner.setTosWithChecksumUpdate(innerTos | ECN_CE);
    }

    this.partial = inner.protocol === IPPROTO_TCP && !inner.isFragment && isPartial(buf, inner);
    if (this.partial) this.partials++;
    this.innerOff = innerOff;
    this.innerLen = inner.totalLen;
    this.innerHeaderLen = inner.headerLen;
    return DECAP_OK;
  }

  private isVip(addr: number): boolean {
    const vips = this.vips;
    for (let i = 0; i < vips.length; i++) if (vips[i] === addr) return true;
    return false;
  }
}

/** Does the TCP checksum of `inner` (a whole IPv4 packet) hold only its pseudo-header sum? */
function isPartial(buf: Buffer, inner: Ipv4View): boolean {
  const len = inner.totalLen - inner.headerLen;
  if (len < 20) return false;
  const at = inner.payloadOffset + 16;
  return buf.readUInt16BE(at) === fold(pseudoHeaderSum(inner.srcAddr, inner.dstAddr, IPPROTO_TCP, len));
}
