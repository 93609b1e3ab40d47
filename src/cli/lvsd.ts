// lvsd: the director daemon. Owns the TUN device, the packet engine, the routes and rules that
// steer traffic into it, and the control socket lvsadm talks to. This file parses argv, prints
// --help and --version, and starts the Daemon (lvsd/daemon.ts), which wires the rest. Exit
// status: 2 for bad options, 1 when it cannot start; a running lvsd exits 0 on SIGINT/SIGTERM.

import { parseArgs } from 'node:util';
import { DEFAULT_MAX_CONNS } from '../core/engine';
import { DEFAULT_RULE_PREF, DEFAULT_TABLE } from '../ctl/routing';
import { parseAssignment } from '../ctl/sysctl';
import { Daemon, type DaemonOptions } from '../lvsd/daemon';
import { parseListen } from '../metrics/server';
import { RUN_ROOT } from '../run-dir';
import { configFileStore } from './config-file';

const VERSION = '0.1.0';

const HELP = `Usage: lvsd [options]

lvsd is the lvs-ts director daemon: a user-space Linux Virtual Server. It creates a TUN
device, routes each virtual IP into it, schedules every new connection to a real server
and forwards its packets by NAT, direct routing or IP-in-IP tunnelling, as kernel IPVS
does. Configure it with lvsadm, which takes ipvsadm's syntax.

Options:
  --socket PATH      control socket (default: $LVS_SOCKET, else lvsd.sock in the network
                     namespace's run-time directory: ${RUN_ROOT}/ in the host's namespace,
                     ${RUN_ROOT}/netns-<inode>/ in any other, so each namespace has its own
                     lvsd and \`ip netns exec NS lvsadm\` reaches NS's)
  --tun NAME         TUN device to create (default: lvs0)
  --vip-dev DEV      interface that answers ARP for virtual IPs
                     (default: the interface whose subnet holds the VIP)
  --table N          routing table for NAT replies (default: ${DEFAULT_TABLE})
  --rule-pref N      preference of the reply rules (default: ${DEFAULT_RULE_PREF})
  --announce-table N keep a route VIP/32 via the TUN in routing table N for every virtual
                     address with a usable real server, for a routing daemon (BIRD, FRR) to
                     announce: it goes when the last real server goes, and with the TUN
                     when lvsd stops or dies (README: several active directors behind ECMP)
  --no-routes        install no route, rule, proxy-ARP entry or sysctl; the operator
                     steers traffic into the TUN
  --batch N          packets per read/send batch (default: 64)
  --workers N        packet engines, each in its own thread on its own queue of a multi-queue
                     TUN, both directions of a flow steered to one engine (default: one per
                     CPU; 1 runs the engine on lvsd's main thread)
  --max-conns N      connections (and persistence templates) tracked at most; beyond, new
                     connections are dropped and counted as table_full (default: 4194304)
  --procfs-root DIR  where to keep the kernel-format /proc files (net/ip_vs, net/ip_vs_conn,
                     net/ip_vs_conn_sync, net/ip_vs_stats, sys/net/ipv4/vs/*), rewritten
                     every second
                     (default: proc beside the default socket; with another --socket,
                     <socket>.proc)
  --metrics ADDR:PORT
                     serve Prometheus metrics at http://ADDR:PORT/metrics (README lists them)
  --sysctl NAME=VAL  an IPVS setting, named as /proc/sys/net/ipv4/vs/NAME (repeatable):
                     conn_reuse_mode (default 1), expire_nodest_conn (0),
                     expire_quiescent_template (0), sloppy_tcp (0), sloppy_sctp (0),
                     drop_entry, drop_packet, secure_tcp (0), amemthresh (1024),
                     am_droprate (10), and lvs-ts's syn_proxy (1024: SYN cookies for NAT
                     services while an engine holds that many half-open connections; 0
                     never, 1 always); lvsadm --sysctl changes them later
  --config-file FILE keep the virtual services in FILE (lvsadm -S -n form and a --set line):
                     loaded at start, rewritten atomically after every change, so a
                     restarted lvsd comes back with the same table
  --keepalived-conf FILE
                     run the virtual servers of a keepalived.conf (virtual_server,
                     real_server, the health checkers, virtual_server_group, include) with
                     their health checks: failed real servers leave the table (or go to
                     weight 0 with inhibit_on_failure) and return when their checks pass;
                     SIGHUP reloads FILE and applies only the difference
  --ftp-ports LIST   ports whose NAT services get the FTP helper (ip_vs_ftp's ports=;
                     comma-separated, default 21)
  --no-offload       open the TUN without offloads (IFF_VNET_HDR, checksum and TCP
                     segmentation offload): every packet then arrives at most MTU-sized
                     with a complete checksum; slower for bulk TCP
  -h, --help         show this help
  -v, --version      show the version

Stops cleanly on SIGINT/SIGTERM, removing everything it installed; SIGHUP reloads the
--keepalived-conf file. At start it removes what a killed previous run left behind
(recorded in <socket>.state); it refuses to start, touching nothing, while another lvsd
runs with the same socket.
`;

