// IPVS connection-sync messages (ip_vs_sync.c, REFERENCE.md §1.10): what a master director
// multicasts about its connections and a backup reads to keep copies of them.
//
// Version 1 message (what the master sends; the first byte 0 makes v0 receivers drop it):
//
//   0               1               2               3
//  +---------------+---------------+-------------------------------+
//  | reserved = 0  |    syncid     |        size (whole message)   |
//  +---------------+---------------+-------------------------------+
//  |   nr_conns    |  version = 1  |           spare = 0           |
//  +---------------+---------------+-------------------------------+
//  | nr_conns entries, each padded to a multiple of 4 bytes        |
//
// Version 1 IPv4 entry (struct ip_vs_sync_v4, 36 bytes, then options):
//
//  | type (0=v4)   |   protocol    | ver_size: version(4) size(12) |
//  |                     flags (IP_VS_CONN_F_*)                    |
//  |            state              |            cport              |
//  |            vport              |            dport              |
//  |                  fwmark               |  timeout (s) ...      |
//  |  caddr | vaddr | daddr                                        |
//  | options: type(u8) len(u8) data; SEQ_DATA (1) = in_seq, out_seq |
//
// Version 1 IPv6 entry (struct ip_vs_sync_v6, 72 bytes, then options): type has STYPE_F_INET6,
// the same first 24 bytes, then caddr, vaddr and daddr of 16 bytes each.
//
// Version 0 (legacy, received only): header nr_conns(u8) syncid(u8) size(be16); entries of 24
// bytes (reserved, protocol, cport, vport, dport, caddr, vaddr, daddr, flags(be16),
// state(be16)), followed by 24 bytes of sequence data when the flags carry IN_SEQ/OUT_SEQ.
//
// Encoding writes into a caller's Buffer; decoding walks a received message and hands each
// entry to a callback through one reused SyncConn record. Bad messages are reported as a reason,
// never thrown.

import { AF_INET, AF_INET6, CONN_F_SEQ_MASK, ipv6FoldWords } from '../ip-vs';

/** The multicast group (224.0.0.81) and UDP port of IPVS sync. */
export const SYNC_GROUP = '224.0.0.81';
export const SYNC_PORT = 8848;
export const SYNC_PROTO_VER = 1;

export const SYNC_MESG_HEADER = 8;
export const SYNC_MESG_V0_HEADER = 4;
/** struct ip_vs_sync_v4. */
export const SYNC_CONN_V4 = 36;
/** struct ip_vs_sync_v6: the type bit below marks it. */
export const SYNC_CONN_V6 = 72;
export const STYPE_F_INET6 = 1;
/** v0 entries: without and with sequence options. */
export const SYNC_CONN_V0 = 24;
export const SYNC_CONN_V0_FULL = 48;
/** Option types (IPVS_OPT_*); bit 0x80 marks an option a receiver may skip. */
export const IPVS_OPT_SEQ_DATA = 1;
export const IPVS_OPT_PE_DATA = 2;
export const IPVS_OPT_PE_NAME = 3;
export const IPVS_OPT_F_PARAM = 0x80;
/** struct ip_vs_sync_conn_options: two struct ip_vs_seq of three u32 each. */
export const SEQ_OPTION_LEN = 24;
/** A message carries at most this many entries (nr_conns is one byte). */
export const SYNC_MAX_CONNS = 255;

/** Byte offsets inside a v1 IPv4 entry. */
export const SYNC_V4 = {
  TYPE: 0,
  PROTOCOL: 1,
  VER_SIZE: 2,
  FLAGS: 4,
  STATE: 8,
  CPORT: 10,
  VPORT: 12,
  DPORT: 14,
  FWMARK: 16,
  TIMEOUT: 20,
  CADDR: 24,
  VADDR: 28,
  DADDR: 32,
} as const;

/** One ip_vs_seq: the sequence adjustment an application helper made in one direction. */
export interface SyncSeq {
  initSeq: number;
  delta: number;
  previousDelta: number;
}

/** Byte offsets of the addresses inside a v1 IPv6 entry (the rest is laid out as SYNC_V4). */
export const SYNC_V6 = { CADDR: 24, VADDR: 40, DADDR: 56 } as const;

