// lvsadm -R against a real control server and Balancer (in process, MemoryIo, no host changes):
// ipvsadm's restore rules (one command per line, `ipvsadm`/`lvsadm` words and comments ignored,
// a parse error stops with 2, a refused command reports and the restore goes on), and the
// round trip `-S | -C | -R | -S` that must reproduce any configuration exactly.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MainDeps, main } from '../../src/cli/lvsadm';
import type { ArgResolver } from '../../src/cli/lvsadm-args';
import { ControlServer } from '../../src/ctl/server';
import { schedulerNames } from '../../src/sched/registry';
import { director } from '../helpers/engine-lab';
import { mulberry32 } from '../helpers/prng';

const dir = mkdtempSync(join(tmpdir(), 'lvsadm-restore-'));
const sock = join(dir, 'lvsd.sock');
const d = director();
const server = new ControlServer(d.balancer, sock, () => {});

const resolver: ArgResolver = { host: async () => null, service: () => null };

async function lvsadm(argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const deps: Partial<MainDeps> = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    argResolver: resolver,
    readStdin: async () => stdin,
  };
  const code = await main(['--socket', sock, ...argv], deps);
  return { code, stdout, stderr };
}

beforeAll(() => server.listen());
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('lvsadm -R', () => {
  it('runs one command per line, ignoring ipvsadm/lvsadm words, comments and blank lines', async () => {
    await lvsadm(['-C']);
    const input = [
      '# saved rules',
      'ipvsadm -A -t 192.168.0.1:80 -s rr',
      '',
      '/usr/sbin/ipvsadm -a -t 192.168.0.1:80 -r 172.16.0.1:8080 -m -w 3   # a comment',
      'lvsadm -a -t 192.168.0.1:80 -r 172.16.0.2:8080 -m',
      '-A -u 192.168.0.1:53 -s wlc',
    ].join('\n');
    expect(await lvsadm(['-R'], input)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await lvsadm(['-S', '-n'])).stdout).toBe(
      [
        '-A -t 192.168.0.1:80 -s rr',
        '-a -t 192.168.0.1:80 -r 172.16.0.1:8080 -m -w 3',
        '-a -t 192.168.0.1:80 -r 172.16.0.2:8080 -m -w 1',
        '-A -u 192.168.0.1:53 -s wlc',
        '',
      ].join('\n'),
    );
  });

  it('reports a refused command and goes on; the status is the last command’s', async () => {
    await lvsadm(['-C']);
    const input = ['-A -t 10.0.0.1:80', '-A -t 10.0.0.1:80', '-A -t 10.0.0.2:80'].join('\n');
    expect(await lvsadm(['-R'], input)).toEqual({ code: 0, stdout: '', stderr: 'Service already exists\n' });
    expect((await lvsadm(['-R'], '-A -t 10.0.0.2:80')).code).toBe(255);
    expect((await lvsadm(['-L', '-n'])).stdout).toContain('TCP  10.0.0.2:80 wlc');
  });

  it('stops at a line that does not parse, with ipvsadm’s text and exit 2', async () => {
    await lvsadm(['-C']);
    const r = await lvsadm(['-R'], ['-A -t 10.0.0.1:80', '-A -t 10.0.0.3:80 -w 5', '-A -t 10.0.0.4:80'].join('\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Illegal 'weight' option with the 'add-service' command/);
    expect((await lvsadm(['-S', '-n'])).stdout).toBe('-A -t 10.0.0.1:80 -s wlc\n');
  });
});

/** A random configuration, as lvsadm command lines. */
function randomConfig(seed: number): string[][] {
  const next = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length];
  const scheds = schedulerNames();
  const cmds: string[][] = [];
  const nSvc = 1 + (next() % 4);
  for (let s = 0; s < nSvc; s++) {
    const kind = pick(['-t', '-u', '-f'] as const);
    const key =
      kind === '-f'
        ? ['-f', String(1 + (next() % 1000))]
        : [kind, `10.${s}.${next() % 256}.${1 + (next() % 254)}:${1 + (next() % 65535)}`];
    const sched = pick(scheds);
    const svc = ['-A', ...key, '-s', sched];
    if (next() % 3 === 0)
      svc.push('-p', String(1 + (next() % 3600)), '-M', pick(['255.255.255.0', '255.255.0.0', '255.255.255.255']));
    if (kind !== '-t' && next() % 4 === 0) svc.push('-o');
    if ((sched === 'sh' || sched === 'mh') && next() % 2 === 0) svc.push('-b', `${sched}-port`);
    cmds.push(svc);
    const nDest = next() % 4;
    for (let k = 0; k < nDest; k++) {
      const dest = ['-a', ...key, '-r', `172.16.${s}.${1 + k}:${kind === '-f' ? 0 : 1 + (next() % 65535)}`];
      dest.push(pick(['-m', '-g', '-i']), '-w', String(next() % 65536));
      const u = next() % 3 === 0 ? 1 + (next() % 1000) : 0;
      if (u > 0) dest.push('-x', String(u), '-y', String(next() % u));
      cmds.push(dest);
    }
  }
  return cmds;
}

describe('-S | -C | -R | -S round trip', () => {
  it('reproduces 40 random configurations exactly', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      await lvsadm(['-C']);
      for (const c of randomConfig(seed)) {
        const r = await lvsadm(c);
        expect(r.code, `seed ${seed}: ${c.join(' ')}: ${r.stderr}`).toBe(0);
      }
      const saved = (await lvsadm(['-S', '-n'])).stdout;
      expect(saved.length, `seed ${seed}`).toBeGreaterThan(0);
      expect((await lvsadm(['-C'])).code).toBe(0);
      expect((await lvsadm(['-L', '-n'])).stdout.split('\n')).toHaveLength(4); // banner and headers only
      const restored = await lvsadm(['-R'], saved);
      expect(restored, `seed ${seed}`).toEqual({ code: 0, stdout: '', stderr: '' });
      expect((await lvsadm(['-S', '-n'])).stdout, `seed ${seed}`).toBe(saved);
    }
  });
});
