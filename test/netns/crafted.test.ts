// Packets crafted by an independent tool (scapy, netns/craft.py) thrown at the VIP from the
// client namespace while a real client keeps making requests (issue 8): lvsd stays up, its drop
// counters by reason account for every crafted packet that reaches it, and no real request fails.
//
// The director's kernel validates each IPv4 header before forwarding it into lvsd's TUN (ip_rcv
// drops a bad version, IHL, total length or header checksum), so what is crafted here is sane at
// L3 and malformed or hostile above it. Each kind is sent COUNT times in one burst; the test then
// waits for lvsd's counters to settle and compares their change, reason by reason, with what the
// engine must decide for that kind (src/core/engine.ts process(), the wire views' checkLen()).
// Every reason that moved is compared, so a packet counted under a surprising reason fails too.
// craft.py runs once as a server (--serve) in the client namespace, so scapy loads only once.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/ctl/client';
import type { EngineStats } from '../../src/ctl/protocol';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

/** Debian's interpreter, where python3-scapy installs (a python3 earlier in PATH may lack it). */
const PYTHON = '/usr/bin/python3';
const CRAFT = join(ROOT, 'netns/craft.py');

function craftUnavailable(): string | undefined {
  const why = netnsUnavailable();
  if (why) return why;
  try {
    execFileSync(PYTHON, ['-c', 'import scapy.all'], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    return `scapy is not importable by ${PYTHON}: run scripts/setup.sh (python3-scapy)`;
  }
  return undefined;
}

const why = craftUnavailable();
if (why) console.warn(`skipping netns crafted-packet tests: ${why}`);

const VIP = '192.168.0.1';
/** Instances of each kind sent. */
const COUNT = 50;
/** How long lvsd's counters may take to reach the expected change, and how long they must then hold still. */
const SETTLE_MS = 5_000;
const HOLD_MS = 250;
/** The real client's requests at most (it stops when the crafted kinds are done). */
const MAX_REAL_REQUESTS = 5_000;

interface CraftedKind {
  /** A kind of netns/craft.py (its docstring says what the packets are). */
  kind: string;
  /** Drops each instance must add, by reason. */
  drops: Record<string, number>;
  /** Replies each instance must get from the VIP (craft.py watches for them); null: not watched. */
  replies: number | null;
}

const KINDS: CraftedKind[] = [
  // TcpView.checkLen(): a data offset below 5 words, or beyond the segment.
  { kind: 'tcp_doff_short', drops: { bad_data_offset: 1 }, replies: null },
  { kind: 'tcp_doff_beyond', drops: { bad_data_offset: 1 }, replies: null },
  // TcpView / UdpView.checkLen(): fewer L4 bytes than a header, or a UDP length field below 8
  // or beyond the IP payload.
  { kind: 'tcp_header_truncated', drops: { truncated: 1 }, replies: null },
  { kind: 'udp_header_truncated', drops: { truncated: 1 }, replies: null },
  { kind: 'udp_length_beyond', drops: { truncated: 1 }, replies: null },
  { kind: 'udp_length_short', drops: { truncated: 1 }, replies: null },
  // To the TCP service, no connection, not a SYN that may schedule: no_conn, answered with a
  // reset as a kernel director's own stack answers it, unless it carries RST itself. IP options
  // move the TCP header and change nothing else.
  { kind: 'tcp_ack_no_conn', drops: { no_conn: 1 }, replies: 1 },
  { kind: 'tcp_ack_no_conn_ip_options', drops: { no_conn: 1 }, replies: 1 },
  { kind: 'tcp_rst_no_conn', drops: { no_conn: 1 }, replies: 0 },
  { kind: 'tcp_syn_rst', drops: { no_conn: 1 }, replies: 0 },
  // To the VIP on a port or protocol with no service: no_service (TCP answered with a reset).
  { kind: 'tcp_syn_no_service', drops: { no_service: 1 }, replies: 1 },
  { kind: 'udp_no_service', drops: { no_service: 1 }, replies: null },
  { kind: 'proto_no_service', drops: { no_service: 1 }, replies: null },
  // ICMP to the VIP (icmpToVip): an error quoting a TCP/UDP flow is looked up as a connection
  // (none: no_conn); one quoting junk or too little is no flow, and what is not an echo request
  // is no service; an echo request must verify its checksum.
  { kind: 'icmp_error_no_conn', drops: { no_conn: 1 }, replies: null },
  { kind: 'icmp_error_junk_quote', drops: { no_service: 1 }, replies: null },
  { kind: 'icmp_error_truncated_quote', drops: { no_service: 1 }, replies: null },
  { kind: 'icmp_echo_bad_checksum', drops: { bad_checksum: 1 }, replies: null },
  // Reassembly (wire/reassembly.ts): an overlapping fragment discards its datagram (the first
  // fragment was held, so one drop per datagram); a resent fragment goes alone and the datagram
  // still completes and is answered by the UDP service; a non-last fragment whose length is not
  // a multiple of 8 is malformed. None leaves a datagram waiting.
  { kind: 'frag_overlap', drops: { frag_overlap: 1 }, replies: null },
  { kind: 'frag_duplicate', drops: { frag_duplicate: 1 }, replies: 1 },
  { kind: 'frag_bad_length', drops: { frag_bad: 1 }, replies: null },
  // The boundary: a bad IPv4 header checksum never reaches lvsd (the director's ip_rcv drops it;
  // were it let through it would count as no_conn).
  { kind: 'ip_bad_checksum', drops: {}, replies: null },
];

/** Each reason's count in `after` minus `before`, leaving out reasons that did not move. */
function dropsDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const reason of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[reason] ?? 0) - (before[reason] ?? 0);
    if (d !== 0) delta[reason] = d;
  }
  return delta;
}

