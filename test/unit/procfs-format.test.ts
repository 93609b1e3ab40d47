// The /proc files' text against goldens produced by the kernel's own printf formats
// (ip_vs_ctl.c ip_vs_info_seq_show / ip_vs_stats_show, ip_vs_conn.c ip_vs_conn_seq_show /
// ip_vs_conn_sync_seq_show), run through printf(1) with the same arguments, never through the
// module under test. Trailing blanks are part of the format and of the goldens.

import { describe, expect, it } from 'vitest';
import type { ConnSnapshot, DestSnapshot, ServiceSnapshot, Snapshot, StatsSnapshot } from '../../src/ctl/protocol';
import {
  CONN_F_TEMPLATE,
  FWD_DROUTE,
  FWD_LOCALNODE,
  FWD_MASQ,
  FWD_TUNNEL,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
} from '../../src/ip-vs';
import { formatConnFiles } from '../../src/procfs/conns';
import { formatProcIpVs, formatProcIpVsStats, formatSysctlValue } from '../../src/procfs/format';
import { u32ToIp } from '../../src/wire/addr';
import { connRows, dest, service, ZERO } from '../helpers/snapshots';

const lines = (...l: string[]) => `${l.join('\n')}\n`;
/** The connection files' text for listing-shaped connections (procfs/conns.ts encodes them). */
const formatProcIpVsConn = (conns: readonly ConnSnapshot[]) => formatConnFiles(connRows(conns)).conn;
const formatProcIpVsConnSync = (conns: readonly ConnSnapshot[]) => formatConnFiles(connRows(conns)).sync;
const snap = (...services: ServiceSnapshot[]): Snapshot => ({ version: '1.2.1', size: 4096, services });
const fwm = (mark: number, dests: DestSnapshot[], over: Partial<ServiceSnapshot> = {}) =>
  service(0, '0.0.0.0', 0, dests, { fwmark: mark, ...over });

const BANNER = 'IP Virtual Server version 1.2.1 (size=4096)';
const TITLE1 = 'Prot LocalAddress:Port Scheduler Flags';
const TITLE2 = '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn';

describe('/proc/net/ip_vs', () => {
  it('prints only the banner and the two title lines for an empty table', () => {
    expect(formatProcIpVs(snap())).toBe(lines(BANNER, TITLE1, TITLE2));
  });

  it('takes the version and table size of the banner from the snapshot', () => {
    const s: Snapshot = { version: '1.2.1', size: 65536, services: [] };
    expect(formatProcIpVs(s).split('\n')[0]).toBe('IP Virtual Server version 1.2.1 (size=65536)');
  });

  it('prints a TCP service in hex with its dests in the order given (Route first, then Masq)', () => {
    const s = snap(
      service(6, '192.168.0.1', 80, [
        dest('10.0.0.2', 8080, { fwd: FWD_DROUTE, weight: 3, activeConns: 12, inactConns: 345 }),
        dest('10.0.0.1', 80, { fwd: FWD_MASQ }),
      ]),
    );
    expect(formatProcIpVs(s)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        // "%s  %08X:%04X %s %s " with an empty flags field, then "\n": two blanks after the scheduler.
        'TCP  C0A80001:0050 wlc  ',
        '  -> 0A000002:1F90      Route   3      12         345       ',
        '  -> 0A000001:0050      Masq    1      0          0         ',
      ),
    );
  });

  it('prints a persistent service with its timeout in jiffies (HZ=1000 by default) and its netmask in hex', () => {
    const svc = service(
      6,
      '192.168.0.10',
      443,
      [dest('10.0.0.3', 443, { fwd: FWD_TUNNEL, weight: 2, activeConns: 1, inactConns: 7 })],
      {
        sched: 'rr',
        flags: SVC_F_PERSISTENT,
        timeout: 300,
        netmask: '255.255.255.0',
      },
    );
    expect(formatProcIpVs(snap(svc))).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  C0A8000A:01BB rr  persistent 75000 FFFFFF00',
        '  -> 0A000003:01BB      Tunnel  2      1          7         ',
      ),
    );
    expect(formatProcIpVs(snap(svc), 1000).split('\n')[3]).toBe('TCP  C0A8000A:01BB rr  persistent 300000 FFFFFF00');
  });

  it('marks a one-packet UDP service "ops " and lets a full-width counter end the dest row', () => {
    const s = snap(
      service(17, '10.1.1.1', 53, [dest('10.0.0.5', 53, { fwd: FWD_LOCALNODE, weight: 10, inactConns: 2000000000 })], {
        sched: 'rr',
        flags: SVC_F_ONEPACKET,
      }),
    );
    expect(formatProcIpVs(s)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'UDP  0A010101:0035 rr ops  ',
        '  -> 0A000005:0035      Local   10     0          2000000000',
      ),
    );
  });

  it('prints fwmark services as "FWM  %08X", one blank after the flags field instead of two', () => {
    const s = snap(
      fwm(258, [dest('192.168.200.4', 0, { fwd: FWD_DROUTE })]),
      fwm(258, [], { sched: 'sh', flags: SVC_F_PERSISTENT, timeout: 360 }),
      fwm(1, [], { sched: 'lc', flags: SVC_F_ONEPACKET }),
    );
    expect(formatProcIpVs(s)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'FWM  00000102 wlc ',
        '  -> C0A8C804:0000      Route   1      0          0         ',
        'FWM  00000102 sh persistent 90000 FFFFFFFF',
        'FWM  00000001 lc ops ',
      ),
    );
  });

  it('keeps the services in the order given, not sorted', () => {
    const s = snap(service(17, '10.1.1.1', 53, []), service(6, '10.0.0.1', 80, []), fwm(7, []));
    expect(formatProcIpVs(s)).toBe(
      lines(BANNER, TITLE1, TITLE2, 'UDP  0A010101:0035 wlc  ', 'TCP  0A000001:0050 wlc  ', 'FWM  00000007 wlc '),
    );
  });
});

