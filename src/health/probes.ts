// keepalived's health checkers (keepalived.conf(5), keepalived/check/check_*.c) as non-blocking
// probes: `runCheck` runs one check of one checker against one real server and settles with
// ok/why. Whether a result makes the server up or down (retry, delay_before_retry, alpha) is
// checker-state.ts's business, not this file's.
//
// Every probe lives in a Scope: the sockets, child processes and timers it makes are released
// exactly once, before its promise settles, whatever ends it (result, error, timeout). Nothing
// here does synchronous I/O; nothing rejects or throws out of runCheck.
//
// What each checker does, as keepalived does it (T = connect_timeout):
//
// | checker          | ok when                                             | bounded by                      |
// |------------------|-----------------------------------------------------|---------------------------------|
// | TCP_CHECK        | the TCP connect succeeds (closed at once)           | T                               |
// | HTTP_GET/SSL_GET | every url in order: status in status_code, MD5 of   | connect (+TLS handshake) T,     |
// |                  | the body = digest, regex matches (regex_no_match:   | each wait for data T, each url  |
// |                  | does not)                                           | 2T in all                       |
// | UDP_CHECK        | no ICMP error; with require_reply: a reply within T,| T                               |
// |                  | its length in [min, max], its first bytes equal     |                                 |
// | DNS_CHECK        | a reply with our id and QR set has RCODE 0          | T                               |
// | MISC_CHECK       | exit 0; misc_dynamic: 2..255 too, weight exit - 2   | misc_timeout (+ kill grace)     |
// | PING_CHECK       | `ping -c 1 -W T` exits 0 (T rounded up to seconds)  | T (+ margin)                    |
//
// keepalived facts followed (check_udp.c, layer4.c, check_dns.c, check_http.c, check_ssl.c,
// check_misc.c):
// - UDP_CHECK without `payload` sends 32 bytes of "keepalived check - " repeated. Without
//   require_reply a read timeout is success and only an ICMP error fails; with it, a timeout
//   fails, the reply length must be in [min_reply_length, max_reply_length] and the first
//   min(reply length, require_reply length) bytes must equal require_reply.
// - DNS_CHECK: a random id, RD set, one question (class IN). A reply that is too short, has
//   another id or has QR clear is ignored (the wait goes on); RCODE != 0 fails; the answer
//   count is not looked at. One timer covers the whole exchange.
// - HTTP_GET: "GET path HTTP/1.x", "User-Agent: KeepAliveClient" (kept: servers' access rules
//   are written for it), "Connection: close" for http_protocol 1.0C and 1.1, "Host:" the url's
//   virtualhost, else the checker's, else "addr:port" (port always written, IPv6 in brackets).
//   Status, then digest, then regex; no reply at all fails. A Content-Length that does not
//   match the bytes received is only logged by keepalived, so a body cut short by EOF is judged
//   as received here too.
// - SSL_GET: certificates are not verified; SNI only with enable_sni, from sni_name (lvs-ts's
//   keyword), else the url's virtualhost, else the checker's; never an IP address.
// - MISC_CHECK: own process group; on timeout SIGTERM to the group, SIGKILL after a grace, and a
//   SIGKILL to the group once the script is gone (its children too), reported as a timeout.
//   misc_dynamic: exit 0 is ok with no weight change (keepalived's "legacy" case), 1 fails.
//
// Where lvs-ts differs from keepalived, on purpose:
// - HTTP bodies are de-chunked before the digest and regex (keepalived hashes the raw stream,
//   chunk framing included); the read stops once Content-Length or the last chunk is in
//   (keepalived reads to EOF); JavaScript RegExp stands in for PCRE2, matched against the first
//   1 MiB of the body decoded as UTF-8 (the digest covers the whole body).
// - Each url has a hard limit of 2T, so a server trickling bytes cannot hold a check forever.
// - PING_CHECK runs iputils `ping` instead of an ICMP socket of its own.
//
// HTTP is a minimal HTTP/1.x response parser on a plain net/tls socket rather than node:http:
// one connection per url, never pooled or reused, and the timeouts above are our own timers
// on that socket, with nothing of an agent's between the probe and the wire.

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, type Hash, randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { DNS_TYPES, dnsRcodeName, encodeDnsQuery, parseDnsHeader } from './dns-wire';
import type { Checker, HttpUrl, StatusRange } from './keepalived-conf';

