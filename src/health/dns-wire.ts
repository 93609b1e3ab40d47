// DNS message header and question (RFC 1035 §4.1.1, §4.1.2, §3.1): just what DNS_CHECK sends
// and reads, plus what a test responder needs to answer it. Pure: no I/O.
//
//   0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
//  +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//  |                      ID                       |
//  |QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |
//  |                    QDCOUNT                    |
//  |                    ANCOUNT                    |
//  |                    NSCOUNT                    |
//  |                    ARCOUNT                    |
//  +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// A question is QNAME (length-prefixed labels ending with a zero byte), QTYPE, QCLASS.
// Malformed input is a value here: the parsers return null, the encoders return null for a
// name that cannot be encoded.

/** Byte offsets of the header fields, and the header size. */
export const DNS = {
  ID: 0,
  FLAGS: 2,
  QDCOUNT: 4,
  ANCOUNT: 6,
  NSCOUNT: 8,
  ARCOUNT: 10,
  HEADER: 12,
} as const;

/** Bits of the flags word. */
export const DNS_FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
} as const;

const OPCODE_SHIFT = 11;
const OPCODE_MASK = 0xf;
const RCODE_MASK = 0xf;

/** A label is at most 63 bytes, a whole encoded name at most 255 (RFC 1035 §2.3.4). */
export const DNS_MAX_LABEL = 63;
export const DNS_MAX_NAME = 255;
/** A length byte with both top bits set starts a compression pointer (RFC 1035 §4.1.4). */
const POINTER_MASK = 0xc0;
/** Compression pointers followed while decoding one name, at most: a loop guard. */
const MAX_POINTERS = 64;

/** The query types keepalived's DNS_CHECK `type` accepts, with their RFC numbers. */
export const DNS_TYPES: Readonly<Record<string, number>> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  MX: 15,
  TXT: 16,
  AAAA: 28,
};

export const DNS_CLASS_IN = 1;

/** RCODE names (RFC 1035 §4.1.1, RFC 2136 §2.2). */
const RCODE_NAMES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
];

export function dnsRcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export interface DnsQuestion {
  /** Dotted, without the trailing dot; the root is '.'. */
  name: string;
  qtype: number;
  qclass: number;
}

/** A header with every field zero / false, to spread over. */
export function dnsHeader(fields: Partial<DnsHeader>): DnsHeader {
  return {
    id: 0,
    qr: false,
    opcode: 0,
    aa: false,
    tc: false,
    rd: false,
    ra: false,
    rcode: 0,
    qdcount: 0,
    ancount: 0,
    nscount: 0,
    arcount: 0,
    ...fields,
  };
}

/** Write `h` at `off` (12 bytes). */
export function emitDnsHeader(h: DnsHeader, buf: Buffer, off = 0): void {
  let flags = ((h.opcode & OPCODE_MASK) << OPCODE_SHIFT) | (h.rcode & RCODE_MASK);
  if (h.qr) flags |= DNS_FLAG.QR;
  if (h.aa) flags |= DNS_FLAG.AA;
  if (h.tc) flags |= DNS_FLAG.TC;
  if (h.rd) flags |= DNS_FLAG.RD;
  if (h.ra) flags |= DNS_FLAG.RA;
  buf.writeUInt16BE(h.id & 0xffff, off + DNS.ID);
  buf.writeUInt16BE(flags, off + DNS.FLAGS);
  buf.writeUInt16BE(h.qdcount, off + DNS.QDCOUNT);
  buf.writeUInt16BE(h.ancount, off + DNS.ANCOUNT);
  buf.writeUInt16BE(h.nscount, off + DNS.NSCOUNT);
  buf.writeUInt16BE(h.arcount, off + DNS.ARCOUNT);
}

