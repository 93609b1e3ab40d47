// The connection files lvsd's procfs worker writes (procfs-conns.ts) from a typed-array snapshot
// of the table: the same text as the ConnSnapshot formatters make from -L -c's listing.

import { describe, expect, it } from 'vitest';
import { formatConnFiles, snapshotConns } from '../../src/ctl/procfs-conns';
import { formatProcIpVsConn, formatProcIpVsConnSync } from '../../src/ctl/procfs-format';
import { FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { destSpec, director, RS1, RS2, svcSpec, VIP } from '../helpers/engine-lab';
import { packet } from '../helpers/packet-builder';

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
    const rows = snapshotConns(d.engine);
    expect(rows.n).toBe(15);
    const { conn, sync } = formatConnFiles(rows);
    const listed = d.balancer.connections();
    expect(conn).toBe(formatProcIpVsConn(listed));
    expect(sync).toBe(formatProcIpVsConnSync(listed));
    expect(conn).toMatch(/\nTCP C0A80101 0000 C0A80001 0050 AC10000[12] 0050 NONE +293\n/);
    expect(conn).toMatch(/\nTCP C0A80101 9C40 C0A80001 0050 AC10000[12] 0050 SYN_RECV +53\n/);
    expect(sync).toMatch(/\nUDP C0A80105 138C C0A80001 0035 AC10000[12] 0035 UDP +LOCAL +293\n/);
  });
});
