// Runs inside a network namespace (`ip netns exec <ns> node native-probe.js <peer-ns>`) and
// exercises the lvs_native addon and NativeIo against a real TUN device, raw sockets, and packet
// sockets on a veth pair whose other end is in <peer-ns>. Prints one JSON line with what it
// observed; test/netns/native.test.ts asserts on it. Never touches anything outside the two
// namespaces the test created.

const { execFileSync, spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const TUN = 'lvt0';
const TUN_ADDR = '10.99.0.1';
const PEER_ADDR = '10.99.0.2'; // "behind" the TUN: the kernel routes it into the device
const UNREACHABLE = '192.0.2.1'; // no route in the namespace
const WAIT_MS = 2000;
const PEER_NS = process.argv[2];
const VETH = 'lvf0'; // ours; its peer VETH_PEER lives in PEER_NS
const VETH_PEER = 'lvf1';
const VETH_ADDR = '10.98.0.1';
const VETH_PEER_ADDR = '10.98.0.2';
const ECHO_PORT = 7777;
const ETH_P_IP = 0x0800;
const IPPROTO_IPIP = 4;

// Load the TypeScript sources directly (Node 20 cannot strip types): transpile on require.
function registerTypeScript() {
  const ts = require('typescript');
  require.extensions['.ts'] = (module, filename) => {
    const source = fs.readFileSync(filename, 'utf8');
    const out = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    module._compile(out.outputText, filename);
  };
}

registerTypeScript();
const { ADDON_PATH, loadNative } = require(path.join(ROOT, 'src/native/addon.ts'));
const { NativeIo } = require(path.join(ROOT, 'src/native/native-io.ts'));
const { Slab } = require(path.join(ROOT, 'src/native/packet-io.ts'));
const addon = loadNative();

// ---- packet building ------------------------------------------------------------------------

const { addr, dotted, inetChecksum } = require('./packet-bytes.js');

function ipv4(src, dst, proto, payload, id) {
  const pkt = Buffer.alloc(20 + payload.length);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(pkt.length, 2);
  pkt.writeUInt16BE(id, 4);
  pkt.writeUInt16BE(0x4000, 6); // DF
  pkt[8] = 64;
  pkt[9] = proto;
  addr(src).copy(pkt, 12);
  addr(dst).copy(pkt, 16);
  pkt.writeUInt16BE(inetChecksum(pkt, 0, 20), 10);
  payload.copy(pkt, 20);
  return pkt;
}

function udpPacket(src, dst, sport, dport, data, id) {
  const udp = Buffer.alloc(8 + data.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  data.copy(udp, 8);
  const pseudo = Buffer.alloc(12);
  addr(src).copy(pseudo, 0);
  addr(dst).copy(pseudo, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udp.length, 10);
  const both = Buffer.concat([pseudo, udp]);
  udp.writeUInt16BE(inetChecksum(both, 0, both.length) || 0xffff, 6);
  return ipv4(src, dst, 17, udp, id);
}

function icmpEcho(src, dst, seq) {
  const icmp = Buffer.alloc(16);
  icmp[0] = 8; // echo request
  icmp.writeUInt16BE(0x4c56, 4);
  icmp.writeUInt16BE(seq, 6);
  icmp.write('lvsprobe', 8);
  icmp.writeUInt16BE(inetChecksum(icmp, 0, icmp.length), 2);
  return ipv4(src, dst, 1, icmp, 0x100 + seq);
}

/** An Ethernet II frame around `payload`. */
function ethernet(dstMac, srcMac, etherType, payload) {
  const frame = Buffer.alloc(14 + payload.length);
  dstMac.copy(frame, 0);
  srcMac.copy(frame, 6);
  frame.writeUInt16BE(etherType, 12);
  payload.copy(frame, 14);
  return frame;
}

function macFromString(s) {
  return Buffer.from(s.split(':').map((h) => Number.parseInt(h, 16)));
}

// ---- helpers --------------------------------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what, predicate) {
  const deadline = Date.now() + WAIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function ip(...args) {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function describeError(fn) {
  try {
    fn();
    return { threw: false };
  } catch (err) {
    return {
      threw: true,
      name: err.name,
      code: err.code,
      syscall: err.syscall,
      errno: err.errno,
      message: err.message,
    };
  }
}

/** Drain the TUN; return the packets read as { proto, src, dst, bytes } (IPv4 only). */
function drain(io) {
  const out = [];
  for (let n = io.recv(); n > 0; n = io.recv()) {
    for (let i = 0; i < n; i++) {
      const off = io.slab.rxOffset(i);
      const pkt = io.slab.buf.subarray(off, off + io.slab.rxLen[i]);
      if (pkt.length >= 20 && pkt[0] >> 4 === 4) {
        out.push({ proto: pkt[9], src: dotted(pkt, 12), dst: dotted(pkt, 16), bytes: Buffer.from(pkt) });
      }
    }
  }
  return out;
}

function udpListener() {
  const sock = dgram.createSocket('udp4');
  const received = [];
  sock.on('message', (msg, rinfo) => received.push({ data: msg.toString(), from: rinfo.address, port: rinfo.port }));
  return new Promise((resolve) => sock.bind(0, TUN_ADDR, () => resolve({ sock, received })));
}

// ---- checks ---------------------------------------------------------------------------------

/** (1) The kernel routes a datagram for 10.99.0.2 into the TUN; tunRead returns it intact. */
async function kernelToTun(io) {
  const sock = dgram.createSocket('udp4');
  await new Promise((resolve, reject) => sock.send('hello-tun', 9999, PEER_ADDR, (e) => (e ? reject(e) : resolve())));
  sock.close();
  let found;
  await waitFor('the UDP datagram in the TUN', () => {
    found ??= drain(io).find((p) => p.proto === 17 && p.bytes.readUInt16BE(22) === 9999);
    return found !== undefined;
  });
  const b = found.bytes;
  const ihl = (b[0] & 0x0f) * 4;
  return {
    version: b[0] >> 4,
    protocol: b[9],
    totalLength: b.readUInt16BE(2),
    readLength: b.length,
    headerChecksumOk: inetChecksum(b, 0, ihl) === 0,
    src: found.src,
    dst: found.dst,
    dstPort: b.readUInt16BE(ihl + 2),
    payload: b.subarray(ihl + 8).toString(),
  };
}

/** (2) Hand-built packets sent in one batch on the raw socket reach a local UDP socket. */
async function rawToLocal(io) {
  const { sock, received } = await udpListener();
  const port = sock.address().port;
  const slab = io.slab;
  const put = (k, pkt) => {
    pkt.copy(slab.buf, slab.genOffset(k));
    slab.txOff[k] = slab.genOffset(k);
    slab.txLen[k] = pkt.length;
  };

  for (let k = 0; k < 5; k++) put(k, udpPacket(PEER_ADDR, TUN_ADDR, 4444, port, Buffer.from(`raw-${k}`), 10 + k));
  const accepted = io.send(5);
  await waitFor('5 datagrams from the raw socket', () => received.length >= 5);
  const fromPeer = received.every((r) => r.from === PEER_ADDR && r.port === 4444);
  const batch = { accepted, received: received.splice(0).map((r) => r.data) };

  // One batch mixing deliverable packets with an unroutable one and a runt: the bad ones are
  // skipped, the rest still go out.
  put(0, udpPacket(PEER_ADDR, TUN_ADDR, 4444, port, Buffer.from('mixed-0'), 20));
  put(1, udpPacket(PEER_ADDR, UNREACHABLE, 4444, port, Buffer.from('mixed-unreachable'), 21));
  put(2, Buffer.from('0123456789')); // shorter than an IPv4 header
  put(3, udpPacket(PEER_ADDR, TUN_ADDR, 4444, port, Buffer.from('mixed-3'), 23));
  const mixedAccepted = io.send(4);
  await waitFor('2 datagrams from the mixed batch', () => received.length >= 2);
  await sleep(50); // nothing else should arrive
  const mixed = {
    accepted: mixedAccepted,
    received: received
      .splice(0)
      .map((r) => r.data)
      .sort(),
  };

  // More packets than one sendmmsg chunk (256), deliverable ones on both sides of the chunk
  // boundaries and the rest unroutable or runts, on a raw socket of its own.
  const total = 600;
  const deliverable = [0, 255, 256, 257, 511, 512, 599];
  const slotSize = 64;
  const big = Buffer.alloc(total * slotSize);
  const offs = new Uint32Array(total);
  const lens = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const pkt = deliverable.includes(i)
      ? udpPacket(PEER_ADDR, TUN_ADDR, 4444, port, Buffer.from(`chunk-${i}`), i)
      : i % 2 === 0
        ? udpPacket(PEER_ADDR, UNREACHABLE, 4444, port, Buffer.from('x'), i)
        : Buffer.from('runt');
    pkt.copy(big, i * slotSize);
    offs[i] = i * slotSize;
    lens[i] = pkt.length;
  }
  const rawFd = addon.rawOpen();
  const chunkedAccepted = addon.sendBatch(rawFd, big, offs, lens, total);
  addon.close(rawFd);
  await waitFor('the deliverable packets of the chunked batch', () => received.length >= deliverable.length);
  await sleep(50);
  const chunked = {
    total,
    accepted: chunkedAccepted,
    expected: deliverable.map((i) => `chunk-${i}`).sort(),
    received: received.map((r) => r.data).sort(),
  };
  sock.close();
  return { batch, mixed, chunked, fromPeer };
}

/** (3) watch(): onReadable fires on input; exceptions go to onError; the watcher survives them. */
async function watchSurvivesThrows(io) {
  const uncaught = [];
  const onUncaught = (err) => uncaught.push(String(err));
  process.on('uncaughtException', onUncaught);

  let calls = 0;
  const errors = [];
  const replies = [];
  const handle = addon.watch(
    io.tunFd,
    () => {
      calls++;
      for (const p of drain(io)) if (p.proto === 1) replies.push(p.bytes[20]);
      if (calls === 1) throw new Error('boom-readable-1');
      if (calls === 2) throw new Error('boom-readable-2');
    },
    (err) => {
      errors.push({ isError: err instanceof Error, message: err.message });
      if (err.message === 'boom-readable-2') throw new Error('onError-also-throws');
    },
  );

  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 1));
  await waitFor('onReadable call 1 and its error', () => calls >= 1 && errors.length >= 1);
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 2));
  await waitFor('onReadable call 2', () => calls >= 2 && errors.length >= 2);
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 3));
  await waitFor('onReadable call 3 after both throws', () => calls >= 3);

  addon.unwatch(handle);
  const secondUnwatch = describeError(() => addon.unwatch(handle));
  const callsAtUnwatch = calls;
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 4));
  await sleep(100);
  const callsAfterUnwatch = calls;
  drain(io);

  // unwatch() from inside onReadable, then throw: the error is still delivered, no more calls.
  let innerCalls = 0;
  const innerErrors = [];
  const inner = addon.watch(
    io.tunFd,
    () => {
      innerCalls++;
      drain(io);
      addon.unwatch(inner);
      throw new Error('thrown-after-unwatch');
    },
    (err) => innerErrors.push(err.message),
  );
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 5));
  await waitFor('the self-unwatching watcher', () => innerErrors.length >= 1);
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 6));
  await sleep(100);
  drain(io);

  process.off('uncaughtException', onUncaught);
  return {
    calls,
    errors,
    echoReplyTypes: replies,
    secondUnwatchThrew: secondUnwatch.threw,
    callsAtUnwatch,
    callsAfterUnwatch,
    innerCalls,
    innerErrors,
    uncaught,
  };
}