export interface ProbeTarget {
  addr: string;
  port: number;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Short human reason, one line, no trailing newline, e.g. "connected", "connect: ECONNREFUSED",
   *  "HTTP 503 (want 200-299)", "digest mismatch", "timeout after 1 s", "exit 1", "no reply". */
  why: string;
  /** MISC_CHECK with misc_dynamic only: the weight the exit code asks for (exit - 2), when exit is 2..255. */
  weight?: number;
}

type HttpChecker = Extract<Checker, { type: 'HTTP_GET' | 'SSL_GET' }>;
type UdpChecker = Extract<Checker, { type: 'UDP_CHECK' }>;
type DnsChecker = Extract<Checker, { type: 'DNS_CHECK' }>;
type MiscChecker = Extract<Checker, { type: 'MISC_CHECK' }>;

// ---------------------------------------------------------------------------------------------
// Constants

/** An HTTP url must be done within this many connect_timeouts (connect, request, response). */
export const HTTP_URL_TIME_FACTOR = 2;
/** Body bytes kept for the regex; the digest covers the whole body. */
export const HTTP_MAX_BODY_KEPT = 1024 * 1024;
/** Status line + headers larger than this fail the check. */
export const HTTP_MAX_HEAD = 64 * 1024;
/** A chunk-size or trailer line longer than this fails the check. */
const HTTP_MAX_LINE = 4096;
/** keepalived's User-Agent, kept so that servers' rules written for it keep working. */
export const HTTP_USER_AGENT = 'KeepAliveClient';
/** UDP_CHECK without `payload`: 32 bytes of this string repeated (keepalived's set_buf). */
export const UDP_DEFAULT_PAYLOAD = udpDefaultPayload('keepalived check - ', 32);
/** MISC_CHECK: SIGTERM to the group at misc_timeout, SIGKILL this much later. */
export const MISC_KILL_GRACE_MS = 500;
/** PING_CHECK: ping is killed this long after its own -W timeout. */
export const PING_MARGIN_MS = 1000;
/** A killed child that is not reaped within this is given up on (only an unkillable one). */
const REAP_BACKSTOP_MS = 1000;
/** The shortest timer a probe uses, whatever the configuration says. */
const MIN_TIMEOUT_MS = 10;

