// The connection table: both indexes, expiry through the wheel, reuse of freed slots, growth.

import { describe, expect, it } from 'vitest';
import { A6_CLIENT, A6_DEST, A6_VIRTUAL, ADDR6_WORDS, ConnTable, NIL, newConnInit } from '../../src/conn/conn-table';
import { CONN_F_TEMPLATE } from '../../src/ip-vs';

const TCP = 6;
const UDP = 17;

function add(t: ConnTable, i: number, now: number, timeout = 60): number {
  // client 10.0.x.y:i → VIP 192.168.0.1:80 → RS 172.16.0.(1+i%2):8080
  const e = newConnInit();
  e.protocol = TCP;
  e.caddr = 0x0a000000 + i;
  e.cport = 1024 + (i & 0xfff);
  e.vaddr = 0xc0a80001;
  e.vport = 80;
  e.daddr = 0xac100001 + (i % 2);
  e.dport = 8080;
  e.dest = i % 2;
  e.xmit = 0;
  e.flags = 0;
  e.state = 0;
  e.timeout = timeout;
  return t.insert(e, now);
}

describe('ConnTable', () => {
  it('finds a connection by its client tuple and by its reply tuple, and nothing else', () => {
    const t = new ConnTable(0, 16, 1);
    const c = add(t, 5, 0);
    expect(t.lookupIn(TCP, 0x0a000005, 1029, 0xc0a80001, 80)).toBe(c);
    expect(t.lookupOut(TCP, 0xac100002, 8080, 0x0a000005, 1029)).toBe(c);
    expect(t.lookupIn(UDP, 0x0a000005, 1029, 0xc0a80001, 80)).toBe(NIL);
    expect(t.lookupIn(TCP, 0x0a000005, 1030, 0xc0a80001, 80)).toBe(NIL);
    expect(t.lookupOut(TCP, 0xac100001, 8080, 0x0a000005, 1029)).toBe(NIL);
    expect(t.count).toBe(1);
  });

  it('expires a connection exactly when its timeout elapses, restarted by touch', () => {
    const t = new ConnTable(100, 16, 1);
    const c = add(t, 1, 100, 10);
    const gone: number[] = [];
    const onExpire = (x: number) => {
      gone.push(x);
      return true;
    };
    expect(t.tick(105, onExpire)).toBe(0);
    t.touch(c, 105); // now expires at 115
    expect(t.tick(114, onExpire)).toBe(0);
    expect(t.tick(115, onExpire)).toBe(1);
    expect(gone).toEqual([c]);
    expect(t.lookupIn(TCP, 0x0a000001, 1025, 0xc0a80001, 80)).toBe(NIL);
    expect(t.count).toBe(0);
  });

  it('expires at once the shorter timeout a state change sets, whatever slot the entry was filed in', () => {
    const t = new ConnTable(100, 16, 1);
    const c = add(t, 1, 100, 2);
    const never = () => true;
    // At 101 a packet moves it to a long timeout (ESTABLISHED); at 102 the tick re-files it at 1001.
    t.timeout[c] = 900;
    t.touch(c, 101);
    expect(t.tick(102, never)).toBe(0);
    // At 105 a reset moves it to CLOSE's 10 s: it must go at 115, not at 1001.
    t.timeout[c] = 10;
    t.touch(c, 105);
    expect(t.tick(114, never)).toBe(0);
    expect(t.tick(115, never)).toBe(1);
    expect(t.count).toBe(0);
    // A timeout of 0 at the current second goes with the next tick, not a wheel turn later.
    const d = add(t, 2, 115, 60);
    t.timeout[d] = 0;
    t.touch(d, 115);
    expect(t.tick(116, never)).toBe(1);
  });

  it('handles timeouts longer than the wheel and a clock that jumps far ahead', () => {
    const t = new ConnTable(0, 16, 1);
    add(t, 1, 0, 900);
    add(t, 2, 0, 5000);
    const never = () => true;
    expect(t.tick(899, never)).toBe(0);
    expect(t.tick(900, never)).toBe(1);
    expect(t.tick(4999, never)).toBe(0);
    expect(t.tick(100000, never)).toBe(1);
    expect(t.count).toBe(0);
  });

  it('keeps a connection whose expiry callback declines', () => {
    const t = new ConnTable(0, 16, 1);
    const c = add(t, 1, 0, 2);
    expect(
      t.tick(2, (x) => {
        t.expires[x] = 10;
        return false;
      }),
    ).toBe(0);
    expect(t.isLive(c)).toBe(true);
    expect(t.tick(10, () => true)).toBe(1);
  });

  it('unlinks at once: out of the indexes and its wheel slot, its storage free for the next insert', () => {
    // Storage and limit both 4, all four entries in one wheel slot (they expire at 60).
    const t = new ConnTable(0, 4, 1, 4);
    const [a, b, c, d] = [1, 2, 3, 4].map((i) => add(t, i, 0));
    // The slot lists d, c, b, a: unlink its first, a middle and its last entry.
    for (const x of [d!, b!, a!]) t.unlink(x);
    expect(t.lookupIn(TCP, 0x0a000001, 1025, 0xc0a80001, 80)).toBe(NIL);
    expect(t.count).toBe(1);
    // The full storage takes three new entries in the freed places at once.
    const added = [5, 6, 7].map((i) => add(t, i, 0));
    expect(new Set(added)).toEqual(new Set([a, b, d]));
    expect(t.lookupIn(TCP, 0x0a000005, 1029, 0xc0a80001, 80)).toBe(added[0]);
    // The slot holds each live entry once: all four expire at 60, nothing more.
    const expired: number[] = [];
    expect(t.tick(60, (x) => expired.push(x) > 0)).toBe(4);
    expect(expired.sort((x, y) => x - y)).toEqual([c!, ...added].sort((x, y) => x - y));
    expect(t.count).toBe(0);
  });

  it('grows past its initial capacity and keeps every entry findable', () => {
    const t = new ConnTable(0, 4, 7);
    const ids = Array.from({ length: 5000 }, (_, i) => add(t, i, 0));
    expect(new Set(ids).size).toBe(5000);
    expect(t.capacity).toBeGreaterThanOrEqual(5000);
    for (let i = 0; i < 5000; i++) {
      expect(t.lookupIn(TCP, 0x0a000000 + i, 1024 + (i & 0xfff), 0xc0a80001, 80)).toBe(ids[i]);
    }
    let n = 0;
    t.forEach(() => {
      n++;
    });
    expect(n).toBe(5000);
  });

  it('stops at its maximum capacity', () => {
    const t = new ConnTable(0, 4, 1, 8);
    for (let i = 0; i < 8; i++) expect(add(t, i, 0)).not.toBe(NIL);
    expect(add(t, 8, 0)).toBe(NIL);
    expect(t.count).toBe(8);
  });

  it('holds at most maxConns entries when that is no power of two, and stays findable', () => {
    const t = new ConnTable(0, 4, 3, 1000);
    const ids = Array.from({ length: 1000 }, (_, i) => add(t, i, 0));
    expect(ids.every((c) => c !== NIL)).toBe(true);
    expect(add(t, 1000, 0)).toBe(NIL);
    expect(t.count).toBe(1000);
    expect(t.capacity).toBe(1024);
    for (let i = 0; i < 1000; i += 97) {
      expect(t.lookupIn(TCP, 0x0a000000 + i, 1024 + (i & 0xfff), 0xc0a80001, 80)).toBe(ids[i]);
    }
    // Room again once one is gone.
    t.unlink(ids[0]);
    expect(add(t, 1000, 0)).not.toBe(NIL);
  });
});

