// The connection table (ip_vs_conn): struct-of-arrays storage indexed by a numeric connection
// id, two hash indexes over it, and a coarse timer wheel for expiry.
//
// - "in" index: <protocol, caddr, cport, vaddr, vport>, what a client's packet carries.
// - "out" index: <protocol, daddr, dport, caddr, cport>, what a NAT real server's reply carries.
// - Expiry: every live connection sits in one slot of a wheel of WHEEL_SLOTS one-second slots.
//   A packet only rewrites `expires` (no relinking on the hot path); the tick walks the slot of
//   each elapsed second, expires what is due and re-files the rest by their current `expires`.
//   The slot lists are doubly linked, so a connection removed before its time (unlink) leaves
//   its slot at once and its storage is free for the next insert, and one whose timeout a state
//   change shortens (touch) moves to the earlier slot at once.
//
// - Persistence templates (CONN_F_TEMPLATE, ip_vs_sched_persist) live in the same table with
//   client port 0; the packet lookups never return them, `lookupTemplate` finds only them. A
//   connection made under a template records it in `control`, and the template counts those in
//   `nControl` (the engine keeps a template alive while it controls connections).
//
// - IPv6 (a table made `wide`): the address columns hold each address's fold (the four words
//   XORed, wire/addr6.ts ipv6Fold), so hashing and the first comparison cost what IPv4's do, and
//   a side column `addr6` holds the full client, virtual and dest addresses, compared once the
//   folds match. The *6 methods take and give addresses as host-order words.
//
// Nothing here allocates per packet: lookups hash numbers and walk Int32Array chains.

import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, CONN_F_TEMPLATE, ipv6FoldWords } from '../ip-vs';

export const NIL = -1;
const WHEEL_SLOTS = 1024;
const WHEEL_MASK = WHEEL_SLOTS - 1;
const INITIAL_CAPACITY = 1024;

/** Connection lifecycle marker kept in `live`. */
const FREE = 0;
const LIVE = 1;

/** A wide table's address layout (ip-vs.ts): ADDR6_WORDS per connection, A6_* within them. */
export { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS } from '../ip-vs';

function same4(a: Uint32Array, aOff: number, b: Uint32Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] && a[aOff + 1] === b[bOff + 1] && a[aOff + 2] === b[bOff + 2] && a[aOff + 3] === b[bOff + 3]
  );
}

export interface ConnKey {
  protocol: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
}

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h;
}

/**
 * A new connection's fields, for `insert`: each caller fills one record it keeps and reuses (no
 * allocation per connection), by name, so two numbers cannot change places unnoticed.
 */
export interface ConnInit {
  protocol: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  /** The dest's id (DestRegistry), or NIL while unbound (a synced connection). */
  dest: number;
  /** The forwarding method (FWD_*): the transmitter bound to the connection. */
  xmit: number;
  /** IP_VS_CONN_F_*. */
  flags: number;
  state: number;
  /** Seconds until it expires unless a packet or tick restarts it. */
  timeout: number;
}

/** A zeroed ConnInit, to keep and fill for each insert. */
export function newConnInit(): ConnInit {
  return {
    protocol: 0,
    caddr: 0,
    cport: 0,
    vaddr: 0,
    vport: 0,
    daddr: 0,
    dport: 0,
    dest: NIL,
    xmit: 0,
    flags: 0,
    state: 0,
    timeout: 0,
  };
}

export class ConnTable {
  /** Number of live (hashed) connections. */
  count = 0;
  capacity = 0;

  protocol: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  state: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  /** Transmitter index, bound when the connection is created. */
  xmit: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  live: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  flags: Uint16Array<ArrayBuffer> = new Uint16Array(0);
  caddr: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  vaddr: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  daddr: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  cport: Uint16Array<ArrayBuffer> = new Uint16Array(0);
  vport: Uint16Array<ArrayBuffer> = new Uint16Array(0);
  dport: Uint16Array<ArrayBuffer> = new Uint16Array(0);
  /** Dest id (DestRegistry) or NIL. */
  dest: Int32Array<ArrayBuffer> = new Int32Array(0);
  /** Current timeout, seconds. */
  timeout: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  /** Absolute expiry time, seconds on the table's clock. */
  expires: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  /** The template controlling a connection, or NIL. */
  control: Int32Array<ArrayBuffer> = new Int32Array(0);
  /** For a template: how many connections it controls. */
  nControl: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  /** Client packets seen (the sync daemon's in_pkts: it syncs every sync_period-th). */
  inPkts: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  /** The state last sent to the sync backups (old_state). */
  syncedState: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  private inNext: Int32Array<ArrayBuffer> = new Int32Array(0);
  private outNext: Int32Array<ArrayBuffer> = new Int32Array(0);
  private wheelNext: Int32Array<ArrayBuffer> = new Int32Array(0);
  /** The previous entry in the connection's wheel slot, or -2 - slot for the slot's first entry. */
  private wheelPrev: Int32Array<ArrayBuffer> = new Int32Array(0);
  /**
   * A wide (IPv6) table's full addresses, ADDR6_WORDS a connection (A6_CLIENT, A6_VIRTUAL,
   * A6_DEST: four host-order words each, the most significant first); empty in an IPv4 table.
   */
  addr6: Uint32Array<ArrayBuffer> = new Uint32Array(0);

