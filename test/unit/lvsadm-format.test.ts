import { describe, expect, it } from 'vitest';
import { DEFAULT_LIST_FORMAT, type ListFormat } from '../../src/cli/lvsadm-args';
import {
  compareDests,
  compareServices,
  formatConnections,
  formatLargeNum,
  formatList,
  formatListService,
  formatSave,
  formatTimeouts,
  type NameLookup,
} from '../../src/cli/lvsadm-format';
import type { ConnSnapshot, DestSnapshot, ServiceSnapshot, Snapshot } from '../../src/ctl/protocol';
import { dest, service } from '../helpers/snapshots';

function fwm(mark: number, dests: DestSnapshot[], over: Partial<ServiceSnapshot> = {}): ServiceSnapshot {
  return service(0, '0.0.0.0', 0, dests, { fwmark: mark, ...over });
}

const snap = (...services: ServiceSnapshot[]): Snapshot => ({ version: '1.2.1', size: 4096, services });
const numeric: ListFormat = { ...DEFAULT_LIST_FORMAT, numeric: true };
const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** The blanks that pad a last column of width 10 holding one digit ("%-10u" of 0). */
const PAD9 = ' '.repeat(9);
const BANNER = 'IP Virtual Server version 1.2.1 (size=4096)';
const TITLE1 = 'Prot LocalAddress:Port Scheduler Flags';
const TITLE2 = '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn';

describe('-L default listing', () => {
  it('reproduces the seed example, dests sorted by address although the kernel lists .2 first', () => {
    const s = snap(service(6, '192.168.0.1', 80, [dest('172.16.0.2', 80), dest('172.16.0.1', 80)], { sched: 'rr' }));
    expect(formatList(s, numeric)).toBe(
      lines(
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  192.168.0.1:80 rr',
        '  -> 172.16.0.1:80                Masq    1      0          0         ',
        '  -> 172.16.0.2:80                Masq    1      0          0         ',
      ),
    );
  });

  it('prints a persistent service and a fwmark service as in the ipvsadm man-page example', () => {
    const s = snap(
      fwm(258, [dest('192.168.200.4', 0)], { sched: 'rr' }),
      service(6, '10.232.132.244', 80, [dest('10.232.132.170', 80, { fwd: 3 })], {
        sched: 'wrr',
        flags: 1,
        timeout: 50,
      }),
    );
    expect(formatList(s, numeric)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  10.232.132.244:80 wrr persistent 50',
        `  -> 10.232.132.170:80            Route   1      0          0${PAD9}`,
        'FWM  258 rr',
        `  -> 192.168.200.4:0              Masq    1      0          0${PAD9}`,
      ),
    );
  });

  it('prints a port-0 persistent service with Local and Route dests (CTDB expectation)', () => {
    const s = snap(
      service(6, '10.1.1.201', 0, [dest('192.168.1.2', 0, { fwd: 3 }), dest('127.0.0.1', 0, { fwd: 1 })], {
        sched: 'lc',
        flags: 1,
        timeout: 1999999,
      }),
    );
    expect(formatListService(s.services[0], numeric)).toBe(
      lines(
        TITLE1,
        TITLE2,
        'TCP  10.1.1.201:0 lc persistent 1999999',
        '  -> 127.0.0.1:0                  Local   1      0          0         ',
        '  -> 192.168.1.2:0                Route   1      0          0         ',
      ),
    );
  });

  it('prints sched flags, mask, pe and ops after the scheduler', () => {
    const s = snap(
      service(6, '10.0.0.1', 80, [], { sched: 'sh', flags: 0x18 }),
      service(6, '10.0.0.2', 0, [], { sched: 'rr', flags: 1 | 0x8, timeout: 360, netmask: '255.255.255.0', pe: 'sip' }),
      service(17, '10.0.0.3', 53, [], { sched: 'mh', flags: 0x4 | 0x10 }),
      fwm(1, [], { sched: 'wlc', flags: 0x20 | 0x4 }),
    );
    expect(formatList(s, numeric)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  10.0.0.1:80 sh (sh-fallback,sh-port)',
        'TCP  10.0.0.2:0 rr (flag-1) persistent 360 mask 255.255.255.0 pe sip',
        'UDP  10.0.0.3:53 mh (mh-port) ops',
        'FWM  1 wlc (flag-3) ops',
      ),
    );
  });

  it('prints weight, active and inactive counts in their columns, with the blanks that pad them', () => {
    const s = snap(
      service(17, '10.0.0.1', 53, [dest('10.0.1.1', 53, { weight: 65535, activeConns: 1234567890, inactConns: 42 })]),
    );
    expect(formatList(s, numeric).split('\n')[4]).toBe(
      '  -> 10.0.1.1:53                  Masq    65535  1234567890 42        ',
    );
  });
});

