// IPv4 fragmentation (RFC 791 section 2.3 "Fragmentation" and 3.2): cut one IPv4 packet that is
// longer than an MTU into fragments that each fit, writing them into slots the caller owns.
//
//   original   | hdr (full options) |<------------------- payload ------------------->|
//   index 0    | hdr (full options) | first bytes |                            MF=1, off=O
//   index 1..  | hdr (copied opts)  |   chunk bytes   |                        MF=1, off=O+start
//   last       | hdr (copied opts)  | the rest |                               MF=orig, off=...
//
// The first fragment carries the whole header, options included. Later fragments carry the fixed
// 20 bytes plus only the options whose type has the "copied" bit (0x80) set, padded with zero
// (end-of-option-list) bytes to a 4-byte boundary, so their header may be shorter and their
// payload share larger. Every fragment but the last carries a multiple of 8 payload bytes (the
// offset field counts 8-byte units). If the input is itself a fragment (a later hop fragmenting
// again), offsets are relative to its own offset O and the last output keeps its MF flag.
//
// Because the payload share of fragment 0 and of the later fragments is fixed by the two header
// lengths and the MTU, fragment `index` can be written on its own, in any order, with no state:
// fragmentCount() says how many slots to take, writeFragment() fills one. Nothing allocates.
// Options are walked per call (at most 40 bytes); a malformed option (length < 2 or running past
// the header) ends the walk, and nothing after it is copied, as Linux's ip_options_fragment does.

import { checksum } from './checksum';
import { IPV4, IPV4_DF, IPV4_FRAG_OFFSET_MASK, IPV4_MF } from './ipv4';

/** Option type bit: the option is copied into every fragment (RFC 791, "copied flag"). */
export const IPV4_OPT_COPIED = 0x80;
/** Option type End of Option List: one byte, ends the options. */
export const IPV4_OPT_EOL = 0;
/** Option type No Operation: one byte, padding between options (not copied). */
export const IPV4_OPT_NOP = 1;
/** The most payload an IPv4 datagram can carry: 65535 minus a 20-byte header. */
export const IPV4_MAX_PAYLOAD = 0xffff - IPV4.MIN_HEADER;
/** Fragment offsets count units of this many bytes; non-last fragment payloads are multiples of it. */
export const FRAG_UNIT = 8;

/**
 * Walk the options of the IPv4 header at src[srcOff] and return how many bytes of copied options
 * (type & 0x80) it has, unpadded. With `out`, also write them, in order, at out[outAt].
 */
