// A compact copy of the connection table for the control plane to show (`-L -c`,
// /proc/net/ip_vs_conn): plain typed arrays, about 30 bytes a connection, taken on the data
// path's thread in one pass and read anywhere after (a worker thread may take the arrays).

import type { ConnTable } from './conn-table';

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
  /** State names by protocol number (a template's protocol has none: NONE). */
  stateNames: Record<number, readonly string[]>;
}

/** Room for `n` rows, none filled yet (n = 0). */
export function newConnRows(n: number): ConnRows {
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
    stateNames: {},
  };
}

/** Copy every live connection of `t`, with its expiry relative to `now`. */
export function copyConnRows(t: ConnTable, now: number, stateNames: Record<number, readonly string[]>): ConnRows {
  const n = t.count;
  const rows = newConnRows(n);
  rows.stateNames = stateNames;
  let i = 0;
  t.forEach((c) => {
    if (i === n) return;
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
  rows.n = i;
  return rows;
}

/** The per-connection columns of ConnRows. */
type Column = 'protocol' | 'state' | 'flags' | 'caddr' | 'vaddr' | 'daddr' | 'cport' | 'vport' | 'dport' | 'expires';

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
];

/** Several copies (one per engine) as one. */
export function mergeConnRows(parts: readonly ConnRows[]): ConnRows {
  const out = newConnRows(parts.reduce((n, r) => n + r.n, 0));
  for (const r of parts) {
    for (const c of COLUMNS) (out[c] as Uint32Array).set((r[c] as Uint32Array).subarray(0, r.n), out.n);
    out.n += r.n;
    Object.assign(out.stateNames, r.stateNames);
  }
  return out;
}

/** The arrays' buffers, to transfer the rows to a worker without a copy. */
export function connRowsBuffers(r: ConnRows): ArrayBuffer[] {
  return COLUMNS.map((c) => r[c].buffer as ArrayBuffer);
}
