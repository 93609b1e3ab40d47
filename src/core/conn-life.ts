// A connection's life (ip_vs_conn.c): made for a packet and bound to its dest (ip_vs_conn_new,
// ip_vs_bind_dest), moved from state to state with the dest's ActiveConn/InActConn kept as IPVS
// counts them, retired early when a new connection takes its tuple (ip_vs_conn_expire_now),
// and taken off the table and its dest when it ends (ip_vs_conn_expire, ip_vs_unbind_dest).
// One per connection table: the engine's IPv4 table, and its IPv6 one (path6.ts), whose new
// connections are inserted with their full addresses.

import type { FtpHelper } from '../app/ftp-helper';
import { A6_DEST, type ConnInit, type ConnTable, NIL, newConnInit } from '../conn/conn-table';
import {
  CONN_F_APP,
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_PROXY_WAIT,
  CONN_F_TEMPLATE,
  DEST_F_AVAILABLE,
  type Dest,
  destActivity,
  destBind,
  destUnbind,
  FWD_MASQ,
  IPPROTO_TCP,
  type Service,
} from '../ip-vs';
import type { PacketMeta, ProtoHandler } from '../proto/proto';
import type { Engine } from './engine';
import { countHalfOpen } from './syn-proxy';

export class ConnLife {
  private readonly init: ConnInit = newConnInit();

  /**
   * `key6`: the table is the IPv6 one (wide), and create() takes the client and virtual
   * addresses from this key (its A6_CLIENT and A6_VIRTUAL words, which the caller has set) and
   * writes the dest's address into its A6_DEST words.
   */
  constructor(
    private readonly e: Engine,
    private readonly conns: ConnTable,
    /** The FTP helper of this table's connections, and the expectations of its data connections. */
    private readonly ftp: FtpHelper,
    private readonly expect: { gone(c: number): void },
    private readonly key6: Uint32Array | null = null,
  ) {}

  /** A new connection of packet `pkt` to `dest` of `svc` (ip_vs_conn_new), or NIL when the table is full. */
  create(svc: Service, dest: Dest, h: ProtoHandler, pkt: PacketMeta): number {
    const e = this.e;
    const key6 = this.key6;
    // The FTP helper binds to NAT TCP connections of a service on one of its ports.
    const app = dest.fwd === FWD_MASQ && pkt.protocol === IPPROTO_TCP && this.ftp.ports.has(svc.port) ? CONN_F_APP : 0;
    const flags = dest.fwd | CONN_F_INACTIVE | (dest.fwd !== FWD_MASQ ? CONN_F_NOOUTPUT : 0) | app;
    const n = this.init;
    n.protocol = pkt.protocol;
    n.caddr = pkt.saddr;
    n.cport = pkt.sport;
    n.vaddr = pkt.daddr;
    n.vport = pkt.dport;
    n.daddr = dest.addr;
    // The dest's port stands for the service port; another port (an FTP data connection found
    // through the FTP service, a port-0 service) is kept.
    n.dport = dest.port !== 0 && (pkt.dport === svc.port || svc.port === 0) ? dest.port : pkt.dport;
    n.dest = dest.id;
    n.xmit = dest.fwd;
    n.flags = flags;
    n.state = h.initialState;
    n.timeout = e.timeouts[h.protocol][n.state];
    let c: number;
    if (key6 === null) {
      c = this.conns.insert(n, e.now);
    } else {
      key6.set(dest.addr6!, A6_DEST);
      c = this.conns.insert6(n, key6, e.now);
    }
    if (c === NIL) return NIL;
    if (app !== 0) this.ftp.reset(c);
    destBind(dest, flags);
    dest.stats.conns++;
    svc.stats.conns++;
    e.stats.conns++;
    return c;
  }

  /**
   * Does packet `pkt` retire its connection c and get scheduled anew (ip_vs_in)? With
   * conn_reuse_mode, a new connection's SYN on a finished connection not controlled by a
   * template, whatever its dest (even deleted); with expire_nodest_conn, a SYN when c's dest has
   * weight 0, and any packet when the dest is gone. The reuse check comes first, as in ip_vs_in:
   * a client reusing a port of a connection whose real server was deleted starts afresh.
   */
  retires(c: number, h: ProtoHandler, pkt: PacketMeta): boolean {
    const e = this.e;
    const conns = this.conns;
    const dest = e.dests.get(conns.dest[c]);
    const mode = e.connReuseMode;
    if (mode !== 0 && h.opensConn(pkt)) {
      if (e.expireNodestConn !== 0 && dest !== undefined && dest.weight === 0) return true;
      if (conns.control[c] === NIL && h.reusesConn(conns.state[c], conns.flags[c], mode)) return true;
    }
    return e.expireNodestConn !== 0 && (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0);
  }

  /**
   * Move connection c to `state`, keeping the dest's ActiveConn/InActConn as IPVS counts them
   * (active only in the protocol's active state), and restart its timer with the new timeout.
   */
  setState(c: number, h: ProtoHandler, dest: Dest, state: number): void {
    const e = this.e;
    const conns = this.conns;
    if (state !== conns.state[c]) {
      const inactive = (conns.flags[c] & CONN_F_INACTIVE) !== 0;
      if (!inactive && state !== h.activeState) {
        destActivity(dest, true);
        conns.flags[c] |= CONN_F_INACTIVE;
      } else if (inactive && state === h.activeState) {
        destActivity(dest, false);
        conns.flags[c] &= ~CONN_F_INACTIVE;
      }
      if (h.protocol === IPPROTO_TCP) countHalfOpen(e.proxy, conns.state[c], state);
      conns.state[c] = state;
      conns.timeout[c] = e.timeouts[h.protocol][state];
    }
    conns.touch(c, e.now);
  }

  /**
   * End connection c now (ip_vs_conn_expire_now), so a new one may take its tuple: out of the
   * table at once, unless it controls others (an FTP control connection with expected data
   * connections), which it must outlive: then it only times out now, is kept while it controls,
   * and the new connection, hashed in front of it, is the one lookups find.
   */
  retire(c: number): void {
    if (this.conns.nControl[c] === 0) this.remove(c);
    else this.conns.expires[c] = this.e.now;
  }

  /** Take connection c out of the table and off its dest's counters. */
  readonly remove = (c: number): void => {
    this.gone(c);
    this.conns.unlink(c);
  };

  /**
   * The expiry wheel's verdict on connection c, whose time has come: it outlives its timeout
   * while it still controls others (expire_later: a template its connections, an FTP control
   * connection its data connections); else it is gone.
   */
  readonly expire = (c: number): boolean => {
    const e = this.e;
    if (this.conns.nControl[c] !== 0) {
      this.conns.touch(c, e.now);
      return false;
    }
    this.gone(c);
    return true;
  };

  /** Connection c leaves the table: off its template's count, its dest's and the expectations'. */
  private gone(c: number): void {
    const e = this.e;
    const conns = this.conns;
    const t = conns.control[c];
    if (t !== NIL) conns.nControl[t]--;
    this.expect.gone(c);
    if (conns.protocol[c] === IPPROTO_TCP && (conns.flags[c] & CONN_F_TEMPLATE) === 0) {
      countHalfOpen(e.proxy, conns.state[c], -1);
      if ((conns.flags[c] & CONN_F_PROXY_WAIT) !== 0) e.proxy.gone(c);
    }
    const dest = e.dests.get(conns.dest[c]);
    if (dest === undefined) return;
    destUnbind(dest, conns.flags[c]);
    e.dests.connGone(dest);
  }
}