/** NativeIo.start(): its JS guard hands an onReadable exception to onError and keeps going. */
async function nativeIoStart(io) {
  let calls = 0;
  const errors = [];
  io.start(
    () => {
      calls++;
      drain(io);
      if (calls === 1) throw new Error('js-guard');
    },
    (err) => errors.push(err.message),
  );
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 7));
  await waitFor('NativeIo onReadable call 1', () => calls >= 1 && errors.length >= 1);
  io.inject(icmpEcho(PEER_ADDR, TUN_ADDR, 8));
  await waitFor('NativeIo onReadable call 2', () => calls >= 2);
  const secondStart = describeError(() =>
    io.start(
      () => {},
      () => {},
    ),
  );
  return { calls, errors, secondStartThrew: secondStart.threw };
}

/** JSON of `ip -j link show dev <dev>` (in namespace `ns` when given). */
function linkInfo(dev, ns) {
  const args = ns === undefined ? [] : ['-n', ns];
  return JSON.parse(execFileSync('ip', [...args, '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' }))[0];
}

/** Start netns/udp-echo.js in the peer namespace; resolves with the child once it listens. */
function startPeerEcho() {
  const child = spawn(
    'ip',
    ['netns', 'exec', PEER_NS, process.execPath, path.join(ROOT, 'netns/udp-echo.js'), 'peer', String(ECHO_PORT)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('udp-echo in the peer namespace did not start')), WAIT_MS);
    child.stdout.on('data', (d) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`udp-echo exited with ${code}`)));
  });
}

