// The benchmark's namespace labs: netns/lab.sh's nat, dr and tun topologies under this run's
// prefix, plus what the benchmark adds inside them (client routes, forwarding, RPS steering) and
// the servers on the first real server (nginx, a TCP echo server, a UDP sink, lvs-realserver).
//
//   nat lab  client 192.168.0.2 ── director cli0 .254 / br0 172.16.0.254 ── rs1 172.16.0.1
//            paths fwd (to 172.16.0.1), nat (VIP 10.1.0.1, nftables dnat), haproxy (listens on
//            192.168.0.254), lvs-nat (VIP 192.168.0.1); over IPv6 (lab.sh IPV6=1: client
//            2001:db8::2, director 2001:db8::fe, rs1 2001:db8:10::1) nat6 (VIP 2001:db8:f0::1,
//            nftables ip6 dnat) and lvs-nat6 (VIP 2001:db8::1)
//   dr lab   one LAN: client .2, director .254, rs1 192.168.0.11 (VIP on lo)       path lvs-dr
//   tun lab  client LAN, director .254, router .253 ── rs1 172.16.0.1 (VIP on a TUN) path lvs-tun
//
// Only rs1 serves; rs2 exists (the lab builds it) but no service points at it. Each path run
// sends from its own client address 192.168.0.100.. (freshClientSource).

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { exec, firstLines, nsRun, type Proc, type ProcRegistry, sleep, waitListening } from './proc';

export type LabKind = 'nat' | 'dr' | 'tun';

export const VIP = '192.168.0.1';
export const KNAT_VIP = '10.1.0.1';
export const DIR_ADDR = '192.168.0.254';
/** The nat lab's IPv6 side (netns/lab.sh IPV6=1): lvs-nat6's VIP, nat6's, the director, rs1. */
export const VIP6 = '2001:db8::1';
export const KNAT_VIP6 = '2001:db8:f0::1';
export const DIR_ADDR6 = '2001:db8::fe';
export const RS6_ADDR = '2001:db8:10::1';
/** The lab's client address; each path run sends from a fresh one (freshClientSource). */
export const CLIENT_ADDR = '192.168.0.2';
export const PORT = { iperf: 5201, http: 80, echo: 7007, udp: 9000 } as const;

/** The real server each lab's paths send to. */
export const RS_ADDR: Record<LabKind, string> = { nat: '172.16.0.1', dr: '192.168.0.11', tun: '172.16.0.1' };

/** The director's interfaces that receive traffic (RPS steering applies to them). */
const DIR_INGRESS: Record<LabKind, string[]> = { nat: ['cli0', 'rs1p', 'rs2p'], dr: ['eth0'], tun: ['eth0'] };

export interface LabEnv {
  root: string;
  labScript: string;
  procs: ProcRegistry;
  steer: boolean;
  /** The compiled scripts/bench/udp-load.c. */
  udpLoad: string;
  log: (msg: string) => void;
}

/** The UDP sink on rs1: a running count of datagrams, read with SIGUSR1. */
export class Sink {
  constructor(private readonly proc: Proc) {}

  get alive(): boolean {
    return !this.proc.exited;
  }

  async count(timeoutMs = 2000): Promise<number> {
    if (this.proc.exited) throw new Error(`udp sink exited: ${firstLines(this.proc.output)}`);
    const from = this.proc.output.length;
    this.proc.child.kill('SIGUSR1');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /count (\d+)\n/.exec(this.proc.output.slice(from));
      if (m) return Number(m[1]);
      if (Date.now() > deadline) throw new Error('udp sink did not report its count');
      await sleep(5);
    }
  }
}

export class Lab {
  readonly client: string;
  readonly dir: string;
  readonly rs1: string;
  readonly tmp: string;
  sink: Sink | undefined;
  realserver: Proc | undefined;
  /** The client's source address for the current path run. */
  clientAddr = CLIENT_ADDR;
  private isUp = false;
  private sources = 0;

  constructor(
    readonly kind: LabKind,
    readonly prefix: string,
    tmpRoot: string,
    private readonly env: LabEnv,
  ) {
    this.client = `${prefix}-client`;
    this.dir = `${prefix}-dir`;
    this.rs1 = `${prefix}-rs1`;
    this.tmp = join(tmpRoot, kind);
    mkdirSync(this.tmp, { recursive: true });
  }

  get rsAddr(): string {
    return RS_ADDR[this.kind];
  }

  /** Build the lab and start its servers. Throws (after removing what it built) on failure. */
  async up(udpNeeded: boolean): Promise<void> {
    // The nat lab carries IPv6 too, for nat6 and lvs-nat6.
    const r = await exec('env', ['IPV6=1', 'bash', this.env.labScript, 'up', this.prefix, this.kind], 30_000);
    if (r.code !== 0) throw new Error(`lab.sh up ${this.kind} failed: ${firstLines(r.stderr)}`);
    this.isUp = true;
    const sysctl = (ns: string, kv: string) => nsRun(ns, ['sysctl', '-qw', kv]);
    await sysctl(this.dir, 'net.ipv4.ip_forward=1');
    // wrk opens tens of thousands of connections a run and the client closes too, so its ports
    // sit in TIME_WAIT: without reuse, connect() soon crawls through an exhausted port range
    // (measured: 14k conn/s falling to 90 by the fifth run).
    await sysctl(this.client, 'net.ipv4.ip_local_port_range=1024 65535');
    await sysctl(this.client, 'net.ipv4.tcp_tw_reuse=1');
    if (this.kind === 'nat') {
      // fwd reaches the real server's own address, nat its VIP, both routed by the director.
      await nsRun(this.client, ['ip', 'route', 'add', '172.16.0.0/24', 'via', DIR_ADDR]);
      await nsRun(this.client, ['ip', 'route', 'add', `${KNAT_VIP}/32`, 'via', DIR_ADDR]);
      // nat6 likewise over IPv6 (lvs-nat6's VIP is on the client's LAN: lvsd answers for it).
      await nsRun(this.client, ['ip', '-6', 'route', 'add', `${KNAT_VIP6}/128`, 'via', DIR_ADDR6]);
      await sysctl(this.dir, 'net.ipv6.conf.all.forwarding=1');
    }
    if (this.env.steer) await this.steerDirector();
    await this.startServers(udpNeeded);
  }