describe('sort order', () => {
  const unsorted = snap(
    fwm(2, []),
    service(17, '10.0.0.1', 53, []),
    service(6, '10.0.0.2', 80, []),
    fwm(1, []),
    service(6, '10.0.0.1', 443, []),
    service(6, '10.0.0.1', 80, []),
  );

  it('sorts services by fwmark, then protocol (TCP before UDP), address and port', () => {
    const text = formatList(unsorted, numeric);
    expect(text.split('\n').slice(3, 9)).toEqual([
      'TCP  10.0.0.1:80 wlc',
      'TCP  10.0.0.1:443 wlc',
      'TCP  10.0.0.2:80 wlc',
      'UDP  10.0.0.1:53 wlc',
      'FWM  1 wlc',
      'FWM  2 wlc',
    ]);
  });

  it('keeps the kernel order of services and dests with --nosort', () => {
    const s = snap(
      ...unsorted.services.slice(0, 3),
      service(6, '10.9.9.9', 80, [dest('10.0.0.9', 80), dest('10.0.0.1', 80)]),
    );
    const text = formatList(s, { ...numeric, nosort: true });
    expect(text.split('\n').slice(3)).toEqual([
      'FWM  2 wlc',
      'UDP  10.0.0.1:53 wlc',
      'TCP  10.0.0.2:80 wlc',
      'TCP  10.9.9.9:80 wlc',
      `  -> 10.0.0.9:80                  Masq    1      0          0${PAD9}`,
      `  -> 10.0.0.1:80                  Masq    1      0          0${PAD9}`,
      '',
    ]);
  });

  it('sorts dests by address, then port', () => {
    const s = snap(
      service(6, '10.0.0.1', 80, [
        dest('10.0.0.20', 8080),
        dest('10.0.0.3', 9090),
        dest('10.0.0.3', 8080),
        dest('10.0.0.100', 80),
      ]),
    );
    expect(
      formatList(s, numeric)
        .split('\n')
        .slice(4, 8)
        .map((l) => l.slice(5, 20).trimEnd()),
    ).toEqual(['10.0.0.3:8080', '10.0.0.3:9090', '10.0.0.20:8080', '10.0.0.100:80']);
  });

  it("keeps libipvs's wrapped 32-bit subtraction: 10.0.0.1 sorts after 192.168.0.1", () => {
    // ntohl(10.0.0.1) - ntohl(192.168.0.1) wraps to a positive int in ipvs_cmp_services/dests.
    expect(compareDests({ addr: '10.0.0.1', port: 80 }, { addr: '192.168.0.1', port: 80 })).toBeGreaterThan(0);
    expect(compareDests({ addr: '10.0.0.1', port: 80 }, { addr: '10.0.0.2', port: 80 })).toBeLessThan(0);
    const a = { protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 };
    const b = { protocol: 6, addr: '192.168.0.1', port: 80, fwmark: 0 };
    expect(compareServices(a, b)).toBeGreaterThan(0);
    const text = formatList(snap(service(6, a.addr, 80, []), service(6, b.addr, 80, [])), numeric);
    expect(text.split('\n').slice(3, 5)).toEqual(['TCP  192.168.0.1:80 wlc', 'TCP  10.0.0.1:80 wlc']);
  });
});