function udpDefaultPayload(s: string, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = s.charCodeAt(i % s.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry point

/** Run one check of `checker` against `rs`. Never rejects, never throws, never blocks the event loop
 *  (no sync I/O, no execSync); always settles within the checker's timeout (+ a small margin),
 *  cleaning up every socket / child process / timer it made. */
export function runCheck(checker: Checker, rs: ProbeTarget): Promise<ProbeOutcome> {
  try {
    return dispatch(checker, rs).catch((e: unknown) => fail(`internal error: ${errText(e)}`));
  } catch (e) {
    return Promise.resolve(fail(`internal error: ${errText(e)}`));
  }
}

/** The longest a runCheck of `checker` can take, in ms (before the margins of a few ms). */
export function probeBudgetMs(checker: Checker): number {
  const t = timeoutMs(checker.connectTimeout);
  switch (checker.type) {
    case 'HTTP_GET':
    case 'SSL_GET':
      return checker.urls.length * HTTP_URL_TIME_FACTOR * t;
    case 'MISC_CHECK':
      return timeoutMs(checker.miscTimeout) + MISC_KILL_GRACE_MS + REAP_BACKSTOP_MS;
    case 'PING_CHECK':
      return pingWaitSeconds(checker) * 1000 + PING_MARGIN_MS + REAP_BACKSTOP_MS;
    default:
      return t;
  }
}

function dispatch(c: Checker, rs: ProbeTarget): Promise<ProbeOutcome> {
  const dst: ProbeTarget = { addr: c.connectIp ?? rs.addr, port: c.connectPort ?? rs.port };
  if (c.type !== 'MISC_CHECK' && net.isIP(dst.addr) === 0) {
    return Promise.resolve(fail(`'${dst.addr}' is not an IP address`));
  }
  switch (c.type) {
    case 'TCP_CHECK':
      return tcpCheck(c, dst);
    case 'HTTP_GET':
    case 'SSL_GET':
      return httpCheck(c, dst);
    case 'UDP_CHECK':
      return udpCheck(c, dst);
    case 'DNS_CHECK':
      return dnsCheck(c, dst);
    case 'MISC_CHECK':
      return miscCheck(c);
    case 'PING_CHECK':
      return pingCheck(c, dst);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function ok(why: string): ProbeOutcome {
  return { ok: true, why };
}

function fail(why: string): ProbeOutcome {
  return { ok: false, why };
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** An error's errno name when it has one, else its message, on one line. */
function errText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && code !== '') return code;
  return oneLine(e instanceof Error ? e.message : String(e));
}

function timeoutMs(seconds: number): number {
  return Math.max(MIN_TIMEOUT_MS, Math.round(seconds * 1000));
}

/** Seconds as written in a reason: 1, 0.5, 2.25. */
function secs(seconds: number): string {
  return String(Number(seconds.toFixed(3)));
}

/**
 * The resources of one probe. `finish` settles the probe once: it runs every cleanup registered
 * with `defer` (latest first), then resolves. Event listeners stay attached (a late 'error'
 * must still find a listener); after `finish` they are no-ops.
 */
class Scope {
  private done = false;
  private readonly cleanups: Array<() => void> = [];

  constructor(private readonly resolve: (o: ProbeOutcome) => void) {}

  get settled(): boolean {
    return this.done;
  }

  defer(fn: () => void): void {
    if (this.done) quietly(fn);
    else this.cleanups.push(fn);
  }

  /** A timer cleared when the probe settles; `refresh()` it to restart. */
  timer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    this.defer(() => clearTimeout(t));
    return t;
  }

  finish(o: ProbeOutcome): void {
    if (this.done) return;
    this.done = true;
    for (let i = this.cleanups.length - 1; i >= 0; i--) quietly(this.cleanups[i]);
    this.cleanups.length = 0;
    this.resolve(o);
  }
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // Releasing something already gone (a closed socket, a reaped process): nothing to do.
  }
}

function probe(body: (s: Scope) => void): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = new Scope(resolve);
    try {
      body(s);
    } catch (e) {
      s.finish(fail(`internal error: ${errText(e)}`));
    }
  });
}

/** net.connect / tls.connect options for `dst` from the checker's bindto / bind_port. */
function tcpOptions(c: Checker, dst: ProbeTarget): net.TcpNetConnectOpts {
  const o: net.TcpNetConnectOpts = { host: dst.addr, port: dst.port };
  if (c.bindto !== null) o.localAddress = c.bindto;
  if (c.bindPort !== null) o.localPort = c.bindPort;
  return o;
}

// ---------------------------------------------------------------------------------------------
// TCP_CHECK

