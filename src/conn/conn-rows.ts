// A compact copy of the connection table for the control plane to show (`-L -c`,
// /proc/net/ip_vs_conn): plain typed arrays, about 30 bytes a connection, taken on the data
// path's thread in one pass and read anywhere after (a worker thread may take the arrays).

import { ADDR6_WORDS, type ConnTable } from './conn-table';

/** Where a row's client, virtual and dest addresses start in its ADDR6_WORDS of `addr6`. */
export { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS } from './conn-table';

export interface ConnRows {
  n: number;
  protocol: Uint8Array;
  state: Uint8Array;
  flags: Uint16Array;
  caddr: Uint32Array;
  vaddr: Uint32Array;
  daddr: Uint32Array;
  cport: Uint16Array;
  vport: Uint16Array;
  dport: Uint16Array;
  /** Seconds until expiry (may be negative: printed as 0). */
  expires: Int32Array;
  /** 1 for an IPv6 connection (its address columns hold folds; its addresses are in addr6). */
  v6: Uint8Array;
  /** The IPv6 rows' client, virtual and dest addresses, ADDR6_WORDS a row, in row order. */
  addr6: Uint32Array;
  /** State names by protocol number (a template's protocol has none: NONE). */
  stateNames: Record<number, readonly string[]>;
}

/** Room for `n` rows, `n6` of them IPv6, none filled yet (n = 0). */
export function newConnRows(n: number, n6 = 0): ConnRows {
  return {
    n: 0,
    protocol: new Uint8Array(n),
    state: new Uint8Array(n),
    flags: new Uint16Array(n),
    caddr: new Uint32Array(n),
    vaddr: new Uint32Array(n),
    daddr: new Uint32Array(n),
    cport: new Uint16Array(n),
    vport: new Uint16Array(n),
    dport: new Uint16Array(n),
    expires: new Int32Array(n),
    v6: new Uint8Array(n),
    addr6: new Uint32Array(n6 * ADDR6_WORDS),
    stateNames: {},
  };
}

/**
 * Copy every live connection of `t`, and of the IPv6 table `t6` after them, with its expiry
 * relative to `now`.
 */
export function copyConnRows(
  t: ConnTable,
  now: number,
  stateNames: Record<number, readonly string[]>,
  t6?: ConnTable,
): ConnRows {
  const n6 = t6?.count ?? 0;
  const n = t.count + n6;
  const rows = newConnRows(n, n6);
  rows.stateNames = stateNames;
  let i = copyTable(t, now, rows, 0, n);
  if (t6 !== undefined) {
    const first = i;
    i = copyTable(t6, now, rows, i, n);
    rows.v6.fill(1, first, i);
  }
  rows.n = i;
  return rows;
}

/** Copy `t`'s connections into rows [i, max); returns the row after the last one copied. */
function copyTable(t: ConnTable, now: number, rows: ConnRows, i: number, max: number): number {
  let k = 0;
  t.forEach((c) => {
    if (i === max) return;
    if (t.wide) {
      rows.addr6.set(t.addr6.subarray(c * ADDR6_WORDS, (c + 1) * ADDR6_WORDS), k * ADDR6_WORDS);
      k++;
    }
    rows.protocol[i] = t.protocol[c];
    rows.state[i] = t.state[c];
    rows.flags[i] = t.flags[c];
    rows.caddr[i] = t.caddr[c];
    rows.vaddr[i] = t.vaddr[c];
    rows.daddr[i] = t.daddr[c];
    rows.cport[i] = t.cport[c];
    rows.vport[i] = t.vport[c];
    rows.dport[i] = t.dport[c];
    rows.expires[i] = t.expires[c] - now;
    i++;
  });
  return i;
}

/** The per-connection columns of ConnRows. */
type Column =
  | 'protocol'
  | 'state'
  | 'flags'
  | 'caddr'
  | 'vaddr'
  | 'daddr'
  | 'cport'
  | 'vport'
  | 'dport'
  | 'expires'
  | 'v6';

const COLUMNS: readonly Column[] = [
  'protocol',
  'state',
  'flags',
  'caddr',
  'vaddr',
  'daddr',
  'cport',
  'vport',
  'dport',
  'expires',
  'v6',
];

/** Several copies (one per engine) as one. */
export function mergeConnRows(parts: readonly ConnRows[]): ConnRows {
  const words = parts.reduce((n, r) => n + r.addr6.length, 0);
  const out = newConnRows(
    parts.reduce((n, r) => n + r.n, 0),
    words / ADDR6_WORDS,
  );
  let w = 0;
  for (const r of parts) {
    for (const c of COLUMNS) (out[c] as Uint32Array).set((r[c] as Uint32Array).subarray(0, r.n), out.n);
    out.addr6.set(r.addr6, w);
    w += r.addr6.length;
    out.n += r.n;
    Object.assign(out.stateNames, r.stateNames);
  }
  return out;
}

/** The arrays' buffers, to transfer the rows to a worker without a copy. */
export function connRowsBuffers(r: ConnRows): ArrayBuffer[] {
  return [...COLUMNS.map((c) => r[c].buffer as ArrayBuffer), r.addr6.buffer as ArrayBuffer];
}