/**
 * (6) Frame devices: packetOpen reports the interface as `ip` does; NativeIo.send() splits one
 * batch between the raw socket and a packet socket, and the peer's UDP socket receives the
 * frames as well as the routed packets (proven by its echoes); the packet socket receives nothing.
 */
async function frameDevices(io) {
  ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', VETH_PEER, 'netns', PEER_NS);
  ip('addr', 'add', `${VETH_ADDR}/24`, 'dev', VETH);
  ip('link', 'set', VETH, 'up');
  ip('-n', PEER_NS, 'link', 'set', 'lo', 'up');
  ip('-n', PEER_NS, 'addr', 'add', `${VETH_PEER_ADDR}/24`, 'dev', VETH_PEER);
  ip('-n', PEER_NS, 'link', 'set', VETH_PEER, 'up');
  const own = linkInfo(VETH);
  const peerMac = macFromString(linkInfo(VETH_PEER, PEER_NS).address);

  // packetOpen itself, against `ip -j link`.
  const sock = addon.packetOpen(VETH, false);
  const packetOpen = {
    matchesIpLink: {
      ifindex: sock.ifindex === own.ifindex,
      mac: sock.mac.toString('hex') === macFromString(own.address).toString('hex'),
      mtu: sock.mtu === own.mtu,
    },
    macLength: sock.mac.length,
    mtu: sock.mtu,
    unknown: describeError(() => addon.packetOpen('nosuchdev0', false)),
    tooLong: describeError(() => addon.packetOpen('y'.repeat(16), false)),
  };

  const dev = io.openFrameDev(VETH);
  const again = io.openFrameDev(VETH);
  const loDev = io.openFrameDev('lo');
  const info = io.frameDevInfo(dev);
  const openFrameDev = {
    dev,
    sameForSameName: again === dev,
    loDev,
    info: {
      ifname: info.ifname,
      sameMac: info.mac.equals(sock.mac),
      mtu: info.mtu,
      ifindex: info.ifindex === own.ifindex,
    },
    rawHasNoInfo: io.frameDevInfo(0) === undefined,
    unknown: describeError(() => io.openFrameDev('nosuchdev0')),
  };

  const echo = await startPeerEcho();
  const replies = [];
  const client = dgram.createSocket('udp4');
  client.on('message', (msg, rinfo) => replies.push({ data: msg.toString(), from: `${rinfo.address}:${rinfo.port}` }));
  await new Promise((resolve) => client.bind(0, VETH_ADDR, resolve));
  const port = client.address().port;

  // One batch: frames for the peer's MAC on the packet socket, IP packets for the kernel to route
  // on the raw socket, a runt frame (skipped) and an entry for a txDev nobody opened (dropped).
  const slab = io.slab;
  const entries = [
    {
      dev,
      pkt: ethernet(
        peerMac,
        info.mac,
        ETH_P_IP,
        udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('frame-0'), 100),
      ),
    },
    { dev: 0, pkt: udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('raw-0'), 101) },
    {
      dev,
      pkt: ethernet(
        peerMac,
        info.mac,
        ETH_P_IP,
        udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('frame-1'), 102),
      ),
    },
    { dev, pkt: Buffer.alloc(13, 0xee) },
    { dev: 0, pkt: udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('raw-1'), 103) },
    { dev: 9, pkt: udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('nodev'), 104) },
    {
      dev,
      pkt: ethernet(
        peerMac,
        info.mac,
        ETH_P_IP,
        udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('frame-2'), 105),
      ),
    },
    { dev: 0, pkt: udpPacket(VETH_ADDR, VETH_PEER_ADDR, port, ECHO_PORT, Buffer.from('raw-2'), 106) },
  ];
  entries.forEach(({ dev: d, pkt }, k) => {
    pkt.copy(slab.buf, slab.genOffset(k));
    slab.txOff[k] = slab.genOffset(k);
    slab.txLen[k] = pkt.length;
    slab.txDev[k] = d;
  });
  const droppedBefore = io.droppedNoDev;
  const accepted = io.send(entries.length);
  const droppedNoDev = io.droppedNoDev - droppedBefore;
  await waitFor('6 echoes from the peer', () => replies.length >= 6);
  await sleep(50); // nothing else should arrive
  slab.txDev.fill(0);

  // The kernel delivered the frames and resolved the peer for the routed packets: the peer
  // answered. The send-only packet socket has queued none of that traffic.
  const lens = new Uint32Array(4);
  const packetSocketReceived = addon.recvBatch(sock.fd, Buffer.alloc(4 * 2048), 2048, 0, 4, lens);
  addon.close(sock.fd);
  client.close();
  echo.kill('SIGTERM');
  return {
    packetOpen,
    openFrameDev,
    mixed: {
      accepted,
      droppedNoDev,
      replies: replies.map((r) => r.data).sort(),
      fromPeer: replies.every((r) => r.from === `${VETH_PEER_ADDR}:${ECHO_PORT}`),
    },
    packetSocketReceived,
  };
}

