// FTP control-channel parsing and rewriting for the FTP application helper (ip_vs_ftp): pure
// functions over a payload region buf[off, off + len) of a TCP segment, with no string
// conversion, no allocation and no throw on the packet path (findEprt6 makes one string of the
// address text of an IPv6 EPRT command it finds). Numbers are parsed by hand from ASCII digits.
//
// What the helper needs to see (RFC 959, RFC 2428):
//
//   client -> server   PORT h1,h2,h3,h4,p1,p2<CR><LF>      active mode: the client listens
//                      EPRT |1|a.b.c.d|port|<CR><LF>       the same, extended
//                      EPRT |2|ipv6-address|port|<CR><LF>  over IPv6 (findEprt6)
//                      PASV<CR><LF>, EPSV[ 1]<CR><LF>      passive mode requested (over IPv6:
//                                                          EPSV[ 2] only, isPasv's `v6`)
//   server -> client   227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)
//                      229 Entering Extended Passive Mode (|||port|)
//
// A NAT director rewrites the address in the 227 reply from the real server's to the VIP (and
// creates the data connection entry from the parsed address and port); PORT/EPRT give the
// client's address and port for the active data connection; the 229 reply only carries a port.
//
// Matching rules (stricter than ip_vs_ftp.c, which looks for PORT at any byte of the payload and
// for 227/229 only at its start):
// - A command or reply is recognised only at the start of a line: at `off`, or just after a LF.
//   Several lines in one segment (pipelined commands) are all looked at; the first valid one wins.
// - Keywords are case-insensitive (PORT, EPRT, PASV, EPSV); after PORT/EPRT/EPSV come one or more
//   spaces.
// - A command ends at CR: the byte after the last field must be CR. The LF is not required, as the
//   segment may end between the two.
// - Numbers: 1 to 3 decimal digits, 0..255 (leading zeros allowed); ports in EPRT/229: 1 to 5
//   digits, 1..65535. A port of 0 (p1 = p2 = 0) is rejected everywhere: it would be a data
//   connection with no port.
// - Anything else (a missing field, a value out of range, a run of too many digits, a field that
//   runs to the end of the payload, binary junk) is simply no match: the functions return false.
//   They never read outside [off, off + len), and not outside buf either.
//
// Results go into a caller-owned FtpMatch that is reused from packet to packet. `start`/`end` are
// buffer offsets (not payload-relative) of the address text, ready for spliceText().

import { ipv6Word, parseIpv6 } from '../wire/addr6';

/** The result of a find*() call; one instance is reused for every packet. */
export class FtpMatch {
  /** IPv4 address, host order uint32 (h1 is the top byte). 0 for a 229 reply. */
  addr = 0;
  port = 0;
  /** Buffer offset of the first byte of the matched address (and port) text. */
  start = 0;
  /** Buffer offset one past its last byte. */
  end = 0;
  /** EPRT/229: the delimiter character code; 0 for PORT/227. */
  delim = 0;
  /** findEprt6: the IPv6 address, four host-order words. */
  readonly addr6 = new Uint32Array(4);
}

/** isPasv() results. */
export const FTP_NOT_PASSIVE = 0;
/** `PASV`: the server will answer 227 with an address and port. */
export const FTP_PASV = 1;
/** `EPSV` or `EPSV 1`: the server will answer 229 with a port only. */
export const FTP_EPSV = 2;

/** Longest writeAddrPort() text: "255,255,255,255,255,255". */
export const FTP_ADDR_PORT_MAX_TEXT = 23;

const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_LPAREN = 0x28;
const CH_RPAREN = 0x29;
const CH_COMMA = 0x2c;
const CH_DOT = 0x2e;
const CH_COLON = 0x3a;
const CH_0 = 0x30;
const CH_1 = 0x31;
const CH_2 = 0x32;
const CH_9 = 0x39;
const CH_LOWER_A = 0x61;
const CH_LOWER_Z = 0x7a;
/** RFC 2428: the delimiter is a printable ASCII character, 33..126. */
const DELIM_MIN = 33;
const DELIM_MAX = 126;

const KW_PORT = asciiCodes('PORT');
const KW_EPRT = asciiCodes('EPRT');
const KW_PASV = asciiCodes('PASV');
const KW_EPSV = asciiCodes('EPSV');
const KW_227 = asciiCodes('227 ');
const KW_229 = asciiCodes('229 ');

