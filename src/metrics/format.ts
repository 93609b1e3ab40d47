// lvsd's counters in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Pure: no I/O; whoever serves
// the scrape builds a MetricsInput from the control-socket snapshots and writes the result.
//
//   # HELP <name> <help, with \ and newline escaped>
//   # TYPE <name> counter|gauge
//   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
//
// Every family in METRICS_DOC is printed, in METRICS_DOC's order, with its HELP and TYPE lines
// once and before its samples, also when it has no samples (no services, no drops). Samples come
// in snapshot order: services and dests as lvsd lists them, drop reasons as the input object
// holds them. Labels identify services and real servers only, never connections or clients, so
// the number of series stays bounded by the configuration.
//
// Counters are 64-bit in the kernel and JS numbers here: integers are printed in full with
// Number.prototype.toString (exact up to 2^53), never in exponent notation.

import type { SynProxyCounters } from '../core/data-plane';
import type {
  DestSnapshot,
  HealthCounters,
  ServiceSnapshot,
  Snapshot,
  StatsSnapshot,
  VirtualServerSnapshot,
} from '../ctl/protocol';
import { AF_INET6, FWD_NAMES, serviceProtoName } from '../ip-vs';

/** Everything one scrape shows: the control socket's `list` and `engine-stats` answers. */
export interface MetricsInput {
  snapshot: Snapshot;
  /** Totals over all services (the kernel's ip_vs_stats). */
  global: StatsSnapshot;
  /** Per-second rates of the totals (the rate estimator). */
  globalRates: StatsSnapshot;
  /** Connections in the table, persistence templates included. */
  connections: number;
  /** Drop reason name → packets. */
  drops: Record<string, number>;
  txPackets: number;
  /** Packets the engine read, and the batches they came in. */
  rxPackets: number;
  batches: number;
  /** Per packet engine (lvsd --workers): connections held and packets read from its queue. */
  engines: { conns: number; rxPackets: number }[];
  /** Packets read from an offload TUN with a partial checksum, and GSO packets among them. */
  offload: { partial: number; gso: number };
  /** The SYN proxy (syn_proxy): cookies sent, ACKs accepted and rejected, half-open connections. */
  synProxy: SynProxyCounters;
  /** Fragment reassembly: datagrams and bytes held now, datagrams completed and timed out. */
  reassembly: { datagrams: number; bytes: number; completed: number; expired: number };
  /** The running sync daemons' counters: messages and connection entries sent (master) or read (backup). */
  sync: { role: 'master' | 'backup'; messages: number; conns: number }[];
  /** The health monitor (lvsd --keepalived-conf), null without one: its families then have no samples. */
  health: { counters: HealthCounters; virtualServers: VirtualServerSnapshot[] } | null;
}

export interface MetricDoc {
  name: string;
  type: 'counter' | 'gauge';
  /** Label names, comma-separated ('' for none). */
  labels: string;
  help: string;
}

const SERVICE_LABELS = 'protocol, address, port, scheduler';
const BACKEND_LABELS = `${SERVICE_LABELS}, real_address, real_port, forward`;

