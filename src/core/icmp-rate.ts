// The limit on the ICMP errors the director originates, as Linux's icmp_send applies it
// (net/ipv4/icmp.c: icmpv4_mask_allow, icmpv4_global_allow → icmp_global_allow,
// icmpv4_xrlim_allow → inet_peer_xrlim_allow in net/ipv4/inetpeer.c, icmp_global_consume), in the
// order of Linux 6.12 on ("icmp: change the order of rate limits", CVE-2024-47678):
//
//   1. mask   A type above NR_ICMP_TYPES, "fragmentation needed" (3/4: path MTU discovery must
//             never be limited) or a type whose bit is clear in icmp_ratemask (default 0x1818:
//             dest unreachable 3, source quench 4, time exceeded 11, parameter problem 12)
//             passes and touches no counter.
//   2. global A host-wide bucket of at most icmp_msgs_burst (50) credits earning
//             icmp_msgs_per_sec (1000) a second. This step only asks whether there is credit:
//             above 0 it passes; at 0 or below it refills, for the time since its last refill
//             (at least HZ/50 = 20 ms, at most one second), and fails when that is too short.
//   3. peer   A bucket per destination address (the kernel's inet_peer): each message costs
//             icmp_ratelimit (1000 ms) of tokens, tokens grow with time and stop at
//             XRLIM_BURST_FACTOR (6) messages' worth, so a destination gets 6 at once, then one
//             a second. A new destination starts full (the kernel dates rate_last 60 s back).
//             The clock is read and the bucket updated even when the message is refused.
//             icmp_ratelimit 0 skips this step.
//   4.        Only a message that passed step 3 consumes global credit: 0, 1 or 2 at random, one
//             on average ("icmp: randomize the global rate limiter", against the SADDNS side
//             channel, CVE-2020-25705), which may take the credit below 0.
//
// Time is whole milliseconds of the injected clock (jiffies at HZ = 1000).
//
// The kernel keeps its inet_peers in an rb-tree that grows with memory (inet_peer_threshold,
// 1% of RAM, at least 4096) and frees entries unused for a while as lookups pass them. Here
// the table is fixed: PEER_SLOTS typed-array slots, open addressing with a window of PEER_PROBE
// slots from the address's (seeded) hash. A lookup scans the window; an address not in it takes
// a free slot of the window, or when none is free evicts the least recently used entry of the
// window (counts.peerEvictions). An evicted destination that comes back starts with a full
// bucket again, which is what the kernel gives it once its entry has been freed. An entry idle
// for 6 × icmp_ratelimit has a full bucket anyway, so eviction only makes a difference when
// more destinations than the table holds are answered within a few seconds; the global bucket
// still bounds the total. No allocation per message.

/** Messages a second the global bucket earns (net.ipv4.icmp_msgs_per_sec). */
export const ICMP_MSGS_PER_SEC = 1000;
/** Most credits the global bucket holds (net.ipv4.icmp_msgs_burst). */
export const ICMP_MSGS_BURST = 50;
/** Milliseconds of tokens one message to a destination costs; 0: no per-destination limit (net.ipv4.icmp_ratelimit). */
export const ICMP_RATELIMIT = 1000;
/** Types limited, one bit per type (net.ipv4.icmp_ratemask). */
export const ICMP_RATEMASK = 0x1818;
/** A destination's bucket holds this many messages' worth (inetpeer.c). */
export const XRLIM_BURST_FACTOR = 6;
/** Slots of the per-destination table (the kernel's inet_peer_threshold is at least 4096). */
export const PEER_SLOTS = 4096;
/** Slots an address may occupy: its hash slot and the ones after it. */
export const PEER_PROBE = 8;

/** The highest ICMP type the kernel knows (NR_ICMP_TYPES); above it nothing is limited. */
const NR_ICMP_TYPES = 18;
const ICMP_DEST_UNREACH = 3;
const ICMP_FRAG_NEEDED = 4;
/** Ticks a second: the clock is in milliseconds. */
const HZ = 1000;
/** A new destination's tokens are computed as if last used this long ago (inet_getpeer). */
const NEW_PEER_AGE = 60 * HZ;
/** peerLast of a free slot (also the least recently used of all). */
const FREE = Number.NEGATIVE_INFINITY;

/** Milliseconds on a monotonic clock. */
export type MsClock = () => number;

export interface IcmpRateOptions {
  /** Per-destination table size, a power of two of at least PEER_PROBE (default PEER_SLOTS). */
  peerSlots?: number;
  /** Global credits a sent message consumes (default: 0, 1 or 2 at random, as the kernel). */
  consume?: () => number;
}

