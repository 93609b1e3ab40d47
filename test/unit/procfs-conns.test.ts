// The connection files lvsd's procfs worker writes (procfs/conns.ts) from a typed-array snapshot
// of the table: the same text as the ConnSnapshot formatters make from -L -c's listing.

import { describe, expect, it } from 'vitest';
import { CONN_F_SYNC, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { emitConnFile, formatConnFiles } from '../../src/procfs/conns';
import { CONN_HEADER, CONN_SYNC_HEADER } from '../../src/procfs/format';
import { ipToU32, u32ToIp } from '../../src/wire/addr';
import { destSpec, director, RS1, RS2, svcSpec, VIP } from '../helpers/engine-lab';
import { packet } from '../helpers/packet-builder';
import { mulberry32 } from '../helpers/prng';
import { connRows } from '../helpers/snapshots';

describe('connection files from a table snapshot', () => {
  it('match the listing-based formatters row for row, templates and UDP included', async () => {
    const d = director();
    const tcp = svcSpec(VIP, 80, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout: 300 });
    const udp = svcSpec(VIP, 53, { sched: 'rr', protocol: 17 });
    for (const key of [tcp, udp]) {
      await d.balancer.addService(key);
      await d.balancer.addDest(key, destSpec(RS1, key.port, { fwd: FWD_MASQ }));
      await d.balancer.addDest(key, destSpec(RS2, key.port, { fwd: FWD_MASQ }));
    }
    for (let i = 0; i < 5; i++) {
      d.send(
        packet()
          .ipv4({ src: `192.168.1.${i + 1}`, dst: VIP })
          .tcp({ sport: 40000 + i, dport: 80, flags: 'S' })
          .build(),
        packet()
          .ipv4({ src: `192.168.1.${i + 1}`, dst: VIP })
          .udp({ sport: 5000 + i, dport: 53 })
          .build(),
      );
    }
    d.advance(7);
    const rows = d.plane.connRowsNow();
    expect(rows.n).toBe(15);
    const { conn, sync } = formatConnFiles(rows);
    // The same text from the listing -L -c shows (its state names and expiries).
    const listed = formatConnFiles(connRows(d.connections()));
    expect(conn).toBe(listed.conn);
    expect(sync).toBe(listed.sync);
    expect(conn).toMatch(/\nTCP C0A80101 0000 C0A80001 0050 AC10000[12] 0050 NONE +293\n/);
    expect(conn).toMatch(/\nTCP C0A80101 9C40 C0A80001 0050 AC10000[12] 0050 SYN_RECV +53\n/);
    expect(sync).toMatch(/\nUDP C0A80105 138C C0A80001 0035 AC10000[12] 0035 UDP +LOCAL +293\n/);
  });
});

describe('the byte encoder of the connection files', () => {
  /** The row as the kernel's format string makes it, written independently of the encoder. */
  const hex = (v: number, w: number) => v.toString(16).toUpperCase().padStart(w, '0');
  const NAMES: Record<number, string> = { 0: 'IP', 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

  it('writes every row as the printf format would, across flushes of a small buffer', () => {
    const next = mulberry32(77);
    const conns = Array.from({ length: 500 }, () => {
      const protocol = [0, 6, 17, 132, 99][next() % 5];
      return {
        protocol,
        caddr: u32ToIp(next()),
        cport: next() & 0xffff,
        vaddr: u32ToIp(next()),
        vport: next() & 0xffff,
        daddr: u32ToIp(next()),
        dport: next() & 0xffff,
        state: ['ESTABLISHED', 'SYN_RECV', 'NONE', 'UDP', 'CLOSE_WAIT'][next() % 5],
        expires: [(next() % 4000) - 100, 0x7fffffff, 9999999, 10000000][next() % 4],
        flags: next() % 3 === 0 ? CONN_F_SYNC : 0,
      };
    });
    const want = (sync: boolean) =>
      (sync ? CONN_SYNC_HEADER : CONN_HEADER) +
      conns
        .map((c) => {
          const name = NAMES[c.protocol] ?? `IP_${c.protocol}`;
          const origin = sync ? `${(c.flags & CONN_F_SYNC ? 'SYNC' : 'LOCAL').padEnd(6)} ` : '';
          return (
            `${name.padEnd(3)} ${hex(ipToU32(c.caddr), 8)} ${hex(c.cport, 4)} ${hex(ipToU32(c.vaddr), 8)} ` +
            `${hex(c.vport, 4)} ${hex(ipToU32(c.daddr), 8)} ${hex(c.dport, 4)} ${c.state.padEnd(11)} ` +
            `${origin}${String(Math.max(0, c.expires)).padStart(7)}\n`
          );
        })
        .join('');
    const rows = connRows(conns);
    for (const sync of [false, true]) {
      const buf = Buffer.alloc(300);
      const chunks: string[] = [];
      emitConnFile(rows, sync, buf, (len) => chunks.push(buf.toString('latin1', 0, len)));
      expect(chunks.length).toBeGreaterThan(100);
      expect(chunks.join('')).toBe(want(sync));
    }
  });
});