function tcpCheck(c: Checker, dst: ProbeTarget): Promise<ProbeOutcome> {
  const ms = timeoutMs(c.connectTimeout);
  return probe((s) => {
    const sock = net.connect(tcpOptions(c, dst));
    s.defer(() => sock.destroy());
    s.timer(ms, () => s.finish(fail(`connect: timeout after ${secs(c.connectTimeout)} s`)));
    sock.on('error', (e) => s.finish(fail(`connect: ${errText(e)}`)));
    sock.once('connect', () => s.finish(ok('connected')));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP_GET / SSL_GET

async function httpCheck(c: HttpChecker, dst: ProbeTarget): Promise<ProbeOutcome> {
  let last = ok('no url to check');
  for (const url of c.urls) {
    const o = await httpGet(c, url, dst);
    if (!o.ok) return c.urls.length > 1 ? fail(`${url.path || '/'}: ${o.why}`) : o;
    last = o;
  }
  return c.urls.length > 1 ? ok(`${c.urls.length} urls ok`) : last;
}

/** The request keepalived sends for `url` (check_http.c's template). */
export function httpRequest(c: HttpChecker, url: HttpUrl, dst: ProbeTarget): string {
  const proto = (c.httpProtocol ?? '1.0').toUpperCase();
  const v11 = proto === '1.1';
  const close = v11 || proto === '1.0C';
  const vhost = url.virtualhost ?? c.virtualhost;
  const host = vhost ?? (net.isIPv6(dst.addr) ? `[${dst.addr}]:${dst.port}` : `${dst.addr}:${dst.port}`);
  return (
    `GET ${url.path || '/'} HTTP/1.${v11 ? 1 : 0}\r\n` +
    `User-Agent: ${HTTP_USER_AGENT}\r\n` +
    (close ? 'Connection: close\r\n' : '') +
    `Host: ${host}\r\n\r\n`
  );
}

/** SSL_GET's SNI: only with enable_sni; sni_name, else a virtualhost; never an IP address. */
function sniFor(c: HttpChecker, url: HttpUrl): string | undefined {
  if (c.type !== 'SSL_GET' || !c.enableSni) return undefined;
  const name = c.sniName ?? url.virtualhost ?? c.virtualhost;
  return name !== null && net.isIP(name) === 0 ? name : undefined;
}

function fmtRanges(ranges: readonly StatusRange[]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(',');
}

function httpGet(c: HttpChecker, url: HttpUrl, dst: ProbeTarget): Promise<ProbeOutcome> {
  let re: RegExp | null = null;
  if (url.regex !== null) {
    try {
      re = new RegExp(url.regex);
    } catch (e) {
      return Promise.resolve(fail(`bad regex /${url.regex}/: ${errText(e)}`));
    }
  }
  const ms = timeoutMs(c.connectTimeout);
  const t = secs(c.connectTimeout);
  const ssl = c.type === 'SSL_GET';
  return probe((s) => {
    const md5: Hash | null = url.digest !== null ? createHash('md5') : null;
    const kept: Buffer[] = [];
    let keptLen = 0;
    const parser = new HttpResponseParser((b) => {
      md5?.update(b);
      if (re !== null && keptLen < HTTP_MAX_BODY_KEPT) {
        const part = b.subarray(0, HTTP_MAX_BODY_KEPT - keptLen);
        kept.push(part);
        keptLen += part.length;
      }
    });

    const judge = (): ProbeOutcome => {
      const st = parser.status;
      if (!url.statusCodes.some(([lo, hi]) => st >= lo && st <= hi)) {
        return fail(`HTTP ${st} (want ${fmtRanges(url.statusCodes)})`);
      }
      if (md5 !== null) {
        const got = md5.digest('hex');
        if (got !== url.digest!.toLowerCase()) return fail(`digest mismatch (got ${got})`);
      }
      if (re !== null) {
        const matched = re.test(Buffer.concat(kept, keptLen).toString('utf8'));
        if (matched === url.regexNoMatch) {
          return fail(url.regexNoMatch ? `regex /${url.regex}/ matched` : `regex /${url.regex}/ not matched`);
        }
      }
      return ok(`HTTP ${st}${parser.truncated ? ' (body cut short)' : ''}`);
    };

    const onParse = (r: HttpParse): void => {
      if (r === HTTP_DONE) s.finish(judge());
      else if (r === HTTP_ERROR) s.finish(fail(parser.error));
    };

    let phase = 'connect';
    const opts = tcpOptions(c, dst);
    const servername = sniFor(c, url);
    const sock: net.Socket = ssl
      ? tls.connect({ ...opts, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) })
      : net.connect(opts);
    s.defer(() => sock.destroy());
    s.timer(HTTP_URL_TIME_FACTOR * ms, () =>
      s.finish(fail(`not done within ${secs(HTTP_URL_TIME_FACTOR * c.connectTimeout)} s`)),
    );
    // keepalived: one connect_timeout for the TCP connect and the TLS handshake together.
    const connectTimer = s.timer(ms, () => s.finish(fail(`${phase}: timeout after ${t} s`)));
    let idle: NodeJS.Timeout | null = null;

    sock.on('error', (e) => s.finish(fail(`${phase}: ${errText(e)}`)));
    sock.once('connect', () => {
      if (ssl) phase = 'tls';
    });
    sock.once(ssl ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      phase = 'read';
      idle = s.timer(ms, () => s.finish(fail(`read: timeout after ${t} s`)));
      sock.write(httpRequest(c, url, dst));
    });
    sock.on('data', (chunk: Buffer) => {
      if (s.settled) return;
      idle?.refresh();
      onParse(parser.push(chunk));
    });
    sock.on('end', () => {
      if (!s.settled) onParse(parser.end());
    });
    sock.on('close', () => s.finish(fail(`${phase}: connection closed`)));
  });
}

export const HTTP_MORE = 0;
export const HTTP_DONE = 1;
export const HTTP_ERROR = 2;
export type HttpParse = typeof HTTP_MORE | typeof HTTP_DONE | typeof HTTP_ERROR;

const ST_HEAD = 0;
const ST_LENGTH = 1;
const ST_CLOSE = 2;
const ST_CHUNK_SIZE = 3;
const ST_CHUNK_DATA = 4;
const ST_CHUNK_END = 5;
const ST_TRAILER = 6;
const ST_DONE = 7;
const ST_ERROR = 8;

const EMPTY = Buffer.alloc(0);
const LF = 0x0a;
const STATUS_LINE = /^HTTP\/(\d)\.(\d)[ \t]+(\d{3})(?:[ \t]|$)/;

/**
 * A minimal HTTP/1.x response parser: status line, headers, then the body framed by
 * Transfer-Encoding: chunked, Content-Length or the end of the connection. Interim 1xx
 * responses are skipped; 204 and 304 have no body. Body bytes go to `onBody` as they come
 * (views into the pushed chunks). Lines may end with CRLF or LF.
 */
export class HttpResponseParser {
  status = 0;
  /** Lower-case names; a repeated header's values joined with ", ". */
  readonly headers = new Map<string, string>();
  /** Why push/end returned HTTP_ERROR. */
  error = '';
  /** The connection ended before Content-Length bytes or the last chunk came. */
  truncated = false;
  private state = ST_HEAD;
  private pending: Buffer = EMPTY;
  private remaining = 0;
  private seen = 0;
  private trailerBytes = 0;

  constructor(private readonly onBody: (b: Buffer) => void) {}

  push(chunk: Buffer): HttpParse {
    if (this.state === ST_DONE) return HTTP_DONE;
    if (this.state === ST_ERROR) return HTTP_ERROR;
    this.seen += chunk.length;
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = EMPTY;
    let off = 0;
    for (;;) {
      switch (this.state) {
        case ST_HEAD: {
          const end = headEnd(buf, off);
          if (end < 0) {
            if (buf.length - off > HTTP_MAX_HEAD) return this.fail(`HTTP header over ${HTTP_MAX_HEAD} bytes`);
            return this.keep(buf, off);
          }
          const err = this.parseHead(buf.toString('latin1', off, end));
          if (err !== null) return this.fail(err);
          off = end;
          break;
        }
        case ST_LENGTH:
        case ST_CHUNK_DATA: {
          const n = Math.min(this.remaining, buf.length - off);
          if (n > 0) this.onBody(buf.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining > 0) return HTTP_MORE;
          if (this.state === ST_LENGTH) return this.done();
          this.state = ST_CHUNK_END;
          break;
        }
        case ST_CLOSE:
          if (off < buf.length) this.onBody(buf.subarray(off));
          return HTTP_MORE;
        case ST_CHUNK_SIZE:
        case ST_CHUNK_END:
        case ST_TRAILER: {
          const nl = buf.indexOf(LF, off);
          if (nl < 0) {
            if (buf.length - off > HTTP_MAX_LINE) return this.fail('HTTP chunk line too long');
            return this.keep(buf, off);
          }
          const line = buf.toString('latin1', off, nl).replace(/\r$/, '');
          off = nl + 1;
          const err = this.chunkLine(line);
          if (err !== null) return this.fail(err);
          if (this.finished) return HTTP_DONE;
          break;
        }
        case ST_DONE:
          return HTTP_DONE;
        default:
          return HTTP_ERROR;
      }
    }
  }

  /** The connection ended (EOF). */
  end(): HttpParse {
    switch (this.state) {
      case ST_DONE:
        return HTTP_DONE;
      case ST_ERROR:
        return HTTP_ERROR;
      case ST_HEAD:
        return this.fail(this.seen === 0 ? 'no reply' : 'connection closed inside the HTTP header');
      case ST_CLOSE:
        return this.done();
      default:
        this.truncated = true;
        return this.done();
    }
  }

  private get finished(): boolean {
    return this.state === ST_DONE;
  }

  private keep(buf: Buffer, off: number): HttpParse {
    this.pending = Buffer.from(buf.subarray(off));
    return HTTP_MORE;
  }

  private done(): HttpParse {
    this.state = ST_DONE;
    return HTTP_DONE;
  }

  private fail(why: string): HttpParse {
    this.state = ST_ERROR;
    this.error = why;
    return HTTP_ERROR;
  }

  /** Status line and headers (the blank line included); sets the body state. */
  private parseHead(text: string): string | null {
    const lines = text.split(/\r?\n/);
    const m = STATUS_LINE.exec(lines[0]);
    if (!m) return `bad HTTP status line '${oneLine(lines[0]).slice(0, 40)}'`;
    this.status = Number(m[3]);
    this.headers.clear();
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i];
      const colon = l.indexOf(':');
      if (colon <= 0) continue;
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      const prev = this.headers.get(name);
      this.headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
    }
    if (this.status >= 100 && this.status < 200) {
      this.status = 0;
      this.state = ST_HEAD;
      return null;
    }
    if (this.status === 204 || this.status === 304) {
      this.state = ST_DONE;
      return null;
    }
    const te = this.headers.get('transfer-encoding');
    if (te !== undefined && /(?:^|,)\s*chunked\s*$/i.test(te)) {
      this.state = ST_CHUNK_SIZE;
      return null;
    }
    const cl = this.headers.get('content-length');
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) return `bad Content-Length '${cl.slice(0, 40)}'`;
      this.remaining = Number(cl);
      this.state = this.remaining === 0 ? ST_DONE : ST_LENGTH;
      return null;
    }
    this.state = ST_CLOSE;
    return null;
  }

  private chunkLine(line: string): string | null {
    if (this.state === ST_CHUNK_END) {
      if (line !== '') return 'bad HTTP chunk: no CRLF after the data';
      this.state = ST_CHUNK_SIZE;
      return null;
    }
    if (this.state === ST_TRAILER) {
      this.trailerBytes += line.length;
      if (this.trailerBytes > HTTP_MAX_HEAD) return `HTTP trailer over ${HTTP_MAX_HEAD} bytes`;
      if (line === '') this.state = ST_DONE;
      return null;
    }
    const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
    if (!m) return `bad HTTP chunk size '${oneLine(line).slice(0, 40)}'`;
    this.remaining = Number.parseInt(m[1], 16);
    this.state = this.remaining === 0 ? ST_TRAILER : ST_CHUNK_DATA;
    return null;
  }
}