  private inHead: Int32Array<ArrayBuffer> = new Int32Array(0);
  private outHead: Int32Array<ArrayBuffer> = new Int32Array(0);
  private bucketMask = 0;
  private readonly wheel = new Int32Array(WHEEL_SLOTS).fill(NIL);
  private freeHead = NIL;
  private readonly seed: number;
  /** Last second the wheel has processed. */
  private wheelTime: number;

  /**
   * One table of several engines' (lvsd --workers): every engine's count of live entries, shared,
   * this table's at `totalSlot`, so maxConns bounds their sum. Null: this table alone.
   */
  total: Int32Array | null = null;
  totalSlot = 0;

  /** Live entries of this table, or of all the tables sharing `total`. */
  private liveTotal(): number {
    const t = this.total;
    if (t === null) return this.count;
    let n = 0;
    for (let i = 0; i < t.length; i++) n += Atomics.load(t, i);
    return n;
  }

  /** Storage never grows beyond this (a power of two, at least maxConns). */
  private readonly maxCapacity: number;

  /**
   * `maxConns`: at most this many live entries; insert() refuses more (a table-full drop).
   * `wide`: a table of IPv6 connections (insert6 and the *6 lookups).
   */
  constructor(
    now = 0,
    capacity = INITIAL_CAPACITY,
    seed = (Math.random() * 0x100000000) >>> 0,
    readonly maxConns = 1 << 24,
    readonly wide = false,
  ) {
    let max = 1;
    while (max < maxConns) max *= 2;
    this.maxCapacity = Math.max(max, capacity);
    this.seed = seed;
    this.wheelTime = now;
    this.grow(capacity);
  }

  private hashIn(protocol: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    let h = mix(caddr ^ this.seed);
    h = mix(h ^ vaddr);
    h = mix(h ^ ((cport << 16) | vport) ^ (protocol << 8));
    return h & this.bucketMask;
  }

  lookupIn(protocol: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    let c = this.inHead[this.hashIn(protocol, caddr, cport, vaddr, vport)];
    while (c !== NIL) {
      if (
        this.caddr[c] === caddr &&
        this.cport[c] === cport &&
        this.vaddr[c] === vaddr &&
        this.vport[c] === vport &&
        this.protocol[c] === protocol &&
        (this.flags[c] & CONN_F_TEMPLATE) === 0
      ) {
        return c;
      }
      c = this.inNext[c];
    }
    return NIL;
  }

  /** The persistence template <protocol, caddr, 0, vaddr, vport>, or NIL. */
  lookupTemplate(protocol: number, caddr: number, vaddr: number, vport: number): number {
    let c = this.inHead[this.hashIn(protocol, caddr, 0, vaddr, vport)];
    while (c !== NIL) {
      if (
        this.caddr[c] === caddr &&
        this.cport[c] === 0 &&
        this.vaddr[c] === vaddr &&
        this.vport[c] === vport &&
        this.protocol[c] === protocol &&
        (this.flags[c] & CONN_F_TEMPLATE) !== 0
      ) {
        return c;
      }
      c = this.inNext[c];
    }
    return NIL;
  }

  /** Lookup by a reply's tuple: source = the real server, destination = the client. */
  lookupOut(protocol: number, daddr: number, dport: number, caddr: number, cport: number): number {
    let c = this.outHead[this.hashIn(protocol, daddr, dport, caddr, cport)];
    while (c !== NIL) {
      if (
        this.daddr[c] === daddr &&
        this.dport[c] === dport &&
        this.caddr[c] === caddr &&
        this.cport[c] === cport &&
        this.protocol[c] === protocol &&
        (this.flags[c] & CONN_F_TEMPLATE) === 0
      ) {
        return c;
      }
      c = this.outNext[c];
    }
    return NIL;
  }