function conn(over: Partial<ConnSnapshot>): ConnSnapshot {
  return {
    protocol: 6,
    caddr: '0.0.0.0',
    cport: 0,
    vaddr: '0.0.0.0',
    vport: 0,
    daddr: '0.0.0.0',
    dport: 0,
    state: 'NONE',
    expires: 0,
    flags: 0,
    ...over,
  };
}

/** The connections of the goldens below, in table order. */
const CONNS: ConnSnapshot[] = [
  // The public example row of REFERENCE.md §1.12.
  conn({
    caddr: '10.0.79.182',
    cport: 69,
    vaddr: '10.0.79.182',
    vport: 8080,
    daddr: '10.0.79.182',
    dport: 8081,
    state: 'SYN_RECV',
    expires: 57,
  }),
  conn({
    caddr: '192.168.1.5',
    cport: 51234,
    vaddr: '192.168.0.1',
    vport: 80,
    daddr: '10.0.0.2',
    dport: 8080,
    state: 'ESTABLISHED',
    expires: 899.6,
  }),
  conn({
    caddr: '192.168.1.6',
    cport: 40000,
    vaddr: '192.168.0.1',
    vport: 80,
    daddr: '10.0.0.1',
    dport: 80,
    state: 'FIN_WAIT',
    expires: 119,
  }),
  conn({
    protocol: 17,
    caddr: '192.168.1.7',
    cport: 5353,
    vaddr: '10.1.1.1',
    vport: 53,
    daddr: '10.0.0.5',
    dport: 53,
    state: 'UDP',
    expires: 300,
  }),
  // Persistence template of a TCP service: client port 0, state NONE.
  conn({
    caddr: '192.168.1.5',
    vaddr: '192.168.0.10',
    vport: 443,
    daddr: '10.0.0.3',
    dport: 443,
    expires: 359,
    flags: CONN_F_TEMPLATE,
  }),
  // Template of fwmark service 258: protocol IPPROTO_IP, the mark in the virtual address.
  conn({
    protocol: 0,
    caddr: '192.168.1.0',
    vaddr: '0.0.1.2',
    daddr: '192.168.200.4',
    expires: 360,
    flags: CONN_F_TEMPLATE,
  }),
];

const CONN_TITLE = 'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData';
const CONN_ROWS = [
  'TCP 0A004FB6 0045 0A004FB6 1F90 0A004FB6 1F91 SYN_RECV         57',
  'TCP C0A80105 C822 C0A80001 0050 0A000002 1F90 ESTABLISHED     899',
  'TCP C0A80106 9C40 C0A80001 0050 0A000001 0050 FIN_WAIT        119',
  'UDP C0A80107 14E9 0A010101 0035 0A000005 0035 UDP             300',
  'TCP C0A80105 0000 C0A8000A 01BB 0A000003 01BB NONE            359',
  'IP  C0A80100 0000 00000102 0000 C0A8C804 0000 NONE            360',
];

