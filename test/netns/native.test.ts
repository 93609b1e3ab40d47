// The lvs_native addon and NativeIo against real kernel objects: a TUN device, raw IPv4 sockets
// and AF_PACKET sockets on a veth pair, inside two private network namespaces (the veth's other
// end and a UDP echo server live in the second). The checks run in a child started with
// `ip netns exec` (this process cannot enter the namespace itself): helpers/native-probe.js
// prints what it observed as JSON and the tests below assert on it. Needs root; skipped otherwise.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDON_PATH } from '../../src/native/addon';
import { required } from '../helpers/netns';

const NS = `lvst-nat-${process.pid}-${randomBytes(3).toString('hex')}`;
const PEER_NS = `${NS}-peer`;
const PROBE = path.join(__dirname, 'helpers', 'native-probe.js');
const PROBE_TIMEOUT_MS = 15_000;

interface ErrorInfo {
  threw: boolean;
  name?: string;
  code?: string;
  syscall?: string;
  errno?: number;
  message?: string;
}

interface ProbeResult {
  tunName: string;
  emptyRecv: boolean;
  kernelToTun: {
    version: number;
    protocol: number;
    totalLength: number;
    readLength: number;
    headerChecksumOk: boolean;
    src: string;
    dst: string;
    dstPort: number;
    payload: string;
  };
  rawToLocal: {
    batch: { accepted: number; received: string[] };
    mixed: { accepted: number; received: string[] };
    chunked: { total: number; accepted: number; expected: string[]; received: string[] };
    fromPeer: boolean;
  };
  watch: {
    calls: number;
    errors: { isError: boolean; message: string }[];
    echoReplyTypes: number[];
    secondUnwatchThrew: boolean;
    callsAtUnwatch: number;
    callsAfterUnwatch: number;
    innerCalls: number;
    innerErrors: string[];
    uncaught: string[];
  };
  nativeIoStart: { calls: number; errors: string[]; secondStartThrew: boolean };
  errors: Record<
    'busy' | 'badName' | 'readClosed' | 'sendOnTun' | 'framesOnTun' | 'recvOnTun' | 'closeClosed' | 'watchFile',
    ErrorInfo
  >;
  validation: Record<string, ErrorInfo>;
  frames: {
    packetOpen: {
      matchesIpLink: { ifindex: boolean; mac: boolean; mtu: boolean };
      macLength: number;
      mtu: number;
      unknown: ErrorInfo;
      tooLong: ErrorInfo;
    };
    openFrameDev: {
      dev: number;
      sameForSameName: boolean;
      loDev: number;
      info: { ifname: string; sameMac: boolean; mtu: number; ifindex: boolean };
      rawHasNoInfo: boolean;
      unknown: ErrorInfo;
    };
    mixed: { accepted: number; droppedNoDev: number; replies: string[]; fromPeer: boolean };
    packetSocketReceived: number;
  };
  ipip: {
    emptyRecv: number;
    accepted: number;
    sameBytes: boolean;
    outerProtocols: number[];
    outerSrc: string[];
    innerDst: string[];
    extra: number;
    truncated: { count: number; len: number };
    badProtocol: ErrorInfo;
  };
  tunGoneAfterClose: boolean;
}

/** Create the namespace; returns why the suite must be skipped, or null. */
function createNamespace(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root (needs CAP_NET_ADMIN for netns, TUN and raw sockets)';
  try {
    execFileSync('ip', ['netns', 'add', NS], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'add', PEER_NS], { stdio: 'pipe' });
    return null;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `ip netns add ${NS} failed: ${stderr || (err as Error).message}`;
  }
}