describe('names without -n', () => {
  const names: NameLookup = {
    host: (addr) =>
      ({
        '192.168.0.1': 'www.example.com',
        '172.16.0.1': 'backend-one.internal.example.com',
        '10.0.0.1': 'very-long-virtual-hostname.example.com',
      })[addr],
    service: (port, protocol) => (port === 80 && protocol === 6 ? 'http' : undefined),
  };

  it('prints host and service names, cutting the service at 33 and the dest at 28 characters', () => {
    const s = snap(
      service(6, '192.168.0.1', 80, [dest('172.16.0.1', 80), dest('172.16.0.9', 8080)], { sched: 'rr' }),
      service(6, '10.0.0.1', 80, [], { sched: 'rr' }),
      fwm(3, [dest('172.16.0.1', 80)]),
    );
    expect(formatList(s, DEFAULT_LIST_FORMAT, names)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        // 10.0.0.1 after 192.168.0.1: the wrapped address comparison.
        'TCP  www.example.com:http rr',
        `  -> backend-one.internal.example Masq    1      0          0${PAD9}`,
        `  -> 172.16.0.9:8080              Masq    1      0          0${PAD9}`,
        'TCP  very-long-virtual-hostname.e rr',
        'FWM  3 wlc',
        // A fwmark service has no protocol, so ports stay numeric.
        `  -> backend-one.internal.example Masq    1      0          0${PAD9}`,
      ),
    );
  });
});

describe('--stats, --rate, --exact', () => {
  it('prints the stats columns as in the public ipvsadm --stats example', () => {
    const s = snap(
      service(
        6,
        '10.0.0.3',
        80,
        [dest('10.0.0.7', 80, { stats: { conns: 4, inPkts: 90, outPkts: 0, inBytes: 24476, outBytes: 0 } })],
        {
          stats: { conns: 8, inPkts: 132, outPkts: 0, inBytes: 34840, outBytes: 0 },
        },
      ),
    );
    expect(formatList(s, { ...numeric, stats: true })).toBe(
      lines(
        BANNER,
        'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
        '  -> RemoteAddress:Port',
        'TCP  10.0.0.3:80                         8      132        0    34840        0',
        '  -> 10.0.0.7:80                         4       90        0    24476        0',
      ),
    );
  });

  it('switches to K/M/G/T past 10^8, and prints exact numbers with --exact', () => {
    const big = { conns: 401, inPkts: 8939187, outPkts: 8953980, inBytes: 830843123, outBytes: 1135456789 };
    const s = snap(service(6, '20.20.20.1', 2020, [], { stats: big }));
    expect(formatList(s, { ...numeric, stats: true }).split('\n')[3]).toBe(
      'TCP  20.20.20.1:2020                   401  8939187  8953980  830843K    1135M',
    );
    expect(formatList(s, { ...numeric, stats: true, exact: true }).split('\n')[3]).toBe(
      'TCP  20.20.20.1:2020                   401  8939187  8953980 830843123 1135456789',
    );
  });

  it.each([
    [0, false, '        0'],
    [99999999, false, ' 99999999'],
    [100000000, false, '  100000K'],
    [999999999, false, '  999999K'],
    [1000000000, false, '    1000M'],
    [99999999999, false, '   99999M'],
    [100000000000, false, '     100G'],
    [100000000000000, false, '     100T'],
    [12345678, true, ' 12345678'],
    [123456789, true, ' 123456789'],
    [2 ** 53 - 1, true, ' 9007199254740991'],
  ])('print_largenum(%d, exact=%s) = %j', (n, exact, text) => {
    expect(formatLargeNum(n, exact)).toBe(text);
  });

  it('prints rates: largenum for services, %8llu for the dest packet rates', () => {
    const rates = { conns: 12, inPkts: 340, outPkts: 0, inBytes: 123456789, outBytes: 5600 };
    const s = snap(service(6, '10.0.0.3', 80, [dest('10.0.0.7', 80, { rates })], { rates }));
    expect(formatList(s, { ...numeric, rate: true })).toBe(
      lines(
        BANNER,
        'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
        '  -> RemoteAddress:Port',
        'TCP  10.0.0.3:80                        12      340        0  123456K     5600',
        '  -> 10.0.0.7:80                        12      340        0  123456K     5600',
      ),
    );
  });
});