function asciiCodes(s: string): Uint8Array {
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}

function isDigit(b: number): boolean {
  return b >= CH_0 && b <= CH_9;
}

/** Whether buf[p, p + kw.length) is kw (upper-case ASCII), ignoring case; p + kw.length <= end. */
function matchKeyword(buf: Uint8Array, p: number, end: number, kw: Uint8Array): boolean {
  if (end - p < kw.length) return false;
  for (let i = 0; i < kw.length; i++) {
    let b = buf[p + i];
    if (b >= CH_LOWER_A && b <= CH_LOWER_Z) b -= 0x20;
    if (b !== kw[i]) return false;
  }
  return true;
}

/** Offset of the first byte of the next line (after the next LF), or end. */
function nextLine(buf: Uint8Array, p: number, end: number): number {
  while (p < end && buf[p] !== CH_LF) p++;
  return p < end ? p + 1 : end;
}

/** Skips one or more spaces: the offset after them, or -1 if there is none or they run to end. */
function skipSpaces(buf: Uint8Array, p: number, end: number): number {
  if (p >= end || buf[p] !== CH_SPACE) return -1;
  while (p < end && buf[p] === CH_SPACE) p++;
  return p < end ? p : -1;
}

/** The value parsed by the last successful readNumber(). */
let numValue = 0;

/**
 * Reads 1..maxDigits decimal digits at p into numValue. Returns the offset after them, which is
 * < end (a number that runs to the end of the payload may continue in the next segment, so it is
 * no match), or -1: no digit, more than maxDigits digits, or truncated.
 */
function readNumber(buf: Uint8Array, p: number, end: number, maxDigits: number): number {
  const first = p;
  let v = 0;
  while (p < end) {
    const b = buf[p];
    if (!isDigit(b)) break;
    if (p - first === maxDigits) return -1;
    v = v * 10 + (b - CH_0);
    p++;
  }
  if (p === first || p === end) return -1;
  numValue = v;
  return p;
}

/** The address and port parsed by the last successful readSix(). */
let sixAddr = 0;
let sixPort = 0;

/**
 * Reads "h1,h2,h3,h4,p1,p2" at p (each 0..255). Returns the offset of the byte after p2 (< end;
 * it is not a digit nor a comma), or -1.
 */
function readSix(buf: Uint8Array, p: number, end: number): number {
  let addr = 0;
  let port = 0;
  for (let i = 0; i < 6; i++) {
    if (i > 0) {
      if (buf[p] !== CH_COMMA) return -1;
      p++;
    }
    p = readNumber(buf, p, end, 3);
    if (p < 0 || numValue > 255) return -1;
    if (i < 4) addr = addr * 256 + numValue;
    else port = port * 256 + numValue;
  }
  if (buf[p] === CH_COMMA) return -1;
  sixAddr = addr;
  sixPort = port;
  return p;
}

/** Reads "a.b.c.d" (each 0..255) at p into sixAddr: the offset after d (< end), or -1. */
function readDotted(buf: Uint8Array, p: number, end: number): number {
  let addr = 0;
  for (let i = 0; i < 4; i++) {
    if (i > 0) {
      if (buf[p] !== CH_DOT) return -1;
      p++;
    }
    p = readNumber(buf, p, end, 3);
    if (p < 0 || numValue > 255) return -1;
    addr = addr * 256 + numValue;
  }
  sixAddr = addr;
  return p;
}

/** Reads a TCP port, 1..65535 in 1..5 digits, at p into numValue: the offset after it, or -1. */
function readPort(buf: Uint8Array, p: number, end: number): number {
  p = readNumber(buf, p, end, 5);
  if (p < 0 || numValue === 0 || numValue > 0xffff) return -1;
  return p;
}

/** An RFC 2428 delimiter we can parse unambiguously: printable, and not a digit or a dot. */
function isDelim(b: number): boolean {
  return b >= DELIM_MIN && b <= DELIM_MAX && !isDigit(b) && b !== CH_DOT;
}

/** The end of the region, or -1 if [off, off + len) is not inside buf. */
function regionEnd(buf: Uint8Array, off: number, len: number): number {
  if (!(off >= 0 && len >= 0 && off + len <= buf.length)) return -1;
  return off + len;
}

function setMatch(out: FtpMatch, addr: number, port: number, start: number, end: number, delim: number): void {
  out.addr = addr >>> 0;
  out.port = port;
  out.start = start;
  out.end = end;
  out.delim = delim;
}