const DOC = [
  { name: 'lvs_connections_total', type: 'counter', labels: '', help: 'Connections scheduled, over all services.' },
  {
    name: 'lvs_incoming_packets_total',
    type: 'counter',
    labels: '',
    help: 'Packets from clients to virtual services.',
  },
  {
    name: 'lvs_outgoing_packets_total',
    type: 'counter',
    labels: '',
    help: 'Packets from real servers back to clients (NAT only).',
  },
  { name: 'lvs_incoming_bytes_total', type: 'counter', labels: '', help: 'Bytes from clients to virtual services.' },
  {
    name: 'lvs_outgoing_bytes_total',
    type: 'counter',
    labels: '',
    help: 'Bytes from real servers back to clients (NAT only).',
  },
  {
    name: 'lvs_connection_rate',
    type: 'gauge',
    labels: '',
    help: 'Connections scheduled per second over all services (moving average).',
  },
  {
    name: 'lvs_incoming_packet_rate',
    type: 'gauge',
    labels: '',
    help: 'Incoming packets per second over all services (moving average).',
  },
  {
    name: 'lvs_outgoing_packet_rate',
    type: 'gauge',
    labels: '',
    help: 'Outgoing packets per second over all services (moving average).',
  },
  {
    name: 'lvs_incoming_byte_rate',
    type: 'gauge',
    labels: '',
    help: 'Incoming bytes per second over all services (moving average).',
  },
  {
    name: 'lvs_outgoing_byte_rate',
    type: 'gauge',
    labels: '',
    help: 'Outgoing bytes per second over all services (moving average).',
  },
  {
    name: 'lvs_tracked_connections',
    type: 'gauge',
    labels: '',
    help: 'Connections in the connection table, persistence templates included.',
  },
  { name: 'lvs_transmitted_packets_total', type: 'counter', labels: '', help: 'Packets sent by lvsd.' },
  {
    name: 'lvs_engine_received_packets_total',
    type: 'counter',
    labels: '',
    help: 'Packets the engine read from its input devices.',
  },
  {
    name: 'lvs_engine_batches_total',
    type: 'counter',
    labels: '',
    help: 'Batches the engine processed (received packets / batches = the mean batch size).',
  },
  {
    name: 'lvs_engine_queue_connections',
    type: 'gauge',
    labels: 'engine',
    help: 'Connections held by each packet engine (its TUN queue), persistence templates included.',
  },
  {
    name: 'lvs_engine_queue_received_packets_total',
    type: 'counter',
    labels: 'engine',
    help: 'Packets each packet engine read from its TUN queue.',
  },
  { name: 'lvs_dropped_packets_total', type: 'counter', labels: 'reason', help: 'Packets dropped by lvsd, by reason.' },
  {
    name: 'lvs_offload_partial_checksum_packets_total',
    type: 'counter',
    labels: '',
    help: 'Packets read from an offload TUN with a partial checksum.',
  },
  { name: 'lvs_offload_gso_packets_total', type: 'counter', labels: '', help: 'GSO packets read from an offload TUN.' },
  {
    name: 'lvs_syn_cookies_sent_total',
    type: 'counter',
    labels: '',
    help: 'SYNs to NAT services answered with a SYN cookie by the SYN proxy (syn_proxy).',
  },
  {
    name: 'lvs_syn_cookies_accepted_total',
    type: 'counter',
    labels: '',
    help: 'Connections made for ACKs that brought a valid SYN cookie back.',
  },
  {
    name: 'lvs_syn_cookies_rejected_total',
    type: 'counter',
    labels: '',
    help: 'ACKs to NAT services that matched no connection and carried no valid SYN cookie while cookies were in use.',
  },
  {
    name: 'lvs_half_open_connections',
    type: 'gauge',
    labels: '',
    help: 'TCP connections in SYN_RECV (the SYN proxy engages at syn_proxy of them in one engine).',
  },
  {
    name: 'lvs_reassembly_datagrams',
    type: 'gauge',
    labels: '',
    help: 'Fragmented datagrams waiting for the rest of their fragments.',
  },
  { name: 'lvs_reassembly_bytes', type: 'gauge', labels: '', help: 'Bytes of fragments held for reassembly.' },
  {
    name: 'lvs_reassembled_datagrams_total',
    type: 'counter',
    labels: '',
    help: 'Datagrams reassembled from fragments and forwarded whole.',
  },
  {
    name: 'lvs_reassembly_timeouts_total',
    type: 'counter',
    labels: '',
    help: 'Fragmented datagrams dropped incomplete after the reassembly timeout.',
  },
  {
    name: 'lvs_sync_messages_total',
    type: 'counter',
    labels: 'role',
    help: 'Connection sync messages sent (role master) or received (role backup).',
  },
  {
    name: 'lvs_sync_connections_total',
    type: 'counter',
    labels: 'role',
    help: 'Connection entries sent in sync messages (master) or read from them (backup).',
  },
  {
    name: 'lvs_health_checks_total',
    type: 'counter',
    labels: 'result',
    help: 'Health checks completed (lvsd --keepalived-conf), by result (ok, failed).',
  },
  {
    name: 'lvs_health_checks_in_flight',
    type: 'gauge',
    labels: '',
    help: 'Health checks running now.',
  },
  {
    name: 'lvs_health_transitions_total',
    type: 'counter',
    labels: 'to',
    help: 'Real servers that went up or down by their health checks, by the state entered.',
  },
  {
    name: 'lvs_health_quorum_lost_total',
    type: 'counter',
    labels: '',
    help: 'Times a virtual server lost quorum (its live real servers weigh less than quorum).',
  },
  {
    name: 'lvs_health_real_server_up',
    type: 'gauge',
    labels: 'virtual_server, real_address, real_port',
    help: 'Whether the health checks find the real server up (1) or down (0).',
  },
  {
    name: 'lvs_service_connections_total',
    type: 'counter',
    labels: SERVICE_LABELS,
    help: 'Connections scheduled by the virtual service.',
  },
  {
    name: 'lvs_service_incoming_packets_total',
    type: 'counter',
    labels: SERVICE_LABELS,
    help: 'Packets from clients to the virtual service.',
  },
  {
    name: 'lvs_service_outgoing_packets_total',
    type: 'counter',
    labels: SERVICE_LABELS,
    help: 'Packets from the virtual service back to clients (NAT only).',
  },
  {
    name: 'lvs_service_incoming_bytes_total',
    type: 'counter',
    labels: SERVICE_LABELS,
    help: 'Bytes from clients to the virtual service.',
  },
  {
    name: 'lvs_service_outgoing_bytes_total',
    type: 'counter',
    labels: SERVICE_LABELS,
    help: 'Bytes from the virtual service back to clients (NAT only).',
  },
  {
    name: 'lvs_service_connection_rate',
    type: 'gauge',
    labels: SERVICE_LABELS,
    help: 'Connections scheduled per second by the virtual service (moving average).',
  },
  {
    name: 'lvs_service_incoming_packet_rate',
    type: 'gauge',
    labels: SERVICE_LABELS,
    help: 'Incoming packets per second of the virtual service (moving average).',
  },
  {
    name: 'lvs_service_outgoing_packet_rate',
    type: 'gauge',
    labels: SERVICE_LABELS,
    help: 'Outgoing packets per second of the virtual service (moving average).',
  },
  {
    name: 'lvs_service_incoming_byte_rate',
    type: 'gauge',
    labels: SERVICE_LABELS,
    help: 'Incoming bytes per second of the virtual service (moving average).',
  },
  {
    name: 'lvs_service_outgoing_byte_rate',
    type: 'gauge',
    labels: SERVICE_LABELS,
    help: 'Outgoing bytes per second of the virtual service (moving average).',
  },
  {
    name: 'lvs_backend_connections_total',
    type: 'counter',
    labels: BACKEND_LABELS,
    help: 'Connections scheduled to the real server.',
  },
  {
    name: 'lvs_backend_incoming_packets_total',
    type: 'counter',
    labels: BACKEND_LABELS,
    help: 'Packets from clients forwarded to the real server.',
  },
  {
    name: 'lvs_backend_outgoing_packets_total',
    type: 'counter',
    labels: BACKEND_LABELS,
    help: 'Packets from the real server back to clients (NAT only).',
  },
  {
    name: 'lvs_backend_incoming_bytes_total',
    type: 'counter',
    labels: BACKEND_LABELS,
    help: 'Bytes from clients forwarded to the real server.',
  },
  {
    name: 'lvs_backend_outgoing_bytes_total',
    type: 'counter',
    labels: BACKEND_LABELS,
    help: 'Bytes from the real server back to clients (NAT only).',
  },
  {
    name: 'lvs_backend_active_connections',
    type: 'gauge',
    labels: BACKEND_LABELS,
    help: 'Active connections to the real server (ActiveConn).',
  },
  {
    name: 'lvs_backend_inactive_connections',
    type: 'gauge',
    labels: BACKEND_LABELS,
    help: 'Inactive connections to the real server (InActConn).',
  },
  {
    name: 'lvs_backend_persistent_connections',
    type: 'gauge',
    labels: BACKEND_LABELS,
    help: 'Persistence templates pointing at the real server.',
  },
  { name: 'lvs_backend_weight', type: 'gauge', labels: BACKEND_LABELS, help: 'Weight of the real server.' },
] as const satisfies readonly MetricDoc[];

