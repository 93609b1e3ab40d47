// The IPVS defense strategies (REFERENCE.md §1.13, ip_vs_ctl.c update_defense_level and
// ip_vs_conn.c ip_vs_random_dropentry), settings named as /proc/sys/net/ipv4/vs/*:
//
//   drop_entry   each second, drop half-open TCP entries (SYN_RECV, SYNACK) and idle young
//                ESTABLISHED ones, looking at a random 1/32 of the table
//   drop_packet  drop one new connection in every `rate`
//   secure_tcp   use the stricter TCP state table (proto/tcp-states.ts TCP_STATES_DOS)
//
// Each is 0 (off), 3 (always on), or automatic: 1 while free memory is at least amemthresh
// pages, 2 (and on) while it is below; update() moves them between 1 and 2, as the kernel does
// once a second. drop_packet's rate is am_droprate in mode 3, amemthresh / (amemthresh - free)
// in mode 2.

import type { ConnTable } from '../conn/conn-table';
import { CONN_F_TEMPLATE, IPPROTO_TCP } from '../ip-vs';
import { TCP_S_ESTABLISHED, TCP_S_SYN_RECV, TCP_S_SYNACK } from '../proto/tcp-states';

/** ESTABLISHED entries with more client packets than this are never dropped (todrop_rate's size). */
const TODROP_MAX_PKTS = 8;
/** An ESTABLISHED entry active within this many seconds is not dropped. */
const TODROP_IDLE = 60;

export class Defense {
  dropEntry = 0;
  dropPacket = 0;
  secureTcp = 0;
  /** Free memory (pages) below which the automatic modes switch on. */
  amemthresh = 1024;
  /** drop_packet's rate in mode 3. */
  amDroprate = 10;
  /** secure_tcp's table in use; drop_entry sweeping. */
  secureTcpOn = false;
  dropEntryOn = false;
  /** Entries dropped by drop_entry and new connections dropped by drop_packet. */
  readonly counts = { entriesDropped: 0, packetsDropped: 0 };
  private availPages = Number.MAX_SAFE_INTEGER;
  private dropRate = 0;
  private dropCounter = 0;
  private readonly todropCounter = new Int8Array(TODROP_MAX_PKTS + 1);

  /**
   * Re-decide every strategy for `availPages` of free memory (lvsd: once a second; a setting's
   * change: at once, with the last figure).
   */
  update(availPages = this.availPages): void {
    this.availPages = availPages;
    const nomem = availPages < this.amemthresh;
    if (this.dropEntry === 1 || this.dropEntry === 2) this.dropEntry = nomem ? 2 : 1;
    this.dropEntryOn = this.dropEntry >= 2;
    if (this.dropPacket === 0) {
      this.dropRate = 0;
    } else if (this.dropPacket === 3) {
      this.dropRate = this.amDroprate;
    } else {
      this.dropPacket = nomem ? 2 : 1;
      this.dropRate = nomem ? Math.max(1, Math.floor(this.amemthresh / (this.amemthresh - availPages))) : 0;
      this.dropCounter = this.dropRate;
    }
    if (this.secureTcp === 1 || this.secureTcp === 2) this.secureTcp = nomem ? 2 : 1;
    this.secureTcpOn = this.secureTcp >= 2;
  }

  /** drop_packet (ip_vs_todrop): drop this new connection? One in every rate while on. */
  dropNew(): boolean {
    if (this.dropRate === 0 || --this.dropCounter > 0) return false;
    this.dropCounter = this.dropRate;
    this.counts.packetsDropped++;
    return true;
  }

  /** drop_entry's sweep over a random 1/32 of `conns`; `remove` takes an entry out. */
  sweep(conns: ConnTable, now: number, remove: (c: number) => void): void {
    const cap = conns.capacity;
    const n = cap >>> 5 || 1;
    for (let k = 0; k < n; k++) {
      const c = (Math.random() * cap) | 0;
      if (!conns.isLive(c) || conns.nControl[c] !== 0 || conns.protocol[c] !== IPPROTO_TCP) continue;
      if ((conns.flags[c] & CONN_F_TEMPLATE) !== 0) continue;
      const state = conns.state[c];
      if (state === TCP_S_ESTABLISHED) {
        if (!this.idleToDrop(conns, c, now)) continue;
      } else if (state !== TCP_S_SYN_RECV && state !== TCP_S_SYNACK) {
        continue;
      }
      remove(c);
      this.counts.entriesDropped++;
    }
  }

  /**
   * todrop_entry: an ESTABLISHED entry idle for TODROP_IDLE s with 1..8 client packets, dropped
   * at a rate by that count (one in `count`).
   */
  private idleToDrop(conns: ConnTable, c: number, now: number): boolean {
    if (conns.expires[c] - now > conns.timeout[c] - TODROP_IDLE) return false;
    const i = conns.inPkts[c];
    if (i > TODROP_MAX_PKTS || i === 0) return false;
    if (--this.todropCounter[i] > 0) return false;
    this.todropCounter[i] = i;
    return true;
  }
}