/**
 * (7) rawOpenProto(4) + recvBatch: IP-in-IP packets sent to a local address arrive whole (outer
 * header included) in their slots; other protocols do not; a datagram too big for its slot is
 * reported with length 0.
 */
async function ipipReceive() {
  const fd = addon.rawOpenProto(IPPROTO_IPIP, false);
  const slotSize = 2048;
  const headroom = 64;
  const slab = Buffer.alloc(8 * slotSize);
  const lens = new Uint32Array(8);
  const emptyRecv = addon.recvBatch(fd, slab, slotSize, headroom, 8, lens);

  const inner = (k) => udpPacket('192.0.2.7', '10.200.0.1', 40000 + k, 53, Buffer.from(`inner-${k}`), 200 + k);
  const sent = [0, 1, 2].map((k) => ipv4(VETH_PEER_ADDR, VETH_ADDR, IPPROTO_IPIP, inner(k), 300 + k));
  const udp = udpPacket(VETH_PEER_ADDR, VETH_ADDR, 4444, 9, Buffer.from('not-ipip'), 310);
  const rawFd = addon.rawOpen();
  const out = Buffer.concat([sent[0], udp, sent[1], sent[2]]);
  const offs = new Uint32Array([
    0,
    sent[0].length,
    sent[0].length + udp.length,
    sent[0].length + udp.length + sent[1].length,
  ]);
  const outLens = new Uint32Array([sent[0].length, udp.length, sent[1].length, sent[2].length]);
  const accepted = addon.sendBatch(rawFd, out, offs, outLens, 4);

  const received = [];
  await waitFor('3 IPIP datagrams', () => {
    const n = addon.recvBatch(fd, slab, slotSize, headroom, 8, lens);
    for (let i = 0; i < n; i++) {
      const off = i * slotSize + headroom;
      received.push(Buffer.from(slab.subarray(off, off + lens[i])));
    }
    return received.length >= 3;
  });
  await sleep(50);
  const extra = addon.recvBatch(fd, slab, slotSize, headroom, 8, lens);

  // Too big for a 256-byte slot with 16 bytes of headroom: MSG_TRUNC, reported as length 0.
  const bigInner = udpPacket('192.0.2.7', '10.200.0.1', 40009, 53, Buffer.alloc(600, 0x61), 209);
  const big = ipv4(VETH_PEER_ADDR, VETH_ADDR, IPPROTO_IPIP, bigInner, 320);
  addon.sendBatch(rawFd, big, new Uint32Array([0]), new Uint32Array([big.length]), 1);
  const small = Buffer.alloc(2 * 256);
  const smallLens = new Uint32Array([77, 77]);
  let truncatedCount = 0;
  await waitFor('the oversized IPIP datagram', () => {
    truncatedCount = addon.recvBatch(fd, small, 256, 16, 2, smallLens);
    return truncatedCount > 0;
  });
  addon.close(rawFd);
  addon.close(fd);
  return {
    emptyRecv,
    accepted,
    sameBytes: received.length === 3 && received.every((b, k) => b.equals(sent[k])),
    outerProtocols: received.map((b) => b[9]),
    outerSrc: received.map((b) => dotted(b, 12)),
    innerDst: received.map((b) => dotted(b, 20 + 16)),
    extra,
    truncated: { count: truncatedCount, len: smallLens[0] },
    badProtocol: describeError(() => addon.rawOpenProto(256, false)),
  };
}

