// lvs-realserver: prepares a real server for the forwarding methods in which the real server owns
// the virtual IP itself (DR, IP-in-IP), stays in the foreground, and undoes everything on exit.

import { dirname } from 'node:path';
import { type InstanceLock, lockInstance } from '../ctl/instance-lock';
import { UsageError } from '../errors';
import { loadNative } from '../native/addon';
import { closeFd, openTun } from '../native/native-io';
import { parseRealserverArgs, type RealserverCommand } from '../realserver/args';
import { DecapLoop } from '../realserver/decap-loop';
import { setupDr } from '../realserver/dr-setup';
import {
  HostChanges,
  type HostLog,
  type HostOps,
  type HostState,
  readState,
  removeStateFile,
  undoState,
} from '../realserver/host-changes';
import { SystemHostOps } from '../realserver/host-ops';
import { decapInterfaces, KernelDecap } from '../realserver/kernel-decap';
import { setupTun } from '../realserver/tun-setup';
import { currentNetns, type NetnsId, recordOrigin, removeRunDirIfEmpty } from '../run-dir';
import { ipToU32 } from '../wire/addr';
import { ipv6Words } from '../wire/addr6';

const VERSION = '0.1.0';

const HELP = `Usage: lvs-realserver dr  --vip A.B.C.D|IPV6[,...] [--state FILE]
       lvs-realserver tun --vip A.B.C.D|IPV6[,...] [--dev NAME] [--state FILE]
       lvs-realserver dr|tun --down [--state FILE]

lvs-realserver prepares this host to be a real server behind an lvs-ts (or kernel IPVS)
director, for the forwarding methods in which the real server owns the virtual IP itself:

  dr    direct routing (lvsadm -g): puts each VIP as /32 (IPv6: /128) on lo and sets
        net.ipv4.conf.all.arp_ignore=1 and net.ipv4.conf.all.arp_announce=2, so this host
        accepts packets for the VIP but never answers ARP for it (the director does); the
        kernel never answers neighbour discovery for an IPv6 address on lo from another
        interface, so an IPv6 VIP needs nothing more.
  tun   IP-in-IP tunnelling (lvsadm -i), without the kernel's ipip module: creates a TUN
        device that owns the VIPs, turns rp_filter off on it and on all, and decapsulates
        each IP-in-IP datagram whose inner destination is a VIP: in the kernel, by an eBPF
        program at the ingress of every interface (what it cannot take: fragments, outer
        options, ECN CE), else in user space, writing the inner packet into the TUN; an IPv6
        VIP's IPv6-in-IPv6 datagrams in user space. This host answers the client directly,
        from the VIP. Prints its packet counters on exit.

It stays in the foreground, prints each change it makes, and undoes all of them on SIGINT,
SIGTERM or SIGHUP. The changes are recorded in a state file, so that --down (or the next
start) undoes what a killed run left behind.

Options:
  --vip A.B.C.D[,...]  the virtual IP addresses, IPv4 or IPv6 (repeatable)
  --dev NAME           tun: the TUN device to create (default: lvsrs0)
  --user-space         tun: decapsulate in user space only, loading no eBPF program
  --state FILE         where the changes are recorded (default: realserver-<mode>.state in
                       the network namespace's run-time directory: /run/lvs/ in the host's
                       namespace, /run/lvs/netns-<inode>/ in any other, so real servers in
                       two namespaces never meet)
  --down               undo what the state file records, then exit
  -h, --help           show this help
  -v, --version        show the version

Needs root (CAP_NET_ADMIN; tun also CAP_NET_RAW).
`;

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const log: HostLog = {
  info: (msg) => process.stdout.write(`lvs-realserver: ${msg}\n`),
  warn: (msg) => process.stderr.write(`lvs-realserver: warning: ${msg}\n`),
};

function fail(msg: string): number {
  process.stderr.write(`lvs-realserver: ${msg}\n`);
  return 1;
}

/** Resolves with the first stop signal; later ones are ignored (undo is under way). */
function stopSignal(): { stopped: Promise<NodeJS.Signals>; dispose(): void } {
  let resolveStop: (sig: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    resolveStop = resolve;
  });
  const handler = (sig: NodeJS.Signals): void => resolveStop(sig);
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return {
    stopped,
    dispose: () => {
      for (const s of STOP_SIGNALS) process.off(s, handler);
    },
  };
}

/** Refuse to touch what a still-running lvs-realserver owns. */
function checkOwnerGone(ops: HostOps, state: HostState, file: string): void {
  if (state.pid !== process.pid && ops.isRealserver(state.pid)) {
    throw new Error(`lvs-realserver (pid ${state.pid}) is still running with ${file}: stop it with SIGTERM instead`);
  }
}

/**
 * Hold the journal `file` for this run: refused while another lvs-realserver of this network
 * namespace holds it (instance-lock.ts), before anything is read or changed.
 */
async function holdJournal(file: string): Promise<InstanceLock> {
  const lock = await lockInstance(`lvs-realserver ${file}`);
  if (lock === undefined) {
    throw new Error(`another lvs-realserver is running with ${file} in this network namespace`);
  }
  return lock;
}