  /**
   * An IPv6 client's connection (lookupIn for a wide table): `key` holds the client address at
   * A6_CLIENT and the virtual one at A6_VIRTUAL.
   */
  lookupIn6(protocol: number, key: Uint32Array, cport: number, vport: number): number {
    return this.findIn6(protocol, key, cport, vport, 0);
  }

  /** lookupTemplate for a wide table: `key` as lookupIn6's (the client address already masked). */
  lookupTemplate6(protocol: number, key: Uint32Array, vport: number): number {
    return this.findIn6(protocol, key, 0, vport, CONN_F_TEMPLATE);
  }

  /** The "in" index's entry for `key`, a template or not as `template` (0 or CONN_F_TEMPLATE) says. */
  private findIn6(protocol: number, key: Uint32Array, cport: number, vport: number, template: number): number {
    const caddr = ipv6FoldWords(key, A6_CLIENT);
    const vaddr = ipv6FoldWords(key, A6_VIRTUAL);
    const a = this.addr6;
    let c = this.inHead[this.hashIn(protocol, caddr, cport, vaddr, vport)];
    while (c !== NIL) {
      if (
        this.caddr[c] === caddr &&
        this.cport[c] === cport &&
        this.vaddr[c] === vaddr &&
        this.vport[c] === vport &&
        this.protocol[c] === protocol &&
        (this.flags[c] & CONN_F_TEMPLATE) === template &&
        same4(a, c * ADDR6_WORDS + A6_CLIENT, key, A6_CLIENT) &&
        same4(a, c * ADDR6_WORDS + A6_VIRTUAL, key, A6_VIRTUAL)
      ) {
        return c;
      }
      c = this.inNext[c];
    }
    return NIL;
  }

  /**
   * lookupOut for a wide table: a reply from the real server at `key`'s A6_DEST words to the
   * client at its A6_CLIENT words.
   */
  lookupOut6(protocol: number, key: Uint32Array, dport: number, cport: number): number {
    const daddr = ipv6FoldWords(key, A6_DEST);
    const caddr = ipv6FoldWords(key, A6_CLIENT);
    const a = this.addr6;
    let c = this.outHead[this.hashIn(protocol, daddr, dport, caddr, cport)];
    while (c !== NIL) {
      if (
        this.daddr[c] === daddr &&
        this.dport[c] === dport &&
        this.caddr[c] === caddr &&
        this.cport[c] === cport &&
        this.protocol[c] === protocol &&
        (this.flags[c] & CONN_F_TEMPLATE) === 0 &&
        same4(a, c * ADDR6_WORDS + A6_DEST, key, A6_DEST) &&
        same4(a, c * ADDR6_WORDS + A6_CLIENT, key, A6_CLIENT)
      ) {
        return c;
      }
      c = this.outNext[c];
    }
    return NIL;
  }

  /**
   * insert for a wide table: `key` holds the client, virtual and dest addresses (ADDR6_WORDS);
   * the entry's address fields are set to their folds.
   */
  insert6(e: ConnInit, key: Uint32Array, now: number): number {
    e.caddr = ipv6FoldWords(key, A6_CLIENT);
    e.vaddr = ipv6FoldWords(key, A6_VIRTUAL);
    e.daddr = ipv6FoldWords(key, A6_DEST);
    const c = this.insert(e, now);
    if (c !== NIL) this.addr6.set(key.subarray(0, ADDR6_WORDS), c * ADDR6_WORDS);
    return c;
  }

  /**
   * Insert a connection and hash it in both indexes. Returns its id, or NIL when the table holds
   * maxConns entries (or no slot is free at the largest capacity).
   */
  insert(e: ConnInit, now: number): number {
    if (this.liveTotal() >= this.maxConns) return NIL;
    if (this.freeHead === NIL && !this.grow(this.capacity * 2)) return NIL;
    const c = this.freeHead;
    this.freeHead = this.inNext[c];
    const timeout = e.timeout;
    this.protocol[c] = e.protocol;
    this.caddr[c] = e.caddr;
    this.cport[c] = e.cport;
    this.vaddr[c] = e.vaddr;
    this.vport[c] = e.vport;
    this.daddr[c] = e.daddr;
    this.dport[c] = e.dport;
    this.dest[c] = e.dest;
    this.xmit[c] = e.xmit;
    this.flags[c] = e.flags;
    this.state[c] = e.state;
    this.timeout[c] = timeout;
    this.expires[c] = now + timeout;
    this.control[c] = NIL;
    this.nControl[c] = 0;
    this.inPkts[c] = 0;
    this.syncedState[c] = 0;
    this.live[c] = LIVE;
    this.hash(c);
    this.file(c, (now + timeout) & WHEEL_MASK);
    this.count++;
    if (this.total !== null) Atomics.add(this.total, this.totalSlot, 1);
    return c;
  }

