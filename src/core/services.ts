// Virtual services and their dests as the data path sees them: a service table keyed by
// <protocol, vaddr, vport>, the set of virtual addresses, and the dest registry that gives every
// dest a small numeric id so connections can refer to it from a typed array.

import {
  AF_INET,
  AF_INET6,
  type Dest,
  FTP_PORT,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv6FoldWords,
  type Service,
} from '../ip-vs';

function protoIndex(protocol: number): number {
  return protocol === IPPROTO_TCP ? 0 : protocol === IPPROTO_UDP ? 1 : 2;
}

/**
 * Numeric service key: exact below 2^53 (family 1 bit, address 32 bits, port 16, protocol index
 * 2). An IPv6 service's address here is its fold, which two services may share.
 */
export function serviceKey(protocol: number, addr: number, port: number, v6 = false): number {
  return ((v6 ? 0x100000000 : 0) + addr) * 65536 * 4 + port * 4 + protoIndex(protocol);
}

function same6(a: Uint32Array, w: Uint32Array, off: number): boolean {
  return a[0] === w[off] && a[1] === w[off + 1] && a[2] === w[off + 2] && a[3] === w[off + 3];
}

/** The firewall-mark services' key: the mark and the family (`-f N` and `-f N -6` differ). */
function markKey(mark: number, af: number): number {
  return mark * 2 + (af === AF_INET6 ? 1 : 0);
}

function isFtp(svc: Service): boolean {
  return svc.protocol === IPPROTO_TCP && svc.port === FTP_PORT;
}

export class ServiceTable {
  private readonly byKey = new Map<number, Service>();
  /** IPv6 services by their key (with the fold for the address): those whose folds are equal share it. */
  private readonly byKey6 = new Map<number, Service[]>();
  /** Firewall-mark services by markKey. */
  private readonly byMark = new Map<number, Service>();
  /** Virtual address → number of services on it. */
  private readonly vips = new Map<number, number>();
  /** IPv6 virtual addresses by fold: each address and the number of services on it. */
  private readonly vips6 = new Map<number, { addr6: Uint32Array; n: number }[]>();
  /** Services in the order they were added (the kernel lists its hash order; ipvsadm sorts). */
  readonly list: Service[] = [];
  /** The director's own IPv4 addresses. */
  private local: ReadonlySet<number> = new Set();
  /** TCP services on the FTP port 21 (the kernel's ftpsvc_counter). */
  ftpServices = 0;

  /** The service for <protocol, addr, port>, else the address's catch-all port-0 service (IPVS). */
  find(protocol: number, addr: number, port: number): Service | undefined {
    return this.byKey.get(serviceKey(protocol, addr, port)) ?? this.byKey.get(serviceKey(protocol, addr, 0));
  }

  /** Exactly the service <protocol, addr, port> (the control plane's lookup). */
  get(protocol: number, addr: number, port: number): Service | undefined {
    return this.byKey.get(serviceKey(protocol, addr, port));
  }

  /** The firewall-mark service for `mark` (of family `af`: `-f N -6` is AF_INET6's). */
  findMark(mark: number, af = AF_INET): Service | undefined {
    return this.byMark.get(markKey(mark, af));
  }

  /**
   * The IPv6 service for <protocol, the address at words[off..off+3], port>, else the address's
   * port-0 service (find for IPv6). Allocates nothing.
   */
  find6(protocol: number, words: Uint32Array, off: number, port: number): Service | undefined {
    return this.get6(protocol, words, off, port) ?? this.get6(protocol, words, off, 0);
  }