/** The offset just after the blank line ending the head, or -1. */
function headEnd(buf: Buffer, off: number): number {
  const crlf = buf.indexOf('\r\n\r\n', off, 'latin1');
  const lf = buf.indexOf('\n\n', off, 'latin1');
  if (crlf >= 0 && (lf < 0 || crlf + 1 < lf)) return crlf + 4;
  return lf >= 0 ? lf + 2 : -1;
}

// ---------------------------------------------------------------------------------------------
// UDP_CHECK and DNS_CHECK: a connected datagram socket

/**
 * Open a connected UDP socket to `dst` (bound per bindto / bind_port), send `payload`, and hand
 * every datagram to `onReply`. An ICMP error (ECONNREFUSED, EHOSTUNREACH, ... on the connected
 * socket) fails the probe; `onTimeout` decides what T without a verdict means.
 */
function udpExchange(
  s: Scope,
  c: Checker,
  dst: ProbeTarget,
  payload: Buffer,
  onReply: (msg: Buffer) => void,
  onTimeout: () => ProbeOutcome,
): void {
  const sock = dgram.createSocket(net.isIPv6(dst.addr) ? 'udp6' : 'udp4');
  s.defer(() => sock.close());
  s.timer(timeoutMs(c.connectTimeout), () => s.finish(onTimeout()));
  sock.on('error', (e) => s.finish(fail(`udp: ${errText(e)}`)));
  sock.on('message', (msg: Buffer) => {
    if (!s.settled) onReply(msg);
  });
  const send = (): void => {
    sock.connect(dst.port, dst.addr, () => {
      sock.send(payload, (err) => {
        if (err) s.finish(fail(`udp: ${errText(err)}`));
      });
    });
  };
  if (c.bindto !== null || c.bindPort !== null) {
    sock.bind({ address: c.bindto ?? undefined, port: c.bindPort ?? 0 }, send);
  } else {
    send();
  }
}

