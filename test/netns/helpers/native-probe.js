// Runs inside a network namespace (`ip netns exec <ns> node native-probe.js`) and exercises the
// lvs_native addon and NativeIo against a real TUN device and raw socket. Prints one JSON line
// with what it observed; test/netns/native.test.ts asserts on it. Never touches anything outside
// the namespace it is started in.

const { execFileSync } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const TUN = 'lvt0';
const TUN_ADDR = '10.99.0.1';
const PEER_ADDR = '10.99.0.2'; // "behind" the TUN: the kernel routes it into the device
const UNREACHABLE = '192.0.2.1'; // no route in the namespace
const WAIT_MS = 2000;

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

function addr(dotted) {
  return Buffer.from(dotted.split('.').map(Number));
}

function dotted(buf, off) {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** RFC 1071 Internet checksum over buf[off, off + len). */
function inetChecksum(buf, off, len) {
  let sum = 0;
  let i = off;
  for (; i + 1 < off + len; i += 2) sum += buf.readUInt16BE(i);
  if (i < off + len) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

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

/** (4) Kernel failures surface as Error with code and syscall. */
function systemErrors(io) {
  const closedFd = 999_999; // far above anything this process opens
  const file = fs.openSync(__filename, 'r');
  const results = {
    busy: describeError(() => addon.tunOpen(TUN)), // a non-multi-queue TUN takes one fd
    badName: describeError(() => addon.tunOpen('bad/name')),
    readClosed: describeError(() => addon.tunRead(closedFd, io.slab.buf, 2048, 64, 1, io.slab.rxLen)),
    sendOnTun: describeError(() =>
      addon.sendBatch(io.tunFd, Buffer.alloc(64, 0x45), new Uint32Array(1), new Uint32Array([40]), 1),
    ),
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
    tooLongName: describeError(() => addon.tunOpen('x'.repeat(16))),
    readPastSlab: describeError(() => addon.tunRead(io.tunFd, small, 64, 0, 2, s.rxLen)),
    readMoreThanLens: describeError(() =>
      addon.tunRead(io.tunFd, s.buf, s.slotSize, s.headroom, 2, new Uint32Array(1)),
    ),
    headroomTooBig: describeError(() => addon.tunRead(io.tunFd, s.buf, 64, 64, 1, s.rxLen)),
    lensNotU32: describeError(() => addon.tunRead(io.tunFd, s.buf, s.slotSize, s.headroom, 1, new Int32Array(1))),
    sendPastSlab: describeError(() =>
      addon.sendBatch(io.tunFd, small, new Uint32Array([0, 90]), new Uint32Array([20, 20]), 2),
    ),
    sendCountTooBig: describeError(() => addon.sendBatch(io.tunFd, small, new Uint32Array(1), new Uint32Array(1), 2)),
    writePastBuffer: describeError(() => addon.tunWrite(io.tunFd, small, 90, 20)),
    negativeFd: describeError(() => addon.close(-1)),
    fractionalCount: describeError(() => addon.sendBatch(io.tunFd, small, new Uint32Array(1), new Uint32Array(1), 0.5)),
    missingArgs: describeError(() => addon.tunRead(io.tunFd)),
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