function times(perInstance: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(perInstance).map(([reason, k]) => [reason, k * n]));
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * lvsd's drops, asked from this process (a Unix socket is no namespace's): polling through
 * lab.engineStats() starts a node in the director each time, half a second on a busy machine.
 */
async function drops(lab: Lab): Promise<Record<string, number>> {
  const r = await request(lab.socket, { cmd: 'engine-stats' }, 5_000);
  if (!r.ok) throw new Error(`engine-stats: ${r.errno} ${r.message}`);
  return (r.result as EngineStats).drops;
}

/**
 * The change in lvsd's drops since `before`, once it equals `want` and holds still for HOLD_MS,
 * or whatever it is after SETTLE_MS.
 */
async function settledDrops(lab: Lab, before: Record<string, number>, want: Record<string, number>) {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const delta = dropsDelta(before, await drops(lab));
    if (sameCounts(delta, want)) {
      await sleep(HOLD_MS);
      return dropsDelta(before, await drops(lab));
    }
    if (Date.now() > deadline) return delta;
    await sleep(20);
  }
}

/** What craft.py answers for one kind. */
interface Crafted {
  kind: string;
  packets: number;
  replies: number | null;
  error?: string;
}

/** netns/craft.py --serve in the client namespace: one "KIND COUNT" line in, one JSON line out. */
class CraftServer {
  private stderr = '';

  private constructor(
    private readonly p: ChildProcess,
    private readonly lines: AsyncIterator<string>,
  ) {
    p.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  static async start(lab: Lab): Promise<CraftServer> {
    const p = spawn('ip', ['netns', 'exec', lab.client, PYTHON, CRAFT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new CraftServer(p, createInterface({ input: p.stdout! })[Symbol.asyncIterator]());
    const ready = JSON.parse(await s.nextLine(30_000)) as { ready?: string[] };
    if (ready.ready === undefined) throw new Error(`craft.py did not start: ${JSON.stringify(ready)}`);
    return s;
  }

  /** Send `count` instances of `kind` (bounded: craft.py waits at most a few seconds for replies). */
  async craft(kind: string, count: number): Promise<Crafted> {
    this.p.stdin!.write(`${kind} ${count}\n`);
    return JSON.parse(await this.nextLine(30_000)) as Crafted;
  }

  /** Close its stdin (it exits); kill it if it has not exited within 2 s. */
  async stop(): Promise<void> {
    const p = this.p;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.stdin!.end();
    const timer = setTimeout(() => p.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
  }

  private async nextLine(ms: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`craft.py: no answer in ${ms} ms: ${this.stderr}`)), ms);
    });
    try {
      const r = await Promise.race([this.lines.next(), timeout]);
      if (r.done) throw new Error(`craft.py exited: ${this.stderr}`);
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }
}

