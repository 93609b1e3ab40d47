// High availability as a kernel-IPVS director has it, with keepalived's VRRP (vrrp-conf.ts,
// keepalived.ts): lvsd starts keepalived for the vrrp_instance blocks of its --keepalived-conf,
// serves a virtual_ipaddress only where keepalived put it (the master: the address is then a
// local one, taken by ctl/intercept.ts; never proxy ARP, never a route of lvsd's own, so the
// backup does not answer for it), and runs its sync daemon as keepalived runs the kernel's for
// `lvs_sync_daemon IFACE INSTANCE`: master while that instance is MASTER, backup otherwise.

import type { DaemonSpec, VrrpSnapshot } from '../ctl/protocol';
import type { KeepalivedFiles, VrrpStateReport } from './keepalived';
import { KeepalivedVrrp, stopOrphan } from './keepalived';
import type { LvsSyncDaemon, VrrpConf } from './vrrp-conf';

/** What HA needs of lvsd's sync daemons (sync/daemon.ts SyncDaemons). */
export interface SyncControl {
  readonly master: unknown;
  readonly backup: unknown;
  start(spec: DaemonSpec): Promise<void>;
  stop(state: 'master' | 'backup'): void;
}

export class HighAvailability {
  private readonly keepalived: KeepalivedVrrp;
  /** The sync daemon role lvs_sync_daemon's instance asks for, once it has reported. */
  private wanted: 'master' | 'backup' | null = null;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private conf: VrrpConf,
    program: string,
    private readonly files: KeepalivedFiles,
    private readonly sync: SyncControl,
    /** Runs a table change in turn with lvsadm's requests. */
    private readonly exclusive: (fn: () => Promise<void>) => Promise<void>,
    private readonly log: (msg: string) => void,
  ) {
    this.keepalived = new KeepalivedVrrp(program, files, (r) => this.follow(r), log);
  }

  /** The virtual_ipaddress addresses of every instance: keepalived's to place, not lvsd's. */
  managedVips(): Set<number> {
    return new Set(this.conf.instances.flatMap((i) => i.vips));
  }

  /** Stop a killed lvsd's keepalived, then start ours. */
  async start(): Promise<void> {
    await stopOrphan(this.files, this.log);
    this.keepalived.start(this.conf.text);
  }

  /** SIGHUP: a changed VRRP half goes to keepalived (which reloads it); false when unchanged. */
  reload(conf: VrrpConf): boolean {
    if (conf.text === this.conf.text) return false;
    this.conf = conf;
    this.keepalived.reload(conf.text);
    return true;
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.retry !== null) clearTimeout(this.retry);
    return this.keepalived.stop();
  }

  snapshot(): VrrpSnapshot[] {
    const now = Date.now();
    const age = (r: VrrpStateReport | undefined) => (r === undefined ? 0 : Math.floor((now - r.since) / 1000));
    const out: VrrpSnapshot[] = [];
    for (const i of this.conf.instances) {
      const r = this.keepalived.states.get(`INSTANCE ${i.name}`);
      out.push({
        kind: 'instance',
        name: i.name,
        state: r?.state ?? 'INIT',
        priority: i.priority,
        iface: i.iface,
        vrid: i.vrid,
        since: age(r),
      });
    }
    for (const name of this.conf.groups.keys()) {
      const r = this.keepalived.states.get(`GROUP ${name}`);
      out.push({ kind: 'group', name, state: r?.state ?? 'INIT', priority: 0, iface: '', vrid: 0, since: age(r) });
    }
    return out;
  }

  /** A state change: the sync daemon follows lvs_sync_daemon's instance. */
  private follow(r: VrrpStateReport): void {
    const d = this.conf.syncDaemon;
    if (d === null || r.kind !== 'INSTANCE' || r.name !== d.instance) return;
    this.wanted = r.state === 'MASTER' ? 'master' : 'backup';
    this.applySync(d);
  }

  /** Run the wanted sync daemon; a failure (its interface not up yet) is tried again every second. */
  private applySync(d: LvsSyncDaemon): void {
    const want = this.wanted;
    if (want === null || this.stopped) return;
    this.exclusive(() => this.switchSync(d, want)).catch((err: Error) => {
      this.log(`sync daemon (${want}, following ${d.instance}): ${err.message}; trying again in 1 s`);
      if (this.retry === null) {
        this.retry = setTimeout(() => {
          this.retry = null;
          this.applySync(d);
        }, 1000);
      }
    });
  }

  private async switchSync(d: LvsSyncDaemon, want: 'master' | 'backup'): Promise<void> {
    const sync = this.sync;
    const other = want === 'master' ? 'backup' : 'master';
    if ((other === 'master' ? sync.master : sync.backup) !== null) sync.stop(other);
    if ((want === 'master' ? sync.master : sync.backup) !== null) return;
    await sync.start({
      state: want,
      mcastIfn: d.iface,
      syncid: d.syncid,
      maxlen: d.maxlen,
      group: d.group,
      port: d.port,
      ttl: d.ttl,
    });
  }
}
