// keepalived's VRRP, run by lvsd (`lvsd --keepalived-conf FILE` with vrrp_instance blocks): lvsd
// writes the VRRP half of the file (vrrp-conf.ts), starts `keepalived --vrrp --dont-fork` on it,
// follows every state change through the FIFO keepalived writes them to, restarts keepalived if
// it exits while lvsd runs, and stops it (keepalived then releases its addresses and hands over)
// when lvsd stops. If lvsd itself dies, keepalived's check of lvsd's process fails within a
// second and the instance goes to FAULT; the next lvsd stops that orphan before starting its own.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { constants, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';

/** A VRRP instance's or sync group's state, as keepalived last reported it. */
export interface VrrpStateReport {
  kind: 'INSTANCE' | 'GROUP';
  name: string;
  /** MASTER, BACKUP, FAULT or STOP. */
  state: string;
  priority: number;
  /** Date.now() of the report. */
  since: number;
}

export interface KeepalivedFiles {
  conf: string;
  fifo: string;
  pid: string;
  vrrpPid: string;
}

/** The files of one lvsd's keepalived, beside its control socket. */
export function keepalivedFiles(sock: string): KeepalivedFiles {
  return {
    conf: `${sock}.keepalived.conf`,
    fifo: `${sock}.vrrp.fifo`,
    pid: `${sock}.keepalived.pid`,
    vrrpPid: `${sock}.keepalived-vrrp.pid`,
  };
}

/** One line of keepalived's notify FIFO (`INSTANCE "VI_1" MASTER 150`), or null. */
export function parseFifoLine(line: string, now = Date.now()): VrrpStateReport | null {
  const m = /^(INSTANCE|GROUP) "([^"]*)" (\S+)(?: (\d+))?/.exec(line);
  if (m === null) return null;
  return { kind: m[1] as 'INSTANCE' | 'GROUP', name: m[2], state: m[3], priority: Number(m[4] ?? 0), since: now };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stop a keepalived a killed lvsd left running (its pid file names it, and /proc says it is
 * keepalived), so that the new one is the only VRRP speaker for this lvsd's instances.
 */
export async function stopOrphan(files: KeepalivedFiles, log: (msg: string) => void): Promise<void> {
  let pid = Number.NaN;
  try {
    pid = Number(readFileSync(files.pid, 'utf8').trim());
  } catch {
    return;
  }
  let comm = '';
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    // gone already
  }
  if (Number.isInteger(pid) && pid > 1 && comm === 'keepalived') {
    log(`stopping the keepalived (pid ${pid}) a previous lvsd left running`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  for (const f of [files.pid, files.vrrpPid]) rmSync(f, { force: true });
}

export class KeepalivedVrrp {
  /** The last report of every instance and sync group, by "INSTANCE name" / "GROUP name". */
  readonly states = new Map<string, VrrpStateReport>();
  private child: ChildProcess | null = null;
  private fifoIn: Socket | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly program: string,
    private readonly files: KeepalivedFiles,
    private readonly onState: (r: VrrpStateReport) => void,
    private readonly log: (msg: string) => void,
  ) {}

  /** Write the configuration, open the FIFO and start keepalived. */
  start(conf: string): void {
    writeFileSync(this.files.conf, conf, { mode: 0o600 });
    rmSync(this.files.fifo, { force: true });
    execFileSync('mkfifo', ['-m', '0600', this.files.fifo]);
    // Read and write: the open never blocks, and keepalived's restarts never end the stream.
    const fd = openSync(this.files.fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const sock = new Socket({ fd, readable: true, writable: false });
    let pending = '';
    sock.on('data', (d: Buffer) => {
      pending += d.toString('utf8');
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        this.report(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
    });
    sock.on('error', (err) => this.log(`keepalived fifo: ${err.message}`));
    this.fifoIn = sock;
    this.spawn();
  }

  private report(line: string): void {
    const r = parseFifoLine(line);
    if (r === null) return;
    this.states.set(`${r.kind} ${r.name}`, r);
    this.log(`vrrp: ${r.kind.toLowerCase()} ${r.name} is ${r.state}`);
    this.onState(r);
  }

  private spawn(): void {
    const f = this.files;
    const args = ['--vrrp', '--dont-fork', '--log-console', '--no-syslog', '-f', f.conf, '-p', f.pid, '-r', f.vrrpPid];
    const child = spawn(this.program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const relay = (d: Buffer) => {
      for (const line of d.toString('utf8').split('\n')) {
        // keepalived's console lines start with the date: the message is what follows.
        const msg = line.replace(/^\w{3} \w{3} +\d+ [\d:]+ \d{4}: /, '').trim();
        if (msg !== '') this.log(`keepalived: ${msg}`);
      }
    };
    child.stdout?.on('data', relay);
    child.stderr?.on('data', relay);
    child.on('error', (err) => this.log(`keepalived: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      this.log(`keepalived exited (${signal ?? code}); starting it again in 1 s`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (!this.stopping) this.spawn();
      }, 1000);
    });
  }

  /** A changed configuration: keepalived reads it again on SIGHUP (its own reload). */
  reload(conf: string): void {
    writeFileSync(this.files.conf, conf, { mode: 0o600 });
    this.child?.kill('SIGHUP');
  }

  /** Stop keepalived (it releases its addresses and tells the peers) and remove the files. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.fifoIn?.destroy();
    const f = this.files;
    for (const file of [f.conf, f.fifo, f.pid, f.vrrpPid]) rmSync(file, { force: true });
  }
}