function udpCheck(c: UdpChecker, dst: ProbeTarget): Promise<ProbeOutcome> {
  const payload = c.payload !== null ? Buffer.from(c.payload, 'hex') : UDP_DEFAULT_PAYLOAD;
  const want = c.requireReply !== null ? Buffer.from(c.requireReply, 'hex') : null;
  const t = secs(c.connectTimeout);
  return probe((s) =>
    udpExchange(
      s,
      c,
      dst,
      payload,
      (msg) => s.finish(want === null ? ok(`reply of ${msg.length} bytes`) : udpReplyOutcome(c, want, msg)),
      () => (want === null ? ok(`no reply and no ICMP error within ${t} s`) : fail(`no reply within ${t} s`)),
    ),
  );
}

/** check_udp.c's rule: length in [min, max], then the first min(len, want) bytes equal. */
export function udpReplyOutcome(
  c: Pick<UdpChecker, 'minReplyLength' | 'maxReplyLength'>,
  want: Buffer,
  msg: Buffer,
): ProbeOutcome {
  if (msg.length < c.minReplyLength || msg.length > c.maxReplyLength) {
    return fail(`reply of ${msg.length} bytes (want ${c.minReplyLength}-${c.maxReplyLength})`);
  }
  const n = Math.min(msg.length, want.length);
  if (!msg.subarray(0, n).equals(want.subarray(0, n))) return fail('reply data mismatch');
  return ok(`reply of ${msg.length} bytes matches`);
}

