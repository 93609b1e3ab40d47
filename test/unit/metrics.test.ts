// The Prometheus exposition against a golden written by hand from the text format 0.0.4 rules,
// and read back by a parser written from the same rules (never from the module under test).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ServiceSnapshot, StatsSnapshot } from '../../src/ctl/protocol';
import { FWD_DROUTE, FWD_LOCALNODE, FWD_MASQ, FWD_TUNNEL, IPPROTO_TCP, IPPROTO_UDP } from '../../src/ip-vs';
import { formatMetrics, METRICS_DOC, type MetricsInput } from '../../src/metrics/format';
import { dest, service, ZERO } from '../helpers/snapshots';

const IPPROTO_SCTP = 132;

const lines = (...l: string[]) => `${l.join('\n')}\n`;
const stats = (conns: number, inPkts: number, outPkts: number, inBytes: number, outBytes: number): StatsSnapshot => ({
  conns,
  inPkts,
  outPkts,
  inBytes,
  outBytes,
});
const fwm = (mark: number, over: Partial<ServiceSnapshot>) => service(0, '0.0.0.0', 0, [], { fwmark: mark, ...over });

function input(services: ServiceSnapshot[], over: Partial<MetricsInput> = {}): MetricsInput {
  return {
    snapshot: { version: '1.2.1', size: 4096, services },
    global: ZERO,
    globalRates: ZERO,
    connections: 0,
    drops: {},
    txPackets: 0,
    rxPackets: 0,
    batches: 0,
    engines: [],
    offload: { partial: 0, gso: 0 },
    synProxy: { cookies: 0, accepted: 0, rejected: 0, resent: 0, reset: 0, halfOpen: 0, waiting: 0 },
    reassembly: { datagrams: 0, bytes: 0, completed: 0, expired: 0 },
    sync: [],
    health: null,
    ...over,
  };
}

// --- A parser for the text format, version 0.0.4 ------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
/** Decimal without exponent (what formatMetrics promises), or the format's special values. */
const VALUE = /^(-?[0-9]+(\.[0-9]+)?|NaN|\+Inf|-Inf)$/;