/** A decoded entry (one reused object; copy what must outlive the callback). */
export interface SyncConn {
  /** AF_INET, or AF_INET6: then `addr6` holds the addresses and caddr, vaddr, daddr their folds. */
  af: number;
  /**
   * An IPv6 entry's client, virtual and dest addresses, four host-order words each in that
   * order (the layout of the connection table's addr6, conn-table.ts A6_*).
   */
  addr6: Uint32Array;
  protocol: number;
  flags: number;
  state: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  fwmark: number;
  /** Seconds; 0 for v0 (the receiver uses its own timeout for the state). */
  timeout: number;
  /** Sequence options present (IN_SEQ/OUT_SEQ data); `inSeq`/`outSeq` are valid only then. */
  hasSeq: boolean;
  inSeq: SyncSeq;
  outSeq: SyncSeq;
}

export function newSyncConn(): SyncConn {
  return {
    af: AF_INET,
    addr6: new Uint32Array(12),
    protocol: 0,
    flags: 0,
    state: 0,
    caddr: 0,
    cport: 0,
    vaddr: 0,
    vport: 0,
    daddr: 0,
    dport: 0,
    fwmark: 0,
    timeout: 0,
    hasSeq: false,
    inSeq: { initSeq: 0, delta: 0, previousDelta: 0 },
    outSeq: { initSeq: 0, delta: 0, previousDelta: 0 },
  };
}

/** Start a v1 message at buf[off]: header with no entries. Returns its size (the header's). */
export function beginMessage(buf: Buffer, off: number, syncid: number): number {
  buf[off] = 0;
  buf[off + 1] = syncid;
  buf.writeUInt16BE(SYNC_MESG_HEADER, off + 2);
  buf[off + 4] = 0;
  buf[off + 5] = SYNC_PROTO_VER;
  buf.writeUInt16BE(0, off + 6);
  return SYNC_MESG_HEADER;
}

/** Bytes an entry takes (before alignment padding). */
export function entryLen(flags: number, af = AF_INET): number {
  const base = af === AF_INET6 ? SYNC_CONN_V6 : SYNC_CONN_V4;
  return (flags & CONN_F_SEQ_MASK) !== 0 ? base + 2 + SEQ_OPTION_LEN : base;
}

/**
 * Append one entry (IPv4, or IPv6 when e.af says so) to the message at buf[msg] whose current size is `size` (padding the
 * previous entry to 4 bytes first). The caller checked the room: size + pad + entryLen(flags).
 * Returns the new size. `seq` supplies the sequence options when flags carry IN_SEQ/OUT_SEQ.
 */
export function appendEntry(buf: Buffer, msg: number, size: number, e: SyncConn): number {
  const pad = (4 - (size & 3)) & 3;
  buf.fill(0, msg + size, msg + size + pad);
  const p = msg + size + pad;
  const v6 = e.af === AF_INET6;
  const len = entryLen(e.flags, e.af);
  buf[p + SYNC_V4.TYPE] = v6 ? STYPE_F_INET6 : 0;
  buf[p + SYNC_V4.PROTOCOL] = e.protocol;
  buf.writeUInt16BE(len & 0x0fff, p + SYNC_V4.VER_SIZE);
  buf.writeUInt32BE(e.flags >>> 0, p + SYNC_V4.FLAGS);
  buf.writeUInt16BE(e.state, p + SYNC_V4.STATE);
  buf.writeUInt16BE(e.cport, p + SYNC_V4.CPORT);
  buf.writeUInt16BE(e.vport, p + SYNC_V4.VPORT);
  buf.writeUInt16BE(e.dport, p + SYNC_V4.DPORT);
  buf.writeUInt32BE(e.fwmark >>> 0, p + SYNC_V4.FWMARK);
  buf.writeUInt32BE(e.timeout >>> 0, p + SYNC_V4.TIMEOUT);
  if (v6) {
    for (let i = 0; i < 12; i++) buf.writeUInt32BE(e.addr6[i] >>> 0, p + SYNC_V6.CADDR + 4 * i);
  } else {
    buf.writeUInt32BE(e.caddr >>> 0, p + SYNC_V4.CADDR);
    buf.writeUInt32BE(e.vaddr >>> 0, p + SYNC_V4.VADDR);
    buf.writeUInt32BE(e.daddr >>> 0, p + SYNC_V4.DADDR);
  }
  const base = v6 ? SYNC_CONN_V6 : SYNC_CONN_V4;
  if (len !== base) {
    let o = p + base;
    buf[o++] = IPVS_OPT_SEQ_DATA;
    buf[o++] = SEQ_OPTION_LEN;
    for (const s of [e.inSeq, e.outSeq]) {
      buf.writeUInt32BE(s.initSeq >>> 0, o);
      buf.writeUInt32BE(s.delta >>> 0, o + 4);
      buf.writeUInt32BE(s.previousDelta >>> 0, o + 8);
      o += 12;
    }
  }
  const newSize = size + pad + len;
  buf.writeUInt16BE(newSize, msg + 2);
  buf[msg + 4]++;
  return newSize;
}