/** One line at p: "PORT" spaces six CR. */
function portAt(buf: Uint8Array, p: number, end: number, out: FtpMatch): boolean {
  if (!matchKeyword(buf, p, end, KW_PORT)) return false;
  const start = skipSpaces(buf, p + KW_PORT.length, end);
  if (start < 0) return false;
  const q = readSix(buf, start, end);
  if (q < 0 || buf[q] !== CH_CR || sixPort === 0) return false;
  setMatch(out, sixAddr, sixPort, start, q, 0);
  return true;
}

/**
 * Finds a client `PORT h1,h2,h3,h4,p1,p2<CR>` command at a line start in buf[off, off + len).
 * On a match fills `out` (addr, port, and start/end of the "h1,...,p2" text) and returns true.
 */
export function findPort(buf: Uint8Array, off: number, len: number, out: FtpMatch): boolean {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) if (portAt(buf, p, end, out)) return true;
  return false;
}

/** One line at p: "EPRT" spaces d "1" d a.b.c.d d port d CR. */
function eprtAt(buf: Uint8Array, p: number, end: number, out: FtpMatch): boolean {
  if (!matchKeyword(buf, p, end, KW_EPRT)) return false;
  let q = skipSpaces(buf, p + KW_EPRT.length, end);
  if (q < 0) return false;
  const d = buf[q];
  if (!isDelim(d)) return false;
  // d "1" d: only net-prt 1 (IPv4); the address starts after.
  if (end - q < 3 || buf[q + 1] !== CH_1 || buf[q + 2] !== d) return false;
  const start = q + 3;
  q = readDotted(buf, start, end);
  if (q < 0 || buf[q] !== d) return false;
  q = readPort(buf, q + 1, end);
  if (q < 0) return false;
  const portEnd = q;
  if (buf[q] !== d || q + 1 >= end || buf[q + 1] !== CH_CR) return false;
  setMatch(out, sixAddr, numValue, start, portEnd, d);
  return true;
}

/**
 * Finds a client `EPRT <d>1<d>a.b.c.d<d>port<d><CR>` command (RFC 2428, IPv4 only) at a line
 * start. The delimiter <d> is any printable ASCII character except a digit or '.', which would
 * make the fields ambiguous. On a match fills `out` (addr, port, delim, and start/end of the
 * "a.b.c.d<d>port" text) and returns true.
 */
export function findEprt(buf: Uint8Array, off: number, len: number, out: FtpMatch): boolean {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) if (eprtAt(buf, p, end, out)) return true;
  return false;
}

/** The longest IPv6 address text (an IPv4-mapped one written out in full). */
const IPV6_TEXT_MAX = 45;

/** One line at p: "EPRT" spaces d "2" d ipv6 d port d CR. */
function eprt6At(buf: Uint8Array, p: number, end: number, out: FtpMatch): boolean {
  if (!matchKeyword(buf, p, end, KW_EPRT)) return false;
  let q = skipSpaces(buf, p + KW_EPRT.length, end);
  if (q < 0) return false;
  const d = buf[q];
  if (!isDelim(d) || d === CH_COLON) return false;
  if (end - q < 3 || buf[q + 1] !== CH_2 || buf[q + 2] !== d) return false;
  const start = q + 3;
  q = start;
  while (q < end && buf[q] !== d && q - start <= IPV6_TEXT_MAX) q++;
  if (q >= end || buf[q] !== d) return false;
  // One string per EPRT command (not per packet): the address text through inet_pton's rules.
  let text = '';
  for (let i = start; i < q; i++) text += String.fromCharCode(buf[i]);
  const b = parseIpv6(text);
  if (b === null) return false;
  q = readPort(buf, q + 1, end);
  if (q < 0) return false;
  const portEnd = q;
  if (buf[q] !== d || q + 1 >= end || buf[q + 1] !== CH_CR) return false;
  for (let i = 0; i < 4; i++) out.addr6[i] = ipv6Word(b, 0, i);
  setMatch(out, 0, numValue, start, portEnd, d);
  return true;
}

/**
 * Finds a client `EPRT <d>2<d>ipv6-address<d>port<d><CR>` command (RFC 2428, IPv6) at a line
 * start. On a match fills `out` (addr6, port, delim, start/end of the address and port text)
 * and returns true.
 */
