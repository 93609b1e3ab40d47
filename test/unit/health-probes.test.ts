// keepalived's checkers as async probes (src/health/probes.ts) against real servers on loopback:
// TCP connect / refused, HTTP status ranges, digest, regex, virtualhost, several urls, chunked and
// Content-Length bodies, read timeouts, TLS with SNI, UDP with and without require_reply, ICMP
// port unreachable, a DNS responder built from dns-wire.ts, MISC_CHECK exit codes, misc_dynamic
// and timeouts that take the whole process group, PING_CHECK. Plus the pure pieces: the HTTP
// response parser, the request text, the DNS wire format. Every probe must close what it opened.

import { createHash } from 'node:crypto';
import * as dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DNS_CLASS_IN,
  decodeDnsName,
  dnsHeader,
  encodeDnsMessage,
  encodeDnsName,
  encodeDnsQuery,
  parseDnsHeader,
  parseDnsQuestion,
} from '../../src/health/dns-wire';
import type { Checker, CheckerCommon, HttpUrl } from '../../src/health/keepalived-conf';
import {
  HTTP_DONE,
  HTTP_ERROR,
  HTTP_MORE,
  HttpResponseParser,
  httpRequest,
  miscExitOutcome,
  pingArgs,
  probeBudgetMs,
  runCheck,
  UDP_DEFAULT_PAYLOAD,
  udpReplyOutcome,
} from '../../src/health/probes';

// ---------------------------------------------------------------------------------------------
// Checkers

type HttpChecker = Extract<Checker, { type: 'HTTP_GET' | 'SSL_GET' }>;
type UdpChecker = Extract<Checker, { type: 'UDP_CHECK' }>;
type DnsChecker = Extract<Checker, { type: 'DNS_CHECK' }>;
type MiscChecker = Extract<Checker, { type: 'MISC_CHECK' }>;

const BASE: CheckerCommon = {
  pos: { file: 'test.conf', line: 1 },
  connectIp: null,
  connectPort: null,
  bindto: null,
  bindPort: null,
  connectTimeout: 1,
  retry: 1,
  delayBeforeRetry: 1,
  delayLoop: 60,
  warmup: 0,
  alpha: false,
};

function tcpCheck(over: Partial<CheckerCommon> = {}): Checker {
  return { ...BASE, type: 'TCP_CHECK', ...over };
}

function url(path: string, over: Partial<HttpUrl> = {}): HttpUrl {
  return {
    path,
    statusCodes: [[200, 299]],
    digest: null,
    regex: null,
    regexNoMatch: false,
    virtualhost: null,
    ...over,
  };
}

function httpCheck(urls: HttpUrl[], over: Partial<HttpChecker> = {}): HttpChecker {
  return {
    ...BASE,
    type: 'HTTP_GET',
    urls,
    virtualhost: null,
    httpProtocol: null,
    enableSni: false,
    sniName: null,
    ...over,
  } as HttpChecker;
}

function udpCheck(over: Partial<UdpChecker> = {}): UdpChecker {
  return {
    ...BASE,
    type: 'UDP_CHECK',
    payload: null,
    requireReply: null,
    minReplyLength: 0,
    maxReplyLength: 255,
    ...over,
  } as UdpChecker;
}

function dnsCheck(over: Partial<DnsChecker> = {}): DnsChecker {
  return { ...BASE, type: 'DNS_CHECK', name: 'example.com', queryType: 'A', ...over } as DnsChecker;
}

function miscCheck(miscPath: string, over: Partial<MiscChecker> = {}): MiscChecker {
  return {
    ...BASE,
    type: 'MISC_CHECK',
    miscPath,
    miscTimeout: 2,
    miscDynamic: false,
    user: null,
    ...over,
  } as MiscChecker;
}

const LO = '127.0.0.1';

/** How long `p` took to settle, in ms, with its value. */
async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

function listen(server: net.Server, host = LO): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function bindUdp(sock: dgram.Socket, host = LO): Promise<number> {
  return new Promise((resolve) => sock.bind(0, host, () => resolve(sock.address().port)));
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port on 127.0.0.1 with no TCP listener. */
async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await closeServer(s);
  return port;
}