/** Why a received message (or the rest of it) was dropped. */
export const SYNC_OK = 0;
export const SYNC_SHORT = 1;
export const SYNC_BAD_SIZE = 2;
export const SYNC_OTHER_SYNCID = 3;
export const SYNC_BAD_ENTRY = 4;
export const SYNC_REASON_NAMES: readonly string[] = ['ok', 'short', 'bad_size', 'other_syncid', 'bad_entry'];

/**
 * Walk a received message: checks as ip_vs_process_message does (size field equal to the
 * datagram, syncid when `syncid` is not 0, v1 when reserved=0, version=1, spare=0, else v0),
 * then `onConn` for each entry (IPv6 ones with e.af = AF_INET6, their addresses in e.addr6).
 * Entries with unknown mandatory options are skipped; a malformed entry stops the walk (entries
 * before it were delivered). Returns SYNC_OK or the reason.
 */
export function decodeMessage(
  buf: Buffer,
  off: number,
  len: number,
  syncid: number,
  e: SyncConn,
  onConn: (e: SyncConn) => void,
): number {
  if (len < SYNC_MESG_V0_HEADER) return SYNC_SHORT;
  if (buf.readUInt16BE(off + 2) !== len) return SYNC_BAD_SIZE;
  if (syncid !== 0 && buf[off + 1] !== syncid) return SYNC_OTHER_SYNCID;
  const v1 =
    len >= SYNC_MESG_HEADER && buf[off] === 0 && buf[off + 5] === SYNC_PROTO_VER && buf.readUInt16BE(off + 6) === 0;
  return v1 ? decodeV1(buf, off, len, e, onConn) : decodeV0(buf, off, len, e, onConn);
}