/** The header of a message; null when it is shorter than 12 bytes. */
export function parseDnsHeader(buf: Buffer): DnsHeader | null {
  if (buf.length < DNS.HEADER) return null;
  const flags = buf.readUInt16BE(DNS.FLAGS);
  return {
    id: buf.readUInt16BE(DNS.ID),
    qr: (flags & DNS_FLAG.QR) !== 0,
    opcode: (flags >> OPCODE_SHIFT) & OPCODE_MASK,
    aa: (flags & DNS_FLAG.AA) !== 0,
    tc: (flags & DNS_FLAG.TC) !== 0,
    rd: (flags & DNS_FLAG.RD) !== 0,
    ra: (flags & DNS_FLAG.RA) !== 0,
    rcode: flags & RCODE_MASK,
    qdcount: buf.readUInt16BE(DNS.QDCOUNT),
    ancount: buf.readUInt16BE(DNS.ANCOUNT),
    nscount: buf.readUInt16BE(DNS.NSCOUNT),
    arcount: buf.readUInt16BE(DNS.ARCOUNT),
  };
}

/**
 * `name` as length-prefixed labels ending with the root's zero byte. '' and '.' are the root;
 * one trailing dot is allowed. Null for an empty label ('a..b'), a label over 63 bytes or a
 * name over 255 bytes.
 */
export function encodeDnsName(name: string): Buffer | null {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n === '') return Buffer.from([0]);
  const labels = n.split('.').map((l) => Buffer.from(l, 'utf8'));
  let len = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > DNS_MAX_LABEL) return null;
    len += 1 + l.length;
  }
  if (len > DNS_MAX_NAME) return null;
  const out = Buffer.alloc(len);
  let off = 0;
  for (const l of labels) {
    out[off++] = l.length;
    l.copy(out, off);
    off += l.length;
  }
  out[off] = 0;
  return out;
}

/**
 * The name at `off` (compression pointers followed) and the offset just after it in the
 * message; null when truncated, looping, or using a reserved label type.
 */
export function decodeDnsName(buf: Buffer, off: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let pos = off;
  let end = -1;
  let jumps = 0;
  for (;;) {
    if (pos >= buf.length) return null;
    const len = buf[pos];
    if ((len & POINTER_MASK) === POINTER_MASK) {
      if (pos + 1 >= buf.length || ++jumps > MAX_POINTERS) return null;
      if (end < 0) end = pos + 2;
      pos = ((len & ~POINTER_MASK) << 8) | buf[pos + 1];
      continue;
    }
    if ((len & POINTER_MASK) !== 0) return null;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { name: labels.length === 0 ? '.' : labels.join('.'), end };
    }
    if (pos + 1 + len > buf.length) return null;
    labels.push(buf.toString('utf8', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** QNAME, QTYPE, QCLASS; null when the name cannot be encoded. */
export function encodeDnsQuestion(q: DnsQuestion): Buffer | null {
  const name = encodeDnsName(q.name);
  if (name === null) return null;
  const out = Buffer.alloc(name.length + 4);
  name.copy(out, 0);
  out.writeUInt16BE(q.qtype, name.length);
  out.writeUInt16BE(q.qclass, name.length + 2);
  return out;
}

/** The question at `off` and the offset after it; null when truncated or malformed. */
export function parseDnsQuestion(buf: Buffer, off: number): { question: DnsQuestion; end: number } | null {
  const n = decodeDnsName(buf, off);
  if (n === null || n.end + 4 > buf.length) return null;
  return {
    question: { name: n.name, qtype: buf.readUInt16BE(n.end), qclass: buf.readUInt16BE(n.end + 2) },
    end: n.end + 4,
  };
}

/** A whole message: `h` followed by `questions` (qdcount taken from them); null for a bad name. */
export function encodeDnsMessage(h: DnsHeader, questions: DnsQuestion[]): Buffer | null {
  const parts: Buffer[] = [Buffer.alloc(DNS.HEADER)];
  for (const q of questions) {
    const b = encodeDnsQuestion(q);
    if (b === null) return null;
    parts.push(b);
  }
  emitDnsHeader({ ...h, qdcount: questions.length }, parts[0], 0);
  return Buffer.concat(parts);
}

/** keepalived's query: the given id, RD set, one question `name` `qtype` IN. */
export function encodeDnsQuery(id: number, name: string, qtype: number): Buffer | null {
  return encodeDnsMessage(dnsHeader({ id, rd: true }), [{ name, qtype, qclass: DNS_CLASS_IN }]);
}