  /**
   * Take a template out of lookups for good while it may still control connections
   * (ip_vs_check_template): it is re-filed under virtual and real-server port 0xffff, which no
   * lookup asks for, and lives on until it expires.
   */
  invalidateTemplate(c: number): void {
    if (this.live[c] !== LIVE) return;
    this.unhash(c);
    this.vport[c] = 0xffff;
    this.dport[c] = 0xffff;
    this.hash(c);
  }

  /** Set the client port of a connection made without one (ip_vs_conn_fill_cport), rehashing it. */
  setCport(c: number, cport: number): void {
    if (this.live[c] !== LIVE) return;
    this.unhash(c);
    this.cport[c] = cport;
    this.hash(c);
  }

  /**
   * Restart the connection's timer with its current timeout (every packet does this). Most
   * touches only move `expires` later, and the tick re-files the entry when its slot comes. A
   * state change to a shorter timeout (FIN, RST: ESTABLISHED's 900 s to CLOSE's 10 s) may move
   * it before the slot the entry is filed in, which the tick would reach only then: the entry
   * is filed again at its new time, as mod_timer moves the kernel's timer. (Never inside the
   * tick's onExpire, where a touch only moves `expires` later.)
   */
  touch(c: number, now: number): void {
    const expires = now + this.timeout[c];
    const old = this.expires[c];
    this.expires[c] = expires;
    if (expires < old) {
      this.unfile(c);
      this.file(c, Math.max(expires, this.wheelTime + 1) & WHEEL_MASK);
    }
  }

  /**
   * Remove a connection from both indexes and its wheel slot at once (e.g. reused by a new
   * connection); its storage is free for the next insert. Not for use inside tick's onExpire.
   */
  unlink(c: number): void {
    if (this.live[c] !== LIVE) return;
    this.unhash(c);
    this.unfile(c);
    this.count--;
    if (this.total !== null) Atomics.sub(this.total, this.totalSlot, 1);
    this.release(c);
  }

  isLive(c: number): boolean {
    return c >= 0 && c < this.capacity && this.live[c] === LIVE;
  }

  /**
   * Advance the wheel to `now`, calling `onExpire(id)` for each connection whose time has come
   * (before it is unhashed; the callback may read its fields). `onExpire` returning false keeps
   * the connection alive (its `expires` must then have been moved forward). The callback must
   * not unlink connections: the slot being walked is off the wheel.
   */
  tick(now: number, onExpire: (c: number) => boolean | undefined): number {
    let expired = 0;
    // After a long stall every slot is due: one full turn covers them all.
    let from = this.wheelTime + 1;
    if (now - from >= WHEEL_SLOTS) from = now - WHEEL_SLOTS + 1;
    for (let t = from; t <= now; t++) {
      const slot = t & WHEEL_MASK;
      let c = this.wheel[slot];
      this.wheel[slot] = NIL;
      // Every entry on the wheel is live (unlink takes an entry off at once).
      while (c !== NIL) {
        const next = this.wheelNext[c];
        if (this.expires[c] <= now && onExpire(c) !== false) {
          this.unhash(c);
          this.count--;
          if (this.total !== null) Atomics.sub(this.total, this.totalSlot, 1);
          expired++;
          this.release(c);
        } else {
          const due = this.expires[c] > now ? this.expires[c] : now + 1;
          this.file(c, due & WHEEL_MASK);
        }
        c = next;
      }
    }
    if (now > this.wheelTime) this.wheelTime = now;
    return expired;
  }

  /** Visit every live connection (control plane: listings, flush). */
  forEach(fn: (c: number) => void): void {
    for (let c = 0; c < this.capacity; c++) if (this.live[c] === LIVE) fn(c);
  }