function unescapeHelp(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** `{a="x",b="y"}` starting at text[0] === '{': the labels and the rest after '}'. */
function parseLabels(text: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const name = LABEL_NAME.exec(text.slice(i));
    if (!name) throw new Error(`bad label name at ${text.slice(i)}`);
    i += name[0].length;
    if (text.slice(i, i + 2) !== '="') throw new Error(`expected =" at ${text.slice(i)}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i++];
      if (c === undefined || c === '\n') throw new Error('unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i++];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`bad escape \\${e}`);
      } else value += c;
    }
    if (name[0] in labels) throw new Error(`duplicate label ${name[0]}`);
    labels[name[0]] = value;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`expected , or } at ${text.slice(i)}`);
  }
  return { labels, rest: text.slice(i + 1) };
}

/**
 * Reads an exposition and enforces the rules on the way: a trailing newline, at most one HELP
 * and one TYPE per family, TYPE before the family's first sample, a family's samples together.
 */
function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('no trailing newline');
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  const finished = new Set<string>();
  let current = '';
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([^ ]+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (!NAME.test(name) || NAME.exec(name)![0] !== name) throw new Error(`bad metric name ${name}`);
      const map = kind === 'HELP' ? out.help : out.type;
      if (map.has(name)) throw new Error(`second ${kind} for ${name}`);
      if (kind === 'TYPE' && !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) {
        throw new Error(`bad type ${rest}`);
      }
      if (out.samples.some((s) => s.name === name)) throw new Error(`${kind} for ${name} after its samples`);
      map.set(name, kind === 'HELP' ? unescapeHelp(rest) : rest);
      continue;
    }
    if (line.startsWith('#') || line === '') throw new Error(`unexpected line ${JSON.stringify(line)}`);
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`bad sample line ${line}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest));
    const fields = rest.split(' ');
    if (fields.length !== 2 || fields[0] !== '' || !VALUE.test(fields[1])) throw new Error(`bad value in ${line}`);
    if (!out.type.has(name)) throw new Error(`sample of ${name} before its TYPE`);
    if (name !== current) {
      if (finished.has(name)) throw new Error(`samples of ${name} not together`);
      if (current) finished.add(current);
      current = name;
    }
    const v = fields[1];
    out.samples.push({ name, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

function samplesOf(e: Exposition, name: string): Sample[] {
  return e.samples.filter((s) => s.name === name);
}

// --- Inputs ---------------------------------------------------------------------------------------

const WEB = service(
  IPPROTO_TCP,
  '10.0.0.1',
  80,
  [
    dest('192.168.1.11', 8080, {
      fwd: FWD_MASQ,
      weight: 2,
      activeConns: 3,
      inactConns: 1,
      stats: stats(6, 120, 90, 18000, 72000),
      rates: stats(1, 12, 9, 1800, 7200),
    }),
    dest('192.168.1.12', 8080, {
      fwd: FWD_DROUTE,
      weight: 1,
      activeConns: 1,
      inactConns: 2,
      stats: stats(4, 80, 60, 12000, 48000),
    }),
  ],
  { stats: stats(10, 200, 150, 30000, 120000), rates: stats(1, 20, 15, 3000, 12000) },
);

const MARKED = fwm(7, {
  sched: 'rr',
  dests: [dest('192.168.1.21', 0, { fwd: FWD_TUNNEL, weight: 5, persistConns: 2, stats: stats(5, 50, 0, 4000, 0) })],
  stats: stats(5, 50, 0, 4000, 0),
  rates: stats(0, 2, 0, 160, 0),
});

const SMALL = input([WEB, MARKED], {
  global: stats(15, 250, 150, 34000, 120000),
  globalRates: stats(1, 22, 15, 3160, 12000),
  connections: 9,
  drops: { no_service: 3, frag_needed: 1 },
  txPackets: 395,
  rxPackets: 400,
  batches: 30,
  engines: [
    { conns: 5, rxPackets: 250 },
    { conns: 4, rxPackets: 150 },
  ],
  offload: { partial: 12, gso: 4 },
  synProxy: { cookies: 70, accepted: 71, rejected: 72, resent: 0, reset: 0, halfOpen: 73, waiting: 0 },
  reassembly: { datagrams: 2, bytes: 2960, completed: 7, expired: 1 },
  sync: [
    { role: 'master', messages: 5, conns: 120 },
    { role: 'backup', messages: 3, conns: 40 },
  ],
  health: {
    counters: {
      checksOk: 40,
      checksFailed: 3,
      serversUp: 1,
      serversDown: 1,
      transitionsUp: 2,
      transitionsDown: 1,
      quorumLost: 1,
      quorumGained: 1,
      inFlight: 2,
    },
    virtualServers: [
      {
        label: 'TCP 10.0.0.1:80',
        quorum: 1,
        hysteresis: 0,
        liveWeight: 1,
        hasQuorum: true,
        servers: [
          { addr: '192.168.1.11', port: 8080, state: 'up', weight: 1, inTable: true, since: 5, checkers: [] },
          { addr: '192.168.1.12', port: 8080, state: 'down', weight: 0, inTable: false, since: 3, checkers: [] },
          { addr: '192.168.1.99', port: 80, state: 'standby', weight: 0, inTable: false, since: 0, checkers: [] },
        ],
      },
    ],
  },
});

const WEB_L = 'protocol="tcp",address="10.0.0.1",port="80",scheduler="wlc"';
const FWM_L = 'protocol="fwm",address="7",port="0",scheduler="rr"';
const RS1 = `${WEB_L},real_address="192.168.1.11",real_port="8080",forward="masq"`;
const RS2 = `${WEB_L},real_address="192.168.1.12",real_port="8080",forward="route"`;
const RS3 = `${FWM_L},real_address="192.168.1.21",real_port="0",forward="tunnel"`;

const GOLDEN = lines(
  '# HELP lvs_connections_total Connections scheduled, over all services.',
  '# TYPE lvs_connections_total counter',
  'lvs_connections_total 15',
  '# HELP lvs_incoming_packets_total Packets from clients to virtual services.',
  '# TYPE lvs_incoming_packets_total counter',
  'lvs_incoming_packets_total 250',
  '# HELP lvs_outgoing_packets_total Packets from real servers back to clients (NAT only).',
  '# TYPE lvs_outgoing_packets_total counter',
  'lvs_outgoing_packets_total 150',
  '# HELP lvs_incoming_bytes_total Bytes from clients to virtual services.',
  '# TYPE lvs_incoming_bytes_total counter',
  'lvs_incoming_bytes_total 34000',
  '# HELP lvs_outgoing_bytes_total Bytes from real servers back to clients (NAT only).',
  '# TYPE lvs_outgoing_bytes_total counter',
  'lvs_outgoing_bytes_total 120000',
  '# HELP lvs_connection_rate Connections scheduled per second over all services (moving average).',
  '# TYPE lvs_connection_rate gauge',
  'lvs_connection_rate 1',
  '# HELP lvs_incoming_packet_rate Incoming packets per second over all services (moving average).',
  '# TYPE lvs_incoming_packet_rate gauge',
  'lvs_incoming_packet_rate 22',
  '# HELP lvs_outgoing_packet_rate Outgoing packets per second over all services (moving average).',
  '# TYPE lvs_outgoing_packet_rate gauge',
  'lvs_outgoing_packet_rate 15',
  '# HELP lvs_incoming_byte_rate Incoming bytes per second over all services (moving average).',
  '# TYPE lvs_incoming_byte_rate gauge',
  'lvs_incoming_byte_rate 3160',
  '# HELP lvs_outgoing_byte_rate Outgoing bytes per second over all services (moving average).',
  '# TYPE lvs_outgoing_byte_rate gauge',
  'lvs_outgoing_byte_rate 12000',
  '# HELP lvs_tracked_connections Connections in the connection table, persistence templates included.',
  '# TYPE lvs_tracked_connections gauge',
  'lvs_tracked_connections 9',
  '# HELP lvs_transmitted_packets_total Packets sent by lvsd.',
  '# TYPE lvs_transmitted_packets_total counter',
  'lvs_transmitted_packets_total 395',
  '# HELP lvs_engine_received_packets_total Packets the engine read from its input devices.',
  '# TYPE lvs_engine_received_packets_total counter',
  'lvs_engine_received_packets_total 400',
  '# HELP lvs_engine_batches_total Batches the engine processed (received packets / batches = the mean batch size).',
  '# TYPE lvs_engine_batches_total counter',
  'lvs_engine_batches_total 30',
  '# HELP lvs_engine_queue_connections Connections held by each packet engine (its TUN queue), persistence templates included.',
  '# TYPE lvs_engine_queue_connections gauge',
  'lvs_engine_queue_connections{engine="0"} 5',
  'lvs_engine_queue_connections{engine="1"} 4',
  '# HELP lvs_engine_queue_received_packets_total Packets each packet engine read from its TUN queue.',
  '# TYPE lvs_engine_queue_received_packets_total counter',
  'lvs_engine_queue_received_packets_total{engine="0"} 250',
  'lvs_engine_queue_received_packets_total{engine="1"} 150',
  '# HELP lvs_dropped_packets_total Packets dropped by lvsd, by reason.',
  '# TYPE lvs_dropped_packets_total counter',
  'lvs_dropped_packets_total{reason="no_service"} 3',
  'lvs_dropped_packets_total{reason="frag_needed"} 1',
  '# HELP lvs_offload_partial_checksum_packets_total Packets read from an offload TUN with a partial checksum.',
  '# TYPE lvs_offload_partial_checksum_packets_total counter',
  'lvs_offload_partial_checksum_packets_total 12',
  '# HELP lvs_offload_gso_packets_total GSO packets read from an offload TUN.',
  '# TYPE lvs_offload_gso_packets_total counter',
  'lvs_offload_gso_packets_total 4',
  '# HELP lvs_syn_cookies_sent_total SYNs to NAT services answered with a SYN cookie by the SYN proxy (syn_proxy).',
  '# TYPE lvs_syn_cookies_sent_total counter',
  'lvs_syn_cookies_sent_total 70',
  '# HELP lvs_syn_cookies_accepted_total Connections made for ACKs that brought a valid SYN cookie back.',
  '# TYPE lvs_syn_cookies_accepted_total counter',
  'lvs_syn_cookies_accepted_total 71',
  '# HELP lvs_syn_cookies_rejected_total ACKs to NAT services that matched no connection and carried no valid SYN cookie while cookies were in use.',
  '# TYPE lvs_syn_cookies_rejected_total counter',
  'lvs_syn_cookies_rejected_total 72',
  '# HELP lvs_half_open_connections TCP connections in SYN_RECV (the SYN proxy engages at syn_proxy of them in one engine).',
  '# TYPE lvs_half_open_connections gauge',
  'lvs_half_open_connections 73',
  '# HELP lvs_reassembly_datagrams Fragmented datagrams waiting for the rest of their fragments.',
  '# TYPE lvs_reassembly_datagrams gauge',
  'lvs_reassembly_datagrams 2',
  '# HELP lvs_reassembly_bytes Bytes of fragments held for reassembly.',
  '# TYPE lvs_reassembly_bytes gauge',
  'lvs_reassembly_bytes 2960',
  '# HELP lvs_reassembled_datagrams_total Datagrams reassembled from fragments and forwarded whole.',
  '# TYPE lvs_reassembled_datagrams_total counter',
  'lvs_reassembled_datagrams_total 7',
  '# HELP lvs_reassembly_timeouts_total Fragmented datagrams dropped incomplete after the reassembly timeout.',
  '# TYPE lvs_reassembly_timeouts_total counter',
  'lvs_reassembly_timeouts_total 1',
  '# HELP lvs_sync_messages_total Connection sync messages sent (role master) or received (role backup).',
  '# TYPE lvs_sync_messages_total counter',
  'lvs_sync_messages_total{role="master"} 5',
  'lvs_sync_messages_total{role="backup"} 3',
  '# HELP lvs_sync_connections_total Connection entries sent in sync messages (master) or read from them (backup).',
  '# TYPE lvs_sync_connections_total counter',
  'lvs_sync_connections_total{role="master"} 120',
  'lvs_sync_connections_total{role="backup"} 40',
  '# HELP lvs_health_checks_total Health checks completed (lvsd --keepalived-conf), by result (ok, failed).',
  '# TYPE lvs_health_checks_total counter',
  'lvs_health_checks_total{result="ok"} 40',
  'lvs_health_checks_total{result="failed"} 3',
  '# HELP lvs_health_checks_in_flight Health checks running now.',
  '# TYPE lvs_health_checks_in_flight gauge',
  'lvs_health_checks_in_flight 2',
  '# HELP lvs_health_transitions_total Real servers that went up or down by their health checks, by the state entered.',
  '# TYPE lvs_health_transitions_total counter',
  'lvs_health_transitions_total{to="up"} 2',
  'lvs_health_transitions_total{to="down"} 1',
  '# HELP lvs_health_quorum_lost_total Times a virtual server lost quorum (its live real servers weigh less than quorum).',
  '# TYPE lvs_health_quorum_lost_total counter',
  'lvs_health_quorum_lost_total 1',
  '# HELP lvs_health_real_server_up Whether the health checks find the real server up (1) or down (0).',
  '# TYPE lvs_health_real_server_up gauge',
  'lvs_health_real_server_up{virtual_server="TCP 10.0.0.1:80",real_address="192.168.1.11",real_port="8080"} 1',
  'lvs_health_real_server_up{virtual_server="TCP 10.0.0.1:80",real_address="192.168.1.12",real_port="8080"} 0',
  '# HELP lvs_service_connections_total Connections scheduled by the virtual service.',
  '# TYPE lvs_service_connections_total counter',
  `lvs_service_connections_total{${WEB_L}} 10`,
  `lvs_service_connections_total{${FWM_L}} 5`,
  '# HELP lvs_service_incoming_packets_total Packets from clients to the virtual service.',
  '# TYPE lvs_service_incoming_packets_total counter',
  `lvs_service_incoming_packets_total{${WEB_L}} 200`,
  `lvs_service_incoming_packets_total{${FWM_L}} 50`,
  '# HELP lvs_service_outgoing_packets_total Packets from the virtual service back to clients (NAT only).',
  '# TYPE lvs_service_outgoing_packets_total counter',
  `lvs_service_outgoing_packets_total{${WEB_L}} 150`,
  `lvs_service_outgoing_packets_total{${FWM_L}} 0`,
  '# HELP lvs_service_incoming_bytes_total Bytes from clients to the virtual service.',
  '# TYPE lvs_service_incoming_bytes_total counter',
  `lvs_service_incoming_bytes_total{${WEB_L}} 30000`,
  `lvs_service_incoming_bytes_total{${FWM_L}} 4000`,
  '# HELP lvs_service_outgoing_bytes_total Bytes from the virtual service back to clients (NAT only).',
  '# TYPE lvs_service_outgoing_bytes_total counter',
  `lvs_service_outgoing_bytes_total{${WEB_L}} 120000`,
  `lvs_service_outgoing_bytes_total{${FWM_L}} 0`,
  '# HELP lvs_service_connection_rate Connections scheduled per second by the virtual service (moving average).',
  '# TYPE lvs_service_connection_rate gauge',
  `lvs_service_connection_rate{${WEB_L}} 1`,
  `lvs_service_connection_rate{${FWM_L}} 0`,
  '# HELP lvs_service_incoming_packet_rate Incoming packets per second of the virtual service (moving average).',
  '# TYPE lvs_service_incoming_packet_rate gauge',
  `lvs_service_incoming_packet_rate{${WEB_L}} 20`,
  `lvs_service_incoming_packet_rate{${FWM_L}} 2`,
  '# HELP lvs_service_outgoing_packet_rate Outgoing packets per second of the virtual service (moving average).',
  '# TYPE lvs_service_outgoing_packet_rate gauge',
  `lvs_service_outgoing_packet_rate{${WEB_L}} 15`,
  `lvs_service_outgoing_packet_rate{${FWM_L}} 0`,
  '# HELP lvs_service_incoming_byte_rate Incoming bytes per second of the virtual service (moving average).',
  '# TYPE lvs_service_incoming_byte_rate gauge',
  `lvs_service_incoming_byte_rate{${WEB_L}} 3000`,
  `lvs_service_incoming_byte_rate{${FWM_L}} 160`,
  '# HELP lvs_service_outgoing_byte_rate Outgoing bytes per second of the virtual service (moving average).',
  '# TYPE lvs_service_outgoing_byte_rate gauge',
  `lvs_service_outgoing_byte_rate{${WEB_L}} 12000`,
  `lvs_service_outgoing_byte_rate{${FWM_L}} 0`,
  '# HELP lvs_backend_connections_total Connections scheduled to the real server.',
  '# TYPE lvs_backend_connections_total counter',
  `lvs_backend_connections_total{${RS1}} 6`,
  `lvs_backend_connections_total{${RS2}} 4`,
  `lvs_backend_connections_total{${RS3}} 5`,
  '# HELP lvs_backend_incoming_packets_total Packets from clients forwarded to the real server.',
  '# TYPE lvs_backend_incoming_packets_total counter',
  `lvs_backend_incoming_packets_total{${RS1}} 120`,
  `lvs_backend_incoming_packets_total{${RS2}} 80`,
  `lvs_backend_incoming_packets_total{${RS3}} 50`,
  '# HELP lvs_backend_outgoing_packets_total Packets from the real server back to clients (NAT only).',
  '# TYPE lvs_backend_outgoing_packets_total counter',
  `lvs_backend_outgoing_packets_total{${RS1}} 90`,
  `lvs_backend_outgoing_packets_total{${RS2}} 60`,
  `lvs_backend_outgoing_packets_total{${RS3}} 0`,
  '# HELP lvs_backend_incoming_bytes_total Bytes from clients forwarded to the real server.',
  '# TYPE lvs_backend_incoming_bytes_total counter',
  `lvs_backend_incoming_bytes_total{${RS1}} 18000`,
  `lvs_backend_incoming_bytes_total{${RS2}} 12000`,
  `lvs_backend_incoming_bytes_total{${RS3}} 4000`,
  '# HELP lvs_backend_outgoing_bytes_total Bytes from the real server back to clients (NAT only).',
  '# TYPE lvs_backend_outgoing_bytes_total counter',
  `lvs_backend_outgoing_bytes_total{${RS1}} 72000`,
  `lvs_backend_outgoing_bytes_total{${RS2}} 48000`,
  `lvs_backend_outgoing_bytes_total{${RS3}} 0`,
  '# HELP lvs_backend_active_connections Active connections to the real server (ActiveConn).',
  '# TYPE lvs_backend_active_connections gauge',
  `lvs_backend_active_connections{${RS1}} 3`,
  `lvs_backend_active_connections{${RS2}} 1`,
  `lvs_backend_active_connections{${RS3}} 0`,
  '# HELP lvs_backend_inactive_connections Inactive connections to the real server (InActConn).',
  '# TYPE lvs_backend_inactive_connections gauge',
  `lvs_backend_inactive_connections{${RS1}} 1`,
  `lvs_backend_inactive_connections{${RS2}} 2`,
  `lvs_backend_inactive_connections{${RS3}} 0`,
  '# HELP lvs_backend_persistent_connections Persistence templates pointing at the real server.',
  '# TYPE lvs_backend_persistent_connections gauge',
  `lvs_backend_persistent_connections{${RS1}} 0`,
  `lvs_backend_persistent_connections{${RS2}} 0`,
  `lvs_backend_persistent_connections{${RS3}} 2`,
  '# HELP lvs_backend_weight Weight of the real server.',
  '# TYPE lvs_backend_weight gauge',
  `lvs_backend_weight{${RS1}} 2`,
  `lvs_backend_weight{${RS2}} 1`,
  `lvs_backend_weight{${RS3}} 5`,
);

const GLOBAL_FAMILIES = [
  'lvs_connections_total',
  'lvs_incoming_packets_total',
  'lvs_outgoing_packets_total',
  'lvs_incoming_bytes_total',
  'lvs_outgoing_bytes_total',
  'lvs_tracked_connections',
  'lvs_transmitted_packets_total',
  'lvs_dropped_packets_total',
  'lvs_offload_partial_checksum_packets_total',
  'lvs_offload_gso_packets_total',
  'lvs_syn_cookies_sent_total',
  'lvs_syn_cookies_accepted_total',
  'lvs_syn_cookies_rejected_total',
  'lvs_half_open_connections',
];

// --- Tests ----------------------------------------------------------------------------------------

describe('the test parser', () => {
  it('refuses what the text format forbids, so that a clean parse of formatMetrics means something', () => {
    const bad = [
      '# TYPE a counter\na 1', // no trailing newline
      'a 1\n', // sample before its TYPE
      '# TYPE a counter\n# TYPE a counter\na 1\n', // second TYPE
      '# TYPE a counter\na 1\n# HELP a late\n', // HELP after the samples
      '# TYPE a counter\n# TYPE b counter\na 1\nb 1\na 2\n', // a family's samples apart
      '# TYPE a counter\na 1e+21\n', // exponent notation
      '# TYPE a counter\na{x="1} 1\n', // unterminated label value
      '# TYPE a counter\na{x="\\q"} 1\n', // unknown escape
      '# TYPE a counter\na{x="1",x="2"} 1\n', // duplicate label
    ];
    for (const text of bad) expect(() => parseExposition(text), JSON.stringify(text)).toThrow();
    expect(parseExposition('# HELP a x\\\\y\\nz\n# TYPE a gauge\na{x="q\\"\\n"} -3\n')).toEqual({
      help: new Map([['a', 'x\\y\nz']]),
      type: new Map([['a', 'gauge']]),
      samples: [{ name: 'a', labels: { x: 'q"\n' }, value: -3 }],
    });
  });
});

describe('formatMetrics', () => {
  it('renders a TCP service with two real servers, a fwmark service and two drop reasons as the golden', () => {
    expect(formatMetrics(SMALL)).toBe(GOLDEN);
  });

  it('prints HELP and TYPE exactly once for every METRICS_DOC family, in METRICS_DOC order', () => {
    const text = formatMetrics(SMALL);
    const helps = [...text.matchAll(/^# HELP (\S+) (.*)$/gm)];
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
    expect(helps.map((m) => m[1])).toEqual(METRICS_DOC.map((d) => d.name));
    expect(helps.map((m) => m[2])).toEqual(METRICS_DOC.map((d) => d.help));
    expect(types.map((m) => [m[1], m[2]])).toEqual(METRICS_DOC.map((d) => [d.name, d.type]));
    expect(new Set(METRICS_DOC.map((d) => d.name)).size).toBe(METRICS_DOC.length);
  });

  it('names families lvs_*, counters ending in _total, labels from a bounded set as METRICS_DOC lists them', () => {
    // Service, real server, drop reason and engine (at most --workers) only: nothing per
    // connection or per client.
    const bounded = [
      'protocol',
      'address',
      'port',
      'scheduler',
      'real_address',
      'real_port',
      'forward',
      'reason',
      'role',
      'result',
      'to',
      'virtual_server',
      'engine',
    ];
    const e = parseExposition(formatMetrics(SMALL));
    for (const d of METRICS_DOC) {
      expect(d.name).toMatch(/^lvs_[a-z_]+$/);
      expect(d.name.endsWith('_total')).toBe(d.type === 'counter');
      const names = d.labels === '' ? [] : d.labels.split(', ');
      for (const l of names) expect(bounded, `${d.name} ${l}`).toContain(l);
      const found = samplesOf(e, d.name);
      expect(found.length, d.name).toBeGreaterThan(0);
      for (const s of found) expect(Object.keys(s.labels), d.name).toEqual(names);
    }
  });

  it('escapes backslash, double quote and newline in label values, and they read back unchanged', () => {
    const sched = 'we"ird\\sched';
    const reason = 'line\nbreak "q" \\';
    const svc = service(IPPROTO_UDP, '10.0.0.2', 53, [dest('192.168.1.31', 53)], { sched });
    const text = formatMetrics(input([svc], { drops: { [reason]: 1 } }));
    expect(text).toContain(
      'lvs_service_connections_total{protocol="udp",address="10.0.0.2",port="53",scheduler="we\\"ird\\\\sched"} 0\n',
    );
    expect(text).toContain('lvs_dropped_packets_total{reason="line\\nbreak \\"q\\" \\\\"} 1\n');
    const e = parseExposition(text);
    expect(samplesOf(e, 'lvs_dropped_packets_total')).toEqual([
      { name: 'lvs_dropped_packets_total', labels: { reason }, value: 1 },
    ]);
    for (const s of e.samples.filter((x) => x.name.startsWith('lvs_service_') || x.name.startsWith('lvs_backend_'))) {
      expect(s.labels.scheduler).toBe(sched);
    }
  });

  it('reads every sample back with its labels and the input values, large counters included', () => {
    const big = 2 ** 53 - 1;
    const a = service(
      IPPROTO_SCTP,
      '10.0.0.3',
      3868,
      [
        dest('192.168.1.41', 3868, {
          fwd: FWD_LOCALNODE,
          weight: 0,
          activeConns: 7,
          inactConns: 8,
          persistConns: 9,
          stats: stats(11, 12, 13, big, 1e21),
        }),
      ],
      { sched: 'mh', stats: stats(21, 22, 23, 24, big), rates: stats(31, 32, 33, 34, 35) },
    );
    const b = fwm(4294967295, {
      sched: 'sh',
      dests: [
        dest('192.168.1.51', 0, { fwd: FWD_DROUTE, weight: 100, stats: stats(41, 42, 43, 44, 45) }),
        dest('192.168.1.52', 0, { fwd: FWD_TUNNEL, weight: 65535, activeConns: 1 }),
      ],
      stats: stats(51, 52, 53, 54, 55),
      rates: stats(61, 62, 63, 64, 65),
    });
    const m = input([a, b], {
      global: stats(71, 72, 73, 74, big),
      globalRates: stats(81, 82, 83, 84, 85),
      connections: 91,
      drops: { bad_checksum: 92, no_conn: 0, tx_failed: 93 },
      txPackets: 94,
      rxPackets: 97,
      batches: 98,
      engines: [
        { conns: 86, rxPackets: 87 },
        { conns: 88, rxPackets: 89 },
      ],
      offload: { partial: 95, gso: 96 },
      synProxy: { cookies: 81, accepted: 82, rejected: 83, resent: 0, reset: 0, halfOpen: 84, waiting: 0 },
      reassembly: { datagrams: 61, bytes: 62, completed: 63, expired: 64 },
      sync: [{ role: 'backup', messages: 65, conns: 66 }],
    });
    const text = formatMetrics(m);
    expect(text).toContain(' 9007199254740991\n');
    expect(text).toContain(' 1000000000000000000000\n');
    const e = parseExposition(text);

    const expected: Sample[] = [];
    const add = (name: string, labels: Record<string, string>, value: number) => {
      expected.push({ name, labels, value });
    };
    const statNames: [keyof StatsSnapshot, string][] = [
      ['conns', 'connections'],
      ['inPkts', 'incoming_packets'],
      ['outPkts', 'outgoing_packets'],
      ['inBytes', 'incoming_bytes'],
      ['outBytes', 'outgoing_bytes'],
    ];
    const rateNames: [keyof StatsSnapshot, string][] = [
      ['conns', 'connection_rate'],
      ['inPkts', 'incoming_packet_rate'],
      ['outPkts', 'outgoing_packet_rate'],
      ['inBytes', 'incoming_byte_rate'],
      ['outBytes', 'outgoing_byte_rate'],
    ];
    for (const [k, n] of statNames) add(`lvs_${n}_total`, {}, m.global[k]);
    for (const [k, n] of rateNames) add(`lvs_${n}`, {}, m.globalRates[k]);
    add('lvs_tracked_connections', {}, 91);
    add('lvs_transmitted_packets_total', {}, 94);
    add('lvs_engine_received_packets_total', {}, 97);
    add('lvs_engine_batches_total', {}, 98);
    add('lvs_engine_queue_connections', { engine: '0' }, 86);
    add('lvs_engine_queue_connections', { engine: '1' }, 88);
    add('lvs_engine_queue_received_packets_total', { engine: '0' }, 87);
    add('lvs_engine_queue_received_packets_total', { engine: '1' }, 89);
    for (const [reason, n] of Object.entries(m.drops)) add('lvs_dropped_packets_total', { reason }, n);
    add('lvs_offload_partial_checksum_packets_total', {}, 95);
    add('lvs_offload_gso_packets_total', {}, 96);
    add('lvs_syn_cookies_sent_total', {}, 81);
    add('lvs_syn_cookies_accepted_total', {}, 82);
    add('lvs_syn_cookies_rejected_total', {}, 83);
    add('lvs_half_open_connections', {}, 84);
    add('lvs_reassembly_datagrams', {}, 61);
    add('lvs_reassembly_bytes', {}, 62);
    add('lvs_reassembled_datagrams_total', {}, 63);
    add('lvs_reassembly_timeouts_total', {}, 64);
    add('lvs_sync_messages_total', { role: 'backup' }, 65);
    add('lvs_sync_connections_total', { role: 'backup' }, 66);
    const svcLabels = [
      { protocol: 'sctp', address: '10.0.0.3', port: '3868', scheduler: 'mh' },
      { protocol: 'fwm', address: '4294967295', port: '0', scheduler: 'sh' },
    ];
    const destLabels = [
      [{ ...svcLabels[0], real_address: '192.168.1.41', real_port: '3868', forward: 'local' }],
      [
        { ...svcLabels[1], real_address: '192.168.1.51', real_port: '0', forward: 'route' },
        { ...svcLabels[1], real_address: '192.168.1.52', real_port: '0', forward: 'tunnel' },
      ],
    ];
    const svcs = [
      { s: a, labels: svcLabels[0] },
      { s: b, labels: svcLabels[1] },
    ];
    for (const [k, n] of statNames) for (const { s, labels } of svcs) add(`lvs_service_${n}_total`, labels, s.stats[k]);
    for (const [k, n] of rateNames) for (const { s, labels } of svcs) add(`lvs_service_${n}`, labels, s.rates[k]);
    const backends = [a, b].flatMap((s, i) => s.dests.map((d, j) => ({ d, labels: destLabels[i][j] })));
    for (const [k, n] of statNames)
      for (const { d, labels } of backends) add(`lvs_backend_${n}_total`, labels, d.stats[k]);
    for (const { d, labels } of backends) add('lvs_backend_active_connections', labels, d.activeConns);
    for (const { d, labels } of backends) add('lvs_backend_inactive_connections', labels, d.inactConns);
    for (const { d, labels } of backends) add('lvs_backend_persistent_connections', labels, d.persistConns);
    for (const { d, labels } of backends) add('lvs_backend_weight', labels, d.weight);

    expect(e.samples).toEqual(expected);
    expect([...e.type.keys()]).toEqual(METRICS_DOC.map((d) => d.name));
  });

  it('still renders every global family for an empty snapshot, and no service or backend samples', () => {
    const text = formatMetrics(input([]));
    const e = parseExposition(text);
    for (const name of GLOBAL_FAMILIES) {
      expect(e.help.has(name) && e.type.has(name), name).toBe(true);
      if (name !== 'lvs_dropped_packets_total')
        expect(samplesOf(e, name), name).toEqual([{ name, labels: {}, value: 0 }]);
    }
    expect(samplesOf(e, 'lvs_dropped_packets_total')).toEqual([]);
    expect(e.samples.filter((s) => Object.keys(s.labels).length > 0)).toEqual([]);
    expect(text.endsWith('\n')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(false);
  });
});

describe('README', () => {
  it('documents every metric family', () => {
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
    for (const m of METRICS_DOC) expect(readme, m.name).toMatch(new RegExp(`\\| \`${m.name}\` +\\| ${m.type} +\\|`));
  });
});

describe('metrics of IPv6 services', () => {
  it('labels an IPv6 service by its address, and -f N -6 apart from -f N', () => {
    const v6 = service(IPPROTO_TCP, '2001:db8::1', 80, [dest('2001:db8:10::1', 8080)], { af: 10, netmask: '128' });
    const text = formatMetrics(input([v6, fwm(7, {}), fwm(7, { af: 10, netmask: '128' })]));
    expect(text).toContain(
      'lvs_backend_connections_total{protocol="tcp",address="2001:db8::1",port="80",scheduler="wlc",real_address="2001:db8:10::1",real_port="8080",forward="masq"} 0',
    );
    const series = samplesOf(parseExposition(text), 'lvs_service_connections_total').map((s) => s.labels.protocol);
    expect(series).toEqual(['tcp', 'fwm', 'fwm6']);
  });
});