describe('/proc/net/ip_vs with IPv6', () => {
  it('prints IPv6 services and dests with %pI6 in brackets, no ops field, the prefix length ntohl()ed', () => {
    const s = snap(
      service(6, '2001:db8::1', 80, [dest('fd00::10', 8080)], {
        af: 10,
        flags: SVC_F_PERSISTENT,
        timeout: 300,
        netmask: '64',
      }),
      // One-packet scheduling is not shown on an IPv6 row.
      service(17, '2001:db8::2', 53, [], { af: 10, sched: 'rr', flags: SVC_F_ONEPACKET, netmask: '128' }),
      // A fwmark row says nothing of its family; its IPv4 tunnel dest is printed as IPv4.
      fwm(7, [dest('10.0.0.1', 0, { fwd: FWD_TUNNEL })], {
        af: 10,
        flags: SVC_F_PERSISTENT,
        timeout: 60,
        netmask: '128',
      }),
    );
    expect(formatProcIpVs(s)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  [2001:0db8:0000:0000:0000:0000:0000:0001]:0050 wlc persistent 75000 40000000',
        '  -> [fd00:0000:0000:0000:0000:0000:0000:0010]:1F90      Masq    1      0          0         ',
        'UDP  [2001:0db8:0000:0000:0000:0000:0000:0002]:0035 rr ',
        'FWM  00000007 wlc persistent 15000 80000000',
        '  -> 0A000001:0000      Tunnel  1      0          0         ',
      ),
    );
  });
});

describe('/proc/net/ip_vs_conn', () => {
  it('prints only the title when there are no connections', () => {
    expect(formatProcIpVsConn([])).toBe(lines(CONN_TITLE));
  });

  it('prints connections and templates in several states, expiry rounded down', () => {
    expect(formatProcIpVsConn(CONNS)).toBe(lines(CONN_TITLE, ...CONN_ROWS));
  });

  it('names protocols as ip_vs_proto_name does, letting long names push the row right', () => {
    const rows = formatProcIpVsConn([
      conn({
        protocol: 132,
        caddr: '192.168.1.8',
        cport: 1000,
        vaddr: '192.168.0.9',
        vport: 2905,
        daddr: '10.0.0.9',
        dport: 2905,
        state: 'ESTABLISHED',
      }),
      conn({ protocol: 99, caddr: '192.168.1.8', vaddr: '192.168.0.9', daddr: '10.0.0.9', state: 'ERR!', expires: 12 }),
    ]);
    expect(rows).toBe(
      lines(
        CONN_TITLE,
        'SCTP C0A80108 03E8 C0A80009 0B59 0A000009 0B59 ESTABLISHED       0',
        'IP_99 C0A80108 0000 C0A80009 0000 0A000009 0000 ERR!             12',
      ),
    );
  });

  it('never prints a negative expiry', () => {
    expect(formatProcIpVsConn([conn({ expires: -3 })]).split('\n')[1]).toBe(
      'TCP 00000000 0000 00000000 0000 00000000 0000 NONE              0',
    );
  });
});

describe('/proc/net/ip_vs_conn_sync', () => {
  it('adds the Origin column: LOCAL, or SYNC for entries flagged IP_VS_CONN_F_SYNC', () => {
    const rows = formatProcIpVsConnSync([CONNS[0], CONNS[5], { ...CONNS[1], flags: 0x0020 }]);
    expect(rows).toBe(
      lines(
        'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires',
        'TCP 0A004FB6 0045 0A004FB6 1F90 0A004FB6 1F91 SYN_RECV    LOCAL       57',
        'IP  C0A80100 0000 00000102 0000 C0A8C804 0000 NONE        LOCAL      360',
        'TCP C0A80105 C822 C0A80001 0050 0A000002 1F90 ESTABLISHED SYNC       899',
      ),
    );
  });
});

