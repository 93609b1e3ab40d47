// IPv6-in-IPv6 decapsulation for a real server in TUN mode (ip_vs_tunnel_xmit_v6's packets:
// an outer IPv6 header, next header 41, in front of the client's IPv6 packet), on a kernel with
// no ip6_tunnel module. The datagrams come from a raw AF_INET6 socket for protocol 41, which
// hands over what follows the outer headers: the inner packet itself (the stack has checked the
// outer header, reassembled outer fragments, and stripped its extension headers).
//
//   inner  valid IPv6 header and extension headers, payload length <= the bytes received (link
//          padding beyond it cut off), destination one of the VIPs
//
// The outer traffic class is not seen here (the raw socket strips it): RFC 6040's ECN
// propagation, which the IPv4 decapsulator applies, is not done for IPv6.
// Pure: no I/O, no allocation per packet; the verdicts and counters are decap.ts's.

import { Ipv6View } from '../wire/ipv6';
import { V_BAD_TOTAL_LEN, V_OK, V_TRUNCATED } from '../wire/verdict';
import {
  DECAP_OK,
  DECAP_VERDICT_COUNT,
  type DecapVerdict,
  DROP_INNER_MALFORMED,
  DROP_INNER_TRUNCATED,
  DROP_NOT_VIP,
  DROP_OVERSIZE,
  type InnerDecider,
} from './decap';

/** Words of one IPv6 address. */
const ADDR6_WORDS_PER_ADDR = 4;

export class Decapsulator6 implements InnerDecider {
  /** The VIPs, four host-order words each. */
  private readonly vips: Uint32Array;
  private readonly inner = new Ipv6View();
  innerOff = 0;
  innerLen = 0;
  innerHeaderLen = 0;
  readonly counters = new Float64Array(DECAP_VERDICT_COUNT);
  /** Inner checksums are complete: a raw socket's datagram is never left partial by the director. */
  readonly partial = false;
  readonly partials = 0;

  /** `vips`: the IPv6 VIPs, each as four host-order words. */
  constructor(vips: readonly Uint32Array[]) {
    this.vips = new Uint32Array(vips.length * ADDR6_WORDS_PER_ADDR);
    for (let i = 0; i < vips.length; i++) this.vips.set(vips[i].subarray(0, 4), i * ADDR6_WORDS_PER_ADDR);
  }

  /** Decide about the inner packet buf[off, off + len) a protocol-41 raw socket read. */
  decide(buf: Buffer, off: number, len: number): DecapVerdict {
    const v = this.classify(buf, off, len);
    this.counters[v]++;
    return v;
  }

  private classify(buf: Buffer, off: number, len: number): DecapVerdict {
    if (len === 0) return DROP_OVERSIZE;
    const inner = this.inner.reset(buf, off, len);
    const v = inner.checkLen();
    if (v !== V_OK) return v === V_TRUNCATED || v === V_BAD_TOTAL_LEN ? DROP_INNER_TRUNCATED : DROP_INNER_MALFORMED;
    if (!this.isVip(inner)) return DROP_NOT_VIP;
    this.innerOff = off;
    this.innerLen = inner.totalLen;
    this.innerHeaderLen = inner.l4Offset;
    return DECAP_OK;
  }

  private isVip(ip: Ipv6View): boolean {
    const v = this.vips;
    for (let i = 0; i < v.length; i += ADDR6_WORDS_PER_ADDR) {
      if (
        v[i] === ip.dstWord(0) &&
        v[i + 1] === ip.dstWord(1) &&
        v[i + 2] === ip.dstWord(2) &&
        v[i + 3] === ip.dstWord(3)
      ) {
        return true;
      }
    }
    return false;
  }
}