const skipReason = required(createNamespace() ?? undefined) ?? null;
if (skipReason !== null) console.warn(`test/netns/native.test.ts skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)('lvs_native in a network namespace', () => {
  let result: ProbeResult;
  let probeStderr = '';

  beforeAll(() => {
    if (!fs.existsSync(ADDON_PATH)) throw new Error(`${ADDON_PATH} is missing: run npm run build:native`);
    const child = spawnSync('ip', ['netns', 'exec', NS, process.execPath, PROBE, PEER_NS], {
      encoding: 'utf8',
      timeout: PROBE_TIMEOUT_MS,
    });
    probeStderr = child.stderr;
    if (child.error !== undefined || child.status !== 0) {
      // A timeout here also means the probe could not exit on its own: a watcher kept the loop alive.
      throw new Error(
        `native-probe failed (status ${child.status}, signal ${child.signal}, ${child.error?.message ?? 'no spawn error'}):\n${child.stderr}`,
      );
    }
    const lines = child.stdout.trim().split('\n');
    result = JSON.parse(lines[lines.length - 1]) as ProbeResult;
  });

  afterAll(() => {
    for (const ns of [NS, PEER_NS]) {
      // Anything still running in our namespaces was started by the probe (the peer's echo server).
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
    }
  });

  it('opens the TUN under the requested name and recv() returns without blocking when it is empty', () => {
    expect(result.tunName).toBe('lvt0');
    expect(result.emptyRecv).toBe(true);
  });

  it('reads an IPv4 UDP datagram the kernel routed into the TUN, byte for byte', () => {
    expect(result.kernelToTun).toEqual({
      version: 4,
      protocol: 17,
      totalLength: 37,
      readLength: 37,
      headerChecksumOk: true,
      src: '10.99.0.1',
      dst: '10.99.0.2',
      dstPort: 9999,
      payload: 'hello-tun',
    });
  });

  it('sends a batch of hand-built packets on the raw socket, each routed by its destination', () => {
    const { batch, fromPeer } = result.rawToLocal;
    expect(batch.accepted).toBe(5);
    expect(batch.received.sort()).toEqual(['raw-0', 'raw-1', 'raw-2', 'raw-3', 'raw-4']);
    expect(fromPeer).toBe(true);
  });

  it('skips unroutable and runt packets in a batch and still sends the rest', () => {
    expect(result.rawToLocal.mixed).toEqual({ accepted: 2, received: ['mixed-0', 'mixed-3'] });
  });

  it('sends batches larger than one sendmmsg chunk, across chunk boundaries', () => {
    const { chunked } = result.rawToLocal;
    expect(chunked.total).toBe(600);
    expect(chunked.accepted).toBe(chunked.expected.length);
    expect(chunked.received).toEqual(chunked.expected);
  });

  it('watch() fires on input, hands onReadable exceptions to onError and keeps firing', () => {
    const w = result.watch;
    expect(w.calls).toBe(3);
    expect(w.errors).toEqual([
      { isError: true, message: 'boom-readable-1' },
      { isError: true, message: 'boom-readable-2' },
    ]);
    expect(w.echoReplyTypes).toEqual([0, 0, 0]); // tunWrite'd echo requests came back as replies
    expect(w.uncaught).toEqual([]);
  });

  it('prints an exception thrown by onError itself to stderr instead of losing the watcher', () => {
    expect(probeStderr).toContain('lvs_native: watch onError callback threw');
    expect(probeStderr).toContain('onError-also-throws');
  });

  it('unwatch() stops callbacks, is idempotent, and works from inside onReadable', () => {
    const w = result.watch;
    expect(w.secondUnwatchThrew).toBe(false);
    expect(w.callsAfterUnwatch).toBe(w.callsAtUnwatch);
    expect(w.innerCalls).toBe(1);
    expect(w.innerErrors).toEqual(['thrown-after-unwatch']);
  });

  it('NativeIo.start() guards onReadable in JS and refuses a second start', () => {
    expect(result.nativeIoStart).toEqual({ calls: 2, errors: ['js-guard'], secondStartThrew: true });
  });

  it('throws kernel failures as Error with errno code and syscall', () => {
    const e = result.errors;
    expect(e.busy).toMatchObject({ name: 'Error', code: 'EBUSY', syscall: 'ioctl', errno: -16 });
    expect(e.busy.message).toBe('ioctl TUNSETIFF failed: Device or resource busy');
    expect(e.badName).toMatchObject({ code: 'EINVAL', syscall: 'ioctl' });
    expect(e.readClosed).toMatchObject({ code: 'EBADF', syscall: 'read' });
    expect(e.sendOnTun).toMatchObject({ code: 'ENOTSOCK', syscall: 'sendmmsg' });
    expect(e.framesOnTun).toMatchObject({ code: 'ENOTSOCK', syscall: 'sendmmsg' });
    expect(e.recvOnTun).toMatchObject({ code: 'ENOTSOCK', syscall: 'recvmmsg' });
    expect(e.closeClosed).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expect(e.watchFile).toMatchObject({ code: 'EPERM', syscall: 'uv_poll_init' });
  });

  it('refuses out-of-bounds and mistyped arguments with RangeError / TypeError', () => {
    const v = result.validation;
    for (const key of [
      'tooLongName',
      'readPastSlab',
      'readMoreThanLens',
      'headroomTooBig',
      'sendPastSlab',
      'sendCountTooBig',
      'writePastBuffer',
      'negativeFd',
      'fractionalCount',
      'recvPastSlab',
      'framesPastSlab',
      'framesCountTooBig',
      'vnetBeyondHeadroom',
      'firstSlotPastSlab',
      'framesOddVnet',
      'tunWritePastSlab',
    ]) {
      expect(v[key], key).toMatchObject({ threw: true, name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
    expect(v.lensNotU32).toMatchObject({ threw: true, name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(v.missingArgs).toMatchObject({ threw: true, name: 'TypeError', code: 'ERR_MISSING_ARGS' });
    expect(v.offloadNotBoolean).toMatchObject({ threw: true, name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('packetOpen reports the ifindex, MAC and MTU that `ip -j link` shows, and ENODEV for an unknown interface', () => {
    const p = result.frames.packetOpen;
    expect(p.matchesIpLink).toEqual({ ifindex: true, mac: true, mtu: true });
    expect(p.macLength).toBe(6);
    expect(p.mtu).toBe(1500);
    expect(p.unknown).toMatchObject({ threw: true, code: 'ENODEV', syscall: 'ioctl' });
    expect(p.tooLong).toMatchObject({ threw: true, name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });

  it('openFrameDev numbers interfaces from 1, reuses the number for the same name, and reports the interface', () => {
    const o = result.frames.openFrameDev;
    expect(o.dev).toBe(1);
    expect(o.sameForSameName).toBe(true);
    expect(o.loDev).toBe(2);
    expect(o.info).toEqual({ ifname: 'lvf0', sameMac: true, mtu: 1500, ifindex: true });
    expect(o.rawHasNoInfo).toBe(true);
    expect(o.unknown).toMatchObject({ threw: true, code: 'ENODEV', syscall: 'ioctl' });
  });

  it('send() splits one batch between the raw socket and a packet socket: the peer receives frames and routed packets', () => {
    const m = result.frames.mixed;
    // 3 frames + 3 raw packets accepted; the 13-byte runt frame and the unknown txDev are not.
    expect(m.accepted).toBe(6);
    expect(m.droppedNoDev).toBe(1);
    expect(m.replies).toEqual([
      'peer frame-0',
      'peer frame-1',
      'peer frame-2',
      'peer raw-0',
      'peer raw-1',
      'peer raw-2',
    ]);
    expect(m.fromPeer).toBe(true);
  });

  it('the packet socket is send-only: it queued none of the traffic on its interface', () => {
    expect(result.frames.packetSocketReceived).toBe(0);
  });

  it('recvBatch on rawOpenProto(4) receives IP-in-IP datagrams whole, outer header included, and nothing else', () => {
    const r = result.ipip;
    expect(r.emptyRecv).toBe(0);
    expect(r.accepted).toBe(4);
    expect(r.sameBytes).toBe(true);
    expect(r.outerProtocols).toEqual([4, 4, 4]);
    expect(r.outerSrc).toEqual(['10.98.0.2', '10.98.0.2', '10.98.0.2']);
    expect(r.innerDst).toEqual(['10.200.0.1', '10.200.0.1', '10.200.0.1']);
    expect(r.extra).toBe(0); // the UDP packet in the same batch did not arrive on the protocol-4 socket
    expect(r.badProtocol).toMatchObject({ threw: true, name: 'RangeError' });
  });

  it('recvBatch reports a datagram larger than its slot with length 0', () => {
    expect(result.ipip.truncated).toEqual({ count: 1, len: 0 });
  });

  it('close() releases the TUN: the device disappears with its last fd', () => {
    expect(result.tunGoneAfterClose).toBe(true);
  });
});