describe('/proc/net/ip_vs_stats', () => {
  const TITLES = [
    '   Total Incoming Outgoing         Incoming         Outgoing',
    '   Conns  Packets  Packets            Bytes            Bytes',
  ];
  const RATE_TITLE = ' Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s';

  it('prints zero counters right-aligned in their widths, with the blank line between the blocks', () => {
    expect(formatProcIpVsStats(ZERO, ZERO)).toBe(
      lines(
        ...TITLES,
        '       0        0        0                0                0',
        '',
        RATE_TITLE,
        '       0        0        0                0                0',
      ),
    );
  });

  it('prints 64-bit counters above 2^32 exactly, overflowing the column width as printf does', () => {
    const total: StatsSnapshot = {
      conns: 2 ** 32 + 1,
      inPkts: 123456789012,
      outPkts: 2 ** 32 - 1,
      inBytes: Number.MAX_SAFE_INTEGER,
      outBytes: 2 ** 40,
    };
    const rates: StatsSnapshot = { conns: 1, inPkts: 300, outPkts: 2 ** 32, inBytes: 125000000, outBytes: 0 };
    expect(formatProcIpVsStats(total, rates)).toBe(
      lines(
        ...TITLES,
        '100000001 1CBE991A14 FFFFFFFF   1FFFFFFFFFFFFF      10000000000',
        '',
        RATE_TITLE,
        '       1      12C 100000000          7735940                0',
      ),
    );
  });
});

describe('/proc/sys/net/ipv4/vs/*', () => {
  it.each([
    [0, '0\n'],
    [1, '1\n'],
    [3, '3\n'],
    [-1, '-1\n'],
    [1024, '1024\n'],
  ])('reads %d as %j', (v, text) => {
    expect(formatSysctlValue(v)).toBe(text);
  });
});

/**
 * A small sscanf for the directives ipvsadm uses on /proc/net/ip_vs_conn (REFERENCE.md §1.12):
 * each directive first skips blanks; %s takes a run of non-blanks, %hX a hex number kept to its
 * low 16 bits (unsigned short), %d a signed decimal. It stops at the end of input or at the
 * first directive that does not match, returning what it assigned so far (the count scanf
 * returns is its length).
 */
function sscanf(input: string, format: string): (string | number)[] {
  const out: (string | number)[] = [];
  let pos = 0;
  for (const directive of format.split(' ')) {
    while (pos < input.length && /\s/.test(input[pos])) pos++;
    if (pos >= input.length) break;
    const rest = input.slice(pos);
    const m =
      directive === '%s'
        ? /^\S+/.exec(rest)
        : directive === '%hX'
          ? /^(?:0[xX])?[0-9A-Fa-f]+/.exec(rest)
          : directive === '%d'
            ? /^[+-]?\d+/.exec(rest)
            : null;
    if (m === null) break;
    pos += m[0].length;
    if (directive === '%s') out.push(m[0]);
    else if (directive === '%hX') out.push(Number.parseInt(m[0].replace(/^0[xX]/, ''), 16) & 0xffff);
    else out.push(Number.parseInt(m[0], 10));
  }
  return out;
}

const PROTOCOL_NUMBERS: Record<string, number> = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 };

describe('parsing /proc/net/ip_vs_conn back as ipvsadm -c does', () => {
  it('recovers every connection field from each row', () => {
    const [title, ...rows] = formatProcIpVsConn(CONNS).split('\n');
    expect(title).toBe(CONN_TITLE);
    expect(rows.pop()).toBe('');
    const parsed = rows.map((row) => {
      const f = sscanf(row, '%s %s %hX %s %hX %s %hX %s %d %s %s');
      expect(f).toHaveLength(9); // no PE name or data
      const [proto, caddr, cport, vaddr, vport, daddr, dport, state, expires] = f as [
        string,
        string,
        number,
        string,
        number,
        string,
        number,
        string,
        number,
      ];
      return {
        protocol: PROTOCOL_NUMBERS[proto],
        caddr: u32ToIp(Number.parseInt(caddr, 16)),
        cport,
        vaddr: u32ToIp(Number.parseInt(vaddr, 16)),
        vport,
        daddr: u32ToIp(Number.parseInt(daddr, 16)),
        dport,
        state,
        expires,
      };
    });
    expect(parsed).toEqual(CONNS.map(({ flags: _flags, ...c }) => ({ ...c, expires: Math.floor(c.expires) })));
  });
});
