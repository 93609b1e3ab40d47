// lvsd's configuration file (src/cli/config-file.ts): what lvsd writes after each change reads
// back into the same table and timeouts; a line that does not parse or is refused is reported
// with its file and line and the rest still loads.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configText, loadConfig, saveConfig } from '../../src/cli/config-file';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { destSpec, director, svcSpec } from '../helpers/engine-lab';

describe('lvsd --config-file', () => {
  it('saves the table and timeouts as lvsadm -S -n lines and a --set line, and loads them back exactly', async () => {
    const a = director();
    const web = svcSpec('10.0.0.1', 80, {
      sched: 'wrr',
      flags: SVC_F_PERSISTENT,
      timeout: 600,
      netmask: '255.255.255.0',
    });
    await a.balancer.addService(web);
    await a.balancer.addDest(
      web,
      destSpec('192.168.1.11', 8080, { fwd: FWD_MASQ, weight: 3, uThreshold: 100, lThreshold: 50 }),
    );
    await a.balancer.addDest(web, destSpec('192.168.1.12', 80, { fwd: FWD_DROUTE, weight: 0 }));
    const dns = svcSpec('10.0.0.1', 53, { sched: 'sh', protocol: 17 });
    await a.balancer.addService(dns);
    await a.balancer.addDest(dns, destSpec('192.168.1.13', 53, { fwd: FWD_TUNNEL }));
    a.balancer.setTimeouts({ tcp: 1000, tcpfin: 30, udp: 60 });
    const dir = mkdtempSync(join(tmpdir(), 'lvst-cf-'));
    const file = join(dir, 'lvsd.conf');
    saveConfig(file, a.balancer);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(
      '# lvsd configuration: the virtual services (lvsadm -S -n), rewritten on every change\n' +
        '-A -t 10.0.0.1:80 -s wrr -p 600 -M 255.255.255.0\n' +
        '-a -t 10.0.0.1:80 -r 192.168.1.11:8080 -m -w 3 -x 100 -y 50\n' +
        '-a -t 10.0.0.1:80 -r 192.168.1.12:80 -g -w 0\n' +
        '-A -u 10.0.0.1:53 -s sh\n' +
        '-a -u 10.0.0.1:53 -r 192.168.1.13:53 -i -w 1 --tun-type ipip\n' +
        '--set 1000 30 60\n',
    );
    const b = director();
    const logs: string[] = [];
    expect(await loadConfig(file, b.balancer, (m) => logs.push(m))).toEqual({ applied: 6, failed: 0 });
    expect(configText(b.balancer)).toBe(text);
    expect(logs).toEqual([]);
  });

  it('reports a bad or refused line with its place and loads the rest; a missing file is empty', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lvst-cf-'));
    const file = join(dir, 'lvsd.conf');
    writeFileSync(
      file,
      [
        '-A -t 10.0.0.1:80 -s nosuch',
        '-A -t 10.0.0.1:80 -s rr',
        '-a -t 10.0.0.1:80 -r 192.168.1.11 -m -w banana',
        '-a -t 10.0.0.2:80 -r 192.168.1.11 -m',
        '  ipvsadm -a -t 10.0.0.1:80 -r 192.168.1.12 -m   # a comment',
        '-L -n',
        '',
      ].join('\n'),
    );
    const d = director();
    const logs: string[] = [];
    expect(await loadConfig(file, d.balancer, (m) => logs.push(m))).toEqual({ applied: 2, failed: 4 });
    expect(logs.map((l) => l.replace(file, 'FILE'))).toEqual([
      'FILE:1: Scheduler or persistence engine not found',
      'FILE:3: illegal weight specified',
      'FILE:4: No such service',
      'FILE:6: not a configuration command, ignored',
    ]);
    expect(d.engine.services.list[0].dests.map((x) => x.addr)).toEqual([0xc0a8010c]);
    expect(await loadConfig(join(dir, 'missing.conf'), d.balancer, () => {})).toEqual({ applied: 0, failed: 0 });
  });
});
