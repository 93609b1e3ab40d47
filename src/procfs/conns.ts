// The two connection files of lvsd's /proc hierarchy (net/ip_vs_conn, net/ip_vs_conn_sync),
// made from a compact copy of the connection table (conn/conn-rows.ts, taken on the data path's
// thread), which a worker thread encodes and writes (worker.ts) through one reused buffer: a
// table of hundreds of thousands of connections costs the data path a copy, and the worker no
// garbage (the text of 28k connections as strings grew lvsd by 70-140 MB RSS, a heap it kept).

import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, type ConnRows } from '../conn/conn-rows';
import { CONN_F_SYNC, ipVsProtoName } from '../ip-vs';
import { CONN_HEADER, CONN_SYNC_HEADER, connOrigin } from './format';

/** The longest row either file can have, in bytes (IPv6, a 10-digit expiry, an 11-letter state). */
const ROW_MAX = 192;
const HEX_DIGITS = Buffer.from('0123456789ABCDEF', 'latin1');
const HEX_LOWER = Buffer.from('0123456789abcdef', 'latin1');
const ORIGIN_LOCAL = Buffer.from(`${connOrigin(0).padEnd(6)} `, 'latin1');
const ORIGIN_SYNC = Buffer.from(`${connOrigin(CONN_F_SYNC).padEnd(6)} `, 'latin1');

/** `digits` upper-case hex digits of `v` at buf[off]; returns the offset after them. */
function putHex(buf: Buffer, off: number, v: number, digits: number): number {
  for (let i = digits - 1; i >= 0; i--) {
    buf[off + i] = HEX_DIGITS[v & 15];
    v >>>= 4;
  }
  return off + digits;
}

/** The kernel's %pI6 (8 groups of 4 lower-case hex digits) of the four words at w[at]. */
function putIpv6(buf: Buffer, off: number, w: Uint32Array, at: number): number {
  for (let i = 0; i < 4; i++) {
    let v = w[at + i];
    for (let d = 8; d > 0; d--) {
      buf[off + d + (d > 4 ? 1 : 0) - 1] = HEX_LOWER[v & 15];
      v >>>= 4;
    }
    buf[off + 4] = 0x3a;
    buf[off + 9] = 0x3a;
    off += 10;
  }
  return off - 1;
}

/** `%7u` of max(0, floor(seconds)) at buf[off]; returns the offset after it. */
function putExpires(buf: Buffer, off: number, seconds: number): number {
  let v = Math.max(0, Math.floor(seconds));
  let len = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) len++;
  for (let i = len; i < 7; i++) buf[off++] = 0x20;
  for (let i = len - 1; i >= 0; i--) {
    buf[off + i] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  return off + len;
}

/**
 * One file's bytes (net/ip_vs_conn, or net/ip_vs_conn_sync with `sync`), encoded row by row into
 * `buf` with no string per row; `flush(len)` takes buf[0, len) whenever it is nearly full and at
 * the end. The same text as procConnRow() makes (format.ts), so a table of hundreds of
 * thousands of connections costs the worker a reused buffer, not megabytes of garbage.
 */
export function emitConnFile(r: ConnRows, sync: boolean, buf: Buffer, flush: (len: number) => void): void {
  // The few padded words, once per file: protocol names and each protocol's state names.
  const protoText = new Map<number, Buffer>();
  const stateText = new Map<number, Buffer[]>();
  const none = Buffer.from(`${'NONE'.padEnd(11)} `, 'latin1');
  let off = buf.write(sync ? CONN_SYNC_HEADER : CONN_HEADER, 0, 'latin1');
  /** The end of the current row's addresses in r.addr6 (IPv6 rows only). */
  let w = 0;
  for (let i = 0; i < r.n; i++) {
    if (off + ROW_MAX > buf.length) {
      flush(off);
      off = 0;
    }
    const p = r.protocol[i];
    let proto = protoText.get(p);
    if (proto === undefined) {
      proto = Buffer.from(`${ipVsProtoName(p).padEnd(3)} `, 'latin1');
      protoText.set(p, proto);
    }
    let states = stateText.get(p);
    if (states === undefined) {
      states = (r.stateNames[p] ?? []).map((n) => Buffer.from(`${n.padEnd(11)} `, 'latin1'));
      stateText.set(p, states);
    }
    off += proto.copy(buf, off);
    const v6 = r.v6[i] !== 0;
    if (v6) w += ADDR6_WORDS;
    const a6 = w - ADDR6_WORDS;
    off = v6 ? putIpv6(buf, off, r.addr6, a6 + A6_CLIENT) : putHex(buf, off, r.caddr[i], 8);
    buf[off++] = 0x20;
    off = putHex(buf, off, r.cport[i], 4);
    buf[off++] = 0x20;
    off = v6 ? putIpv6(buf, off, r.addr6, a6 + A6_VIRTUAL) : putHex(buf, off, r.vaddr[i], 8);
    buf[off++] = 0x20;
    off = putHex(buf, off, r.vport[i], 4);
    buf[off++] = 0x20;
    off = v6 ? putIpv6(buf, off, r.addr6, a6 + A6_DEST) : putHex(buf, off, r.daddr[i], 8);
    buf[off++] = 0x20;
    off = putHex(buf, off, r.dport[i], 4);
    buf[off++] = 0x20;
    off += (states[r.state[i]] ?? none).copy(buf, off);
    if (sync) off += ((r.flags[i] & CONN_F_SYNC) !== 0 ? ORIGIN_SYNC : ORIGIN_LOCAL).copy(buf, off);
    off = putExpires(buf, off, r.expires[i]);
    buf[off++] = 0x0a;
  }
  flush(off);
}

/** Both files' text from a snapshot (lvsd without its worker, and the tests). */
export function formatConnFiles(r: ConnRows): { conn: string; sync: string } {
  const buf = Buffer.allocUnsafe(CONN_SYNC_HEADER.length + (r.n + 1) * ROW_MAX);
  const text = (sync: boolean): string => {
    let out = '';
    emitConnFile(r, sync, buf, (len) => {
      out += buf.toString('latin1', 0, len);
    });
    return out;
  };
  return { conn: text(false), sync: text(true) };
}
