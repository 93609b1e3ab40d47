// The Internet checksum (RFC 1071) and its incremental update (RFC 1624): the one checksum module
// that every header view uses.
//
// A "sum" here is an unfolded one's-complement accumulator: a plain non-negative JS number holding
// the sum of big-endian 16-bit words. Because 2^16 = 1 (mod 0xffff), carries can be folded back in
// at any time, so sums from several pieces (pseudo-header, header, payload) just add up; fold()
// them once at the end. A 64 KiB buffer adds at most 32768 * 0xffff < 2^31, far inside the 2^53 a
// double holds exactly.

/**
 * One's-complement accumulation of the big-endian 16-bit words of buf[off, off + len), added to
 * `initial` (another sum, e.g. a pseudoHeaderSum). An odd trailing byte is padded with a zero
 * byte. Returns an unfolded sum: pass it on as `initial`, or to fold()/finish().
 */
export function sum16(buf: Buffer, off: number, len: number, initial = 0): number {
  if (len >= WIDE_MIN_LEN && LITTLE_ENDIAN && ((buf.byteOffset + off) & 1) === 0)
    return sum16Wide(buf, off, len, initial);
  let sum = initial;
  let i = off;
  const end = off + len;
  const end8 = off + (len & ~7);
  for (; i < end8; i += 8) {
    sum +=
      ((buf[i] << 8) | buf[i + 1]) +
      ((buf[i + 2] << 8) | buf[i + 3]) +
      ((buf[i + 4] << 8) | buf[i + 5]) +
      ((buf[i + 6] << 8) | buf[i + 7]);
  }
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

// The wide path: 32-bit native-order loads through a Uint32Array over the buffer's memory, four
// bytes per add instead of one. On a little-endian host each load holds two byte-swapped 16-bit
// words; the one's-complement sum of swapped words is the swapped sum (RFC 1071 section 2(B)),
// so the folded result is swapped back once. Used for an even start (words stay aligned with the
// data's 16-bit words) and long enough runs; one view is kept per backing store, so the slab's
// packets never allocate.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const WIDE_MIN_LEN = 64;
let wideStore: ArrayBufferLike | undefined;
let wideWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

function sum16Wide(buf: Buffer, off: number, len: number, initial: number): number {
  let sum = initial;
  let i = off;
  const end = off + len;
  if (((buf.byteOffset + i) & 2) !== 0) {
    sum += (buf[i] << 8) | buf[i + 1];
    i += 2;
  }
  const store = buf.buffer;
  if (store !== wideStore) {
    wideStore = store;
    wideWords = new Uint32Array(store, 0, store.byteLength >>> 2);
  }
  const w = wideWords;
  const count = (end - i) >>> 2;
  let k = (buf.byteOffset + i) >>> 2;
  const kEnd = k + count;
  const kEnd4 = k + (count & ~3);
  let swapped = 0;
  for (; k < kEnd4; k += 4) swapped += w[k] + w[k + 1] + w[k + 2] + w[k + 3];
  for (; k < kEnd; k++) swapped += w[k];
  const f = fold(swapped);
  sum += ((f & 0xff) << 8) | (f >>> 8);
  i += count << 2;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Fold the carries of a sum back into 16 bits (end-around carry). Not complemented. */
export function fold(sum: number): number {
  // `& 0xffff` is exact for any safe integer (ToInt32 is mod 2^32); the division keeps the high
  // part exact above 2^32, where `>>> 16` would drop bits.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for a sum: the one's complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** The Internet checksum of buf[off, off + len), starting from sum `initial`. */
export function checksum(buf: Buffer, off: number, len: number, initial = 0): number {
  return finish(sum16(buf, off, len, initial));
}

/**
 * Sum of the IPv4 pseudo-header that TCP and UDP checksums cover (RFC 793 / RFC 768): source and
 * destination address (host-order uint32), zero byte + protocol, and the L4 length.
 */
export function pseudoHeaderSum(saddr: number, daddr: number, protocol: number, l4len: number): number {
  return (saddr >>> 16) + (saddr & 0xffff) + (daddr >>> 16) + (daddr & 0xffff) + protocol + l4len;
}

/**
 * Incremental update of checksum field `csum` when one 16-bit word of the covered data changes
 * from `oldVal` to `newVal`, per RFC 1624 section 3, eqn. 3:
 *
 *     HC' = ~(~HC + ~m + m')
 *
 * (all one's-complement arithmetic). Unlike eqn. 2 of RFC 1141 this never produces the -0 that a
 * full recompute could not. The result equals a full recompute for any covered data that is not
 * all zero (always true where a pseudo-header or an IPv4 version field is covered).
 */
export function update16(csum: number, oldVal: number, newVal: number): number {
  const sum = (~csum & 0xffff) + (~oldVal & 0xffff) + (newVal & 0xffff);
  return ~fold(sum) & 0xffff;
}

/**
 * Update a *partial* checksum field when a 32-bit pseudo-header word (an IPv4 address) changes
 * from `oldVal` to `newVal`. With checksum offload (CHECKSUM_PARTIAL, virtio NEEDS_CSUM) the
 * field holds the folded, uncomplemented pseudo-header sum P that the device completes later, so
 * the new field is fold(P + ~old + new): the same one's-complement difference as update32, but
 * added to P rather than to ~field. Fields the device sums itself (ports, sequence numbers) need
 * no update at all.
 */
export function updatePartial32(field: number, oldVal: number, newVal: number): number {
  return fold(field + (~(oldVal >>> 16) & 0xffff) + (~oldVal & 0xffff) + (newVal >>> 16) + (newVal & 0xffff));
}

/**
 * update16 for a 32-bit field (an IPv4 address, a TCP sequence number): RFC 1624 eqn. 3 applied
 * to its two 16-bit halves. Summing both halves before one fold is the same one's-complement
 * arithmetic as two chained update16 calls.
 */
export function update32(csum: number, oldVal: number, newVal: number): number {
  const sum = (~csum & 0xffff) + (~(oldVal >>> 16) & 0xffff) + (~oldVal & 0xffff) + (newVal >>> 16) + (newVal & 0xffff);
  return ~fold(sum) & 0xffff;
}