describe('--thresholds, --persistent-conn, --tun-info', () => {
  const s = snap(
    service(6, '10.0.0.3', 80, [
      dest('10.0.0.7', 80, {
        uThreshold: 100,
        lThreshold: 75,
        activeConns: 3,
        inactConns: 4,
        persistConns: 5,
        weight: 2,
      }),
      dest('10.0.0.8', 80, { fwd: 2, tunType: 1, tunPort: 6080, tunFlags: 2 }),
      dest('10.0.0.9', 80, { fwd: 2, tunType: 2, tunFlags: 1 }),
      dest('10.0.0.10', 80, { fwd: 2 }),
    ]),
  );

  it('prints thresholds', () => {
    expect(
      formatList(s, { ...numeric, thresholds: true })
        .split('\n')
        .slice(1, 6),
    ).toEqual([
      'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ',
      '  -> RemoteAddress:Port',
      'TCP  10.0.0.3:80 wlc',
      '  -> 10.0.0.7:80                  100        75         3          4         ',
      '  -> 10.0.0.8:80                  0          0          0          0         ',
    ]);
  });

  it('prints persistent connections', () => {
    expect(
      formatList(s, { ...numeric, persistentConn: true })
        .split('\n')
        .slice(1, 5),
    ).toEqual([
      'Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ',
      '  -> RemoteAddress:Port',
      'TCP  10.0.0.3:80 wlc',
      '  -> 10.0.0.7:80                  2         5           3          4         ',
    ]);
  });

  it('prints tunnel information', () => {
    expect(
      formatList(s, { ...numeric, tunInfo: true })
        .split('\n')
        .slice(1),
    ).toEqual([
      TITLE1,
      '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn',
      'TCP  10.0.0.3:80 wlc',
      '  -> 10.0.0.7:80                  Masq    n/a           2      3          4         ',
      '  -> 10.0.0.8:80                  Tunnel  gue:6080:r+c  1      0          0         ',
      '  -> 10.0.0.9:80                  Tunnel  gre:+c        1      0          0         ',
      '  -> 10.0.0.10:80                 Tunnel  ipip          1      0          0         ',
      '',
    ]);
  });
});

describe('-S (save)', () => {
  it('prints the rules that rebuild the table, sorted, without banner or titles', () => {
    const s = snap(
      fwm(7, [dest('10.0.0.5', 0, { fwd: 3 })], { sched: 'rr' }),
      service(6, '207.175.44.110', 80, [dest('192.168.10.1', 80)], { sched: 'rr' }),
      service(17, '10.0.0.1', 53, [dest('10.0.0.9', 53, { fwd: 2, tunType: 1, tunPort: 6080, tunFlags: 0 })], {
        sched: 'sh',
        flags: 1 | 4 | 0x10,
        timeout: 300,
        netmask: '255.255.255.0',
        pe: 'sip',
      }),
    );
    expect(formatSave(s, numeric)).toBe(
      lines(
        '-A -t 207.175.44.110:80 -s rr',
        '-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1',
        '-A -u 10.0.0.1:53 -s sh -p 300 -M 255.255.255.0 --pe sip -o -b sh-port',
        '-a -u 10.0.0.1:53 -r 10.0.0.9:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
        '-A -f 7 -s rr',
        '-a -f 7 -r 10.0.0.5:0 -g -w 1',
      ),
    );
  });
});

