// lvsd: the director daemon. Owns the TUN device, the packet engine, the routes and rules that
// steer traffic into it, and the control socket lvsadm talks to.

import { mkdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_CONNS, Engine } from '../core/engine';
import { Balancer } from '../ctl/balancer';
import { EST_INTERVAL_MS } from '../ctl/estimator';
import type { HostNet } from '../ctl/host-net';
import { NoHostNet } from '../ctl/host-net';
import { lockInstance } from '../ctl/instance-lock';
import { parseListen, startMetricsServer } from '../ctl/metrics-server';
import { parseTunnelFragNeeded, smallestLinkMtu } from '../ctl/pmtu';
import { ProcfsWriter } from '../ctl/procfs';
import { defaultSocket, socketPath } from '../ctl/protocol';
import { DEFAULT_RULE_PREF, DEFAULT_TABLE, IpRouteNet } from '../ctl/routing';
import { ControlServer, socketAlive } from '../ctl/server';
import { parseAssignment, type SysctlDef } from '../ctl/sysctl';
import { parseKeepalivedConf } from '../health/keepalived-conf';
import { HealthMonitor, type HealthTarget } from '../health/monitor';
import { ProbeThread } from '../health/probe-thread';
import { IPPROTO_ICMP } from '../ip-vs';
import { MARK_DEV_PREFIX, NativeIo } from '../native/native-io';
import { Slab } from '../native/packet-io';
import { RawReceiver } from '../native/raw-receiver';
import { currentNetns, RUN_ROOT, removeRunDirIfEmpty } from '../run-dir';
import { loadConfig, saveConfig } from './config-file';

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
  --no-routes        install no route, rule, proxy-ARP entry or sysctl; the operator
                     steers traffic into the TUN
  --batch N          packets per read/send batch (default: 64)
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
                     expire_quiescent_template (0); lvsadm --sysctl changes them later
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