  /** Put c first in wheel slot `slot`. */
  private file(c: number, slot: number): void {
    const head = this.wheel[slot];
    this.wheelNext[c] = head;
    this.wheelPrev[c] = -2 - slot;
    if (head !== NIL) this.wheelPrev[head] = c;
    this.wheel[slot] = c;
  }

  /** Take c out of its wheel slot. */
  private unfile(c: number): void {
    const prev = this.wheelPrev[c];
    const next = this.wheelNext[c];
    if (prev >= 0) this.wheelNext[prev] = next;
    else this.wheel[-2 - prev] = next;
    if (next !== NIL) this.wheelPrev[next] = prev;
  }

  private release(c: number): void {
    this.live[c] = FREE;
    this.dest[c] = NIL;
    this.inNext[c] = this.freeHead;
    this.freeHead = c;
  }

  private hash(c: number): void {
    const p = this.protocol[c];
    const hi = this.hashIn(p, this.caddr[c], this.cport[c], this.vaddr[c], this.vport[c]);
    this.inNext[c] = this.inHead[hi];
    this.inHead[hi] = c;
    const ho = this.hashIn(p, this.daddr[c], this.dport[c], this.caddr[c], this.cport[c]);
    this.outNext[c] = this.outHead[ho];
    this.outHead[ho] = c;
  }

  private unhash(c: number): void {
    const p = this.protocol[c];
    const hi = this.hashIn(p, this.caddr[c], this.cport[c], this.vaddr[c], this.vport[c]);
    this.inHead[hi] = this.unchain(this.inHead[hi], c, this.inNext);
    const ho = this.hashIn(p, this.daddr[c], this.dport[c], this.caddr[c], this.cport[c]);
    this.outHead[ho] = this.unchain(this.outHead[ho], c, this.outNext);
  }

  /** Remove `c` from the chain starting at `head`; returns the new head. */
  private unchain(head: number, c: number, next: Int32Array): number {
    if (head === c) return next[c];
    let p = head;
    while (p !== NIL && next[p] !== c) p = next[p];
    if (p !== NIL) next[p] = next[c];
    return head;
  }

  /** Grow the storage to `capacity` entries (a power of two) and rehash. False at the limit. */
  private grow(capacity: number): boolean {
    if (capacity > this.maxCapacity) capacity = this.maxCapacity;
    const old = this.capacity;
    if (capacity <= old) return false;
    this.protocol = growU8(this.protocol, capacity);
    this.state = growU8(this.state, capacity);
    this.xmit = growU8(this.xmit, capacity);
    this.live = growU8(this.live, capacity);
    this.flags = growU16(this.flags, capacity);
    this.caddr = growU32(this.caddr, capacity);
    this.vaddr = growU32(this.vaddr, capacity);
    this.daddr = growU32(this.daddr, capacity);
    this.cport = growU16(this.cport, capacity);
    this.vport = growU16(this.vport, capacity);
    this.dport = growU16(this.dport, capacity);
    this.dest = growI32(this.dest, capacity);
    this.timeout = growU32(this.timeout, capacity);
    this.expires = growU32(this.expires, capacity);
    this.control = growI32(this.control, capacity);
    this.nControl = growU32(this.nControl, capacity);
    this.inPkts = growU32(this.inPkts, capacity);
    this.syncedState = growU8(this.syncedState, capacity);
    this.inNext = growI32(this.inNext, capacity);
    this.outNext = growI32(this.outNext, capacity);
    this.wheelNext = growI32(this.wheelNext, capacity);
    this.wheelPrev = growI32(this.wheelPrev, capacity);
    if (this.wide) this.addr6 = growU32(this.addr6, capacity * ADDR6_WORDS);
    this.capacity = capacity;
    // New entries join the free list in ascending order.
    for (let c = capacity - 1; c >= old; c--) {
      this.dest[c] = NIL;
      this.inNext[c] = this.freeHead;
      this.freeHead = c;
    }
    // One bucket per entry keeps chains short; rehash every live entry.
    this.inHead = new Int32Array(capacity).fill(NIL);
    this.outHead = new Int32Array(capacity).fill(NIL);
    this.bucketMask = capacity - 1;
    for (let c = 0; c < old; c++) if (this.live[c] === LIVE) this.hash(c);
    return true;
  }
}

function growU8(a: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
function growU16(a: Uint16Array, n: number): Uint16Array<ArrayBuffer> {
  const b = new Uint16Array(n);
  b.set(a);
  return b;
}
function growU32(a: Uint32Array, n: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
function growI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}
