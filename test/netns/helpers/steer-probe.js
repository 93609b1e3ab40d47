// Runs inside a network namespace (`ip netns exec <ns> node steer-probe.js`): opens a
// multi-queue TUN with the steering program attached (src/native/steering.ts), sends crafted
// packets into it through a raw socket (requests to a VIP, NAT replies to the clients, fragments,
// ICMP errors both ways, an echo request), reads every queue and prints one JSON line: each
// packet read, in hex, with the queue it arrived on. test/netns/steer.test.ts asserts on it.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { addr, inetChecksum } = require('./packet-bytes.js');

const ROOT = path.resolve(__dirname, '../../..');
const QUEUES = Number(process.argv[2] ?? 4);
const VIPS = ['10.99.0.1', '10.99.0.2'];
const RIP = '10.98.0.5';
const ROUTER = '10.97.0.1';

function registerTypeScript() {
  const ts = require('typescript');
  require.extensions['.ts'] = (module, filename) => {
    const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    module._compile(out.outputText, filename);
  };
}
registerTypeScript();
const { loadNative } = require(path.join(ROOT, 'src/native/addon.ts'));
const { TunSteering } = require(path.join(ROOT, 'src/native/steering.ts'));
const native = loadNative();

function ipv4(src, dst, proto, payload, { id = 1, frag = 0x4000 } = {}) {
  const pkt = Buffer.alloc(20 + payload.length);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(pkt.length, 2);
  pkt.writeUInt16BE(id, 4);
  pkt.writeUInt16BE(frag, 6);
  pkt[8] = 64;
  pkt[9] = proto;
  addr(src).copy(pkt, 12);
  addr(dst).copy(pkt, 16);
  payload.copy(pkt, 20);
  pkt.writeUInt16BE(inetChecksum(pkt, 0, 20), 10);
  return pkt;
}

/** Ports and 12 more bytes: enough of a TCP or UDP header for steering (checksums are not read). */
function l4(sport, dport, len = 16) {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
}

function icmp(type, code, rest) {
  const b = Buffer.alloc(8 + rest.length);
  b[0] = type;
  b[1] = code;
  rest.copy(b, 8);
  b.writeUInt16BE(inetChecksum(b, 0, b.length), 2);
  return b;
}

const ip = (...args) => execFileSync('ip', args, { stdio: 'pipe' });

const tun = native.tunOpen('lvq%d', false, QUEUES);
const steering = TunSteering.attach(tun.fd);
steering.setVips(VIPS.map((a) => addr(a).readUInt32BE(0)));
ip('link', 'set', 'lo', 'up');
ip('link', 'set', tun.name, 'up');
for (const v of VIPS) ip('route', 'add', `${v}/32`, 'dev', tun.name);
ip('route', 'add', '172.16.0.0/16', 'dev', tun.name); // the clients
ip('route', 'add', `${RIP}/32`, 'dev', tun.name);

const packets = [];
for (let i = 0; i < 64; i++) {
  const client = `172.16.${i >> 3}.${((i * 37) % 250) + 1}`;
  const cport = 20000 + i * 101;
  const vip = VIPS[i % 2];
  const proto = i % 3 === 0 ? 17 : 6;
  packets.push({ flow: i, kind: 'request', pkt: ipv4(client, vip, proto, l4(cport, 80)) });
  packets.push({ flow: i, kind: 'reply', pkt: ipv4(RIP, client, proto, l4(8080, cport)) });
}
// A fragmented request and a fragmented reply (first and later pieces): the address alone.
packets.push({
  flow: 'frag',
  kind: 'request-first',
  pkt: ipv4('172.16.9.9', VIPS[0], 17, l4(5353, 53, 24), { frag: 0x2000 }),
});
packets.push({
  flow: 'frag',
  kind: 'request-later',
  pkt: ipv4('172.16.9.9', VIPS[0], 17, Buffer.alloc(24), { frag: 3 }),
});
packets.push({ flow: 'frag', kind: 'reply-later', pkt: ipv4(RIP, '172.16.9.9', 17, Buffer.alloc(24), { frag: 6 }) });
// A router's error about a NAT request on its way to the real server (quotes client -> RIP) and
// a client-side error about a reply (quotes VIP -> client): both belong to flow 0's client.
const c0 = `172.16.0.1`;
const quoteReq = ipv4(c0, RIP, 6, l4(20000, 8080, 8));
packets.push({ flow: 0, kind: 'icmp-about-request', pkt: ipv4(ROUTER, c0, 1, icmp(3, 4, quoteReq)) });
const quoteReply = ipv4(VIPS[0], c0, 6, l4(80, 20000, 8));
packets.push({ flow: 0, kind: 'icmp-about-reply', pkt: ipv4(ROUTER, VIPS[0], 1, icmp(11, 0, quoteReply)) });
packets.push({ flow: 'echo', kind: 'echo', pkt: ipv4(c0, VIPS[1], 1, icmp(8, 0, Buffer.alloc(8))) });

const raw = native.rawOpen();
const slab = Buffer.alloc(packets.length * 2048);
const offs = new Uint32Array(packets.length);
const lens = new Uint32Array(packets.length);
packets.forEach((p, k) => {
  p.pkt.copy(slab, k * 2048);
  offs[k] = k * 2048;
  lens[k] = p.pkt.length;
});
const rx = Buffer.alloc(256 * 2048);
const rxLens = new Uint32Array(256);

/** Send every packet, then read every queue (local output is synchronous: all is queued by then). */
function round() {
  const sent = native.sendBatch(raw, slab, offs, lens, packets.length);
  const received = [];
  for (let q = 0; q < QUEUES; q++) {
    const n = native.tunRead(tun.fds[q], rx, 2048, 0, 256, rxLens, 0, 0);
    for (let k = 0; k < n; k++)
      received.push({ queue: q, hex: rx.subarray(k * 2048, k * 2048 + rxLens[k]).toString('hex') });
  }
  return { sent, received };
}
const { sent, received } = round();
// The persistence switch: the client's address alone, masked to its /24.
steering.setAddrOnly(0xffffff00);
const addrOnly = round();
steering.close();
native.close(raw);
for (const fd of tun.fds) native.close(fd);

process.stdout.write(
  `${JSON.stringify({
    queues: QUEUES,
    fds: tun.fds.length,
    sent,
    vips: VIPS,
    packets: packets.map((p) => ({ flow: p.flow, kind: p.kind, hex: p.pkt.toString('hex') })),
    received,
    receivedAddrOnly: addrOnly.received,
  })}\n`,
);