  /** Exactly the IPv6 service <protocol, the address at words[off..off+3], port>. */
  get6(protocol: number, words: Uint32Array, off: number, port: number): Service | undefined {
    const list = this.byKey6.get(serviceKey(protocol, ipv6FoldWords(words, off), port, true));
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) if (same6(list[i].addr6!, words, off)) return list[i];
    return undefined;
  }

  /** The address at words[off..off+3] is an IPv6 virtual address. */
  isVip6(words: Uint32Array, off: number): boolean {
    const list = this.vips6.get(ipv6FoldWords(words, off));
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) if (same6(list[i].addr6, words, off)) return true;
    return false;
  }

  isVip(addr: number): boolean {
    return this.vips.has(addr);
  }

  /**
   * A virtual address that is not also an address of the director: lvsd answers for all that is
   * sent to it. What reaches the engine for a local one and is not its services' (a fragment, an
   * ICMP error about the host's own traffic) goes on to the local stack, as with the kernel.
   */
  isRemoteVip(addr: number): boolean {
    return this.vips.has(addr) && !this.local.has(addr);
  }

  /** The director's own addresses (lvsd refreshes them every second). */
  setLocalAddrs(addrs: ReadonlySet<number>): void {
    this.local = addrs;
  }

  add(svc: Service): void {
    if (svc.fwmark !== 0) {
      this.byMark.set(markKey(svc.fwmark, svc.af), svc);
      this.list.push(svc);
      return;
    }
    if (svc.addr6 !== null) {
      this.add6(svc, svc.addr6);
      return;
    }
    this.byKey.set(serviceKey(svc.protocol, svc.addr, svc.port), svc);
    this.vips.set(svc.addr, (this.vips.get(svc.addr) ?? 0) + 1);
    if (isFtp(svc)) this.ftpServices++;
    this.list.push(svc);
  }

  /** Remove a service; returns true when it was the last one on its virtual address. */
  remove(svc: Service): boolean {
    const i = this.list.indexOf(svc);
    if (i >= 0) this.list.splice(i, 1);
    if (svc.fwmark !== 0) {
      this.byMark.delete(markKey(svc.fwmark, svc.af));
      return false;
    }
    if (svc.addr6 !== null) return this.remove6(svc, svc.addr6);
    this.byKey.delete(serviceKey(svc.protocol, svc.addr, svc.port));
    if (isFtp(svc)) this.ftpServices--;
    const n = (this.vips.get(svc.addr) ?? 1) - 1;
    if (n > 0) {
      this.vips.set(svc.addr, n);
      return false;
    }
    this.vips.delete(svc.addr);
    return true;
  }

  private add6(svc: Service, addr6: Uint32Array): void {
    const fold = ipv6FoldWords(addr6, 0);
    const key = serviceKey(svc.protocol, fold, svc.port, true);
    const same = this.byKey6.get(key);
    if (same === undefined) this.byKey6.set(key, [svc]);
    else same.push(svc);
    const vips = this.vips6.get(fold);
    const vip = vips?.find((v) => same6(v.addr6, addr6, 0));
    if (vip !== undefined) vip.n++;
    else if (vips !== undefined) vips.push({ addr6, n: 1 });
    else this.vips6.set(fold, [{ addr6, n: 1 }]);
    if (isFtp(svc)) this.ftpServices++;
    this.list.push(svc);
  }

  private remove6(svc: Service, addr6: Uint32Array): boolean {
    const fold = ipv6FoldWords(addr6, 0);
    const key = serviceKey(svc.protocol, fold, svc.port, true);
    const same = this.byKey6.get(key)?.filter((s) => s !== svc);
    if (same === undefined || same.length === 0) this.byKey6.delete(key);
    else this.byKey6.set(key, same);
    if (isFtp(svc)) this.ftpServices--;
    const vips = this.vips6.get(fold);
    const vip = vips?.find((v) => same6(v.addr6, addr6, 0));
    if (vips === undefined || vip === undefined) return false;
    if (--vip.n > 0) return false;
    const left = vips.filter((v) => v !== vip);
    if (left.length === 0) this.vips6.delete(fold);
    else this.vips6.set(fold, left);
    return true;
  }
}

/** No connection, template or not, is bound to `d` (in any engine). */
function noConns(d: Dest): boolean {
  return d.activeConns + d.inactConns + d.persistConns === 0;
}

/**
 * Dest ids. A deleted dest keeps its id while connections still point at it (the kernel keeps
 * such dests in its "trash"); the id is reused only once the last of them is gone.
 */
export class DestRegistry {
  private readonly dests: (Dest | undefined)[] = [];
  private readonly freeIds: number[] = [];
  /** Ids of deleted dests whose connections have not all expired yet. */
  private readonly trash = new Set<number>();

  get(id: number): Dest | undefined {
    return this.dests[id];
  }

  register(dest: Dest): number {
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.dests.length;
    this.dests[id] = dest;
    dest.id = id;
    return id;
  }

  /**
   * Register `dest` under the id another registry gave it (an engine's copy of the control
   * plane's table): whatever had that id, a retired dest whose connections are all gone, is
   * forgotten.
   */
  registerAs(dest: Dest, id: number): void {
    this.dests[id] = dest;
    dest.id = id;
    this.trash.delete(id);
    const f = this.freeIds.indexOf(id);
    if (f >= 0) this.freeIds.splice(f, 1);
  }

  /** Engine `k` is gone: the retired dests' connections it held no longer count. */
  forgetEngine(k: number): void {
    for (const id of this.trash) this.dests[id]!.forgetEngine(k);
  }

  /** Free the ids of retired dests with no connections left (counted by engines elsewhere). */
  sweep(): void {
    for (const id of this.trash) {
      const d = this.dests[id]!;
      if (noConns(d)) {
        this.trash.delete(id);
        this.free(id);
      }
    }
  }

  /** The dest left its service: free its id now or when its last connection goes. */
  retire(dest: Dest): void {
    if (noConns(dest)) this.free(dest.id);
    else this.trash.add(dest.id);
  }

  /** A connection of `dest` went away: free a retired dest's id once it has none left. */
  connGone(dest: Dest): void {
    if (this.trash.has(dest.id) && noConns(dest)) {
      this.trash.delete(dest.id);
      this.free(dest.id);
    }
  }

  private free(id: number): void {
    this.dests[id] = undefined;
    this.freeIds.push(id);
  }
}