describe('-c and --timeout', () => {
  const conn = (over: Partial<ConnSnapshot>): ConnSnapshot => ({
    protocol: 6,
    caddr: '169.60.24.86',
    cport: 52470,
    vaddr: '169.46.7.238',
    vport: 27234,
    daddr: '169.48.180.244',
    dport: 27234,
    state: 'ESTABLISHED',
    expires: 899,
    flags: 0,
    ...over,
  });

  it('prints connections with MM:SS expiry, minutes past 99 included', () => {
    const conns = [
      conn({}),
      conn({ caddr: '169.46.57.9', cport: 0, vport: 0, daddr: '169.48.180.190', dport: 0, state: 'NONE', expires: 58 }),
      conn({
        caddr: '192.168.123.248',
        cport: 0,
        vaddr: '10.254.66.97',
        vport: 8080,
        daddr: '172.20.135.6',
        dport: 8080,
        state: 'NONE',
        expires: 180 * 60 + 3,
      }),
      conn({
        protocol: 17,
        state: 'UDP',
        expires: 300,
        caddr: '10.0.0.1',
        cport: 5353,
        vaddr: '10.0.0.2',
        vport: 53,
        daddr: '10.0.0.3',
        dport: 53,
      }),
    ];
    expect(formatConnections(conns, numeric)).toBe(
      lines(
        'IPVS connection entries',
        'pro expire state       source             virtual            destination',
        'TCP 14:59  ESTABLISHED 169.60.24.86:52470 169.46.7.238:27234 169.48.180.244:27234',
        'TCP 00:58  NONE        169.46.57.9:0      169.46.7.238:0     169.48.180.190:0',
        'TCP 180:03 NONE        192.168.123.248:0  10.254.66.97:8080  172.20.135.6:8080',
        'UDP 05:00  UDP         10.0.0.1:5353      10.0.0.2:53        10.0.0.3:53',
      ),
    );
  });

  it('widens the header for --persistent-conn', () => {
    expect(formatConnections([], { ...numeric, persistentConn: true })).toBe(
      lines(
        'IPVS connection entries',
        'pro expire state       source             virtual            destination        pe name          pe_data',
      ),
    );
  });

  it('names fwmark templates IP and resolves names by the conn protocol', () => {
    const names: NameLookup = {
      host: (a) => (a === '169.46.7.238' ? 'vip' : undefined),
      service: (p, pr) => (p === 27234 && pr === 6 ? 'game' : undefined),
    };
    expect(
      formatConnections([conn({}), conn({ protocol: 0, state: 'NONE' })], DEFAULT_LIST_FORMAT, names)
        .split('\n')
        .slice(2, 4),
    ).toEqual([
      'TCP 14:59  ESTABLISHED 169.60.24.86:52470 vip:game           169.48.180.244:game',
      'IP  14:59  NONE        169.60.24.86:52470 vip:27234          169.48.180.244:27234',
    ]);
  });

  it('prints the three timeouts', () => {
    expect(formatTimeouts({ tcp: 900, tcpfin: 120, udp: 300 })).toBe('Timeout (tcp tcpfin udp): 900 120 300\n');
  });
});

