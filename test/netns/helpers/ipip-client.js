// The client side of test/netns/realserver.test.ts's IP-in-IP checks, run inside the client
// namespace with `ip netns exec`. Two modes:
//
//   node ipip-client.js udp '<json>'    send IP-in-IP encapsulated UDP datagrams with the addon's
//       raw socket and collect the plain UDP replies on a dgram socket; prints one JSON line
//       { accepted, replies: [{ data, from }] }. json: { outerSrc, outerDst, vip, port,
//       payloads: string[], notVip?: string[] (payloads sent to a non-VIP inner destination),
//       waitMs }
//
//   node ipip-client.js encap '<json>'  a minimal IP-in-IP director: create TUN `dev`, route the
//       VIP into it, and wrap every packet read from it in an outer header (outerSrc -> outerDst,
//       protocol 4) sent on the raw socket, so that ordinary programs (curl) reach the VIP over
//       IP-in-IP. Prints "encap ready", runs until SIGTERM. json: { outerSrc, outerDst, vip, dev }

const { execFileSync } = require('node:child_process');
const dgram = require('node:dgram');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const addon = require(path.join(ROOT, 'native/build/Release/lvs_native.node'));

const IPPROTO_IPIP = 4;
const IPPROTO_UDP = 17;
const IPV4_HDR = 20;

const { addr, dotted, inetChecksum } = require('./packet-bytes.js');

/** Write a 20-byte IPv4 header at buf[off] for a packet of `totalLen` bytes. */
function writeIpv4Header(buf, off, src, dst, proto, totalLen, id) {
  buf.fill(0, off, off + IPV4_HDR);
  buf[off] = 0x45;
  buf.writeUInt16BE(totalLen, off + 2);
  buf.writeUInt16BE(id & 0xffff, off + 4);
  buf[off + 8] = 64;
  buf[off + 9] = proto;
  addr(src).copy(buf, off + 12);
  addr(dst).copy(buf, off + 16);
  buf.writeUInt16BE(inetChecksum(buf, off, IPV4_HDR), off + 10);
}

function udpPacket(src, dst, sport, dport, data, id) {
  const pkt = Buffer.alloc(IPV4_HDR + 8 + data.length);
  pkt.writeUInt16BE(sport, 20);
  pkt.writeUInt16BE(dport, 22);
  pkt.writeUInt16BE(8 + data.length, 24);
  data.copy(pkt, 28);
  const pseudo = Buffer.alloc(12);
  addr(src).copy(pseudo, 0);
  addr(dst).copy(pseudo, 4);
  pseudo[9] = IPPROTO_UDP;
  pseudo.writeUInt16BE(8 + data.length, 10);
  const sum = inetChecksum(Buffer.concat([pseudo, pkt.subarray(20)]), 0, 12 + 8 + data.length);
  pkt.writeUInt16BE(sum || 0xffff, 26);
  writeIpv4Header(pkt, 0, src, dst, IPPROTO_UDP, pkt.length, id);
  return pkt;
}

function encap(outerSrc, outerDst, inner, id) {
  const out = Buffer.alloc(IPV4_HDR + inner.length);
  writeIpv4Header(out, 0, outerSrc, outerDst, IPPROTO_IPIP, out.length, id);
  inner.copy(out, IPV4_HDR);
  return out;
}

async function udpMode(cfg) {
  const sock = dgram.createSocket('udp4');
  const replies = [];
  sock.on('message', (msg, rinfo) => replies.push({ data: msg.toString(), from: `${rinfo.address}:${rinfo.port}` }));
  await new Promise((resolve) => sock.bind(0, cfg.outerSrc, resolve));
  const sport = sock.address().port;

  const datagrams = [
    ...cfg.payloads.map((p, k) => udpPacket(cfg.outerSrc, cfg.vip, sport, cfg.port, Buffer.from(p), 1000 + k)),
    ...(cfg.notVip ?? []).map((p, k) =>
      udpPacket(cfg.outerSrc, '10.200.0.9', sport, cfg.port, Buffer.from(p), 2000 + k),
    ),
  ].map((inner, k) => encap(cfg.outerSrc, cfg.outerDst, inner, 3000 + k));
  const slab = Buffer.concat(datagrams);
  const offs = new Uint32Array(datagrams.length);
  const lens = new Uint32Array(datagrams.length);
  let off = 0;
  datagrams.forEach((d, k) => {
    offs[k] = off;
    lens[k] = d.length;
    off += d.length;
  });
  const fd = addon.rawOpen();
  const accepted = addon.sendBatch(fd, slab, offs, lens, datagrams.length);
  addon.close(fd);

  const deadline = Date.now() + cfg.waitMs;
  while (replies.length < cfg.payloads.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100)); // anything more (there should be nothing) arrives now
  sock.close();
  process.stdout.write(`${JSON.stringify({ accepted, replies })}\n`);
}

function encapMode(cfg) {
  const SLOT = 2048;
  const BATCH = 32;
  const tun = addon.tunOpen(cfg.dev, false);
  // 1480: the outer header must still fit the veth's 1500 (a raw socket does not fragment).
  execFileSync('ip', ['link', 'set', 'dev', tun.name, 'up', 'mtu', '1480']);
  execFileSync('ip', ['route', 'replace', `${cfg.vip}/32`, 'dev', tun.name, 'src', cfg.outerSrc]);
  const raw = addon.rawOpen();
  const slab = Buffer.alloc(BATCH * SLOT);
  const lens = new Uint32Array(BATCH);
  const offs = new Uint32Array(BATCH);
  const outLens = new Uint32Array(BATCH);
  let id = 0;
  let sent = 0;
  const handle = addon.watch(
    tun.fd,
    () => {
      for (;;) {
        const n = addon.tunRead(tun.fd, slab, SLOT, IPV4_HDR, BATCH, lens, 0, 0);
        let k = 0;
        for (let i = 0; i < n; i++) {
          const innerOff = i * SLOT + IPV4_HDR;
          if (lens[i] < IPV4_HDR || slab[innerOff] >> 4 !== 4 || dotted(slab, innerOff + 16) !== cfg.vip) continue;
          writeIpv4Header(slab, i * SLOT, cfg.outerSrc, cfg.outerDst, IPPROTO_IPIP, IPV4_HDR + lens[i], id++);
          offs[k] = i * SLOT;
          outLens[k] = IPV4_HDR + lens[i];
          k++;
        }
        if (k > 0) sent += addon.sendBatch(raw, slab, offs, outLens, k);
        if (n < BATCH) break;
      }
    },
    (err) => process.stderr.write(`encap: ${err.stack ?? err}\n`),
  );
  process.on('SIGTERM', () => {
    addon.unwatch(handle);
    addon.close(raw);
    addon.close(tun.fd);
    process.stdout.write(`encap sent ${sent}\n`);
    process.exit(0);
  });
  process.stdout.write('encap ready\n');
}

const [mode, json] = process.argv.slice(2);
const cfg = JSON.parse(json);
if (mode === 'udp') {
  udpMode(cfg).catch((err) => {
    process.stderr.write(`ipip-client: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  });
} else if (mode === 'encap') {
  encapMode(cfg);
} else {
  process.stderr.write(`ipip-client: unknown mode ${mode}\n`);
  process.exitCode = 2;
}