describe('ConnTable, wide (IPv6)', () => {
  // Two clients whose addresses fold to the same number (2001:db8::1 and 2001:db8:0:1:0:1:0:1):
  // the index cannot tell them apart, the full addresses must.
  const A = [0x20010db8, 0, 0, 1];
  const B = [0x20010db8, 1, 1, 1];
  const VIP = [0x20010db8, 0x00ff0000, 0, 0x80];
  const RS = [0xfd000000, 0, 0, 0x10];

  /** An insert6 key: client, virtual, dest. */
  const key = (client: number[], vip = VIP, rs = RS) => Uint32Array.from([...client, ...vip, ...rs]);

  function add6(t: ConnTable, client: number[], cport: number, now = 0, flags = 0): number {
    const e = newConnInit();
    e.protocol = TCP;
    e.cport = cport;
    e.vport = 80;
    e.dport = 8080;
    e.dest = 0;
    e.flags = flags;
    e.timeout = 60;
    return t.insert6(e, key(client), now);
  }

  it('keeps the full addresses beside their folds, and tells equal folds apart', () => {
    const t = new ConnTable(0, 16, 1, 1 << 20, true);
    const a = add6(t, A, 40000);
    const b = add6(t, B, 40000);
    expect(a).not.toBe(NIL);
    expect(b).not.toBe(a);
    expect(t.caddr[a]).toBe(t.caddr[b]);
    expect(t.lookupIn6(TCP, key(A), 40000, 80)).toBe(a);
    expect(t.lookupIn6(TCP, key(B), 40000, 80)).toBe(b);
    expect(t.lookupIn6(TCP, key([0x20010db8, 2, 2, 1]), 40000, 80)).toBe(NIL);
    expect(t.lookupIn6(TCP, key(A, [0x20010db8, 0x00ff0000, 0, 0x81]), 40000, 80)).toBe(NIL);
    expect(t.lookupIn6(UDP, key(A), 40000, 80)).toBe(NIL);
    // Replies: from the real server to each client.
    expect(t.lookupOut6(TCP, key(A), 8080, 40000)).toBe(a);
    expect(t.lookupOut6(TCP, key(B), 8080, 40000)).toBe(b);
    expect(t.lookupOut6(TCP, key(A, VIP, [0xfd000000, 0, 0, 0x11]), 8080, 40000)).toBe(NIL);
    expect([...t.addr6.subarray(a * ADDR6_WORDS, (a + 1) * ADDR6_WORDS)]).toEqual([...A, ...VIP, ...RS]);
    expect([...t.addr6.subarray(b * ADDR6_WORDS + A6_CLIENT, b * ADDR6_WORDS + A6_VIRTUAL)]).toEqual(B);
    expect(t.addr6[b * ADDR6_WORDS + A6_DEST + 3]).toBe(0x10);
  });

  it('finds templates only through lookupTemplate6, by the full client address', () => {
    const t = new ConnTable(0, 16, 1, 1 << 20, true);
    const tpl = add6(t, A, 0, 0, CONN_F_TEMPLATE);
    expect(t.lookupTemplate6(TCP, key(A), 80)).toBe(tpl);
    expect(t.lookupTemplate6(TCP, key(B), 80)).toBe(NIL);
    expect(t.lookupIn6(TCP, key(A), 0, 80)).toBe(NIL);
  });

  it('keeps the addresses through growth, and a freed slot takes the next connection’s', () => {
    const t = new ConnTable(0, 16, 1, 1 << 20, true);
    const ids: number[] = [];
    for (let i = 0; i < 3000; i++) ids.push(add6(t, [0x20010db8, 0, i >>> 8, i], 1024 + (i & 0xff)));
    expect(t.capacity).toBe(4096);
    for (const i of [0, 17, 1500, 2999])
      expect(t.lookupIn6(TCP, key([0x20010db8, 0, i >>> 8, i]), 1024 + (i & 0xff), 80)).toBe(ids[i]);
    t.unlink(ids[17]);
    const c = add6(t, B, 5000);
    expect(c).toBe(ids[17]);
    expect(t.lookupIn6(TCP, key(B), 5000, 80)).toBe(c);
    expect(t.lookupIn6(TCP, key([0x20010db8, 0, 0, 17]), 1024 + 17, 80)).toBe(NIL);
  });

  it('leaves an IPv4 table without the side column', () => {
    const t = new ConnTable(0, 16, 1);
    add(t, 1, 0);
    expect(t.addr6.length).toBe(0);
  });
});