export function findEprt6(buf: Uint8Array, off: number, len: number, out: FtpMatch): boolean {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) if (eprt6At(buf, p, end, out)) return true;
  return false;
}

/** One line at p: "227 " text with the first run of six comma-separated numbers. */
function reply227At(buf: Uint8Array, p: number, end: number, out: FtpMatch): boolean {
  if (!matchKeyword(buf, p, end, KW_227)) return false;
  const first = p + KW_227.length;
  for (let q = first; q < end; q++) {
    const b = buf[q];
    if (b === CH_CR || b === CH_LF) return false;
    if (!isDigit(b)) continue;
    // Try only where a run of numbers starts, so "1,2,3,4,5,6,7" is not read from its middle.
    const prev = q === first ? CH_SPACE : buf[q - 1];
    if (isDigit(prev) || prev === CH_COMMA) continue;
    const r = readSix(buf, q, end);
    if (r >= 0 && sixPort !== 0) {
      setMatch(out, sixAddr, sixPort, q, r, 0);
      return true;
    }
  }
  return false;
}

/**
 * Finds a server `227 ...` reply at a line start and in it, as RFC 1123 section 4.1.2.6 asks of
 * clients, the first run of six comma-separated numbers, with or without parentheses:
 * "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)" or "227 =h1,h2,h3,h4,p1,p2". On a match fills
 * `out` (addr, port, start/end of the six numbers) and returns true.
 */
export function find227(buf: Uint8Array, off: number, len: number, out: FtpMatch): boolean {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) if (reply227At(buf, p, end, out)) return true;
  return false;
}

/** One line at p: "229 " text "(" d d d port d ")". */
function reply229At(buf: Uint8Array, p: number, end: number, out: FtpMatch): boolean {
  if (!matchKeyword(buf, p, end, KW_229)) return false;
  let q = p + KW_229.length;
  while (q < end && buf[q] !== CH_LPAREN) {
    if (buf[q] === CH_CR || buf[q] === CH_LF) return false;
    q++;
  }
  if (end - q < 4) return false;
  const d = buf[q + 1];
  if (!isDelim(d) || buf[q + 2] !== d || buf[q + 3] !== d) return false;
  const start = q + 4;
  q = readPort(buf, start, end);
  if (q < 0 || buf[q] !== d || q + 1 >= end || buf[q + 1] !== CH_RPAREN) return false;
  setMatch(out, 0, numValue, start, q, d);
  return true;
}

/**
 * Finds a server `229 ... (<d><d><d>port<d>)` reply (the EPSV answer, RFC 2428) at a line start.
 * On a match fills `out` (port, delim, start/end of the port digits; addr 0) and returns true.
 */
export function find229(buf: Uint8Array, off: number, len: number, out: FtpMatch): boolean {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) if (reply229At(buf, p, end, out)) return true;
  return false;
}

/** One line at p: FTP_PASV, FTP_EPSV or FTP_NOT_PASSIVE (`v6`: of an IPv6 control connection). */
function passiveAt(buf: Uint8Array, p: number, end: number, v6: boolean): number {
  if (matchKeyword(buf, p, end, KW_PASV)) {
    // PASV answers with an IPv4 address: ip_vs_ftp takes it on IPv4 connections only.
    const q = p + KW_PASV.length;
    return !v6 && q < end && buf[q] === CH_CR ? FTP_PASV : FTP_NOT_PASSIVE;
  }
  if (!matchKeyword(buf, p, end, KW_EPSV)) return FTP_NOT_PASSIVE;
  let q = p + KW_EPSV.length;
  if (q < end && buf[q] === CH_CR) return FTP_EPSV;
  // "EPSV 1" (IPv4) or "EPSV 2" (IPv6): the connection's own family only. "EPSV ALL" (no 229
  // follows) is not passive.
  q = skipSpaces(buf, q, end);
  if (q < 0 || q + 1 >= end || buf[q] !== (v6 ? CH_2 : CH_1) || buf[q + 1] !== CH_CR) return FTP_NOT_PASSIVE;
  return FTP_EPSV;
}

/**
 * Whether buf[off, off + len) holds a passive-mode request at a line start: `PASV<CR>` gives
 * FTP_PASV; `EPSV<CR>` or `EPSV 1<CR>` gives FTP_EPSV; otherwise FTP_NOT_PASSIVE. On an IPv6
 * control connection (`v6`): `EPSV<CR>` or `EPSV 2<CR>` only.
 */