/**
 * Every metric family: name, type, label names and HELP text, in output order. formatMetrics
 * prints HELP and TYPE from here; the README's metrics table is generated from it.
 */
export const METRICS_DOC: readonly MetricDoc[] = DOC;

type MetricName = (typeof DOC)[number]['name'];

/** A service's or a backend's label pairs, rendered once per scrape (`k="v",...`). */
interface ServiceSeries {
  labels: string;
  svc: ServiceSnapshot;
}
interface BackendSeries {
  labels: string;
  dest: DestSnapshot;
}

/** What the sample writers read: the input plus the label strings. */
interface Scrape {
  input: MetricsInput;
  services: ServiceSeries[];
  backends: BackendSeries[];
}

/** Appends one family's sample lines to `out`. */
type SampleWriter = (name: string, s: Scrape, out: string[]) => void;

/** One unlabelled sample. */
function unlabelled(value: (m: MetricsInput) => number): SampleWriter {
  return (name, s, out) => {
    out.push(`${name} ${formatValue(value(s.input))}`);
  };
}

/** One sample per service. */
function perService(value: (svc: ServiceSnapshot) => number): SampleWriter {
  return (name, s, out) => {
    for (const { labels, svc } of s.services) out.push(`${name}{${labels}} ${formatValue(value(svc))}`);
  };
}