export class IcmpRateLimit {
  // The sysctls, with the kernel's names and defaults.
  icmpMsgsPerSec = ICMP_MSGS_PER_SEC;
  icmpMsgsBurst = ICMP_MSGS_BURST;
  icmpRatelimit = ICMP_RATELIMIT;
  icmpRatemask = ICMP_RATEMASK;
  /** Messages refused by the global bucket and by a destination's (OutRateLimitGlobal, OutRateLimitHost); entries evicted. */
  readonly counts = { rateLimitGlobal: 0, rateLimitHost: 0, peerEvictions: 0 };

  private credit = 0;
  /** Time of the last refill; -Infinity: the first refill covers a whole second. */
  private stamp = Number.NEGATIVE_INFINITY;
  private readonly peerAddr: Uint32Array;
  /** Tokens (milliseconds) and time of last use per slot. */
  private readonly peerTokens: Float64Array;
  private readonly peerLast: Float64Array;
  private readonly peerMask: number;
  private readonly hashShift: number;
  private readonly hashSeed: number;
  private readonly consume: () => number;

  constructor(
    private readonly clock: MsClock,
    opts: IcmpRateOptions = {},
  ) {
    const slots = opts.peerSlots ?? PEER_SLOTS;
    if (slots < PEER_PROBE || (slots & (slots - 1)) !== 0 || slots > 1 << 30) {
      throw new RangeError(`peerSlots must be a power of two from ${PEER_PROBE}: ${slots}`);
    }
    this.peerAddr = new Uint32Array(slots);
    this.peerTokens = new Float64Array(slots);
    this.peerLast = new Float64Array(slots).fill(FREE);
    this.peerMask = slots - 1;
    this.hashShift = 32 - Math.log2(slots);
    this.hashSeed = (Math.random() * 0x100000000) >>> 0;
    this.consume = opts.consume ?? randomCredits;
  }

  /** May an ICMP error of `type`/`code` go to `dst` (a uint32 address) now? Consumes what it allows. */
  allow(type: number, code: number, dst: number): boolean {
    if (!this.limited(type, code)) return true;
    const now = Math.floor(this.clock());
    if (!this.globalAllow(now)) {
      this.counts.rateLimitGlobal++;
      return false;
    }
    if (this.icmpRatelimit !== 0 && !this.peerAllow(dst >>> 0, now)) {
      this.counts.rateLimitHost++;
      return false;
    }
    this.credit -= this.consume();
    return true;
  }

  /** icmpv4_mask_allow, negated: is this type/code subject to the limits? */
  private limited(type: number, code: number): boolean {
    if (type > NR_ICMP_TYPES) return false;
    if (type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) return false;
    return ((1 << type) & this.icmpRatemask) !== 0;
  }

  /** icmp_global_allow: is there credit, once refilled for the time since the last refill? */
  private globalAllow(now: number): boolean {
    if (this.credit > 0) return true;
    const delta = Math.min(now - this.stamp, HZ);
    if (delta < HZ / 50) return false;
    const incr = Math.floor((this.icmpMsgsPerSec * delta) / HZ);
    if (incr === 0) return false;
    this.stamp = now;
    this.credit = Math.min(this.credit + incr, this.icmpMsgsBurst);
    return true;
  }

  /** inet_peer_xrlim_allow on dst's entry. */
  private peerAllow(dst: number, now: number): boolean {
    const timeout = this.icmpRatelimit;
    const p = this.peerSlot(dst, now);
    let token = this.peerTokens[p];
    const delta = now - this.peerLast[p];
    if (delta !== 0) {
      this.peerLast[p] = now;
      token = Math.min(token + delta, XRLIM_BURST_FACTOR * timeout);
    }
    let ok = false;
    if (token >= timeout) {
      token -= timeout;
      ok = true;
    }
    this.peerTokens[p] = token;
    return ok;
  }

  /** dst's slot: found in its window, else a free slot there, else the window's least recently used. */
  private peerSlot(dst: number, now: number): number {
    const addr = this.peerAddr;
    const last = this.peerLast;
    const mask = this.peerMask;
    let i = Math.imul((dst ^ this.hashSeed) >>> 0, 0x9e3779b1) >>> this.hashShift;
    let victim = i;
    let oldest = Number.POSITIVE_INFINITY;
    for (let n = 0; n < PEER_PROBE; n++, i = (i + 1) & mask) {
      const t = last[i];
      if (t !== FREE && addr[i] === dst) return i;
      if (t < oldest) {
        oldest = t;
        victim = i;
      }
    }
    if (oldest !== FREE) this.counts.peerEvictions++;
    addr[victim] = dst;
    this.peerTokens[victim] = 0;
    last[victim] = now - NEW_PEER_AGE;
    return victim;
  }
}

/** icmp_global_consume's cost: 0, 1 or 2 credits, equally likely. */
function randomCredits(): number {
  return Math.floor(Math.random() * 3);
}