function decodeV1(buf: Buffer, off: number, len: number, e: SyncConn, onConn: (e: SyncConn) => void): number {
  const end = off + len;
  const n = buf[off + 4];
  let p = off + SYNC_MESG_HEADER;
  for (let i = 0; i < n; i++) {
    if (p + SYNC_CONN_V4 > end) return SYNC_BAD_ENTRY;
    const verSize = buf.readUInt16BE(p + SYNC_V4.VER_SIZE);
    const size = verSize & 0x0fff;
    const entryEnd = p + size;
    if (entryEnd > end || verSize >> 12 !== 0) return SYNC_BAD_ENTRY;
    const type = buf[p + SYNC_V4.TYPE];
    let deliver = true;
    let o: number;
    // As ip_vs_proc_sync_conn: the IPv6 bit makes an IPv6 entry whatever else the type holds.
    const v6 = (type & STYPE_F_INET6) !== 0;
    if (v6) {
      o = p + SYNC_CONN_V6;
    } else if (type === 0) {
      o = p + SYNC_CONN_V4;
    } else {
      return SYNC_BAD_ENTRY;
    }
    if (o > entryEnd) return SYNC_BAD_ENTRY;
    e.hasSeq = false;
    let seen = 0;
    while (o < entryEnd) {
      if (o + 2 > entryEnd) return SYNC_BAD_ENTRY;
      const ptype = buf[o];
      const plen = buf[o + 1];
      o += 2;
      if (plen === 0 || o + plen > entryEnd) return SYNC_BAD_ENTRY;
      const kind = ptype & ~IPVS_OPT_F_PARAM;
      if (kind === IPVS_OPT_SEQ_DATA) {
        if (plen !== SEQ_OPTION_LEN || (seen & 1) !== 0) return SYNC_BAD_ENTRY;
        seen |= 1;
        readSeq(buf, o, e.inSeq);
        readSeq(buf, o + 12, e.outSeq);
        e.hasSeq = true;
      } else if (kind === IPVS_OPT_PE_DATA || kind === IPVS_OPT_PE_NAME) {
        // Persistence-engine data (--pe sip): lvs-ts has no engine for it; the entry is skipped.
        deliver = false;
      } else if ((ptype & IPVS_OPT_F_PARAM) === 0) {
        deliver = false;
      }
      o += plen;
    }
    if (deliver) {
      e.protocol = buf[p + SYNC_V4.PROTOCOL];
      e.flags = buf.readUInt32BE(p + SYNC_V4.FLAGS);
      e.state = buf.readUInt16BE(p + SYNC_V4.STATE);
      e.cport = buf.readUInt16BE(p + SYNC_V4.CPORT);
      e.vport = buf.readUInt16BE(p + SYNC_V4.VPORT);
      e.dport = buf.readUInt16BE(p + SYNC_V4.DPORT);
      e.fwmark = buf.readUInt32BE(p + SYNC_V4.FWMARK);
      e.timeout = buf.readUInt32BE(p + SYNC_V4.TIMEOUT);
      if (v6) {
        const w = e.addr6;
        for (let k = 0; k < 12; k++) w[k] = buf.readUInt32BE(p + SYNC_V6.CADDR + 4 * k);
        e.af = AF_INET6;
        e.caddr = ipv6FoldWords(w, 0);
        e.vaddr = ipv6FoldWords(w, 4);
        e.daddr = ipv6FoldWords(w, 8);
      } else {
        e.af = AF_INET;
        e.caddr = buf.readUInt32BE(p + SYNC_V4.CADDR);
        e.vaddr = buf.readUInt32BE(p + SYNC_V4.VADDR);
        e.daddr = buf.readUInt32BE(p + SYNC_V4.DADDR);
      }
      onConn(e);
    }
    p += (size + 3) & ~3;
  }
  return SYNC_OK;
}

function decodeV0(buf: Buffer, off: number, len: number, e: SyncConn, onConn: (e: SyncConn) => void): number {
  const end = off + len;
  const n = buf[off];
  let p = off + SYNC_MESG_V0_HEADER;
  for (let i = 0; i < n; i++) {
    if (p + SYNC_CONN_V0 > end) return SYNC_BAD_ENTRY;
    const flags = buf.readUInt16BE(p + 20);
    const full = (flags & CONN_F_SEQ_MASK) !== 0;
    if (full && p + SYNC_CONN_V0_FULL > end) return SYNC_BAD_ENTRY;
    e.af = AF_INET;
    e.protocol = buf[p + 1];
    e.cport = buf.readUInt16BE(p + 2);
    e.vport = buf.readUInt16BE(p + 4);
    e.dport = buf.readUInt16BE(p + 6);
    e.caddr = buf.readUInt32BE(p + 8);
    e.vaddr = buf.readUInt32BE(p + 12);
    e.daddr = buf.readUInt32BE(p + 16);
    e.flags = flags;
    e.state = buf.readUInt16BE(p + 22);
    e.fwmark = 0;
    e.timeout = 0;
    e.hasSeq = full;
    if (full) {
      readSeq(buf, p + SYNC_CONN_V0, e.inSeq);
      readSeq(buf, p + SYNC_CONN_V0 + 12, e.outSeq);
    }
    onConn(e);
    p += full ? SYNC_CONN_V0_FULL : SYNC_CONN_V0;
  }
  return SYNC_OK;
}

function readSeq(buf: Buffer, o: number, s: SyncSeq): void {
  s.initSeq = buf.readUInt32BE(o);
  s.delta = buf.readUInt32BE(o + 4);
  s.previousDelta = buf.readUInt32BE(o + 8);
}
