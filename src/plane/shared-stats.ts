// Traffic counters shared by several engines: one Float64Array on a SharedArrayBuffer per stats
// block (the director's, each service's, each dest's), a slice of five per engine. Each engine
// counts into its own slice (no other thread writes it: no atomics needed); the control plane
// reads the sum, as the kernel sums its per-CPU counters when asked.

import type { Stats } from '../ip-vs';

/** conns, inPkts, outPkts, inBytes, outBytes. */
export const STATS_FIELDS = 5;

export function statsBuffer(engines: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(8 * STATS_FIELDS * engines));
}

/** What engine `k` counts into: its slice of `a`. */
export class SliceStats implements Stats {
  private readonly o: number;
  constructor(
    readonly a: Float64Array,
    k: number,
  ) {
    this.o = k * STATS_FIELDS;
  }
  get conns(): number {
    return this.a[this.o]!;
  }
  set conns(v: number) {
    this.a[this.o] = v;
  }
  get inPkts(): number {
    return this.a[this.o + 1]!;
  }
  set inPkts(v: number) {
    this.a[this.o + 1] = v;
  }
  get outPkts(): number {
    return this.a[this.o + 2]!;
  }
  set outPkts(v: number) {
    this.a[this.o + 2] = v;
  }
  get inBytes(): number {
    return this.a[this.o + 3]!;
  }
  set inBytes(v: number) {
    this.a[this.o + 3] = v;
  }
  get outBytes(): number {
    return this.a[this.o + 4]!;
  }
  set outBytes(v: number) {
    this.a[this.o + 4] = v;
  }
}

/**
 * The control plane's view: every engine's slices summed. Setting a field (zeroing, -Z) sets
 * engine 0's slice and clears the others'.
 */
export class SumStats implements Stats {
  constructor(readonly a: Float64Array) {}
  private sum(f: number): number {
    const a = this.a;
    let s = 0;
    for (let i = f; i < a.length; i += STATS_FIELDS) s += a[i]!;
    return s;
  }
  private set(f: number, v: number): void {
    const a = this.a;
    a[f] = v;
    for (let i = f + STATS_FIELDS; i < a.length; i += STATS_FIELDS) a[i] = 0;
  }
  get conns(): number {
    return this.sum(0);
  }
  set conns(v: number) {
    this.set(0, v);
  }
  get inPkts(): number {
    return this.sum(1);
  }
  set inPkts(v: number) {
    this.set(1, v);
  }
  get outPkts(): number {
    return this.sum(2);
  }
  set outPkts(v: number) {
    this.set(2, v);
  }
  get inBytes(): number {
    return this.sum(3);
  }
  set inBytes(v: number) {
    this.set(3, v);
  }
  get outBytes(): number {
    return this.sum(4);
  }
  set outBytes(v: number) {
    this.set(4, v);
  }
}