export function isPasv(buf: Uint8Array, off: number, len: number, v6 = false): number {
  const end = regionEnd(buf, off, len);
  for (let p = off; p < end; p = nextLine(buf, p, end)) {
    const kind = passiveAt(buf, p, end, v6);
    if (kind !== FTP_NOT_PASSIVE) return kind;
  }
  return FTP_NOT_PASSIVE;
}

function decimalLen(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : 5;
}

/** Writes n (0..99999) in decimal at out[p]; returns the offset after it. */
function writeDecimal(out: Uint8Array, p: number, n: number): number {
  const digits = decimalLen(n);
  for (let i = digits - 1; i >= 0; i--) {
    out[p + i] = CH_0 + (n % 10);
    n = (n / 10) | 0;
  }
  return p + digits;
}

/**
 * Writes "h1,h2,h3,h4,p1,p2" for addr (host-order uint32) and port at out[outOff] (the 227 reply
 * and PORT text). Returns its length (at most FTP_ADDR_PORT_MAX_TEXT), or -1 if out has no room
 * (nothing is written then).
 */
export function writeAddrPort(out: Uint8Array, outOff: number, addr: number, port: number): number {
  const h1 = addr >>> 24;
  const h2 = (addr >>> 16) & 0xff;
  const h3 = (addr >>> 8) & 0xff;
  const h4 = addr & 0xff;
  const p1 = (port >>> 8) & 0xff;
  const p2 = port & 0xff;
  const n = decimalLen(h1) + decimalLen(h2) + decimalLen(h3) + decimalLen(h4) + decimalLen(p1) + decimalLen(p2) + 5;
  if (outOff < 0 || outOff + n > out.length) return -1;
  let p = writeDecimal(out, outOff, h1);
  out[p++] = CH_COMMA;
  p = writeDecimal(out, p, h2);
  out[p++] = CH_COMMA;
  p = writeDecimal(out, p, h3);
  out[p++] = CH_COMMA;
  p = writeDecimal(out, p, h4);
  out[p++] = CH_COMMA;
  p = writeDecimal(out, p, p1);
  out[p++] = CH_COMMA;
  writeDecimal(out, p, p2);
  return n;
}

/**
 * Replaces buf[start, end) inside the payload buf[payloadOff, payloadOff + payloadLen) with
 * text[textOff, textOff + textLen), shifting the rest of the payload to close or open the gap.
 * `capacity` is the largest payload length the packet buffer can hold at payloadOff. Returns the
 * new payload length (the size delta is newLen - payloadLen), or -1, with buf untouched, if the
 * range is not inside the payload, the text is not inside `text`, or the result would not fit.
 * `text` must not overlap the payload's tail.
 */
export function spliceText(
  buf: Uint8Array,
  payloadOff: number,
  payloadLen: number,
  start: number,
  end: number,
  text: Uint8Array,
  textOff: number,
  textLen: number,
  capacity: number,
): number {
  const payloadEnd = payloadOff + payloadLen;
  if (!(payloadOff >= 0 && payloadOff <= start && start <= end && end <= payloadEnd && payloadEnd <= buf.length)) {
    return -1;
  }
  if (!(textOff >= 0 && textLen >= 0 && textOff + textLen <= text.length)) return -1;
  const newLen = payloadLen + textLen - (end - start);
  if (newLen > capacity || payloadOff + newLen > buf.length) return -1;
  if (textLen !== end - start) buf.copyWithin(start + textLen, end, payloadEnd);
  for (let i = 0; i < textLen; i++) buf[start + i] = text[textOff + i];
  return newLen;
}

const scratch = new Uint8Array(FTP_ADDR_PORT_MAX_TEXT);

/**
 * Rewrites the six numbers that a findPort()/find227() match covers to addr and port (e.g. a 227
 * reply's real-server address to the VIP), in place. Returns the new payload length, or -1 (see
 * spliceText). The caller then updates the IP total length, the checksums, and the sequence
 * adjustment (seq-adjust.ts) by newLen - payloadLen.
 */
export function rewriteAddrPort(
  buf: Uint8Array,
  payloadOff: number,
  payloadLen: number,
  match: FtpMatch,
  addr: number,
  port: number,
  capacity: number,
): number {
  const n = writeAddrPort(scratch, 0, addr, port);
  return spliceText(buf, payloadOff, payloadLen, match.start, match.end, scratch, 0, n, capacity);
}