/** (4) Kernel failures surface as Error with code and syscall. */
function systemErrors(io) {
  const closedFd = 999_999; // far above anything this process opens
  const file = fs.openSync(__filename, 'r');
  const results = {
    busy: describeError(() => addon.tunOpen(TUN, false)), // a non-multi-queue TUN takes one fd
    badName: describeError(() => addon.tunOpen('bad/name', false)),
    readClosed: describeError(() => addon.tunRead(closedFd, io.slab.buf, 2048, 64, 1, io.slab.rxLen, 0, 0)),
    sendOnTun: describeError(() =>
      addon.sendBatch(io.tunFd, Buffer.alloc(64, 0x45), new Uint32Array(1), new Uint32Array([40]), 1),
    ),
    framesOnTun: describeError(() =>
      addon.sendFrames(io.tunFd, Buffer.alloc(64, 0x45), new Uint32Array(1), new Uint32Array([40]), 1, 0),
    ),
    recvOnTun: describeError(() => addon.recvBatch(io.tunFd, io.slab.buf, 2048, 64, 1, io.slab.rxLen)),
    closeClosed: describeError(() => addon.close(closedFd)),
    watchFile: describeError(() =>
      addon.watch(
        file,
        () => {},
        () => {},
      ),
    ),
  };
  fs.closeSync(file);
  return results;
}

