// lvsd's wiring: the TUN and the packet engine, the Balancer and the host's routing, the control
// socket, the /proc files, the metrics endpoint, the health monitor, the timers, the signals and
// the shutdown, built from parsed options (cli/lvsd.ts parses argv and starts a Daemon).
//
// Start order matters. The instance lock and the check that nothing answers on the control
// socket come first: another lvsd with this socket, alive, keeps its files, so nothing may be
// touched before (not even a killed run's leftovers, which are removed next). Then the TUN is
// opened, the pieces are built, and only once the host is set up, the configuration loaded and
// the socket listening does the data path start. A start that fails undoes what it did.

import { mkdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { HighAvailability } from '../cluster/ha';
import { keepalivedFiles } from '../cluster/keepalived';
import { buildVrrpConf, type VrrpConf } from '../cluster/vrrp-conf';
import { type DataPlane, EnginePlane } from '../core/data-plane';
import { Engine } from '../core/engine';
import { Balancer } from '../ctl/balancer';
import { EST_INTERVAL_MS } from '../ctl/estimator';
import { type HostNet, NoHostNet } from '../ctl/host-net';
import { type InstanceLock, lockInstance } from '../ctl/instance-lock';
import { findProgram } from '../ctl/ip-cmd';
import { parseTunnelFragNeeded, parseTunnelPacketTooBig, smallestLinkMtu } from '../ctl/pmtu';
import { defaultSocket, type ServiceKey, socketPath } from '../ctl/protocol';
import { IpRouteNet } from '../ctl/routing';
import { ControlServer, socketAlive } from '../ctl/server';
import type { SysctlDef } from '../ctl/sysctl';
import { type KeepalivedConf, keepalivedConfOf, readKeepalivedTree } from '../health/keepalived-conf';
import { HealthMonitor, type HealthTarget } from '../health/monitor';
import { ProbeThread } from '../health/probe-thread';
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from '../ip-vs';
import { startMetricsServer } from '../metrics/server';
import { attachIpipGso, closeFd, MARK_DEV_PREFIX, NativeIo } from '../native/native-io';
import { Slab } from '../native/packet-io';
import { RawReceiver } from '../native/raw-receiver';
import { MultiPlane } from '../plane/multi-plane';
import { ProcfsWriter } from '../procfs/writer';
import { currentNetns, type NetnsId, removeRunDirIfEmpty } from '../run-dir';

/** Packet engines lvsd runs without --workers: one per CPU, up to this many. */
const MAX_DEFAULT_WORKERS = 16;

/** The engine's timer wheel, defense strategies, /proc files and DR/TUN paths advance this often. */
const TICK_MS = 1000;

/**
 * Where `--config-file` keeps the table (cli/config-file.ts: lvsadm's syntax, which the control
 * plane does not parse itself).
 */
export interface ConfigStore {
  readonly path: string;
  /** Apply the file; returns how many commands were applied and how many refused. */
  load(b: Balancer, log: (msg: string) => void): Promise<{ applied: number; failed: number }>;
  /** Rewrite the file atomically from the table, leaving out the services `skip` names. */
  save(b: Balancer, skip: (svc: ServiceKey) => boolean): void;
}

/** lvsd's options, parsed and checked (cli/lvsd.ts's --help says what each does). */
export interface DaemonOptions {
  /** --socket; undefined or '': $LVS_SOCKET, else the namespace's default (socketPath). */
  socket: string | undefined;
  tun: string;
  vipDev: string | undefined;
  table: number;
  rulePref: number;
  /** --announce-table: where usable VIPs get a route for a routing daemon to announce. */
  announceTable: number | undefined;
  /** Install routes, rules, proxy-ARP entries and sysctls (false: --no-routes). */
  routes: boolean;
  batch: number;
  /**
   * Packet engines (threads, TUN queues); 1: the engine runs on the main thread. Undefined: one
   * per CPU, and one on the main thread where several cannot run (no eBPF steering).
   */
  workers: number | undefined;
  maxConns: number;
  offload: boolean;
  /** --ftp-ports; undefined keeps the FTP helper's default ports. */
  ftpPorts: number[] | undefined;
  sysctls: { def: SysctlDef; value: number }[];
  procfsRoot: string | undefined;
  /** --metrics ADDR:PORT, already checked with parseListen. */
  metrics: string | undefined;
  keepalivedConf: string | undefined;
  config: ConfigStore | undefined;
}

/** Free memory in 4 KiB pages (MemAvailable), for the defense strategies' amemthresh. */
function availablePages(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Math.floor(Number(m[1]) / 4) : Number.MAX_SAFE_INTEGER;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

/** What Daemon.start holds before the pieces are built: the lock, the TUN, where the files go. */
interface Claimed {
  sock: string;
  stateFile: string;
  netns: NetnsId;
  lock: InstanceLock;
  /** The one engine's TUN and sockets, or the engines in their threads (--workers). */
  data: { io: NativeIo } | { multi: MultiPlane };
}

export class Daemon {
  private readonly sock: string;
  private readonly lock: InstanceLock;
  /** The TUN's name (the kernel's). */
  private readonly tunName: string;
  /** With one engine: it and its I/O (on this thread); undefined with --workers above 1. */
  private readonly io: NativeIo | undefined;
  /** The IP-in-IP segmentation program's link fd (native/src/encap.c), or -1. */
  private ipipLink = -1;
  private readonly engine: Engine | undefined;
  private readonly multi: MultiPlane | undefined;
  /** The control plane's only way to the engine (core/data-plane.ts). */
  private readonly plane: DataPlane;
  private readonly balancer: Balancer;
  private readonly routing: IpRouteNet | undefined;
  private readonly procfs: ProcfsWriter;
  private readonly server: ControlServer;
  private readonly probes: ProbeThread;
  private readonly health: HealthMonitor | undefined;
  private readonly icmpIn: RawReceiver;
  private readonly icmp6In: RawReceiver;
  private readonly estTicker: NodeJS.Timeout;
  private readonly ticker: NodeJS.Timeout;
  private metrics: Server | undefined;
  /** keepalived's VRRP, when the keepalived configuration has vrrp_instance blocks. */
  private ha: HighAvailability | undefined;
  private stopping = false;

  /**
   * Start lvsd: resolves with the running daemon, or undefined when it cannot start (the reason
   * logged, everything it did undone). Once running it handles SIGINT, SIGTERM (stop), SIGHUP
   * (reload --keepalived-conf) and uncaught exceptions (stop, exit code 1) itself.
   */
  static async start(opts: DaemonOptions, log: (msg: string) => void): Promise<Daemon | undefined> {
    const sock = socketPath(opts.socket);
    const stateFile = join(dirname(sock), `${sock.split('/').pop()}.state`);

    mkdirSync(dirname(sock), { recursive: true, mode: 0o755 });
    // Another lvsd with this socket, alive, keeps its files: find out before touching any. The
    // lock covers this network namespace (and two starts at once); the socket, a namespace
    // elsewhere that was given the same --socket.
    const lock = await lockInstance(`lvsd ${sock}`);
    if (lock === undefined || (await socketAlive(sock))) {
      log(
        `another lvsd is running with control socket ${sock}${lock === undefined ? ' in this network namespace' : ''}`,
      );
      lock?.release();
      return undefined;
    }
    const netns = currentNetns();
    if (opts.routes) {
      try {
        await IpRouteNet.cleanupLeftovers(stateFile, netns, log);
      } catch (err) {
        log((err as Error).message);
        lock.release();
        return undefined;
      }
    }

    let data: Claimed['data'] | undefined;
    try {
      const workers = opts.workers ?? Math.min(availableParallelism(), MAX_DEFAULT_WORKERS);
      if (workers > 1) {
        try {
          data = {
            multi: new MultiPlane({
              tunName: opts.tun,
              offload: opts.offload,
              ipipGso: opts.offload && opts.routes,
              batch: opts.batch,
              maxConns: opts.maxConns,
              workers,
              log,
            }),
          };
        } catch (err) {
          if (opts.workers !== undefined) throw err;
          log(`cannot run ${workers} packet engines (${(err as Error).message}): running one`);
        }
      }
      if (data === undefined) {
        const slab = opts.offload ? Slab.forOffload(opts.batch) : new Slab(opts.batch);
        data = { io: NativeIo.open({ tunName: opts.tun, offload: opts.offload, slab }) };
      }
    } catch (err) {
      log(`cannot open TUN device ${opts.tun}: ${(err as Error).message}`);
      lock.release();
      removeRunDirIfEmpty(dirname(sock));
      return undefined;
    }

    const daemon = new Daemon(opts, log, { sock, stateFile, netns, lock, data });
    return (await daemon.run()) ? daemon : undefined;
  }

  /** Build the pieces around the claimed TUN; the timers start here, the data path in run(). */
  private constructor(
    private readonly opts: DaemonOptions,
    private readonly log: (msg: string) => void,
    claimed: Claimed,
  ) {
    const { sock, data } = claimed;
    this.sock = sock;
    this.lock = claimed.lock;
    let plane: DataPlane;
    if ('io' in data) {
      this.io = data.io;
      this.engine = new Engine(data.io, { maxConns: opts.maxConns });
      plane = new EnginePlane(this.engine);
      this.tunName = data.io.tunName;
    } else {
      this.multi = data.multi;
      plane = data.multi;
      this.tunName = data.multi.tunName;
    }
    this.plane = plane;

    let host: HostNet = new NoHostNet();
    if (opts.routes) {
      this.routing = new IpRouteNet({
        tun: this.tunName,
        table: opts.table,
        rulePref: opts.rulePref,
        announceTable: opts.announceTable,
        stateFile: claimed.stateFile,
        netns: claimed.netns,
        vipDev: opts.vipDev,
        log,
      });
      host = this.routing;
    }

    // TUN mode hands GSO packets to the kernel to segment when lvsd's ingress program is on its
    // TUN (native/src/encap.c); they re-enter with the director's own source address, which
    // the TUN's accept_local (set with the routes) admits.
    if (this.engine !== undefined && opts.offload && opts.routes) {
      try {
        this.ipipLink = attachIpipGso(this.tunName);
        this.engine.ipipGso = true;
      } catch (err) {
        log(`IP-in-IP segmentation stays in lvsd: ${(err as Error).message}`);
      }
    }

    for (const s of opts.sysctls) plane.setSetting(s.def.setting, s.value);
    if (opts.ftpPorts !== undefined) plane.setFtpPorts(opts.ftpPorts);
    const balancer = new Balancer(plane, host, log);
    this.balancer = balancer;
    // One lvsd per socket: another socket (another lvsd, a test lab) keeps its files beside it.
    const procRoot = opts.procfsRoot ?? (sock === defaultSocket() ? join(dirname(sock), 'proc') : `${sock}.proc`);
    this.procfs = new ProcfsWriter(procRoot, balancer, log);
    const server = new ControlServer(balancer, sock, log, () => this.saveConfig());
    this.server = server;
    // The monitor's table changes take their turn with lvsadm's requests.
    const serialized: HealthTarget = {
      addService: (spec) => server.exclusive(() => balancer.addService(spec)),
      editService: (spec) => server.exclusive(() => balancer.editService(spec)),
      deleteService: (key) => server.exclusive(() => balancer.deleteService(key)),
      addDest: (key, spec) => server.exclusive(() => balancer.addDest(key, spec)),
      editDest: (key, spec) => server.exclusive(() => balancer.editDest(key, spec)),
      deleteDest: (key, dkey) => server.exclusive(() => balancer.deleteDest(key, dkey)),
    };
    this.probes = new ProbeThread(log);
    this.health =
      opts.keepalivedConf === undefined
        ? undefined
        : new HealthMonitor(serialized, this.probes.probe, { log, runScript: this.probes.runScript });
    balancer.health = this.health;
    // Routers' frag-needed errors about tunnel packets set the path MTU towards TUN real servers.
    this.icmpIn = new RawReceiver(
      IPPROTO_ICMP,
      (buf, off, len) => {
        parseTunnelFragNeeded(buf, off, len, (dst, src, mtu) => balancer.notePathMtu(dst, src, mtu));
      },
      (err) => log(`ICMP receiver: ${(err as Error).message}`),
    );
    this.icmp6In = new RawReceiver(
      IPPROTO_ICMPV6,
      (buf, off, len) => {
        parseTunnelPacketTooBig(buf, off, len, (dst, src, mtu) => balancer.notePathMtu6(dst, src, mtu));
      },
      (err) => log(`ICMPv6 receiver: ${(err as Error).message}`),
      true,
    );
    // The rate estimators run every 2 s, as the kernel's (ip_vs_est).
    this.estTicker = setInterval(() => balancer.estimators.tickAll(), EST_INTERVAL_MS);
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /** Once a second. */
  private tick(): void {
    this.plane.tick(availablePages());
    this.plane.setReplyMtu(smallestLinkMtu(this.ownDevice));
    this.writeProcfs();
    // DR/TUN paths: neighbour changes and learnt path MTUs reach the data path within a second.
    this.balancer.refreshPaths().catch((err: Error) => this.log(`path refresh: ${err.message}`));
  }

  /** lvsd's own devices (the TUN, the firewall-mark input devices), not links to anywhere. */
  private readonly ownDevice = (name: string): boolean => name === this.tunName || name.startsWith(MARK_DEV_PREFIX);

  private writeProcfs(): void {
    try {
      this.procfs.refresh();
    } catch (err) {
      this.log(`procfs ${this.procfs.root}: ${(err as Error).message}`);
    }
  }

  private saveConfig(): void {
    const config = this.opts.config;
    if (config === undefined) return;
    try {
      config.save(this.balancer, (svc) => this.health?.owns(svc) ?? false);
    } catch (err) {
      this.log(`cannot save ${config.path}: ${(err as Error).message}`);
    }
  }

  /**
   * Set up the host, load the configuration, listen, then start the data path. False when a
   * step fails (logged, everything undone).
   */
  private async run(): Promise<boolean> {
    const { opts, log, health } = this;
    try {
      if (this.routing) await this.routing.setup();
      // Both halves of the keepalived configuration come from one reading of the file.
      const file = opts.keepalivedConf;
      const keepalived = file === undefined ? undefined : { file, ...this.readKeepalived(file) };
      if (keepalived) this.ha = this.prepareHa(keepalived.file, keepalived.vrrp);
      // keepalived places its virtual addresses: lvsd must not answer for them itself.
      if (this.ha && this.routing) this.routing.manage(this.ha.managedVips());
      if (opts.config !== undefined) {
        const { applied, failed } = await opts.config.load(this.balancer, log);
        if (applied + failed > 0) log(`${opts.config.path}: ${applied} commands applied, ${failed} refused`);
        this.saveConfig();
      }
      if (health && keepalived) await this.loadKeepalived(keepalived.file, keepalived.lvs, health, false);
      await this.ha?.start();
      await this.server.listen();
      if (opts.metrics !== undefined) this.metrics = await startMetricsServer(opts.metrics, this.balancer);
    } catch (err) {
      log((err as Error).message);
      await this.release();
      return false;
    }

    process.on('SIGINT', () => void this.stop('SIGINT', 0));
    process.on('SIGTERM', () => void this.stop('SIGTERM', 0));
    process.on('SIGHUP', () => this.reload());
    process.on('uncaughtException', (err) => {
      log(`internal error: ${err.stack ?? err.message}`);
      void this.stop('internal error', 1);
    });

    const { io, engine } = this;
    io?.start(
      () => engine!.poll(),
      (err) => log(`data path error (packet processing continues): ${(err as Error)?.stack ?? String(err)}`),
    );
    this.plane.setReplyMtu(smallestLinkMtu(this.ownDevice));
    this.writeProcfs();
    health?.start();
    const engines = this.multi === undefined ? '' : `, ${this.plane.engines} engines`;
    log(`ready: tun ${this.tunName}${engines}, control socket ${this.sock}${opts.routes ? '' : ' (no routes)'}`);
    return true;
  }

  /**
   * Apply the LVS half of keepalived configuration `file`. At start whatever loads is applied (a
   * rejected block is left out, as keepalived does); a reload with any error, or a file that
   * cannot be read, changes nothing: a typo must not take a running service down.
   */
  private async loadKeepalived(
    file: string,
    conf: KeepalivedConf,
    monitor: HealthMonitor,
    reload: boolean,
  ): Promise<void> {
    const { log, balancer } = this;
    for (const w of conf.warnings) log(`warning: ${w}`);
    for (const e of conf.errors) log(`error: ${e}`);
    if (conf.unreadable || (reload && conf.errors.length > 0)) {
      log(`${file}: not applied (${conf.errors.length} errors); the running configuration is kept`);
      return;
    }
    await monitor.load(conf);
    const timeouts = conf.timeouts;
    if (timeouts) {
      await this.server.exclusive(async () => balancer.setTimeouts({ ...balancer.getTimeouts(), ...timeouts }));
    }
    const servers = conf.virtualServers.reduce((n, v) => n + v.realServers.length, 0);
    log(`${file}: ${conf.virtualServers.length} virtual servers, ${servers} real servers`);
  }

  /**
   * keepalived's VRRP for the vrrp_instance blocks of `file` (cluster/ha.ts), or undefined when
   * it has none. Throws when it has some and keepalived is not installed.
   */
  private prepareHa(file: string, conf: VrrpConf): HighAvailability | undefined {
    if (conf.instances.length === 0) return undefined;
    const program = findProgram('keepalived');
    if (program === undefined) {
      throw new Error(
        `${file} has vrrp_instance blocks, but keepalived is not installed (Debian package keepalived; scripts/setup.sh installs it)`,
      );
    }
    for (const w of conf.warnings) this.log(`warning: ${w}`);
    const files = keepalivedFiles(this.sock);
    const ha = new HighAvailability(
      conf,
      program,
      files,
      this.balancer.sync,
      (fn) => this.server.exclusive(fn),
      this.log,
    );
    this.balancer.vrrp = ha;
    return ha;
  }

  /** Both halves of keepalived configuration `file`, from one reading (includes followed). */
  private readKeepalived(file: string): { lvs: KeepalivedConf; vrrp: VrrpConf } {
    const read = readKeepalivedTree(file);
    const fifo = keepalivedFiles(this.sock).fifo;
    const vrrp = buildVrrpConf(read.tree, { pid: process.pid, fifo, killPath: findProgram('kill') ?? '/bin/kill' });
    return { lvs: keepalivedConfOf(read), vrrp };
  }

  /** SIGHUP: reload --keepalived-conf, applying only the difference. */
  reload(): void {
    const file = this.opts.keepalivedConf;
    if (!this.health || file === undefined) {
      this.log('SIGHUP: nothing to reload (no --keepalived-conf)');
      return;
    }
    this.log(`SIGHUP: reloading ${file}`);
    const { lvs, vrrp: conf } = this.readKeepalived(file);
    this.loadKeepalived(file, lvs, this.health, true).catch((err: Error) => this.log(`reload: ${err.message}`));
    if (this.ha !== undefined) {
      for (const w of conf.warnings) this.log(`warning: ${w}`);
      if (this.ha.reload(conf)) {
        this.routing?.manage(this.ha.managedVips());
        this.log('SIGHUP: the VRRP half changed: keepalived reloads it');
      }
    } else if (conf.instances.length > 0) {
      this.log('SIGHUP: vrrp_instance blocks appeared: restart lvsd to start keepalived for them');
    }
  }

  /**
   * Stop (logging `why`), remove everything lvsd installed, and end the process with `code`.
   * Once: a call while stopping does nothing.
   */
  async stop(why: string, code: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log(`stopping (${why})`);
    await this.release();
    process.exit(code);
  }

  /** Stop the timers and servers, close the devices, undo the host changes. */
  private async release(): Promise<void> {
    const { log } = this;
    // First: keepalived hands the addresses over while this director still forwards.
    await this.ha?.stop().catch((err: Error) => log(`keepalived: ${err.message}`));
    clearInterval(this.ticker);
    clearInterval(this.estTicker);
    this.health?.shutdown();
    await this.probes.close();
    this.balancer.sync.close();
    this.metrics?.close();
    await this.procfs.remove();
    await this.server.close().catch(() => {});
    if (this.ipipLink >= 0) closeFd(this.ipipLink);
    this.io?.close();
    await this.multi?.close().catch((err: Error) => log(`engines: ${err.message}`));
    this.icmpIn.close();
    this.icmp6In.close();
    if (this.routing) await this.routing.teardown().catch((err: Error) => log(`teardown: ${err.message}`));
    this.lock.release();
    removeRunDirIfEmpty(dirname(this.sock));
  }
}