/** A port on 127.0.0.1 with no UDP socket. */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  const port = await bindUdp(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function waitFor(cond: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function md5(s: string | Buffer): string {
  return createHash('md5').update(s).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Servers

interface Seen {
  url: string;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  remoteAddress: string;
  servername: string | false | null | undefined;
}

const BIG = Buffer.alloc(2 * 1024 * 1024, 'abcdefgh');
let seen: Seen[] = [];

function webHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  seen.push({
    url: req.url ?? '',
    httpVersion: req.httpVersion,
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress ?? '',
    servername: (req.socket as TLSSocket).servername,
  });
  switch (req.url) {
    case '/ok':
      res.end('hello world');
      return;
    case '/503':
      res.statusCode = 503;
      res.end('down');
      return;
    case '/body':
      res.end('The quick brown fox jumps over the lazy dog');
      return;
    case '/chunked':
      res.write('hello');
      setTimeout(() => res.end(' world'), 20);
      return;
    case '/big':
      res.setHeader('Content-Length', BIG.length);
      res.end(BIG);
      return;
    default:
      res.statusCode = 404;
      res.end('no');
  }
}

let web: http.Server;
let webPort: number;
let secure: https.Server;
let securePort: number;
/** Accepts TCP connections and never says a word; remembers when each one closes. */
let silent: net.Server;
let silentPort: number;
const silentClosed: boolean[] = [];
const silentSocks = new Set<net.Socket>();
let tcpServer: net.Server;
let tcpPort: number;
const tcpConns: { remote: string; remotePort: number; closed: boolean }[] = [];
const tcpSocks = new Set<net.Socket>();

beforeAll(async () => {
  web = http.createServer(webHandler);
  webPort = await listen(web);
  const tlsDir = join(__dirname, '../fixtures/tls');
  secure = https.createServer(
    { key: readFileSync(join(tlsDir, 'key.pem')), cert: readFileSync(join(tlsDir, 'cert.pem')) },
    webHandler,
  );
  securePort = await listen(secure);
  silent = net.createServer((sock) => {
    const i = silentClosed.push(false) - 1;
    silentSocks.add(sock);
    sock.on('close', () => {
      silentClosed[i] = true;
      silentSocks.delete(sock);
    });
    sock.on('error', () => {});
    sock.resume(); // read (and drop) the request, so that the client's FIN is seen
  });
  silentPort = await listen(silent);
  tcpServer = net.createServer((sock) => {
    const c = { remote: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0, closed: false };
    tcpConns.push(c);
    tcpSocks.add(sock);
    sock.on('close', () => {
      c.closed = true;
      tcpSocks.delete(sock);
    });
    sock.on('error', () => {});
    sock.resume();
  });
  tcpPort = await listen(tcpServer);
});

afterAll(async () => {
  web.closeAllConnections();
  secure.closeAllConnections();
  // Only a failed test leaves these open; without this, server.close() would wait for them.
  for (const sock of [...silentSocks, ...tcpSocks]) sock.destroy();
  await Promise.all([closeServer(web), closeServer(secure), closeServer(silent), closeServer(tcpServer)]);
});

/** A one-off TCP server answering each connection with `respond`, for hand-made responses. */
async function withRaw(respond: (sock: net.Socket) => void, body: (port: number) => Promise<void>): Promise<void> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('error', () => {});
    sock.once('data', () => respond(sock));
  });
  const port = await listen(server);
  try {
    await body(port);
  } finally {
    for (const s of socks) s.destroy();
    await closeServer(server);
  }
}

// ---------------------------------------------------------------------------------------------
// TCP_CHECK