/** (5) Out-of-bounds or mistyped arguments are refused before any syscall. */
function argumentValidation(io) {
  const s = io.slab;
  const small = Buffer.alloc(100);
  return {
    tooLongName: describeError(() => addon.tunOpen('x'.repeat(16), false)),
    readPastSlab: describeError(() => addon.tunRead(io.tunFd, small, 64, 0, 2, s.rxLen, 0, 0)),
    readMoreThanLens: describeError(() =>
      addon.tunRead(io.tunFd, s.buf, s.slotSize, s.headroom, 2, new Uint32Array(1), 0, 0),
    ),
    headroomTooBig: describeError(() => addon.tunRead(io.tunFd, s.buf, 64, 64, 1, s.rxLen, 0, 0)),
    lensNotU32: describeError(() => addon.tunRead(io.tunFd, s.buf, s.slotSize, s.headroom, 1, new Int32Array(1), 0, 0)),
    sendPastSlab: describeError(() =>
      addon.sendBatch(io.tunFd, small, new Uint32Array([0, 90]), new Uint32Array([20, 20]), 2),
    ),
    sendCountTooBig: describeError(() => addon.sendBatch(io.tunFd, small, new Uint32Array(1), new Uint32Array(1), 2)),
    writePastBuffer: describeError(() => addon.tunWrite(io.tunFd, small, 90, 20)),
    negativeFd: describeError(() => addon.close(-1)),
    fractionalCount: describeError(() => addon.sendBatch(io.tunFd, small, new Uint32Array(1), new Uint32Array(1), 0.5)),
    missingArgs: describeError(() => addon.tunRead(io.tunFd)),
    recvPastSlab: describeError(() => addon.recvBatch(io.tunFd, small, 64, 0, 2, s.rxLen)),
    framesPastSlab: describeError(() =>
      addon.sendFrames(io.tunFd, small, new Uint32Array([90]), new Uint32Array([20]), 1, 0),
    ),
    framesCountTooBig: describeError(() =>
      addon.sendFrames(io.tunFd, small, new Uint32Array(1), new Uint32Array(1), 2, 0),
    ),
    firstSlotPastSlab: describeError(() =>
      addon.tunRead(io.tunFd, s.buf, s.slotSize, s.headroom, 2, s.rxLen, 0, s.rxSlots - 1),
    ),
    vnetBeyondHeadroom: describeError(() => addon.tunRead(io.tunFd, s.buf, s.slotSize, 8, 1, s.rxLen, 10, 0)),
    framesOddVnet: describeError(() =>
      addon.sendFrames(io.tunFd, small, new Uint32Array(1), new Uint32Array([40]), 1, 7),
    ),
    tunWritePastSlab: describeError(() =>
      addon.tunWriteBatch(io.tunFd, small, new Uint32Array([90]), new Uint32Array([20]), 1),
    ),
    offloadNotBoolean: describeError(() => addon.tunOpen('lvt9', 1)),
  };
}

async function main() {
  const result = { addonPath: ADDON_PATH };
  const io = NativeIo.open({ tunName: TUN, slab: new Slab(8, 2048, 64, 8) });
  try {
    result.tunName = io.tunName;
    ip('link', 'set', 'lo', 'up');
    ip('link', 'set', TUN, 'up');
    ip('addr', 'add', `${TUN_ADDR}/24`, 'dev', TUN);
    result.emptyRecv = io.recv() >= 0;
    result.kernelToTun = await kernelToTun(io);
    result.rawToLocal = await rawToLocal(io);
    result.watch = await watchSurvivesThrows(io);
    result.nativeIoStart = await nativeIoStart(io);
    result.errors = systemErrors(io);
    result.validation = argumentValidation(io);
    result.frames = await frameDevices(io);
    result.ipip = await ipipReceive();
  } finally {
    io.close();
    io.close(); // idempotent
  }
  result.tunGoneAfterClose = !fs.existsSync(`/sys/class/net/${TUN}`);
  // No handle may be left: the process must now exit on its own (the test enforces a timeout).
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`native-probe failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
