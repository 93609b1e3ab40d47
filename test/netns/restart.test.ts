// A lvsd killed with SIGKILL and started again (issue 8): with --config-file it comes back with
// the same services, dests and timeouts, removes what the killed run left on the host (its
// routes, rules, proxy-ARP entries) and forwards again at once. Its control socket is root's.

import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable, ROOT } from '../helpers/netns';

const why = netnsUnavailable();
if (why) console.warn(`skipping netns restart tests: ${why}`);

const VIP = '192.168.0.1';

describe.skipIf(why !== undefined)('lvsd restarted after SIGKILL with --config-file', () => {
  const lab = new Lab('k');
  const config = join(lab.tmp, 'lvsd.conf');

  beforeAll(async () => {
    await lab.up('nat');
    await lab.startHttpServers();
    await lab.startLvsd(['--config-file', config]);
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
    await lab.lvsadmOk('-e', '-t', `${VIP}:80`, '-r', '172.16.0.2', '-m', '-w', '3', '-x', '500');
    await lab.lvsadmOk('--set', '600', '60', '120');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('comes back with the same table, no leftovers doubled, and answers at once', async () => {
    const before = await lab.lvsadmOk('-S', '-n');
    const rulesBefore = (await lab.exec(lab.dir, ['ip', 'rule', 'show'])).stdout;
    expect((await lab.curl(`http://${VIP}/`)).code).toBe(0);

    expect(await lab.stopLvsd('SIGKILL')).toBe(null);
    await lab.startLvsd(['--config-file', config]);
    const started = Date.now();
    const r = await lab.curl(`http://${VIP}/`, ['--max-time', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(1000);

    expect(await lab.lvsadmOk('-S', '-n')).toBe(before);
    expect(await lab.lvsadmOk('-L', '--timeout')).toBe('Timeout (tcp tcpfin udp): 600 60 120\n');
    const row = (await lab.lvsadmOk('-L', '-n', '--thresholds')).split('\n').find((l) => l.includes('172.16.0.2:80'));
    expect(row?.trim().split(/\s+/).slice(1, 4)).toEqual(['172.16.0.2:80', '500', '0']);
    // The killed run's rules were removed before the new run added its own: none twice.
    expect((await lab.exec(lab.dir, ['ip', 'rule', 'show'])).stdout).toBe(rulesBefore);
    expect(
      (await lab.exec(lab.dir, ['ip', '-o', 'link', 'show', 'type', 'tun'])).stdout.trim().split('\n'),
    ).toHaveLength(1);
  });

  it("refuses lvsadm run by an unprivileged user with ipvsadm's text, exit 2", async () => {
    // The socket's directory is searchable; the socket itself is root's, mode 0600.
    chmodSync(lab.tmp, 0o711);
    const r = await lab.exec(lab.dir, [
      'runuser',
      '-u',
      'nobody',
      '--',
      process.execPath,
      join(ROOT, 'bin/lvsadm.js'),
      '--socket',
      lab.socket,
      '-L',
      '-n',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("Can't initialize ipvs: Permission denied (you must be root)");
    expect(await lab.lvsadmOk('-S', '-n')).toContain(`-A -t ${VIP}:80 -s rr`);
  });
});