/** Free memory in 4 KiB pages (MemAvailable), for the defense strategies' amemthresh. */
function availablePages(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Math.floor(Number(m[1]) / 4) : Number.MAX_SAFE_INTEGER;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

function log(msg: string): void {
  process.stderr.write(`lvsd: ${msg}\n`);
}

function intOption(v: string | undefined, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`invalid ${name}: ${v}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        tun: { type: 'string', default: 'lvs0' },
        'vip-dev': { type: 'string' },
        table: { type: 'string' },
        'rule-pref': { type: 'string' },
        'no-routes': { type: 'boolean', default: false },
        batch: { type: 'string' },
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

  let table: number;
  let rulePref: number;
  let batch: number;
  let maxConns: number;
  let sysctls: { def: SysctlDef; value: number }[];
  let ftpPorts: number[] | undefined;
  try {
    if (values['ftp-ports'] !== undefined) {
      ftpPorts = (values['ftp-ports'] as string).split(',').map((p) => intOption(p.trim(), 'ftp port', 0, 1, 65535));
    }
    table = intOption(values.table as string | undefined, 'table', DEFAULT_TABLE, 1, 0xfffffffe);
    rulePref = intOption(values['rule-pref'] as string | undefined, 'rule-pref', DEFAULT_RULE_PREF, 1, 32765);
    batch = intOption(values.batch as string | undefined, 'batch', 64, 1, 1024);
    maxConns = intOption(values['max-conns'] as string | undefined, 'max-conns', DEFAULT_MAX_CONNS, 1, 1 << 24);
    if (values.metrics !== undefined) parseListen(values.metrics as string);
    sysctls = ((values.sysctl ?? []) as string[]).map((a) => {
      try {
        return parseAssignment(a);
      } catch (err) {
        throw new Error(`--sysctl ${a}: ${(err as Error).message}`);
      }
    });
  } catch (err) {
    process.stderr.write(`lvsd: ${(err as Error).message}\n`);
    return 2;
  }

  const sock = socketPath(values.socket as string | undefined);
  const stateFile = join(dirname(sock), `${sock.split('/').pop()}.state`);
  const tunName = values.tun as string;
  const withRoutes = !values['no-routes'];

  mkdirSync(dirname(sock), { recursive: true, mode: 0o755 });
  // Another lvsd with this socket, alive, keeps its files: find out before touching any. The
  // lock covers this network namespace (and two starts at once); the socket, a namespace
  // elsewhere that was given the same --socket.
  const lock = await lockInstance(`lvsd ${sock}`);
  if (lock === undefined || (await socketAlive(sock))) {
    log(`another lvsd is running with control socket ${sock}${lock === undefined ? ' in this network namespace' : ''}`);
    lock?.release();
    return 1;
  }
  const netns = currentNetns();
  if (withRoutes) {
    try {
      await IpRouteNet.cleanupLeftovers(stateFile, netns, log);
    } catch (err) {
      log((err as Error).message);
      lock.release();
      return 1;
    }
  }

  let io: NativeIo;
  try {
    const offload = !values['no-offload'];
    io = NativeIo.open({ tunName, offload, slab: offload ? Slab.forOffload(batch) : new Slab(batch) });
  } catch (err) {
    log(`cannot open TUN device ${tunName}: ${(err as Error).message}`);
    lock.release();
    removeRunDirIfEmpty(dirname(sock));
    return 1;
  }

  let routing: IpRouteNet | undefined;
  let host: HostNet = new NoHostNet();
  if (withRoutes) {
    routing = new IpRouteNet({
      tun: io.tunName,
      table,
      rulePref,
      stateFile,
      netns,
      vipDev: values['vip-dev'] as string | undefined,
      log,
    });
    host = routing;
  }

  const engine = new Engine(io, { maxConns });
  /** lvsd's own devices (the TUN, the firewall-mark input devices), not links to anywhere. */
  const ownDevice = (name: string): boolean => name === io.tunName || name.startsWith(MARK_DEV_PREFIX);
  for (const s of sysctls) s.def.set(engine, s.value);
  if (ftpPorts !== undefined) {
    engine.ftp.ports.clear();
    for (const p of ftpPorts) engine.ftp.ports.add(p);
  }
  const balancer = new Balancer(engine, host, log);
  // One lvsd per socket: another socket (another lvsd, a test lab) keeps its files beside it.
  const procRoot =
    (values['procfs-root'] as string | undefined) ??
    (sock === defaultSocket() ? join(dirname(sock), 'proc') : `${sock}.proc`);
  const procfs = new ProcfsWriter(procRoot, balancer, log);
  const writeProcfs = (): void => {
    try {
      procfs.refresh();
    } catch (err) {
      log(`procfs ${procfs.root}: ${(err as Error).message}`);
    }
  };
  const configFile = values['config-file'] as string | undefined;
  const saveConfigFile = (): void => {
    if (configFile === undefined) return;
    try {
      saveConfig(configFile, balancer, (svc) => health?.owns(svc) ?? false);
    } catch (err) {
      log(`cannot save ${configFile}: ${(err as Error).message}`);
    }
  };
  const server = new ControlServer(balancer, sock, log, saveConfigFile);
  const keepalivedConf = values['keepalived-conf'] as string | undefined;
  // The monitor's table changes take their turn with lvsadm's requests.
  const serialized: HealthTarget = {
    addService: (spec) => server.exclusive(() => balancer.addService(spec)),
    editService: (spec) => server.exclusive(() => balancer.editService(spec)),
    deleteService: (key) => server.exclusive(() => balancer.deleteService(key)),
    addDest: (key, spec) => server.exclusive(() => balancer.addDest(key, spec)),
    editDest: (key, spec) => server.exclusive(() => balancer.editDest(key, spec)),
    deleteDest: (key, dkey) => server.exclusive(() => balancer.deleteDest(key, dkey)),
  };
  const probes = new ProbeThread(log);
  const health =
    keepalivedConf === undefined
      ? undefined
      : new HealthMonitor(serialized, probes.probe, { log, runScript: probes.runScript });
  balancer.health = health;
  /**
   * Read the keepalived configuration and apply it. At start whatever loads is applied (a
   * rejected block is left out, as keepalived does); a reload with any error, or a file that
   * cannot be read, changes nothing: a typo must not take a running service down.
   */
  const loadKeepalived = async (file: string, monitor: HealthMonitor, reload: boolean): Promise<void> => {
    const conf = parseKeepalivedConf(file);
    for (const w of conf.warnings) log(`warning: ${w}`);
    for (const e of conf.errors) log(`error: ${e}`);
    if (conf.unreadable || (reload && conf.errors.length > 0)) {
      log(`${file}: not applied (${conf.errors.length} errors); the running configuration is kept`);
      return;
    }
    await monitor.load(conf);
    const timeouts = conf.timeouts;
    if (timeouts) await server.exclusive(async () => balancer.setTimeouts({ ...balancer.getTimeouts(), ...timeouts }));
    const servers = conf.virtualServers.reduce((n, v) => n + v.realServers.length, 0);
    log(`${file}: ${conf.virtualServers.length} virtual servers, ${servers} real servers`);
  };
  // Routers' frag-needed errors about tunnel packets set the path MTU towards TUN real servers.
  const icmpIn = new RawReceiver(
    IPPROTO_ICMP,
    (buf, off, len) => {
      parseTunnelFragNeeded(buf, off, len, (dst, src, mtu) => balancer.notePathMtu(dst, src, mtu));
    },
    (err) => log(`ICMP receiver: ${(err as Error).message}`),
  );
  // The rate estimators run every 2 s, as the kernel's (ip_vs_est).
  const estTicker = setInterval(() => balancer.estimators.tickAll(), EST_INTERVAL_MS);
  const ticker = setInterval(() => {
    engine.defense.update(availablePages());
    engine.tick();
    engine.replyMtu = smallestLinkMtu(ownDevice);
    writeProcfs();
    // DR/TUN paths: neighbour changes and learnt path MTUs reach the data path within a second.
    balancer.refreshPaths().catch((err: Error) => log(`path refresh: ${err.message}`));
  }, 1000);

  let metrics: Server | undefined;
  /** Stop the timers and servers, close the devices, undo the host changes. */
  const release = async (): Promise<void> => {
    clearInterval(ticker);
    clearInterval(estTicker);
    health?.shutdown();
    await probes.close();
    balancer.sync.close();
    metrics?.close();
    await procfs.remove();
    await server.close().catch(() => {});
    io.close();
    icmpIn.close();
    if (routing) await routing.teardown().catch((err: Error) => log(`teardown: ${err.message}`));
    lock.release();
    removeRunDirIfEmpty(dirname(sock));
  };
  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    await release();
    process.exit(code);
  };

  try {
    if (routing) await routing.setup();
    if (configFile !== undefined) {
      const { applied, failed } = await loadConfig(configFile, balancer, log);
      if (applied + failed > 0) log(`${configFile}: ${applied} commands applied, ${failed} refused`);
      saveConfigFile();
    }
    if (health && keepalivedConf !== undefined) await loadKeepalived(keepalivedConf, health, false);
    await server.listen();
    if (values.metrics !== undefined) metrics = await startMetricsServer(values.metrics as string, balancer);
  } catch (err) {
    log((err as Error).message);
    await release();
    return 1;
  }

  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGHUP', () => {
    if (!health || keepalivedConf === undefined) {
      log('SIGHUP: nothing to reload (no --keepalived-conf)');
      return;
    }
    log(`SIGHUP: reloading ${keepalivedConf}`);
    loadKeepalived(keepalivedConf, health, true).catch((err: Error) => log(`reload: ${err.message}`));
  });
  process.on('uncaughtException', (err) => {
    log(`internal error: ${err.stack ?? err.message}`);
    void shutdown('internal error', 1);
  });

  io.start(
    () => engine.poll(),
    (err) => log(`data path error (packet processing continues): ${(err as Error)?.stack ?? String(err)}`),
  );
  engine.replyMtu = smallestLinkMtu(ownDevice);
  writeProcfs();
  health?.start();
  log(`ready: tun ${io.tunName}, control socket ${sock}${withRoutes ? '' : ' (no routes)'}`);
  // Keep running until a signal arrives.
  return new Promise<number>(() => {});
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
