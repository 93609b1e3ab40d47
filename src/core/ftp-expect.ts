// The FTP helper's expected data connections (ip_vs_ftp's ip_vs_conn_new + ip_vs_control_add):
// a NAT connection to the control connection's dest, controlled by it, waiting in LISTEN for
// its first packet. A passive data connection's client port is not known yet: it is expected
// with client port 0 and takes the port of the first packet that matches the rest of its tuple
// (ip_vs_conn_fill_cport).

import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, type ConnInit, NIL, newConnInit } from '../conn/conn-table';
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

/** FtpExpectations for IPv6 control connections: the same, in the IPv6 table (path6.ts). */
export class FtpExpectations6 {
  private waiting = 0;
  private readonly init: ConnInit = newConnInit();
  /** The expected connection's addresses as the table takes them. */
  private readonly key = new Uint32Array(ADDR6_WORDS);

  get waitingForPort(): number {
    return this.waiting;
  }

  constructor(private readonly engine: Engine) {}

  /**
   * Expect <caddr:cport, vaddr:vport -> daddr:dport> (the addresses four words each at
   * caddr[cOff] and daddr[dOff]), vaddr that of IPv6 control connection c, bound to c's dest and
   * controlled by c; cport 0 for "any".
   */
  expectConn(
    c: number,
    caddr: Uint32Array,
    cOff: number,
    cport: number,
    vport: number,
    daddr: Uint32Array,
    dOff: number,
    dport: number,
  ): void {
    const e = this.engine;
    const conns = e.v6.conns;
    const dest = e.dests.get(conns.dest[c]);
    const key = this.key;
    key.set(caddr.subarray(cOff, cOff + 4), A6_CLIENT);
    key.set(conns.addr6.subarray(c * ADDR6_WORDS + A6_VIRTUAL, c * ADDR6_WORDS + A6_VIRTUAL + 4), A6_VIRTUAL);
    key.set(daddr.subarray(dOff, dOff + 4), A6_DEST);
    if (dest === undefined || conns.lookupIn6(IPPROTO_TCP, key, cport, vport) !== NIL) return;
    const init = this.init;
    init.protocol = IPPROTO_TCP;
    init.cport = cport;
    init.vport = vport;
    init.dport = dport;
    init.dest = dest.id;
    init.xmit = FWD_MASQ;
    init.flags = FWD_MASQ | CONN_F_INACTIVE | (cport === 0 ? CONN_F_NO_CPORT : 0);
    init.state = TCP_S_LISTEN;
    init.timeout = e.timeouts[IPPROTO_TCP][TCP_S_LISTEN];
    const n = conns.insert6(init, key, e.now);
    if (n === NIL) {
      e.drops[D_TABLE_FULL]++;
      return;
    }
    destBind(dest, CONN_F_INACTIVE);
    conns.control[n] = c;
    conns.nControl[c]++;
    if (cport === 0) this.waiting++;
  }

  /** fillCport for IPv6: `key` holds the packet's client and virtual addresses. */
  fillCport(protocol: number, key: Uint32Array, cport: number, vport: number): number {
    const conns = this.engine.v6.conns;
    const c = conns.lookupIn6(protocol, key, 0, vport);
    if (c === NIL || (conns.flags[c] & CONN_F_NO_CPORT) === 0) return NIL;
    conns.setCport(c, cport);
    conns.flags[c] &= ~CONN_F_NO_CPORT;
    this.waiting--;
    return c;
  }

  /** Connection c of the IPv6 table leaves it. */
  gone(c: number): void {
    if ((this.engine.v6.conns.flags[c] & CONN_F_NO_CPORT) !== 0) this.waiting--;
  }
}