describe('IPv6 in listings, as ipvsadm prints it', () => {
  const v6 = (addr: string, port: number, dests: DestSnapshot[], over: Partial<ServiceSnapshot> = {}) =>
    service(6, addr, port, dests, { af: 10, netmask: '128', ...over });

  it('brackets addresses and never cuts an IPv6 name; a long dest pushes the columns right', () => {
    const s = snap(
      v6(
        '2001:db8:1234:5678:9abc:def0:1234:5678',
        443,
        [dest('2001:db8::10', 8443), dest('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff', 80)],
        { sched: 'rr' },
      ),
    );
    expect(formatList(s, numeric)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:443 rr',
        // (0 - 0xaaaabbbb wraps positive: libipvs sorts ::10 after the :aaaa: address.)
        `  -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:80 Masq    1      0          0${PAD9}`,
        `  -> [2001:db8::10]:8443          Masq    1      0          0${PAD9}`,
      ),
    );
  });

  it("keeps libipvs's wrapped word subtraction: fd00:: sorts before 2001:db8::", () => {
    const s = snap(v6('2001:db8::1', 80, [dest('2001:db8::10', 80), dest('fd00::1', 80)]));
    expect(formatList(s, numeric).split('\n').slice(4, 6)).toEqual([
      `  -> [fd00::1]:80                 Masq    1      0          0${PAD9}`,
      `  -> [2001:db8::10]:80            Masq    1      0          0${PAD9}`,
    ]);
  });

  it('shows an IPv6 mask as a prefix length, and none at 128; fwmark services say IPv6', () => {
    const s = snap(
      v6('2001:db8::1', 80, [], { flags: 1, timeout: 300, netmask: '64' }),
      v6('2001:db8::2', 80, [], { flags: 1, timeout: 300 }),
      fwm(7, [dest('2001:db8::10', 0, { fwd: 3 })], { af: 10, netmask: '96', flags: 1, timeout: 60 }),
    );
    expect(formatList(s, numeric)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  [2001:db8::1]:80 wlc persistent 300 mask 64',
        'TCP  [2001:db8::2]:80 wlc persistent 300',
        'FWM  7 IPv6 wlc persistent 60 mask 96',
        `  -> [2001:db8::10]:0             Route   1      0          0${PAD9}`,
      ),
    );
    expect(formatSave(s, numeric)).toBe(
      lines(
        '-A -t [2001:db8::1]:80 -s wlc -p 300 -M 64',
        '-A -t [2001:db8::2]:80 -s wlc -p 300',
        '-A -f 7 -6 -s wlc -p 60 -M 96',
        '-a -f 7 -6 -r [2001:db8::10]:0 -g -w 1',
      ),
    );
  });

  it('sorts IPv4 services before IPv6 ones, IPv6 by their four words; mixed dests as libipvs does', () => {
    const order = [
      v6('2001:db8::1', 80, []),
      service(17, '10.0.0.1', 53, []),
      v6('2001:db8::1', 22, []),
      v6('::ffff:1.2.3.4', 80, []),
      service(6, '10.0.0.1', 80, []),
    ].sort(compareServices);
    expect(order.map((s) => `${s.af ?? 2} ${s.protocol} ${s.addr} ${s.port}`)).toEqual([
      '2 6 10.0.0.1 80',
      '2 17 10.0.0.1 53',
      '10 6 ::ffff:1.2.3.4 80',
      '10 6 2001:db8::1 22',
      '10 6 2001:db8::1 80',
    ]);
    // An IPv4 dest is compared with the first word of an IPv6 one (the union's first 4 bytes).
    expect(compareDests(dest('32.1.13.184', 80), dest('2001:db8::1', 80))).toBe(0);
    expect(compareDests(dest('2001:db8::2', 80), dest('2001:db8::1', 80))).toBeGreaterThan(0);
  });

  it('names IPv6 hosts in brackets without -n', () => {
    const names: NameLookup = {
      host: (a) => (a === '2001:db8::10' ? 'rs1.example' : undefined),
      service: (p) => (p === 80 ? 'http' : undefined),
    };
    const s = snap(v6('2001:db8::1', 80, [dest('2001:db8::10', 80)]));
    expect(formatList(s, DEFAULT_LIST_FORMAT, names)).toBe(
      lines(
        BANNER,
        TITLE1,
        TITLE2,
        'TCP  [2001:db8::1]:http wlc',
        `  -> [rs1.example]:http           Masq    1      0          0${PAD9}`,
      ),
    );
  });

  it('lets IPv6 connections overflow the 18-character columns of -c', () => {
    const c: ConnSnapshot = {
      protocol: 6,
      caddr: '2001:db8::99',
      cport: 40000,
      vaddr: '2001:db8::1',
      vport: 80,
      daddr: '2001:db8::10',
      dport: 8080,
      state: 'ESTABLISHED',
      expires: 900,
      flags: 0,
    };
    const out = formatConnections([c], numeric).split('\n');
    expect(out[2]).toBe('TCP 15:00  ESTABLISHED [2001:db8::99]:40000 [2001:db8::1]:80   [2001:db8::10]:8080');
  });
});