function copiedOptions(src: Buffer, srcOff: number, out: Buffer | null, outAt: number): number {
  const end = srcOff + ((src[srcOff + IPV4.VER_IHL] & 0x0f) << 2);
  let i = srcOff + IPV4.MIN_HEADER;
  let n = 0;
  while (i < end) {
    const type = src[i];
    if (type === IPV4_OPT_EOL) break;
    if (type === IPV4_OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const optLen = src[i + 1];
    if (optLen < 2 || i + optLen > end) break;
    if ((type & IPV4_OPT_COPIED) !== 0) {
      if (out !== null) src.copy(out, outAt + n, i, i + optLen);
      n += optLen;
    }
    i += optLen;
  }
  return n;
}

/**
 * Header length in bytes of every fragment after the first: 20 plus the copied options, padded
 * to a multiple of 4. Equals the original header length when there are no options.
 */
export function laterFragmentHeaderLen(src: Buffer, srcOff: number): number {
  return IPV4.MIN_HEADER + ((copiedOptions(src, srcOff, null, 0) + 3) & ~3);
}

/**
 * How many fragments the IPv4 packet at src[srcOff] (it passed Ipv4View.checkLen(); its total
 * length field is its size) becomes for `mtu`: 1 if it fits as it is (writeFragment then copies
 * it unchanged), 0 if it cannot be sent: DF set and too big, an MTU that leaves the first
 * fragment fewer than 8 payload bytes, or (a fragment as input) data that would end beyond the
 * largest datagram, whose offsets the 13-bit field cannot express.
 */
export function fragmentCount(src: Buffer, srcOff: number, mtu: number): number {
  const totalLen = (src[srcOff + IPV4.TOTAL_LEN] << 8) | src[srcOff + IPV4.TOTAL_LEN + 1];
  if (totalLen <= mtu) return 1;
  if ((src[srcOff + IPV4.FLAGS_FRAG] & (IPV4_DF >> 8)) !== 0) return 0;
  const headerLen = (src[srcOff + IPV4.VER_IHL] & 0x0f) << 2;
  if (mtu - headerLen < FRAG_UNIT) return 0;
  const offset =
    (((src[srcOff + IPV4.FLAGS_FRAG] << 8) | src[srcOff + IPV4.FLAGS_FRAG + 1]) & IPV4_FRAG_OFFSET_MASK) << 3;
  if (offset + totalLen - headerLen > IPV4_MAX_PAYLOAD) return 0;
  const first = (mtu - headerLen) & ~(FRAG_UNIT - 1);
  const chunk = (mtu - laterFragmentHeaderLen(src, srcOff)) & ~(FRAG_UNIT - 1);
  const rest = totalLen - headerLen - first; // > 0: the packet does not fit
  return 1 + Math.floor((rest + chunk - 1) / chunk);
}

/**
 * Write fragment `index` (0 <= index < fragmentCount(src, srcOff, mtu)) of the IPv4 packet at
 * src[srcOff] to out[outOff] and return its length (<= mtu), or 0 if there is no such fragment.
 * The caller provides room for `mtu` bytes (or the whole packet when the count is 1). Each
 * fragment gets its total length, MF, offset and header checksum; id, TOS, TTL, protocol,
 * addresses, DF and the reserved flag bit are those of the original.
 *
 * `out` must not overlap src, except that fragment 0 may be written in place over the original
 * (out === src, outOff === srcOff) as the last call: it rewrites the header the others read.
 */
export function writeFragment(
  src: Buffer,
  srcOff: number,
  mtu: number,
  index: number,
  out: Buffer,
  outOff: number,
): number {
  const count = fragmentCount(src, srcOff, mtu);
  if (index < 0 || index >= count) return 0;
  const totalLen = (src[srcOff + IPV4.TOTAL_LEN] << 8) | src[srcOff + IPV4.TOTAL_LEN + 1];
  if (count === 1) {
    src.copy(out, outOff, srcOff, srcOff + totalLen);
    return totalLen;
  }
  const headerLen = (src[srcOff + IPV4.VER_IHL] & 0x0f) << 2;
  const flagsFrag = (src[srcOff + IPV4.FLAGS_FRAG] << 8) | src[srcOff + IPV4.FLAGS_FRAG + 1];
  const payloadLen = totalLen - headerLen;
  const first = (mtu - headerLen) & ~(FRAG_UNIT - 1);

  let start: number;
  let size: number;
  let hl: number;
  if (index === 0) {
    start = 0;
    size = first;
    hl = headerLen;
    src.copy(out, outOff, srcOff, srcOff + headerLen);
  } else {
    const optLen = copiedOptions(src, srcOff, out, outOff + IPV4.MIN_HEADER);
    hl = IPV4.MIN_HEADER + ((optLen + 3) & ~3);
    const chunk = (mtu - hl) & ~(FRAG_UNIT - 1);
    start = first + (index - 1) * chunk;
    size = Math.min(chunk, payloadLen - start);
    src.copy(out, outOff, srcOff, srcOff + IPV4.MIN_HEADER);
    out.fill(IPV4_OPT_EOL, outOff + IPV4.MIN_HEADER + optLen, outOff + hl);
    out[outOff + IPV4.VER_IHL] = 0x40 | (hl >> 2);
  }
  const from = srcOff + headerLen + start;
  src.copy(out, outOff + hl, from, from + size);

  const last = index === count - 1;
  const mf = last ? flagsFrag & IPV4_MF : IPV4_MF;
  const offsetUnits = (flagsFrag & IPV4_FRAG_OFFSET_MASK) + start / FRAG_UNIT;
  const newFlagsFrag = (flagsFrag & ~(IPV4_MF | IPV4_FRAG_OFFSET_MASK)) | mf | offsetUnits;
  const len = hl + size;
  out[outOff + IPV4.TOTAL_LEN] = len >>> 8;
  out[outOff + IPV4.TOTAL_LEN + 1] = len;
  out[outOff + IPV4.FLAGS_FRAG] = newFlagsFrag >>> 8;
  out[outOff + IPV4.FLAGS_FRAG + 1] = newFlagsFrag;
  out[outOff + IPV4.CHECKSUM] = 0;
  out[outOff + IPV4.CHECKSUM + 1] = 0;
  const csum = checksum(out, outOff, hl);
  out[outOff + IPV4.CHECKSUM] = csum >>> 8;
  out[outOff + IPV4.CHECKSUM + 1] = csum;
  return len;
}
