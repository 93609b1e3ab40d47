// The FTP helper's expected data connections (ip_vs_ftp's ip_vs_conn_new + ip_vs_control_add):
// a NAT connection to the control connection's dest, controlled by it, waiting in LISTEN for
// its first packet. A passive data connection's client port is not known yet: it is expected
// with client port 0 and takes the port of the first packet that matches the rest of its tuple
// (ip_vs_conn_fill_cport).

import { type ConnInit, NIL, newConnInit } from '../conn/conn-table';
import { CONN_F_INACTIVE, CONN_F_NO_CPORT, destBind, FWD_MASQ, IPPROTO_TCP } from '../ip-vs';
import { TCP_S_LISTEN } from '../proto/tcp-states';
import { D_TABLE_FULL } from '../xmit/verdict';
import type { Engine } from './engine';

export class FtpExpectations {
  /** Expected connections still waiting for their client port. */
  private waiting = 0;

  /** How many expected connections wait for their client port (the fuzz oracle checks it). */
  get waitingForPort(): number {
    return this.waiting;
  }
  private readonly init: ConnInit = newConnInit();

  constructor(private readonly engine: Engine) {}

  /**
   * Expect <caddr:cport, vaddr:vport -> daddr:dport>, vaddr that of control connection c,
   * bound to c's dest and controlled by c; cport 0 for "any" (the FtpExpect of app/ftp-helper).
   */
  expectConn(c: number, caddr: number, cport: number, vport: number, daddr: number, dport: number): void {
    const e = this.engine;
    const conns = e.conns;
    const vaddr = conns.vaddr[c];
    const dest = e.dests.get(conns.dest[c]);
    if (dest === undefined || conns.lookupIn(IPPROTO_TCP, caddr, cport, vaddr, vport) !== NIL) return;
    const init = this.init;
    init.protocol = IPPROTO_TCP;
    init.caddr = caddr;
    init.cport = cport;
    init.vaddr = vaddr;
    init.vport = vport;
    init.daddr = daddr;
    init.dport = dport;
    init.dest = dest.id;
    init.xmit = FWD_MASQ;
    init.flags = FWD_MASQ | CONN_F_INACTIVE | (cport === 0 ? CONN_F_NO_CPORT : 0);
    init.state = TCP_S_LISTEN;
    init.timeout = e.timeouts[IPPROTO_TCP][TCP_S_LISTEN];
    const n = conns.insert(init, e.now);
    if (n === NIL) {
      e.drops[D_TABLE_FULL]++;
      return;
    }
    destBind(dest, CONN_F_INACTIVE);
    conns.control[n] = c;
    conns.nControl[c]++;
    if (cport === 0) this.waiting++;
  }

  /**
   * A connection expected without a client port for this tuple: its client port is filled in
   * now, or NIL. The engine asks only while some wait (waitingForPort), off the common path.
   */
  fillCport(protocol: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    const conns = this.engine.conns;
    const c = conns.lookupIn(protocol, caddr, 0, vaddr, vport);
    if (c === NIL || (conns.flags[c] & CONN_F_NO_CPORT) === 0) return NIL;
    conns.setCport(c, cport);
    conns.flags[c] &= ~CONN_F_NO_CPORT;
    this.waiting--;
    return c;
  }

  /** Connection c leaves the table. */
  gone(c: number): void {
    if ((this.engine.conns.flags[c] & CONN_F_NO_CPORT) !== 0) this.waiting--;
  }
}