interface RealClient {
  /** Stop after the request in flight; resolves with the requests made and each that failed. */
  stop(): Promise<{ requests: number; failures: string[] }>;
}

/** A real client: curl to the TCP service, and every 10th round 3 UDP queries, until stopped. */
function startRealClient(lab: Lab): RealClient {
  let stopping = false;
  const failures: string[] = [];
  let requests = 0;
  const loop = (async () => {
    for (let i = 0; !stopping && i < MAX_REAL_REQUESTS; i++) {
      const r = await lab.curl(`http://${VIP}/`);
      requests++;
      if (r.code !== 0 || !/^rs[12]$/.test(r.stdout.trim()))
        failures.push(`curl ${i}: ${r.code} ${r.stdout}${r.stderr}`);
      if (i % 10 === 0) {
        const answers = await lab.udpQueries(VIP, 53, 3);
        requests += 3;
        const ok = answers.filter((a) => /^192\.168\.0\.1:53 rs[12] q[0-2]$/.test(a)).length;
        if (ok !== 3) failures.push(`udp ${i}: ${JSON.stringify(answers)}`);
      }
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return { requests, failures };
    },
  };
}

describe.skipIf(why !== undefined)('packets crafted by scapy against the VIP while a real client works', () => {
  const lab = new Lab('c');
  let client: RealClient | undefined;
  let crafter: CraftServer | undefined;
  let startDrops: Record<string, number> = {};
  const observed: string[] = [];

  beforeAll(async () => {
    await lab.up('nat');
    await lab.startHttpServers();
    await lab.startUdpEchoServers(53);
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
    await lab.addVirtualService(['-u', `${VIP}:53`], ['172.16.0.1', '172.16.0.2'], '-m');
    const warm = await lab.curl(`http://${VIP}/`);
    expect(warm.code, warm.stderr).toBe(0);
    crafter = await CraftServer.start(lab);
    startDrops = (await lab.engineStats()).drops;
    client = startRealClient(lab);
  });

  afterAll(async () => {
    await client?.stop();
    await crafter?.stop();
    if (observed.length > 0) console.log(`crafted: ${COUNT} instances each\n${observed.join('\n')}`);
    await lab.down();
  });

  for (const k of KINDS) {
    const reasons = Object.keys(k.drops).join(', ') || 'nothing (the kernel drops it)';
    const answered = k.replies === null ? '' : k.replies === 0 ? ', unanswered' : ', each answered';
    it(`${k.kind}: counted as ${reasons}${answered}`, async () => {
      const before = await drops(lab);
      const sent = await crafter!.craft(k.kind, COUNT);
      expect(sent.error).toBeUndefined();
      const want = times(k.drops, COUNT);
      const got = await settledDrops(lab, before, want);
      observed.push(`  ${k.kind}: ${sent.packets} packets -> ${JSON.stringify(got)}, replies ${sent.replies}`);
      expect(got).toEqual(want);
      expect(sent.replies).toBe(k.replies === null ? null : k.replies * COUNT);
    });
  }

  it('served every real request meanwhile, counted nothing but the crafted packets, and still answers lvsadm', async () => {
    const { requests, failures } = await client!.stop();
    client = undefined;
    observed.push(`  real client: ${requests} requests, ${failures.length} failed`);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(50);
    const want: Record<string, number> = {};
    for (const k of KINDS) {
      for (const [reason, n] of Object.entries(times(k.drops, COUNT))) want[reason] = (want[reason] ?? 0) + n;
    }
    expect(dropsDelta(startDrops, (await lab.engineStats()).drops)).toEqual(want);
    const listing = await lab.lvsadmOk('-L', '-n');
    expect(listing).toContain(`TCP  ${VIP}:80 rr`);
    expect(listing).toContain(`UDP  ${VIP}:53 rr`);
  });
});
