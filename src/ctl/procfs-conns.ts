// The two connection files of lvsd's /proc hierarchy (net/ip_vs_conn, net/ip_vs_conn_sync),
// made from a compact snapshot of the connection table: the data path's thread takes the
// snapshot (plain typed arrays, about 30 bytes a connection), and a worker thread formats and
// writes the files (procfs-worker.ts), so a table of hundreds of thousands of connections costs
// the data path a copy, not the text.

import type { Engine } from '../core/engine';
import { CONN_HEADER, CONN_SYNC_HEADER, connOrigin, procConnRow } from './procfs-format';

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

/** Copy what the files show of every live connection. */
export function snapshotConns(e: Engine): ConnRows {
  const t = e.conns;
  const n = t.count;
  const rows: ConnRows = {
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
  for (const h of e.protos) if (h !== undefined) rows.stateNames[h.protocol] = h.stateNames;
  const now = e.now;
  let i = 0;
  t.forEach((c) => {
    if (i === n) return;
    rows.protocol[i] = t.protocol[c]!;
    rows.state[i] = t.state[c]!;
    rows.flags[i] = t.flags[c]!;
    rows.caddr[i] = t.caddr[c]!;
    rows.vaddr[i] = t.vaddr[c]!;
    rows.daddr[i] = t.daddr[c]!;
    rows.cport[i] = t.cport[c]!;
    rows.vport[i] = t.vport[c]!;
    rows.dport[i] = t.dport[c]!;
    rows.expires[i] = t.expires[c]! - now;
    i++;
  });
  rows.n = i;
  return rows;
}

/** Both files' text from a snapshot. */
export function formatConnFiles(r: ConnRows): { conn: string; sync: string } {
  const conn: string[] = [CONN_HEADER];
  const sync: string[] = [CONN_SYNC_HEADER];
  for (let i = 0; i < r.n; i++) {
    const state = r.stateNames[r.protocol[i]!]?.[r.state[i]!] ?? 'NONE';
    const p = r.protocol[i]!;
    const ca = r.caddr[i]!;
    const cp = r.cport[i]!;
    const va = r.vaddr[i]!;
    const vp = r.vport[i]!;
    const da = r.daddr[i]!;
    const dp = r.dport[i]!;
    const ex = r.expires[i]!;
    conn.push(procConnRow(p, ca, cp, va, vp, da, dp, state, ex));
    sync.push(procConnRow(p, ca, cp, va, vp, da, dp, state, ex, connOrigin(r.flags[i]!)));
  }
  return { conn: conn.join(''), sync: sync.join('') };
}

/** The typed arrays of a snapshot, to transfer to the worker without copying. */
export function connRowsBuffers(r: ConnRows): ArrayBuffer[] {
  return [r.protocol, r.state, r.flags, r.caddr, r.vaddr, r.daddr, r.cport, r.vport, r.dport, r.expires].map(
    (a) => a.buffer as ArrayBuffer,
  );
}