function log(msg: string): void {
  process.stderr.write(`lvsd: ${msg}\n`);
}

function intOption(v: string | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`invalid ${name}: ${v}`);
  return n;
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** The daemon's options from parsed argv; throws with the message to print (exit status 2). */
function daemonOptions(values: Values): DaemonOptions {
  const ftp = values['ftp-ports'] as string | undefined;
  const ftpPorts = ftp?.split(',').map((p) => intOption(p.trim(), 'ftp port', 0, 1, 65535));
  const table = intOption(values.table as string | undefined, 'table', DEFAULT_TABLE, 1, 0xfffffffe);
  const rulePref = intOption(values['rule-pref'] as string | undefined, 'rule-pref', DEFAULT_RULE_PREF, 1, 32765);
  const announce = values['announce-table'] as string | undefined;
  const announceTable = announce === undefined ? undefined : intOption(announce, 'announce-table', 0, 1, 0xfffffffe);
  const batch = intOption(values.batch as string | undefined, 'batch', 64, 1, 1024);
  const workersArg = values.workers as string | undefined;
  const workers = workersArg === undefined ? undefined : intOption(workersArg, 'workers', 1, 1, 64);
  const maxConns = intOption(values['max-conns'] as string | undefined, 'max-conns', DEFAULT_MAX_CONNS, 1, 1 << 24);
  const metrics = values.metrics as string | undefined;
  if (metrics !== undefined) parseListen(metrics);
  const sysctls = ((values.sysctl ?? []) as string[]).map((a) => {
    try {
      return parseAssignment(a);
    } catch (err) {
      throw new Error(`--sysctl ${a}: ${(err as Error).message}`);
    }
  });
  const configFile = values['config-file'] as string | undefined;
  return {
    socket: values.socket as string | undefined,
    tun: values.tun as string,
    vipDev: values['vip-dev'] as string | undefined,
    table,
    rulePref,
    announceTable,
    routes: !values['no-routes'],
    batch,
    workers,
    maxConns,
    offload: !values['no-offload'],
    ftpPorts,
    sysctls,
    procfsRoot: values['procfs-root'] as string | undefined,
    metrics,
    keepalivedConf: values['keepalived-conf'] as string | undefined,
    config: configFile === undefined ? undefined : configFileStore(configFile),
  };
}

export async function main(argv: string[]): Promise<number> {
  let values: Values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        tun: { type: 'string', default: 'lvs0' },
        'vip-dev': { type: 'string' },
        table: { type: 'string' },
        'rule-pref': { type: 'string' },
        'announce-table': { type: 'string' },
        'no-routes': { type: 'boolean', default: false },
        batch: { type: 'string' },
        workers: { type: 'string' },
        'max-conns': { type: 'string' },
        'no-offload': { type: 'boolean', default: false },
        'ftp-ports': { type: 'string' },
        'config-file': { type: 'string' },
        'keepalived-conf': { type: 'string' },
        sysctl: { type: 'string', multiple: true, default: [] },
        'procfs-root': { type: 'string' },
        metrics: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`lvsd: ${(err as Error).message}\nTry 'lvsd --help' for more information.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`lvsd v${VERSION} (IPVS v1.2.1 compatible)\n`);
    return 0;
  }

  let options: DaemonOptions;
  try {
    options = daemonOptions(values);
  } catch (err) {
    process.stderr.write(`lvsd: ${(err as Error).message}\n`);
    return 2;
  }
  const daemon = await Daemon.start(options, log);
  if (daemon === undefined) return 1;
  // Keep running until a signal arrives (the daemon then ends the process).
  return new Promise<number>(() => {});
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