describe('TCP_CHECK', () => {
  it('connects, reports "connected" and closes the connection at once', async () => {
    const n = tcpConns.length;
    expect(await runCheck(tcpCheck(), { addr: LO, port: tcpPort })).toEqual({ ok: true, why: 'connected' });
    await waitFor(() => tcpConns.length === n + 1 && tcpConns[n].closed);
  });

  it('fails with the errno on a closed port', async () => {
    const port = await freeTcpPort();
    expect(await runCheck(tcpCheck(), { addr: LO, port })).toEqual({ ok: false, why: 'connect: ECONNREFUSED' });
  });

  it('checks connect_ip:connect_port instead of the real server, from bindto:bind_port', async () => {
    const n = tcpConns.length;
    const bindPort = await freeTcpPort();
    const c = tcpCheck({ connectIp: LO, connectPort: tcpPort, bindto: '127.0.0.3', bindPort });
    expect(await runCheck(c, { addr: '127.0.0.9', port: 1 })).toEqual({ ok: true, why: 'connected' });
    await waitFor(() => tcpConns.length === n + 1);
    expect(tcpConns[n]).toMatchObject({ remote: '127.0.0.3', remotePort: bindPort });
  });

  it('refuses a host name instead of resolving it', async () => {
    expect(await runCheck(tcpCheck(), { addr: 'localhost', port: tcpPort })).toEqual({
      ok: false,
      why: "'localhost' is not an IP address",
    });
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP_GET

describe('HTTP_GET', () => {
  const rs = () => ({ addr: LO, port: webPort });

  it('is ok on a 2xx and sends keepalived request: HTTP/1.0, KeepAliveClient, Host addr:port', async () => {
    seen = [];
    expect(await runCheck(httpCheck([url('/ok')]), rs())).toEqual({ ok: true, why: 'HTTP 200' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ url: '/ok', httpVersion: '1.0' });
    expect(seen[0].headers).toEqual({ 'user-agent': 'KeepAliveClient', host: `${LO}:${webPort}` });
  });

  it('fails on a status outside status_code, naming the ranges', async () => {
    expect(await runCheck(httpCheck([url('/503')]), rs())).toEqual({ ok: false, why: 'HTTP 503 (want 200-299)' });
    const c = httpCheck([
      url('/ok', {
        statusCodes: [
          [201, 201],
          [300, 399],
        ],
      }),
    ]);
    expect(await runCheck(c, rs())).toEqual({ ok: false, why: 'HTTP 200 (want 201,300-399)' });
  });

  it('is ok on any status inside a status_code range', async () => {
    const c = httpCheck([
      url('/503', {
        statusCodes: [
          [200, 200],
          [500, 503],
        ],
      }),
    ]);
    expect(await runCheck(c, rs())).toEqual({ ok: true, why: 'HTTP 503' });
  });

  it('compares the MD5 of the body with digest', async () => {
    const good = httpCheck([url('/ok', { digest: md5('hello world') })]);
    expect(await runCheck(good, rs())).toEqual({ ok: true, why: 'HTTP 200' });
    const bad = httpCheck([url('/ok', { digest: md5('hello') })]);
    expect(await runCheck(bad, rs())).toEqual({ ok: false, why: `digest mismatch (got ${md5('hello world')})` });
  });

  it('hashes the whole of a 2 MiB body', async () => {
    const c = httpCheck([url('/big', { digest: md5(BIG) })], { connectTimeout: 3 });
    expect(await runCheck(c, rs())).toEqual({ ok: true, why: 'HTTP 200' });
  });

  it('needs regex to match the body, or not to with regex_no_match', async () => {
    const cases: [Partial<HttpUrl>, boolean, string][] = [
      [{ regex: 'quick\\s+brown' }, true, 'HTTP 200'],
      [{ regex: '^The .* dog$' }, true, 'HTTP 200'],
      [{ regex: 'purple' }, false, 'regex /purple/ not matched'],
      [{ regex: 'purple', regexNoMatch: true }, true, 'HTTP 200'],
      [{ regex: 'fox', regexNoMatch: true }, false, 'regex /fox/ matched'],
    ];
    for (const [u, okWanted, why] of cases) {
      expect(await runCheck(httpCheck([url('/body', u)]), rs())).toEqual({ ok: okWanted, why });
    }
  });

  it('fails an invalid regex without connecting', async () => {
    seen = [];
    const o = await runCheck(httpCheck([url('/body', { regex: '(' })]), rs());
    expect(o.ok).toBe(false);
    expect(o.why).toMatch(/^bad regex \/\(\/: Invalid regular expression/);
    expect(seen).toHaveLength(0);
  });

  it("sends the url's virtualhost, else the checker's, as Host without a port", async () => {
    seen = [];
    const c = httpCheck([url('/ok', { virtualhost: 'www.url.test' }), url('/body')], { virtualhost: 'www.chk.test' });
    expect(await runCheck(c, rs())).toEqual({ ok: true, why: '2 urls ok' });
    expect(seen.map((s) => [s.url, s.headers.host])).toEqual([
      ['/ok', 'www.url.test'],
      ['/body', 'www.chk.test'],
    ]);
  });

  it('checks every url in order, one connection each, and fails on the first bad one', async () => {
    seen = [];
    const c = httpCheck([url('/ok'), url('/503'), url('/body')]);
    expect(await runCheck(c, rs())).toEqual({ ok: false, why: '/503: HTTP 503 (want 200-299)' });
    expect(seen.map((s) => s.url)).toEqual(['/ok', '/503']);
  });

  it('speaks HTTP/1.1 with Connection: close for http_protocol 1.1, and reads a chunked body', async () => {
    seen = [];
    const c = httpCheck([url('/chunked', { digest: md5('hello world'), regex: 'o w' })], { httpProtocol: '1.1' });
    expect(await runCheck(c, rs())).toEqual({ ok: true, why: 'HTTP 200' });
    expect(seen[0]).toMatchObject({ httpVersion: '1.1' });
    expect(seen[0].headers.connection).toBe('close');
  });

  it('sends Connection: close on HTTP/1.0 for http_protocol 1.0C', async () => {
    seen = [];
    expect(await runCheck(httpCheck([url('/ok')], { httpProtocol: '1.0C' }), rs())).toMatchObject({ ok: true });
    expect(seen[0]).toMatchObject({ httpVersion: '1.0' });
    expect(seen[0].headers.connection).toBe('close');
  });

  it('connects from bindto, and to connect_ip:connect_port when given', async () => {
    seen = [];
    const c = httpCheck([url('/ok')], { bindto: '127.0.0.2', connectIp: LO, connectPort: webPort });
    expect(await runCheck(c, { addr: '127.0.0.9', port: 1 })).toEqual({ ok: true, why: 'HTTP 200' });
    expect(seen[0].remoteAddress).toBe('127.0.0.2');
    expect(seen[0].headers.host).toBe(`${LO}:${webPort}`);
  });

  it('fails with the errno when nothing listens', async () => {
    const port = await freeTcpPort();
    expect(await runCheck(httpCheck([url('/ok')]), { addr: LO, port })).toEqual({
      ok: false,
      why: 'connect: ECONNREFUSED',
    });
  });

  it('times out a server that accepts and never answers, after connect_timeout, and closes the socket', async () => {
    const n = silentClosed.length;
    const c = httpCheck([url('/ok')], { connectTimeout: 0.3 });
    const [o, ms] = await timed(runCheck(c, { addr: LO, port: silentPort }));
    expect(o).toEqual({ ok: false, why: 'read: timeout after 0.3 s' });
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(700);
    await waitFor(() => silentClosed.length === n + 1 && silentClosed[n] === true);
  });

  it('stops at Content-Length without waiting for the server to close', async () => {
    await withRaw(
      (sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello'),
      async (port) => {
        const c = httpCheck([url('/', { digest: md5('hello') })], { connectTimeout: 2 });
        const [o, ms] = await timed(runCheck(c, { addr: LO, port }));
        expect(o).toEqual({ ok: true, why: 'HTTP 200' });
        expect(ms).toBeLessThan(500);
      },
    );
  });

  it('decodes a chunked body sent in pieces, with chunk extensions and trailers', async () => {
    await withRaw(
      (sock) => {
        sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel');
        setTimeout(() => sock.write('lo\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'), 20);
      },
      async (port) => {
        const c = httpCheck([url('/', { digest: md5('hello world'), regex: '^hello world$' })], { connectTimeout: 2 });
        const [o, ms] = await timed(runCheck(c, { addr: LO, port }));
        expect(o).toEqual({ ok: true, why: 'HTTP 200' });
        expect(ms).toBeLessThan(500);
      },
    );
  });

  it('fails "no reply" when the server closes without a byte', async () => {
    await withRaw(
      (sock) => sock.end(),
      async (port) => {
        expect(await runCheck(httpCheck([url('/')]), { addr: LO, port })).toEqual({ ok: false, why: 'no reply' });
      },
    );
  });

  it('fails on a reply that is not HTTP', async () => {
    await withRaw(
      (sock) => sock.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'),
      async (port) => {
        expect(await runCheck(httpCheck([url('/')]), { addr: LO, port })).toEqual({
          ok: false,
          why: "bad HTTP status line 'SSH-2.0-OpenSSH_9.6'",
        });
      },
    );
  });

  it('bounds a server that trickles bytes by 2 x connect_timeout per url', async () => {
    await withRaw(
      (sock) => {
        sock.write('HTTP/1.0 200 OK\r\n\r\n');
        const t = setInterval(() => sock.write('x'), 50);
        sock.on('close', () => clearInterval(t));
      },
      async (port) => {
        const [o, ms] = await timed(runCheck(httpCheck([url('/')], { connectTimeout: 0.2 }), { addr: LO, port }));
        expect(o).toEqual({ ok: false, why: 'not done within 0.4 s' });
        expect(ms).toBeLessThan(800);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// SSL_GET

describe('SSL_GET', () => {
  const rs = () => ({ addr: LO, port: securePort });
  const ssl = (urls: HttpUrl[], over: Partial<HttpChecker> = {}) => httpCheck(urls, { type: 'SSL_GET', ...over });

  it('accepts a self-signed certificate and sends no SNI without enable_sni', async () => {
    seen = [];
    expect(await runCheck(ssl([url('/ok', { digest: md5('hello world') })]), rs())).toEqual({
      ok: true,
      why: 'HTTP 200',
    });
    expect(seen[0].servername).toBe(false);
  });

  it('connects from bindto', async () => {
    seen = [];
    expect(await runCheck(ssl([url('/ok')], { bindto: '127.0.0.4' }), rs())).toEqual({ ok: true, why: 'HTTP 200' });
    expect(seen[0].remoteAddress).toBe('127.0.0.4');
  });

  it('sends the virtualhost as SNI with enable_sni, and sni_name in preference', async () => {
    seen = [];
    expect(await runCheck(ssl([url('/ok')], { enableSni: true, virtualhost: 'www.chk.test' }), rs())).toMatchObject({
      ok: true,
    });
    expect(await runCheck(ssl([url('/ok', { virtualhost: 'www.url.test' })], { enableSni: true }), rs())).toMatchObject(
      { ok: true },
    );
    const c = ssl([url('/ok')], { enableSni: true, sniName: 'sni.test', virtualhost: 'www.chk.test' });
    expect(await runCheck(c, rs())).toMatchObject({ ok: true });
    expect(seen.map((s) => [s.servername, s.headers.host])).toEqual([
      ['www.chk.test', 'www.chk.test'],
      ['www.url.test', 'www.url.test'],
      ['sni.test', 'www.chk.test'],
    ]);
  });

  it('fails on a status outside status_code over TLS too', async () => {
    expect(await runCheck(ssl([url('/503')]), rs())).toEqual({ ok: false, why: 'HTTP 503 (want 200-299)' });
  });

  it('times out a handshake the server never answers, within connect_timeout, and closes the socket', async () => {
    const n = silentClosed.length;
    const [o, ms] = await timed(runCheck(ssl([url('/ok')], { connectTimeout: 0.3 }), { addr: LO, port: silentPort }));
    expect(o).toEqual({ ok: false, why: 'tls: timeout after 0.3 s' });
    expect(ms).toBeLessThan(700);
    await waitFor(() => silentClosed.length === n + 1 && silentClosed[n] === true);
  });

  it('fails on a server that is not TLS', async () => {
    const o = await runCheck(ssl([url('/ok')]), { addr: LO, port: webPort });
    expect(o.ok).toBe(false);
    expect(o.why).toMatch(/^tls: /);
  });
});

// ---------------------------------------------------------------------------------------------
// UDP_CHECK

describe('UDP_CHECK', () => {
  let echo: dgram.Socket;
  let echoPort: number;
  let mute: dgram.Socket;
  let mutePort: number;
  const got: { msg: Buffer; from: string; fromPort: number }[] = [];

  beforeAll(async () => {
    echo = dgram.createSocket('udp4');
    echo.on('message', (msg, rinfo) => {
      got.push({ msg, from: rinfo.address, fromPort: rinfo.port });
      echo.send(msg, rinfo.port, rinfo.address);
    });
    echoPort = await bindUdp(echo);
    mute = dgram.createSocket('udp4');
    mutePort = await bindUdp(mute);
  });

  afterAll(() => {
    echo.close();
    mute.close();
  });

  it("sends keepalived's 32-byte default payload and is ok on any reply without require_reply", async () => {
    got.length = 0;
    expect(await runCheck(udpCheck(), { addr: LO, port: echoPort })).toEqual({ ok: true, why: 'reply of 32 bytes' });
    expect(got[0].msg.toString()).toBe('keepalived check - keepalived ch');
    expect(UDP_DEFAULT_PAYLOAD).toHaveLength(32);
  });

  it('sends payload and checks the reply against require_reply and the length limits', async () => {
    const rs = { addr: LO, port: echoPort };
    const cases: [Partial<UdpChecker>, boolean, string][] = [
      [{ requireReply: 'deadbeef' }, true, 'reply of 4 bytes matches'],
      [{ requireReply: 'dead' }, true, 'reply of 4 bytes matches'],
      // keepalived compares only the bytes both have.
      [{ requireReply: 'deadbeef00' }, true, 'reply of 4 bytes matches'],
      [{ requireReply: 'cafe' }, false, 'reply data mismatch'],
      [{ requireReply: 'deadbeef', maxReplyLength: 3 }, false, 'reply of 4 bytes (want 0-3)'],
      [{ requireReply: 'deadbeef', minReplyLength: 5 }, false, 'reply of 4 bytes (want 5-255)'],
    ];
    for (const [over, okWanted, why] of cases) {
      got.length = 0;
      expect(await runCheck(udpCheck({ payload: 'deadbeef', ...over }), rs)).toEqual({ ok: okWanted, why });
      expect(got[0].msg.toString('hex')).toBe('deadbeef');
    }
  });

  it('is ok on silence without require_reply, and fails on it with require_reply', async () => {
    const rs = { addr: LO, port: mutePort };
    const [o, ms] = await timed(runCheck(udpCheck({ connectTimeout: 0.2 }), rs));
    expect(o).toEqual({ ok: true, why: 'no reply and no ICMP error within 0.2 s' });
    expect(ms).toBeLessThan(500);
    expect(await runCheck(udpCheck({ connectTimeout: 0.2, requireReply: '00' }), rs)).toEqual({
      ok: false,
      why: 'no reply within 0.2 s',
    });
  });

  it('fails on ICMP port unreachable, with or without require_reply', async () => {
    const rs = { addr: LO, port: await freeUdpPort() };
    const [o, ms] = await timed(runCheck(udpCheck(), rs));
    expect(o).toEqual({ ok: false, why: 'udp: ECONNREFUSED' });
    expect(ms).toBeLessThan(500);
    expect(await runCheck(udpCheck({ requireReply: '00' }), rs)).toEqual({ ok: false, why: 'udp: ECONNREFUSED' });
  });

  it('sends from bindto:bind_port', async () => {
    got.length = 0;
    const bindPort = await freeUdpPort();
    expect(await runCheck(udpCheck({ bindto: '127.0.0.2', bindPort }), { addr: LO, port: echoPort })).toMatchObject({
      ok: true,
    });
    expect(got[0]).toMatchObject({ from: '127.0.0.2', fromPort: bindPort });
  });

  it('udpReplyOutcome checks the length before the bytes', () => {
    const lim = { minReplyLength: 2, maxReplyLength: 3 };
    expect(udpReplyOutcome(lim, Buffer.from('ab'), Buffer.from('abc')).ok).toBe(true);
    expect(udpReplyOutcome(lim, Buffer.from('ab'), Buffer.from('a')).why).toBe('reply of 1 bytes (want 2-3)');
    expect(udpReplyOutcome(lim, Buffer.from('ab'), Buffer.from('xbc')).why).toBe('reply data mismatch');
  });
});

// ---------------------------------------------------------------------------------------------
// DNS wire format and DNS_CHECK

describe('dns-wire', () => {
  it('encodes a query as RFC 1035 bytes: id, RD, one question, type, class IN', () => {
    const q = encodeDnsQuery(0x1234, 'example.com', 1)!;
    expect(q.toString('hex')).toBe(
      `123401000001000000000000${'07'}${Buffer.from('example').toString('hex')}03${Buffer.from('com').toString('hex')}0000010001`,
    );
    expect(encodeDnsQuery(0xbeef, '.', 6)!.toString('hex')).toBe('beef01000001000000000000' + '00' + '0006' + '0001');
  });

  it('treats one trailing dot as the root, and rejects empty or over-long labels and names', () => {
    expect(encodeDnsName('example.com.')).toEqual(encodeDnsName('example.com'));
    expect(encodeDnsName('')).toEqual(Buffer.from([0]));
    expect(encodeDnsName('a..b')).toBeNull();
    expect(encodeDnsName(`${'a'.repeat(64)}.com`)).toBeNull();
    expect(encodeDnsName(`${'a'.repeat(63)}.com`)).toHaveLength(63 + 1 + 4 + 1);
    expect(encodeDnsName(Array(128).fill('a').join('.'))).toBeNull();
  });

  it('parses the header and question back, following compression pointers', () => {
    const q = encodeDnsQuery(0x1234, 'www.example.com', 28)!;
    expect(parseDnsHeader(q)).toEqual(dnsHeader({ id: 0x1234, rd: true, qdcount: 1 }));
    expect(parseDnsQuestion(q, 12)).toEqual({
      question: { name: 'www.example.com', qtype: 28, qclass: DNS_CLASS_IN },
      end: q.length,
    });
    // A name "mail" + pointer to "example.com" at offset 16 (after "www").
    const withPtr = Buffer.concat([q, Buffer.from([4, ...Buffer.from('mail'), 0xc0, 16])]);
    expect(decodeDnsName(withPtr, q.length)).toEqual({ name: 'mail.example.com', end: q.length + 7 });
  });

  it('returns null for truncated input and pointer loops', () => {
    expect(parseDnsHeader(Buffer.alloc(11))).toBeNull();
    const q = encodeDnsQuery(1, 'example.com', 1)!;
    expect(parseDnsQuestion(q.subarray(0, q.length - 1), 12)).toBeNull();
    expect(decodeDnsName(Buffer.from([0xc0, 0]), 0)).toBeNull();
    expect(decodeDnsName(Buffer.from([5, 0x61]), 0)).toBeNull();
  });

  it('round-trips every header flag', () => {
    const h = dnsHeader({
      id: 0xffff,
      qr: true,
      opcode: 2,
      aa: true,
      tc: true,
      rd: true,
      ra: true,
      rcode: 5,
      ancount: 3,
      nscount: 4,
      arcount: 5,
    });
    const m = encodeDnsMessage(h, [])!;
    expect(m.readUInt16BE(2)).toBe(0x8000 | (2 << 11) | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 5);
    expect(parseDnsHeader(m)).toEqual(h);
  });
});

describe('DNS_CHECK', () => {
  type Mode = 'answer' | 'nxdomain' | 'wrong-id' | 'wrong-id-then-answer' | 'not-a-reply' | 'short';
  let mode: Mode = 'answer';
  let dns: dgram.Socket;
  let dnsPort: number;
  const queries: { header: ReturnType<typeof parseDnsHeader>; question: unknown }[] = [];

  /** An A record for the question, its name compressed to the question's (offset 12). */
  const A_RECORD = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);

  beforeAll(async () => {
    dns = dgram.createSocket('udp4');
    dns.on('message', (msg, rinfo) => {
      const h = parseDnsHeader(msg)!;
      const q = parseDnsQuestion(msg, 12)!;
      queries.push({ header: h, question: q.question });
      const reply = (id: number, fields: Partial<ReturnType<typeof dnsHeader>> = {}, answers: Buffer[] = []) => {
        const head = encodeDnsMessage(dnsHeader({ id, qr: true, rd: true, ra: true, ...fields }), [q.question])!;
        dns.send(Buffer.concat([head, ...answers]), rinfo.port, rinfo.address);
      };
      if (mode === 'answer') reply(h.id, { ancount: 1 }, [A_RECORD]);
      else if (mode === 'nxdomain') reply(h.id, { rcode: 3, aa: true });
      else if (mode === 'wrong-id') reply(h.id ^ 1);
      else if (mode === 'not-a-reply') reply(h.id, { qr: false });
      else if (mode === 'short') dns.send(msg.subarray(0, 11), rinfo.port, rinfo.address);
      else {
        reply(h.id ^ 0x8000);
        setTimeout(() => reply(h.id), 20);
      }
    });
    dnsPort = await bindUdp(dns);
  });

  afterAll(() => dns.close());

  it('sends one RD query for name and type, class IN, and is ok on a NOERROR reply with our id', async () => {
    mode = 'answer';
    queries.length = 0;
    expect(await runCheck(dnsCheck(), { addr: LO, port: dnsPort })).toEqual({ ok: true, why: 'DNS NOERROR, 1 answer' });
    expect(queries).toHaveLength(1);
    expect(queries[0].header).toMatchObject({ qr: false, rd: true, opcode: 0, qdcount: 1, ancount: 0 });
    expect(queries[0].question).toEqual({ name: 'example.com', qtype: 1, qclass: 1 });
  });

  it("asks keepalived's default, SOA for the root, and each type by its number", async () => {
    mode = 'answer';
    queries.length = 0;
    const rs = { addr: LO, port: dnsPort };
    await runCheck(dnsCheck({ name: '.', queryType: 'SOA' }), rs);
    for (const t of ['A', 'NS', 'CNAME', 'MX', 'TXT', 'AAAA']) await runCheck(dnsCheck({ queryType: t }), rs);
    expect(queries.map((q) => q.question)).toEqual([
      { name: '.', qtype: 6, qclass: 1 },
      ...[1, 2, 5, 15, 16, 28].map((qtype) => ({ name: 'example.com', qtype, qclass: 1 })),
    ]);
  });

  it('uses a fresh random id for each check', async () => {
    mode = 'answer';
    queries.length = 0;
    for (let i = 0; i < 4; i++) await runCheck(dnsCheck(), { addr: LO, port: dnsPort });
    expect(new Set(queries.map((q) => q.header!.id)).size).toBeGreaterThan(1);
  });

  it('fails on a non-zero rcode, naming it', async () => {
    mode = 'nxdomain';
    expect(await runCheck(dnsCheck(), { addr: LO, port: dnsPort })).toEqual({
      ok: false,
      why: 'DNS rcode 3 (NXDOMAIN)',
    });
  });

  it('ignores a reply with another id and takes the right one after it', async () => {
    mode = 'wrong-id-then-answer';
    expect(await runCheck(dnsCheck(), { addr: LO, port: dnsPort })).toEqual({
      ok: true,
      why: 'DNS NOERROR, 0 answers',
    });
  });

  it('times out when only replies with another id, without QR, or too short come', async () => {
    for (const m of ['wrong-id', 'not-a-reply', 'short'] as const) {
      mode = m;
      const [o, ms] = await timed(runCheck(dnsCheck({ connectTimeout: 0.15 }), { addr: LO, port: dnsPort }));
      expect(o).toEqual({ ok: false, why: 'timeout after 0.15 s' });
      expect(ms).toBeLessThan(400);
    }
  });

  it('fails on ICMP port unreachable', async () => {
    expect(await runCheck(dnsCheck(), { addr: LO, port: await freeUdpPort() })).toEqual({
      ok: false,
      why: 'udp: ECONNREFUSED',
    });
  });

  it('fails a name that cannot be encoded without sending anything', async () => {
    expect(await runCheck(dnsCheck({ name: 'a..b' }), { addr: LO, port: dnsPort })).toEqual({
      ok: false,
      why: "bad DNS name 'a..b'",
    });
  });
});

// ---------------------------------------------------------------------------------------------
// MISC_CHECK

/** Live (not zombie) processes of group `pgid`, from /proc. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(d));
  }
  return out;
}

describe('MISC_CHECK', () => {
  const rs = { addr: LO, port: 80 };
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lvs-probes-'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is ok on exit 0 and fails on any other exit without misc_dynamic', async () => {
    expect(await runCheck(miscCheck('exit 0'), rs)).toEqual({ ok: true, why: 'exit 0' });
    expect(await runCheck(miscCheck('exit 1'), rs)).toEqual({ ok: false, why: 'exit 1' });
    expect(await runCheck(miscCheck('exit 7'), rs)).toEqual({ ok: false, why: 'exit 7' });
    expect(await runCheck(miscCheck('/nonexistent/check-script'), rs)).toEqual({ ok: false, why: 'exit 127' });
  });

  it('with misc_dynamic: 0 ok unweighted, 1 fails, 2..255 ok with weight exit - 2', async () => {
    const dyn = (s: string) => runCheck(miscCheck(s, { miscDynamic: true }), rs);
    expect(await dyn('exit 0')).toEqual({ ok: true, why: 'exit 0' });
    expect(await dyn('exit 1')).toEqual({ ok: false, why: 'exit 1' });
    expect(await dyn('exit 2')).toEqual({ ok: true, why: 'exit 2 (weight 0)', weight: 0 });
    expect(await dyn('exit 7')).toEqual({ ok: true, why: 'exit 7 (weight 5)', weight: 5 });
    expect(await dyn('exit 255')).toEqual({ ok: true, why: 'exit 255 (weight 253)', weight: 253 });
  });

  it('miscExitOutcome: a signal fails', () => {
    expect(miscExitOutcome(null, 'SIGSEGV', true)).toEqual({ ok: false, why: 'killed by SIGSEGV' });
  });

  it('kills the whole process group on misc_timeout and settles at once', async () => {
    const pidFile = join(dir, 'pgid-term');
    const c = miscCheck(`echo $$ > ${pidFile}; sleep 5 & sleep 5`, { miscTimeout: 1 });
    const [o, ms] = await timed(runCheck(c, rs));
    expect(o).toEqual({ ok: false, why: 'timeout after 1 s' });
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(1400);
    const pgid = Number(readFileSync(pidFile, 'utf8'));
    expect(pgid).toBeGreaterThan(1);
    // SIGKILL is sent before the probe settles; the kernel takes a moment to finish them off.
    await waitFor(() => groupMembers(pgid).length === 0, 300);
  });

  it('SIGKILLs a script that ignores SIGTERM after the grace', async () => {
    const pidFile = join(dir, 'pgid-kill');
    const c = miscCheck(`trap '' TERM; echo $$ > ${pidFile}; sleep 5 & sleep 5`, { miscTimeout: 0.3 });
    const [o, ms] = await timed(runCheck(c, rs));
    expect(o).toEqual({ ok: false, why: 'timeout after 0.3 s' });
    expect(ms).toBeLessThan(0.3 * 1000 + 500 + 400);
    const pgid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => groupMembers(pgid).length === 0, 300);
  });

  it('runs the script as `user` (and group), failing on an unknown one', async () => {
    expect(await runCheck(miscCheck('exit 0', { user: 'no-such-user-lvs' }), rs)).toEqual({
      ok: false,
      why: "user 'no-such-user-lvs' not found in /etc/passwd",
    });
    expect(await runCheck(miscCheck('exit 0', { user: 'root no-such-group-lvs' }), rs)).toEqual({
      ok: false,
      why: "group 'no-such-group-lvs' not found in /etc/group",
    });
  });

  it.skipIf(process.getuid?.() !== 0 || !/^nobody:/m.test(readFileSync('/etc/passwd', 'utf8')))(
    'runs as nobody with its uid and gid when root',
    async () => {
      const pw = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('nobody:'))!
        .split(':');
      const c = miscCheck(`[ "$(id -u)" = ${pw[2]} ] && [ "$(id -g)" = ${pw[3]} ]`, { user: 'nobody' });
      expect(await runCheck(c, rs)).toEqual({ ok: true, why: 'exit 0' });
    },
  );
});

// ---------------------------------------------------------------------------------------------
// PING_CHECK

const canPing = process.getuid?.() === 0 && ['/usr/bin/ping', '/bin/ping'].some((p) => existsSync(p));

describe('PING_CHECK', () => {
  it('builds iputils arguments: one echo, numeric, -W timeout in whole seconds, -I bindto', () => {
    expect(pingArgs(tcpCheck({ connectTimeout: 2 }), '10.0.0.1')).toEqual(['-c', '1', '-n', '-W', '2', '10.0.0.1']);
    expect(pingArgs(tcpCheck({ connectTimeout: 1.5 }), '10.0.0.1')).toEqual(['-c', '1', '-n', '-W', '2', '10.0.0.1']);
    expect(pingArgs(tcpCheck({ connectTimeout: 0.5, bindto: '10.0.0.9' }), '10.0.0.1')).toEqual([
      '-c',
      '1',
      '-n',
      '-W',
      '1',
      '-I',
      '10.0.0.9',
      '10.0.0.1',
    ]);
  });

  it.skipIf(!canPing)('is ok on an echo reply from 127.0.0.1', async () => {
    expect(await runCheck({ ...BASE, type: 'PING_CHECK' }, { addr: LO, port: 0 })).toEqual({
      ok: true,
      why: 'echo reply',
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Pure pieces

describe('httpRequest', () => {
  const dst = { addr: '10.1.2.3', port: 8080 };

  it("is keepalived's template for each http_protocol", () => {
    const c = httpCheck([url('/health')]);
    expect(httpRequest(c, c.urls[0], dst)).toBe(
      'GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.1.2.3:8080\r\n\r\n',
    );
    const c10c = httpCheck([url('/')], { httpProtocol: '1.0C', virtualhost: 'v.test' });
    expect(httpRequest(c10c, c10c.urls[0], dst)).toBe(
      'GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: v.test\r\n\r\n',
    );
    const c11 = httpCheck([url('')], { httpProtocol: '1.1' });
    expect(httpRequest(c11, c11.urls[0], { addr: '::1', port: 80 })).toBe(
      'GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [::1]:80\r\n\r\n',
    );
  });
});

describe('HttpResponseParser', () => {
  function feed(text: string | Buffer, step = 1): { p: HttpResponseParser; body: string; results: number[] } {
    const parts: Buffer[] = [];
    const p = new HttpResponseParser((b) => parts.push(Buffer.from(b)));
    const buf = Buffer.from(text);
    const results: number[] = [];
    for (let i = 0; i < buf.length; i += step) results.push(p.push(buf.subarray(i, i + step)));
    return { p, body: Buffer.concat(parts).toString(), results };
  }

  it('decodes chunked bodies fed byte by byte, done exactly at the end of the trailers', () => {
    const text =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n';
    const { p, body, results } = feed(text);
    expect(body).toBe('abc0123456789');
    expect(results.at(-1)).toBe(HTTP_DONE);
    expect(results.slice(0, -1).every((r) => r === HTTP_MORE)).toBe(true);
    expect(p.headers.get('transfer-encoding')).toBe('gzip, chunked');
  });

  it('stops at Content-Length, skips 1xx, and has no body for 204', () => {
    const r = feed('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Nope\r\ncontent-length: 3\r\n\r\nabcdef', 4);
    expect([r.p.status, r.body, r.results.at(-1)]).toEqual([404, 'abc', HTTP_DONE]);
    const nc = feed('HTTP/1.1 204 No Content\r\n\r\n', 100);
    expect([nc.p.status, nc.results]).toEqual([204, [HTTP_DONE]]);
  });

  it('reads to the end of the connection without framing; marks a body cut short', () => {
    const close = feed('HTTP/1.0 200 OK\n\nall of it', 3);
    expect(close.results.at(-1)).toBe(HTTP_MORE);
    expect([close.p.end(), close.body, close.p.truncated]).toEqual([HTTP_DONE, 'all of it', false]);
    const cut = feed('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', 100);
    expect([cut.p.end(), cut.body, cut.p.truncated]).toEqual([HTTP_DONE, 'abc', true]);
  });

  it('reports malformed responses as errors, and EOF before a header', () => {
    const cases: [string, string][] = [
      ['HTTP/1.1 2000 OK\r\n\r\n', "bad HTTP status line 'HTTP/1.1 2000 OK'"],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', "bad Content-Length '-1'"],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', "bad HTTP chunk size 'zz'"],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n', 'bad HTTP chunk: no CRLF after the data'],
    ];
    for (const [text, why] of cases) {
      const { p, results } = feed(text, 1000);
      expect([results.at(-1), p.error]).toEqual([HTTP_ERROR, why]);
    }
    const big = feed(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`, 8192);
    expect([big.results.at(-1), big.p.error]).toEqual([HTTP_ERROR, 'HTTP header over 65536 bytes']);
    const none = new HttpResponseParser(() => {});
    expect([none.end(), none.error]).toEqual([HTTP_ERROR, 'no reply']);
    const part = new HttpResponseParser(() => {});
    part.push(Buffer.from('HTTP/1.1 200'));
    expect([part.end(), part.error]).toEqual([HTTP_ERROR, 'connection closed inside the HTTP header']);
  });
});

// ---------------------------------------------------------------------------------------------
// Resource hygiene

describe('every probe releases what it made', () => {
  function counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
    return out;
  }

  it('leaves no socket, child process or timer behind, whatever the outcome', async () => {
    const closedTcp = await freeTcpPort();
    const closedUdp = await freeUdpPort();
    await new Promise((r) => setTimeout(r, 20));
    const before = counts();
    const outcomes = await Promise.all([
      runCheck(tcpCheck(), { addr: LO, port: tcpPort }),
      runCheck(tcpCheck(), { addr: LO, port: closedTcp }),
      runCheck(httpCheck([url('/ok'), url('/503')]), { addr: LO, port: webPort }),
      runCheck(httpCheck([url('/ok')], { type: 'SSL_GET' }), { addr: LO, port: securePort }),
      runCheck(httpCheck([url('/ok')], { connectTimeout: 0.1 }), { addr: LO, port: silentPort }),
      runCheck(udpCheck({ connectTimeout: 0.1 }), { addr: LO, port: closedUdp }),
      runCheck(dnsCheck({ connectTimeout: 0.1 }), { addr: LO, port: closedUdp }),
      runCheck(miscCheck('exit 3'), { addr: LO, port: 0 }),
      runCheck(miscCheck('sleep 3', { miscTimeout: 0.1 }), { addr: LO, port: 0 }),
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, true, false, false, false, false, false]);
    // Server-side sockets of the loopback servers close a moment after ours.
    const kinds = ['TCPSocketWrap', 'TLSWrap', 'UDPWrap', 'ProcessWrap', 'PipeWrap', 'Timeout'];
    const extra = (): string[] => {
      const now = counts();
      return kinds.filter((k) => (now[k] ?? 0) > (before[k] ?? 0)).map((k) => `${k} ${before[k] ?? 0}->${now[k]}`);
    };
    await waitFor(() => extra().length === 0).catch(() => {
      throw new Error(`still open: ${extra().join(', ')}`);
    });
  });

  it('probeBudgetMs bounds each checker type', () => {
    expect(probeBudgetMs(tcpCheck({ connectTimeout: 3 }))).toBe(3000);
    expect(probeBudgetMs(httpCheck([url('/a'), url('/b')], { connectTimeout: 2 }))).toBe(8000);
    expect(probeBudgetMs(miscCheck('x', { miscTimeout: 4 }))).toBe(4000 + 500 + 1000);
    expect(probeBudgetMs({ ...BASE, type: 'PING_CHECK', connectTimeout: 0.5 })).toBe(1000 + 1000 + 1000);
  });
});