async function undoLeftovers(ops: HostOps, file: string, what: string, netns: NetnsId): Promise<boolean> {
  const state = readState(file);
  if (state === undefined) return false;
  checkOwnerGone(ops, state, file);
  const origin = recordOrigin(state.netns, netns);
  if (origin === 'elsewhere') {
    throw new Error(
      `${file} records changes made in another network namespace (net:[${state.netns?.inode}]), which still ` +
        'exists: run lvs-realserver --down there, or use another --state',
    );
  }
  if (origin === 'gone') {
    log.info(`discarding ${file}: its network namespace no longer exists, and its changes went with it`);
  } else {
    log.info(`undoing what ${what} (pid ${state.pid}, ${state.mode}) recorded in ${file}`);
    await undoState(ops, state, log);
  }
  removeStateFile(file);
  return true;
}

async function down(cmd: Extract<RealserverCommand, { kind: 'down' }>, ops: HostOps): Promise<number> {
  const lock = await holdJournal(cmd.stateFile);
  try {
    if (!(await undoLeftovers(ops, cmd.stateFile, 'a previous run', currentNetns()))) {
      log.info(`nothing to undo: no ${cmd.stateFile}`);
    }
  } finally {
    lock.release();
    removeRunDirIfEmpty(dirname(cmd.stateFile));
  }
  return 0;
}

async function up(cmd: Extract<RealserverCommand, { kind: 'up' }>, ops: HostOps): Promise<number> {
  // Listen for the stop signals before changing anything: one that comes during setup lets setup
  // finish its step, then everything is undone. The timer keeps Node alive while waiting (DR mode
  // has no other handle).
  const stop = stopSignal();
  const keepAlive = setInterval(() => {}, 1 << 30);
  let code = 0;
  const loops: DecapLoop[] = [];
  let kernel: KernelDecap | null = null;
  let changes: HostChanges | undefined;
  let lock: InstanceLock | undefined;
  try {
    lock = await holdJournal(cmd.stateFile);
    const netns = currentNetns();
    await undoLeftovers(ops, cmd.stateFile, 'a killed run', netns);
    changes = new HostChanges(ops, cmd.stateFile, cmd.mode, log, process.pid, netns);
    changes.begin();
    if (cmd.mode === 'dr') {
      await setupDr(changes, cmd.vips);
    } else {
      const native = loadNative();
      const tunFd = await setupTun(changes, ops, log, { openTun, closeFd }, cmd.dev, cmd.vips);
      const vips4 = cmd.vips.filter((v) => !v.includes(':')).map(ipToU32);
      const vips6 = cmd.vips.flatMap((v) => ipv6Words(v) ?? []);
      const onError = (err: unknown) => log.warn(`decapsulation: ${(err as Error)?.message ?? String(err)}`);
      if (vips4.length > 0) loops.push(DecapLoop.open(native, tunFd, vips4));
      // IPv6-in-IPv6, in user space (the eBPF decapsulator takes IPv4 outer headers only).
      if (vips6.length > 0) loops.push(DecapLoop.open6(native, tunFd, vips6));
      for (const loop of loops) loop.start(onError);
      if (!cmd.userSpace && vips4.length > 0) {
        const ifnames = decapInterfaces(await ops.ip(['-j', 'link', 'show']), cmd.dev);
        kernel = KernelDecap.open(native, vips4, ifnames, (msg) => log.warn(msg));
        if (kernel !== null) log.info(`decapsulating in the kernel on ${kernel.links.map((l) => l.ifname).join(', ')}`);
      }
    }
    log.info(`ready: ${cmd.mode} real server for ${cmd.vips.join(', ')}; changes recorded in ${cmd.stateFile}`);
    const sig = await stop.stopped;
    log.info(`${sig}: undoing the changes`);
  } catch (err) {
    code = fail((err as Error).message);
  } finally {
    try {
      if (kernel !== null) {
        log.info(`decapsulated ${kernel.count} IP-in-IP datagrams in the kernel`);
        kernel.close();
      }
      for (const loop of loops) loop.close();
      await changes?.undoAll();
    } catch (err) {
      code = fail(`undo failed: ${(err as Error).message}`);
    }
    for (const loop of loops) for (const line of loop.summary()) log.info(line);
    if (lock !== undefined) {
      lock.release();
      removeRunDirIfEmpty(dirname(cmd.stateFile));
    }
    clearInterval(keepAlive);
    stop.dispose();
  }
  return code;
}

/** Run lvs-realserver with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  let cmd: RealserverCommand;
  try {
    cmd = parseRealserverArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`lvs-realserver: ${err.message}\nTry 'lvs-realserver --help' for more information.\n`);
    return 2;
  }
  switch (cmd.kind) {
    case 'help':
      process.stdout.write(HELP);
      return 0;
    case 'version':
      process.stdout.write(`lvs-realserver ${VERSION}\n`);
      return 0;
    case 'down':
      try {
        return await down(cmd, new SystemHostOps());
      } catch (err) {
        return fail((err as Error).message);
      }
    case 'up':
      return up(cmd, new SystemHostOps());
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