  /**
   * Give the client a source address no earlier path run has used, and make it the source of
   * every route the paths take. Each run then starts without TCP state from the others: the
   * TIME_WAIT sockets of the client and the real server, and the conntrack entries of kernel NAT
   * (kept 120 s, also for forwarded flows while the nat table exists) would otherwise collide
   * with reused ports (measured: kernel NAT conn/s halving from one run to the next).
   */
  async freshClientSource(): Promise<string> {
    if (this.sources >= 150) throw new Error('out of client source addresses');
    const addr = `192.168.0.${100 + this.sources++}`;
    const c = this.client;
    await nsRun(c, ['ip', 'addr', 'add', `${addr}/32`, 'dev', 'eth0']);
    await nsRun(c, [
      'ip',
      'route',
      'replace',
      '192.168.0.0/24',
      'dev',
      'eth0',
      'proto',
      'kernel',
      'scope',
      'link',
      'src',
      addr,
    ]);
    if (this.kind === 'nat') {
      await nsRun(c, ['ip', 'route', 'replace', '172.16.0.0/24', 'via', DIR_ADDR, 'src', addr]);
      await nsRun(c, ['ip', 'route', 'replace', `${KNAT_VIP}/32`, 'via', DIR_ADDR, 'src', addr]);
      // And an IPv6 source of its own (2001:db8::64 ...), for the IPv6 paths.
      const addr6 = `2001:db8::${(100 + this.sources - 1).toString(16)}`;
      await nsRun(c, ['ip', '-6', 'addr', 'add', `${addr6}/128`, 'dev', 'eth0', 'nodad']);
      await nsRun(c, ['ip', '-6', 'route', 'replace', '2001:db8::/64', 'dev', 'eth0', 'src', addr6]);
      await nsRun(c, ['ip', '-6', 'route', 'replace', `${KNAT_VIP6}/128`, 'via', DIR_ADDR6, 'src', addr6]);
    }
    this.clientAddr = addr;
    return addr;
  }

  /**
   * The director's receive processing goes to CPUs 1.. (RPS on its ingress interfaces), the
   * load generators run on CPU 0: otherwise a veth hands each packet's whole forwarding path to
   * the sender's CPU and every kernel path measures the generator, not the director.
   */
  private async steerDirector(): Promise<void> {
    const n = cpus().length;
    if (n < 2) return;
    const mask = ((2 ** Math.min(n, 32) - 1) & ~1) >>> 0;
    const script = DIR_INGRESS[this.kind]
      .map((dev) => `for f in /sys/class/net/${dev}/queues/rx-*/rps_cpus; do echo ${mask.toString(16)} > $f; done`)
      .join('; ');
    await nsRun(this.dir, ['sh', '-c', script]);
  }

  private async startServers(udpNeeded: boolean): Promise<void> {
    const { procs, root } = this.env;
    const node = process.execPath;
    if (this.kind !== 'nat') {
      this.realserver = procs.spawn(
        this.rs1,
        [
          node,
          join(root, 'dist/cli/lvs-realserver.js'),
          this.kind,
          '--vip',
          VIP,
          '--state',
          join(this.tmp, 'rs1.state'),
        ],
        `lvs-realserver ${this.kind}`,
      );
      await this.realserver.waitFor('ready', 15_000);
    }
    const nginxDir = join(this.tmp, 'nginx');
    mkdirSync(nginxDir, { recursive: true });
    writeFileSync(join(nginxDir, 'nginx.conf'), nginxConf(nginxDir));
    const nginx = procs.spawn(this.rs1, ['nginx', '-p', nginxDir, '-c', join(nginxDir, 'nginx.conf')], 'nginx');
    const echo = procs.spawn(
      this.rs1,
      [node, join(root, 'dist-bench/bench/net/echo-server.js'), String(PORT.echo)],
      'echo',
    );
    await Promise.all([waitListening(this.rs1, 'tcp', PORT.http, nginx), echo.waitFor('listening')]);
    if (udpNeeded) {
      // The sink's own lifetime bound: longer than any run may take.
      const p = procs.spawn(this.rs1, [this.env.udpLoad, 'sink', String(PORT.udp), '1800'], 'udp sink');
      await p.waitFor('ready');
      this.sink = new Sink(p);
    }
  }

  async down(): Promise<void> {
    if (!this.isUp) return;
    this.isUp = false;
    if (this.realserver) await this.realserver.stop('SIGTERM', 3000);
    const r = await exec('bash', [this.env.labScript, 'down', this.prefix], 30_000);
    if (r.code !== 0) this.env.log(`lab.sh down ${this.prefix}: ${firstLines(r.stderr)}`);
  }
}

function nginxConf(dir: string): string {
  return `# written by npm run bench
daemon off;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${PORT.http} backlog=4096;
    listen [::]:${PORT.http} backlog=4096;
    location / { return 200 "ok\\n"; }
  }
}
`;
}