/** One sample per real server of each service. */
function perBackend(value: (d: DestSnapshot) => number): SampleWriter {
  return (name, s, out) => {
    for (const { labels, dest } of s.backends) out.push(`${name}{${labels}} ${formatValue(value(dest))}`);
  };
}

/** One sample per packet engine. */
function perEngine(value: (e: MetricsInput['engines'][number]) => number): SampleWriter {
  return (name, s, out) => {
    s.input.engines.forEach((e, k) => {
      out.push(`${name}{engine="${k}"} ${formatValue(value(e))}`);
    });
  };
}

/** One sample per drop reason present in the input. */
const perDropReason: SampleWriter = (name, s, out) => {
  for (const [reason, n] of Object.entries(s.input.drops)) {
    out.push(`${name}{reason="${escapeLabelValue(reason)}"} ${formatValue(n)}`);
  }
};

function perSyncRole(value: (d: MetricsInput['sync'][number]) => number): SampleWriter {
  return (name, s, out) => {
    for (const d of s.input.sync) out.push(`${name}{role="${d.role}"} ${formatValue(value(d))}`);
  };
}

/** Samples from the health monitor's counters, none without a monitor. */
function perHealth(samples: (h: NonNullable<MetricsInput['health']>) => [string, number][]): SampleWriter {
  return (name, s, out) => {
    if (!s.input.health) return;
    for (const [labels, v] of samples(s.input.health))
      out.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(v)}`);
  };
}

/** Where each family's values come from; the type makes it cover DOC exactly. */
const SAMPLES: Record<MetricName, SampleWriter> = {
  lvs_connections_total: unlabelled((m) => m.global.conns),
  lvs_incoming_packets_total: unlabelled((m) => m.global.inPkts),
  lvs_outgoing_packets_total: unlabelled((m) => m.global.outPkts),
  lvs_incoming_bytes_total: unlabelled((m) => m.global.inBytes),
  lvs_outgoing_bytes_total: unlabelled((m) => m.global.outBytes),
  lvs_connection_rate: unlabelled((m) => m.globalRates.conns),
  lvs_incoming_packet_rate: unlabelled((m) => m.globalRates.inPkts),
  lvs_outgoing_packet_rate: unlabelled((m) => m.globalRates.outPkts),
  lvs_incoming_byte_rate: unlabelled((m) => m.globalRates.inBytes),
  lvs_outgoing_byte_rate: unlabelled((m) => m.globalRates.outBytes),
  lvs_tracked_connections: unlabelled((m) => m.connections),
  lvs_transmitted_packets_total: unlabelled((m) => m.txPackets),
  lvs_engine_received_packets_total: unlabelled((m) => m.rxPackets),
  lvs_engine_batches_total: unlabelled((m) => m.batches),
  lvs_engine_queue_connections: perEngine((e) => e.conns),
  lvs_engine_queue_received_packets_total: perEngine((e) => e.rxPackets),
  lvs_dropped_packets_total: perDropReason,
  lvs_offload_partial_checksum_packets_total: unlabelled((m) => m.offload.partial),
  lvs_offload_gso_packets_total: unlabelled((m) => m.offload.gso),
  lvs_syn_cookies_sent_total: unlabelled((m) => m.synProxy.cookies),
  lvs_syn_cookies_accepted_total: unlabelled((m) => m.synProxy.accepted),
  lvs_syn_cookies_rejected_total: unlabelled((m) => m.synProxy.rejected),
  lvs_half_open_connections: unlabelled((m) => m.synProxy.halfOpen),
  lvs_reassembly_datagrams: unlabelled((m) => m.reassembly.datagrams),
  lvs_reassembly_bytes: unlabelled((m) => m.reassembly.bytes),
  lvs_reassembled_datagrams_total: unlabelled((m) => m.reassembly.completed),
  lvs_reassembly_timeouts_total: unlabelled((m) => m.reassembly.expired),
  lvs_sync_messages_total: perSyncRole((d) => d.messages),
  lvs_sync_connections_total: perSyncRole((d) => d.conns),
  lvs_health_checks_total: perHealth((h) => [
    ['result="ok"', h.counters.checksOk],
    ['result="failed"', h.counters.checksFailed],
  ]),
  lvs_health_checks_in_flight: perHealth((h) => [['', h.counters.inFlight]]),
  lvs_health_transitions_total: perHealth((h) => [
    ['to="up"', h.counters.transitionsUp],
    ['to="down"', h.counters.transitionsDown],
  ]),
  lvs_health_quorum_lost_total: perHealth((h) => [['', h.counters.quorumLost]]),
  lvs_health_real_server_up: perHealth((h) =>
    h.virtualServers.flatMap((v) =>
      v.servers
        .filter((r) => r.state === 'up' || r.state === 'down')
        .map((r): [string, number] => [
          labelPairs([
            ['virtual_server', v.label],
            ['real_address', r.addr],
            ['real_port', String(r.port)],
          ]),
          r.state === 'up' ? 1 : 0,
        ]),
    ),
  ),
  lvs_service_connections_total: perService((svc) => svc.stats.conns),
  lvs_service_incoming_packets_total: perService((svc) => svc.stats.inPkts),
  lvs_service_outgoing_packets_total: perService((svc) => svc.stats.outPkts),
  lvs_service_incoming_bytes_total: perService((svc) => svc.stats.inBytes),
  lvs_service_outgoing_bytes_total: perService((svc) => svc.stats.outBytes),
  lvs_service_connection_rate: perService((svc) => svc.rates.conns),
  lvs_service_incoming_packet_rate: perService((svc) => svc.rates.inPkts),
  lvs_service_outgoing_packet_rate: perService((svc) => svc.rates.outPkts),
  lvs_service_incoming_byte_rate: perService((svc) => svc.rates.inBytes),
  lvs_service_outgoing_byte_rate: perService((svc) => svc.rates.outBytes),
  lvs_backend_connections_total: perBackend((d) => d.stats.conns),
  lvs_backend_incoming_packets_total: perBackend((d) => d.stats.inPkts),
  lvs_backend_outgoing_packets_total: perBackend((d) => d.stats.outPkts),
  lvs_backend_incoming_bytes_total: perBackend((d) => d.stats.inBytes),
  lvs_backend_outgoing_bytes_total: perBackend((d) => d.stats.outBytes),
  lvs_backend_active_connections: perBackend((d) => d.activeConns),
  lvs_backend_inactive_connections: perBackend((d) => d.inactConns),
  lvs_backend_persistent_connections: perBackend((d) => d.persistConns),
  lvs_backend_weight: perBackend((d) => d.weight),
};

/** A label value: backslash, double quote and line feed are escaped. */
function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

/** HELP text: backslash and line feed are escaped (a double quote is not). */
function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

/**
 * A sample value. Integers in full decimal: toString below 1e21 (where it would switch to
 * exponent notation), BigInt above (exact for any integral double). NaN, +Inf and -Inf as the
 * format spells them. lvsd's counters and rates are integers; any other number is printed in
 * plain decimal as well: toString has no exponent from 1e-6 up, smaller magnitudes get 20
 * decimals (so 1e-25 reads 0).
 */
function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  if (Number.isInteger(n)) return Math.abs(n) < 1e21 ? n.toString() : BigInt(n).toString();
  const s = n.toString();
  return s.includes('e') ? n.toFixed(20).replace(/\.?0+$/, '') : s;
}

function protocolLabel(svc: ServiceSnapshot): string {
  // `-f N` and `-f N -6` are two services: fwm and fwm6, so their series never collide.
  if (svc.fwmark !== 0) return svc.af === AF_INET6 ? 'fwm6' : 'fwm';
  return serviceProtoName(svc.protocol)?.toLowerCase() ?? String(svc.protocol);
}

/** masq, local, tunnel, route (the FWD_* method names in lower case). */
function forwardLabel(fwd: number): string {
  return (FWD_NAMES[fwd] ?? String(fwd)).toLowerCase();
}

function labelPairs(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',');
}

function scrape(input: MetricsInput): Scrape {
  const services: ServiceSeries[] = [];
  const backends: BackendSeries[] = [];
  for (const svc of input.snapshot.services) {
    const labels = labelPairs([
      ['protocol', protocolLabel(svc)],
      ['address', svc.fwmark !== 0 ? String(svc.fwmark) : svc.addr],
      ['port', String(svc.port)],
      ['scheduler', svc.sched || 'none'],
    ]);
    services.push({ labels, svc });
    for (const dest of svc.dests) {
      const destLabels = labelPairs([
        ['real_address', dest.addr],
        ['real_port', String(dest.port)],
        ['forward', forwardLabel(dest.fwd)],
      ]);
      backends.push({ labels: `${labels},${destLabels}`, dest });
    }
  }
  return { input, services, backends };
}

/** The whole exposition: every family of METRICS_DOC (DOC) in order, ending in a newline. */
export function formatMetrics(input: MetricsInput): string {
  const s = scrape(input);
  const out: string[] = [];
  for (const f of DOC) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    SAMPLES[f.name](f.name, s, out);
  }
  return `${out.join('\n')}\n`;
}
