// Persistence templates (ip_vs_sched_persist): a client's first connection to a persistent
// service schedules a dest and records it in a template, a connection-table entry with client
// port 0 and CONN_F_TEMPLATE; the client's later connections within the persistence timeout
// find the template and go to the same dest. Keys, as IPVS makes them:
//
//   <protocol, client & netmask, 0, vaddr, vport>   vport 0 for an "any port" service, and for
//                                                    FTP (port 21), so data connections stick too
//   <IPPROTO_IP, client & netmask, 0, fwmark, 0>     a firewall-mark service
//
// A template lives while it controls connections (the engine's expiry keeps it), and a found
// one whose dest was deleted, or is quiescent under expire_quiescent_template, is invalidated
// (ip_vs_check_template) and a new one scheduled.

import {
  CONN_F_TEMPLATE,
  DEST_F_AVAILABLE,
  type Dest,
  destBind,
  FTP_PORT,
  IPPROTO_IP,
  type PktInfo,
  type Service,
} from '../ip-vs';
import { type ConnInit, type ConnTable, NIL, newConnInit } from './conn-table';

/** `find`'s result when the table has no room for a new template (NIL means "no dest"). */
export const TABLE_FULL = -2;

/** Dests by id (the engine's DestRegistry): what a connection's `dest` column names. */
export interface DestLookup {
  get(id: number): Dest | undefined;
}

export class PersistTemplates {
  private readonly init: ConnInit = newConnInit();

  constructor(
    private readonly conns: ConnTable,
    private readonly dests: DestLookup,
  ) {}

  /**
   * The template for packet `pkt` of persistent service `svc`: found and still valid, its timer
   * restarts; otherwise a dest is scheduled and a new template made for it. Returns the
   * template, NIL when no dest is available, or TABLE_FULL.
   */
  find(svc: Service, pkt: PktInfo, now: number, expireQuiescent: boolean): number {
    const conns = this.conns;
    const caddr = (pkt.saddr & svc.netmask) >>> 0;
    const byMark = svc.fwmark !== 0;
    const protocol = byMark ? IPPROTO_IP : pkt.protocol;
    const vaddr = byMark ? svc.fwmark : pkt.daddr;
    const anyPort = byMark || svc.port === 0 || svc.port === FTP_PORT;
    const vport = anyPort ? 0 : pkt.dport;
    let t = conns.lookupTemplate(protocol, caddr, vaddr, vport);
    if (t !== NIL) {
      const dest = this.dests.get(conns.dest[t]);
      if (dest !== undefined && (dest.flags & DEST_F_AVAILABLE) !== 0 && !(expireQuiescent && dest.weight === 0)) {
        conns.touch(t, now);
        return t;
      }
      conns.invalidateTemplate(t);
    }
    const dest = svc.sched.schedule(svc, pkt, now);
    if (dest === null) return NIL;
    const e = this.init;
    e.protocol = protocol;
    e.caddr = caddr;
    e.cport = 0;
    e.vaddr = vaddr;
    e.vport = vport;
    e.daddr = dest.addr;
    e.dport = anyPort ? 0 : dest.port;
    e.dest = dest.id;
    e.xmit = dest.fwd;
    e.flags = CONN_F_TEMPLATE | dest.fwd;
    e.state = 0;
    e.timeout = svc.timeout;
    t = conns.insert(e, now);
    if (t === NIL) return TABLE_FULL;
    destBind(dest, CONN_F_TEMPLATE);
    return t;
  }
}