function dnsCheck(c: DnsChecker, dst: ProbeTarget): Promise<ProbeOutcome> {
  const qtype = DNS_TYPES[c.queryType.toUpperCase()] ?? DNS_TYPES.SOA!;
  const id = randomInt(0, 0x10000);
  const query = encodeDnsQuery(id, c.name, qtype);
  if (query === null) return Promise.resolve(fail(`bad DNS name '${c.name}'`));
  const t = secs(c.connectTimeout);
  return probe((s) =>
    udpExchange(
      s,
      c,
      dst,
      query,
      (msg) => {
        const h = parseDnsHeader(msg);
        // keepalived waits on past a short message, another id, or a query.
        if (h === null || h.id !== id || !h.qr) return;
        if (h.rcode !== 0) s.finish(fail(`DNS rcode ${h.rcode} (${dnsRcodeName(h.rcode)})`));
        else s.finish(ok(`DNS NOERROR, ${h.ancount} answer${h.ancount === 1 ? '' : 's'}`));
      },
      () => fail(`timeout after ${t} s`),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// MISC_CHECK and PING_CHECK: child processes

/** The outcome of a script's exit, keepalived's misc_check_child_thread rules. */
export function miscExitOutcome(code: number | null, signal: string | null, dynamic: boolean): ProbeOutcome {
  if (code === null) return fail(`killed by ${signal ?? 'a signal'}`);
  if (code === 0) return ok('exit 0');
  if (dynamic && code >= 2 && code <= 255)
    return { ok: true, why: `exit ${code} (weight ${code - 2})`, weight: code - 2 };
  return fail(`exit ${code}`);
}

interface Ids {
  uid: number;
  gid: number;
}

/** Fields of the line of a passwd(5) / group(5) file whose first field is `name`. */
export function findDbEntry(text: string, name: string): string[] | null {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3) return f;
  }
  return null;
}

/** `user NAME [GROUP]` → uid/gid from /etc/passwd and /etc/group, or why not. */
async function lookupUser(spec: string): Promise<Ids | string> {
  const [name, group] = spec.trim().split(/\s+/);
  if (!name) return 'user: no name given';
  let passwd: string;
  try {
    passwd = await readFile('/etc/passwd', 'utf8');
  } catch (e) {
    return `user ${name}: cannot read /etc/passwd: ${errText(e)}`;
  }
  const pw = findDbEntry(passwd, name);
  const uid = Number(pw?.[2]);
  let gid = Number(pw?.[3]);
  if (!pw || !Number.isInteger(uid) || !Number.isInteger(gid)) return `user '${name}' not found in /etc/passwd`;
  if (group !== undefined) {
    let groups: string;
    try {
      groups = await readFile('/etc/group', 'utf8');
    } catch (e) {
      return `group ${group}: cannot read /etc/group: ${errText(e)}`;
    }
    const gr = findDbEntry(groups, group);
    gid = Number(gr?.[2]);
    if (!gr || !Number.isInteger(gid)) return `group '${group}' not found in /etc/group`;
  }
  return { uid, gid };
}

/** Signal a process group, ignoring "already gone". */
function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group has no process left.
  }
}

