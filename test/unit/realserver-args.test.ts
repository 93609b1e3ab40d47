// lvs-realserver's command line: what each argv means, what is refused (and why), and the exit
// codes main() returns for help and for usage errors.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/lvs-realserver';
import { UsageError } from '../../src/errors';
import {
  DEFAULT_TUN_DEV,
  defaultStateFile,
  parseRealserverArgs,
  type RealserverCommand,
} from '../../src/realserver/args';

describe('parseRealserverArgs: accepted command lines', () => {
  const cases: [string[], RealserverCommand][] = [
    [
      ['dr', '--vip', '192.168.0.1'],
      {
        kind: 'up',
        mode: 'dr',
        vips: ['192.168.0.1'],
        dev: DEFAULT_TUN_DEV,
        stateFile: defaultStateFile('dr'),
        userSpace: false,
      },
    ],
    [
      ['tun', '--vip', '10.0.0.1,10.0.0.2', '--vip', '10.0.0.3', '--vip', '10.0.0.1'],
      {
        kind: 'up',
        mode: 'tun',
        vips: ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
        dev: 'lvsrs0',
        stateFile: defaultStateFile('tun'),
        userSpace: false,
      },
    ],
    [
      ['tun', '--vip', '10.0.0.1', '--dev', 'ipip0', '--state', '/tmp/x.state'],
      { kind: 'up', mode: 'tun', vips: ['10.0.0.1'], dev: 'ipip0', stateFile: '/tmp/x.state', userSpace: false },
    ],
    [
      ['tun', '--vip', '10.0.0.1', '--user-space'],
      {
        kind: 'up',
        mode: 'tun',
        vips: ['10.0.0.1'],
        dev: 'lvsrs0',
        stateFile: defaultStateFile('tun'),
        userSpace: true,
      },
    ],
    [
      ['dr', '--vip', '2001:DB8:0::1,192.168.0.1', '--vip', '2001:db8::1'],
      {
        kind: 'up',
        mode: 'dr',
        vips: ['2001:db8::1', '192.168.0.1'],
        dev: DEFAULT_TUN_DEV,
        stateFile: defaultStateFile('dr'),
        userSpace: false,
      },
    ],
    [['dr', '--down'], { kind: 'down', mode: 'dr', stateFile: defaultStateFile('dr') }],
    [['tun', '--down', '--state', '/tmp/t.state'], { kind: 'down', mode: 'tun', stateFile: '/tmp/t.state' }],
    [['--help'], { kind: 'help' }],
    [['dr', '-h'], { kind: 'help' }],
    [['-v'], { kind: 'version' }],
  ];
  for (const [argv, expected] of cases) {
    it(`${argv.join(' ')} -> ${expected.kind}`, () => {
      expect(parseRealserverArgs(argv)).toEqual(expected);
    });
  }

  it('resolves a relative --state against the working directory', () => {
    const cmd = parseRealserverArgs(['dr', '--vip', '1.2.3.4', '--state', 'rs.state']);
    expect(cmd).toMatchObject({ stateFile: `${process.cwd()}/rs.state` });
  });

  it("puts each mode in its own default state file in the namespace's run-time directory", () => {
    expect(defaultStateFile('dr', '/run/lvs')).toBe('/run/lvs/realserver-dr.state');
    expect(defaultStateFile('tun', '/run/lvs/netns-4026532173')).toBe('/run/lvs/netns-4026532173/realserver-tun.state');
    expect(defaultStateFile('dr')).toMatch(/^\/run\/lvs\/(netns-\d+\/)?realserver-dr\.state$/);
  });
});

describe('parseRealserverArgs: refused command lines', () => {
  const cases: [string[], RegExp][] = [
    [[], /missing mode/],
    [['nat', '--vip', '1.2.3.4'], /unknown mode "nat"/],
    [['dr'], /missing --vip/],
    [['dr', '--vip', ','], /missing --vip/],
    [['dr', '--vip', 'fe80::1'], /invalid VIP fe80::1: it is a link-local address/],
    [['dr', '--vip', 'ff02::1'], /invalid VIP ff02::1: it is not a unicast address/],
    [['dr', '--vip', '::1'], /invalid VIP ::1: it is the unspecified or loopback address/],
    [['dr', '--vip', '1.2.3'], /invalid VIP "1.2.3"/],
    [['dr', '--vip', '1.2.3.4,010.0.0.1'], /invalid VIP "010.0.0.1"/],
    [['dr', '--vip', '127.0.0.2'], /loopback/],
    [['dr', '--vip', '224.0.0.1'], /not a unicast/],
    [['dr', '--vip', '0.1.2.3'], /0\.0\.0\.0\/8/],
    [['dr', '--vip', '1.2.3.4', '--dev', 'x0'], /--dev is for tun mode only/],
    [['dr', '--vip', '1.2.3.4', '--user-space'], /--user-space is for tun mode only/],
    [['tun', '--vip', '1.2.3.4', '--dev', 'a-name-too-long-0'], /invalid device name/],
    [['tun', '--vip', '1.2.3.4', '--dev', 'a/b'], /invalid device name/],
    [['dr', '--down', '--vip', '1.2.3.4'], /--down takes no --vip/],
    [['tun', '--down', '--dev', 'x0'], /--down takes no --dev/],
    [['dr', '--vip', '1.2.3.4', 'extra'], /unexpected argument "extra"/],
    [['dr', '--vip', '1.2.3.4', '--state', ''], /--state needs a file name/],
    [['dr', '--bogus'], /bogus/],
  ];
  for (const [argv, message] of cases) {
    it(`refuses ${JSON.stringify(argv.join(' '))}`, () => {
      expect(() => parseRealserverArgs(argv)).toThrow(UsageError);
      expect(() => parseRealserverArgs(argv)).toThrow(message);
    });
  }
});

describe('lvs-realserver main', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  function capture(): { out: () => string; err: () => string } {
    let out = '';
    let err = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out += String(s);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      err += String(s);
      return true;
    });
    return { out: () => out, err: () => err };
  }

  it('--help says what it does, for both modes, and exits 0', async () => {
    const c = capture();
    expect(await main(['--help'])).toBe(0);
    const help = c.out();
    expect(help).toContain('Usage: lvs-realserver dr');
    expect(help).toContain('arp_ignore=1');
    expect(help).toContain('IP-in-IP');
    expect(help).toContain('--down');
    expect(help).toContain('SIGTERM');
  });

  it('a usage error exits 2 with the reason and a pointer to --help on stderr', async () => {
    const c = capture();
    expect(await main(['dr'])).toBe(2);
    expect(c.err()).toBe(
      "lvs-realserver: missing --vip A.B.C.D[,...]\nTry 'lvs-realserver --help' for more information.\n",
    );
    expect(c.out()).toBe('');
  });
});
