// FTP through lvsd with real programs (REFERENCE.md §1.8): vsftpd on two real servers, curl as
// the client, a 1 MiB file downloaded and uploaded byte-identical in passive (EPSV and PASV) and
// active (EPRT and PORT) mode, through NAT (the FTP helper rewrites the 227 reply and expects the
// data connections), through NAT over IPv6 (EPSV and EPRT) and through DR with a persistent
// service (data connections follow the control connection's real server).

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

function vsftpdMissing(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v vsftpd && id ftp'], { stdio: 'ignore' });
  } catch {
    return 'vsftpd (and its ftp user) is not installed: run scripts/setup.sh';
  }
  return undefined;
}

const why = netnsUnavailable(vsftpdMissing);
if (why) console.warn(`skipping netns FTP tests: ${why}`);

const VIP = '192.168.0.1';
const FILE = randomBytes(1 << 20);
const SHA = createHash('sha256').update(FILE).digest('hex');

/** The curl options of each data-connection mode. */
const MODES: [string, string[]][] = [
  ['EPSV', []],
  ['PASV', ['--disable-epsv']],
  ['EPRT', ['--ftp-port', '-']],
  ['PORT', ['--ftp-port', '-', '--disable-eprt']],
];

/**
 * Start vsftpd in each real server, serving <tmp>/<ns>/file.bin, uploads into upload/; `ipv6`:
 * listening on IPv6 (and IPv4) instead of IPv4.
 */