async function miscCheck(c: MiscChecker): Promise<ProbeOutcome> {
  let ids: Ids | null = null;
  if (c.user !== null) {
    const r = await lookupUser(c.user);
    if (typeof r === 'string') return fail(r);
    ids = r;
  }
  const ms = timeoutMs(c.miscTimeout);
  return probe((s) => {
    let child: ChildProcess;
    try {
      // detached: setsid, so the script leads its own process group and a timeout reaches
      // everything it started.
      child = spawn('/bin/sh', ['-c', c.miscPath], { stdio: 'ignore', detached: true, ...(ids ?? {}) });
    } catch (e) {
      s.finish(fail(`spawn: ${errText(e)}`));
      return;
    }
    const pid = child.pid;
    let exited = false;
    let timedOut = false;
    s.defer(() => {
      if (!exited) killGroup(pid, 'SIGKILL');
    });
    child.on('error', (e) => s.finish(fail(`spawn: ${errText(e)}`)));
    s.timer(ms, () => {
      timedOut = true;
      killGroup(pid, 'SIGTERM');
      s.timer(MISC_KILL_GRACE_MS, () => {
        killGroup(pid, 'SIGKILL');
        s.timer(REAP_BACKSTOP_MS, () => s.finish(fail(`timeout after ${secs(c.miscTimeout)} s (not reaped)`)));
      });
    });
    child.on('exit', (code, signal) => {
      exited = true;
      if (timedOut) {
        // What the script started may outlive it: the whole group goes.
        killGroup(pid, 'SIGKILL');
        s.finish(fail(`timeout after ${secs(c.miscTimeout)} s`));
        return;
      }
      s.finish(miscExitOutcome(code, signal, c.miscDynamic));
    });
  });
}

/** ping's -W: whole seconds (BusyBox and older iputils take no fraction), at least 1. */
function pingWaitSeconds(c: Checker): number {
  return Math.max(1, Math.ceil(c.connectTimeout));
}

/** iputils ping's arguments for one echo request. */
export function pingArgs(c: Checker, addr: string): string[] {
  const args = ['-c', '1', '-n', '-W', String(pingWaitSeconds(c))];
  if (c.bindto !== null) args.push('-I', c.bindto);
  args.push(addr);
  return args;
}

function pingCheck(c: Checker, dst: ProbeTarget): Promise<ProbeOutcome> {
  const ms = pingWaitSeconds(c) * 1000;
  return probe((s) => {
    let child: ChildProcess;
    try {
      child = spawn('ping', pingArgs(c, dst.addr), { stdio: 'ignore' });
    } catch (e) {
      s.finish(fail(`spawn ping: ${errText(e)}`));
      return;
    }
    let exited = false;
    let timedOut = false;
    s.defer(() => {
      if (!exited) child.kill('SIGKILL');
    });
    child.on('error', (e) => s.finish(fail(`spawn ping: ${errText(e)}`)));
    s.timer(ms + PING_MARGIN_MS, () => {
      timedOut = true;
      child.kill('SIGKILL');
      s.timer(REAP_BACKSTOP_MS, () => s.finish(fail(`timeout after ${secs(c.connectTimeout)} s (not reaped)`)));
    });
    child.on('exit', (code, signal) => {
      exited = true;
      if (timedOut) s.finish(fail(`timeout after ${secs(c.connectTimeout)} s`));
      else if (code === 0) s.finish(ok('echo reply'));
      else if (code === 1) s.finish(fail('no reply'));
      else s.finish(fail(code === null ? `ping killed by ${signal}` : `ping exit ${code}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// notify_up / notify_down / quorum_up / quorum_down commands

/** Runs a notify or quorum command; must not block. */
export type ScriptRunner = (cmd: string) => void;

/** Run `cmd` with /bin/sh, detached, output discarded; a failure to start is logged. */
export function spawnScript(log: (msg: string) => void): ScriptRunner {
  return (cmd) => {
    try {
      const p = spawn('/bin/sh', ['-c', cmd], { stdio: 'ignore', detached: true });
      p.on('error', (err) => log(`health: cannot run '${cmd}': ${err.message}`));
      p.unref();
    } catch (err) {
      log(`health: cannot run '${cmd}': ${(err as Error).message}`);
    }
  };
}
