// The service table: IPv4 keys, IPv6 services found by their full address although their folds
// (what the numeric keys hold) may be equal, firewall marks per family, the virtual addresses.

import { describe, expect, it } from 'vitest';
import { ServiceTable } from '../../src/core/services';
import { AF_INET6, IPPROTO_TCP, IPPROTO_UDP, newService, type Service } from '../../src/ip-vs';

/** 2001:db8::1 and 2001:db8:0:1:0:1:0:1 fold to the same number; 10.0.0.1 is another family. */
const A = Uint32Array.from([0x20010db8, 0, 0, 1]);
const B = Uint32Array.from([0x20010db8, 1, 1, 1]);
const FOLD = (0x20010db8 ^ 1) >>> 0;

function v6(words: Uint32Array, port: number, protocol = IPPROTO_TCP): Service {
  const s = newService(protocol, FOLD, port);
  s.af = AF_INET6;
  s.addr6 = words;
  return s;
}

/** The words of `w` at an offset inside a larger array, as a packet's key would hold them. */
function at(w: Uint32Array, off: number): Uint32Array {
  const k = new Uint32Array(off + 4).fill(0xeeeeeeee);
  k.set(w, off);
  return k;
}

describe('ServiceTable with IPv6 services', () => {
  it('tells IPv6 services with equal folds apart, and apart from an IPv4 service on the fold', () => {
    const t = new ServiceTable();
    const a = v6(A, 80);
    const b = v6(B, 80);
    const v4 = newService(IPPROTO_TCP, FOLD, 80);
    for (const s of [a, b, v4]) t.add(s);
    expect(t.get6(IPPROTO_TCP, A, 0, 80)).toBe(a);
    expect(t.find6(IPPROTO_TCP, at(B, 3), 3, 80)).toBe(b);
    expect(t.find(IPPROTO_TCP, FOLD, 80)).toBe(v4);
    expect(t.get6(IPPROTO_UDP, A, 0, 80)).toBeUndefined();
    expect(t.get6(IPPROTO_TCP, Uint32Array.from([0x20010db8, 2, 2, 1]), 0, 80)).toBeUndefined();
    expect(t.isVip6(A, 0) && t.isVip6(at(B, 1), 1)).toBe(true);
    expect(t.isVip6(Uint32Array.from([0x20010db8, 2, 2, 1]), 0)).toBe(false);
    expect(t.isVip(FOLD)).toBe(true);
  });

  it("falls back to the address's port-0 service, as for IPv4", () => {
    const t = new ServiceTable();
    const any = v6(A, 0);
    t.add(any);
    expect(t.find6(IPPROTO_TCP, A, 0, 443)).toBe(any);
    expect(t.get6(IPPROTO_TCP, A, 0, 443)).toBeUndefined();
    expect(t.find6(IPPROTO_TCP, B, 0, 443)).toBeUndefined();
  });

  it('removes one of two services sharing a key, and says when an address has none left', () => {
    const t = new ServiceTable();
    const a80 = v6(A, 80);
    const a443 = v6(A, 443);
    const b80 = v6(B, 80);
    for (const s of [a80, a443, b80]) t.add(s);
    expect(t.remove(a80)).toBe(false);
    expect(t.get6(IPPROTO_TCP, A, 0, 80)).toBeUndefined();
    expect(t.get6(IPPROTO_TCP, B, 0, 80)).toBe(b80);
    expect(t.remove(a443)).toBe(true);
    expect(t.isVip6(A, 0)).toBe(false);
    expect(t.isVip6(B, 0)).toBe(true);
    expect(t.remove(b80)).toBe(true);
    expect(t.list).toEqual([]);
  });

  it('keeps -f N and -f N -6 apart', () => {
    const t = new ServiceTable();
    const m4 = newService(0, 0, 0, 7);
    const m6 = newService(0, 0, 0, 7);
    m6.af = AF_INET6;
    t.add(m4);
    t.add(m6);
    expect(t.findMark(7)).toBe(m4);
    expect(t.findMark(7, AF_INET6)).toBe(m6);
    t.remove(m4);
    expect(t.findMark(7)).toBeUndefined();
    expect(t.findMark(7, AF_INET6)).toBe(m6);
  });

  it('counts FTP services of either family', () => {
    const t = new ServiceTable();
    t.add(v6(A, 21));
    t.add(newService(IPPROTO_TCP, 0x0a000001, 21));
    expect(t.ftpServices).toBe(2);
  });
});