async function startVsftpd(lab: Lab, ipv6 = false): Promise<string[]> {
  const empty = join(lab.tmp, 'empty');
  mkdirSync(empty, { recursive: true, mode: 0o755 });
  const roots: string[] = [];
  for (const ns of lab.rs) {
    const root = join(lab.tmp, ns);
    mkdirSync(join(root, 'upload'), { recursive: true, mode: 0o755 });
    chownSync(join(root, 'upload'), Number(execFileSync('id', ['-u', 'ftp']).toString()), 0);
    writeFileSync(join(root, 'file.bin'), FILE, { mode: 0o644 });
    const conf = join(lab.tmp, `${ns}.vsftpd.conf`);
    writeFileSync(
      conf,
      [
        `listen=${ipv6 ? 'NO' : 'YES'}`,
        `listen_ipv6=${ipv6 ? 'YES' : 'NO'}`,
        'background=NO',
        'anonymous_enable=YES',
        'local_enable=NO',
        'no_anon_password=YES',
        'write_enable=YES',
        'anon_upload_enable=YES',
        'anon_umask=022',
        `anon_root=${root}`,
        'connect_from_port_20=YES',
        'pasv_enable=YES',
        'pasv_min_port=30000',
        'pasv_max_port=30099',
        'seccomp_sandbox=NO',
        'isolate=NO',
        'isolate_network=NO',
        `secure_chroot_dir=${empty}`,
        'xferlog_enable=NO',
        '',
      ].join('\n'),
    );
    await lab.spawn(ns, ['vsftpd', conf]);
    roots.push(root);
  }
  // vsftpd prints nothing when ready: wait for its listening socket.
  for (const ns of lab.rs) {
    for (let i = 0; i < 50; i++) {
      const r = await lab.exec(ns, ['ss', '-Hltn', 'sport = :21']);
      if (r.stdout.includes(':21')) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  return roots;
}

async function download(lab: Lab, opts: string[], vip = VIP): Promise<string> {
  const r = await lab.exec(
    lab.client,
    ['sh', '-c', `curl -sS --max-time 20 ${opts.join(' ')} ftp://${vip}/file.bin | sha256sum`],
    30_000,
  );
  return r.stdout.split(' ')[0] + r.stderr;
}

async function upload(lab: Lab, opts: string[], name: string, roots: string[], vip = VIP): Promise<string> {
  const src = join(lab.tmp, 'upload-src.bin');
  writeFileSync(src, FILE);
  const r = await lab.exec(
    lab.client,
    ['curl', '-sS', '--max-time', '20', ...opts, '-T', src, `ftp://${vip}/upload/${name}`],
    30_000,
  );
  if (r.code !== 0) return `curl failed: ${r.stderr}`;
  for (const root of roots) {
    try {
      return createHash('sha256')
        .update(execFileSync('cat', [join(root, 'upload', name)]))
        .digest('hex');
    } catch {
      // not on this real server
    }
  }
  return 'upload not found on any real server';
}

describe.skipIf(why !== undefined)('FTP through NAT (the FTP helper)', () => {
  const lab = new Lab('p');
  let roots: string[] = [];

  beforeAll(async () => {
    await lab.up('nat');
    roots = await startVsftpd(lab);
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP}:21`], ['172.16.0.1', '172.16.0.2'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it.each(MODES)('downloads and uploads 1 MiB byte-identical in %s mode', async (mode, opts) => {
    expect(await download(lab, opts)).toBe(SHA);
    expect(await upload(lab, opts, `nat-${mode}.bin`, roots)).toBe(SHA);
  });

  it('lists the data connections beside the control ones, and dropped nothing', async () => {
    const conns = await lab.lvsadmOk('-L', '-c', '-n');
    // Passive data connections on the pasv ports, active ones from port 20.
    expect(conns).toMatch(new RegExp(`TCP .* 192\\.168\\.0\\.2:\\d+ +${VIP}:300\\d\\d +172\\.16\\.0\\.[12]:300\\d\\d`));
    expect(conns).toMatch(new RegExp(`TCP .* 192\\.168\\.0\\.2:\\d+ +${VIP}:20 +172\\.16\\.0\\.[12]:20`));
    // Nothing refused for FTP's sake (no_conn: late segments of closed connections).
    const drops = (await lab.engineStats()).drops;
    expect(Object.keys(drops).filter((k) => k !== 'no_conn')).toEqual([]);
  });
});

describe.skipIf(why !== undefined)('FTP over IPv6 through NAT (EPSV and EPRT, as ip_vs_ftp)', () => {
  const lab = new Lab('p6');
  const VIP6 = '[2001:db8::1]';
  let roots: string[] = [];

  beforeAll(async () => {
    await lab.up('nat', { IPV6: '1' });
    roots = await startVsftpd(lab, true);
    await lab.startLvsd();
    await lab.addVirtualService(['-t', `${VIP6}:21`], ['2001:db8:10::1', '2001:db8:10::2'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  // Over IPv6 curl (as any client) uses the extended commands: PASV and PORT carry IPv4 only.
  it.each(MODES.filter(([m]) => m === 'EPSV' || m === 'EPRT'))(
    'downloads and uploads 1 MiB byte-identical in %s mode',
    async (mode, opts) => {
      expect(await download(lab, opts, VIP6)).toBe(SHA);
      expect(await upload(lab, opts, `nat6-${mode}.bin`, roots, VIP6)).toBe(SHA);
    },
  );

  it('lists the IPv6 data connections beside the control ones', async () => {
    const conns = await lab.lvsadmOk('-L', '-c', '-n');
    expect(conns).toMatch(/TCP .* \[2001:db8::2\]:\d+ +\[2001:db8::1\]:300\d\d +\[2001:db8:10::[12]\]:300\d\d/);
    expect(conns).toMatch(/TCP .* \[2001:db8::2\]:\d+ +\[2001:db8::1\]:20 +\[2001:db8:10::[12]\]:20/);
  });
});

describe.skipIf(why !== undefined)('FTP through DR with a persistent service', () => {
  const lab = new Lab('q');
  let roots: string[] = [];

  beforeAll(async () => {
    await lab.up('dr');
    await lab.startRealservers('dr', VIP);
    roots = await startVsftpd(lab);
    await lab.startLvsd();
    await lab.lvsadmOk('-A', '-t', `${VIP}:21`, '-s', 'rr', '-p', '360');
    await lab.lvsadmOk('-a', '-t', `${VIP}:21`, '-r', '192.168.0.11', '-g');
    await lab.lvsadmOk('-a', '-t', `${VIP}:21`, '-r', '192.168.0.12', '-g');
  });

  afterAll(async () => {
    await lab.down();
  });

  it.each(MODES)('downloads and uploads 1 MiB byte-identical in %s mode', async (mode, opts) => {
    expect(await download(lab, opts)).toBe(SHA);
    expect(await upload(lab, opts, `dr-${mode}.bin`, roots)).toBe(SHA);
  });
});
