// lvsd's control socket (src/ctl/server.ts) against bad clients (issue 8): lines that are not
// JSON, requests of the wrong shape or with fields of the wrong type, an oversized line, a
// half-written request cut off by its client. Each gets an error (or nothing), the daemon keeps
// serving, and the table is as it was.

import { mkdtempSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/ctl/client';
import { ControlServer } from '../../src/ctl/server';
import { FWD_MASQ } from '../../src/ip-vs';
import { destSpec, director, svcSpec, VIP } from '../helpers/engine-lab';

const d = director();
const path = join(mkdtempSync(join(tmpdir(), 'lvst-ctl-')), 'lvsd.sock');
const server = new ControlServer(d.balancer, path, () => {});

/** Send raw bytes, collect what comes back until the server closes or `ms` pass. */
function raw(bytes: string | Buffer, ms = 100, end = true): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    let out = '';
    s.on('data', (b) => {
      out += b.toString();
    });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.on('connect', () => {
      s.write(bytes);
      if (end) setTimeout(() => s.end(), ms);
      else setTimeout(() => s.destroy(), ms);
    });
  });
}

async function table(): Promise<string> {
  const res = await request(path, { cmd: 'list' });
  return JSON.stringify(res);
}

describe('the control socket with bad clients', () => {
  let before = '';

  beforeAll(async () => {
    await server.listen();
    const key = svcSpec(VIP, 80, { sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec('172.16.0.1', 80, { fwd: FWD_MASQ }));
    before = await table();
  });

  afterAll(async () => {
    await server.close();
  });

  it('is a socket only its owner may use (mode 0600)', () => {
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['not JSON', 'hello\n'],
    ['JSON without a command', '{"svc":1}\n'],
    ['an unknown command', '{"cmd":"format-disk"}\n'],
    ['a number', '42\n'],
    ['add-service without a service', '{"cmd":"add-service"}\n'],
    ['add-service with a string for the service', '{"cmd":"add-service","svc":"x"}\n'],
    [
      'add-server with fields of the wrong type',
      `{"cmd":"add-server","svc":{"protocol":6,"addr":"${VIP}","port":80,"fwmark":0},"dest":{"addr":7,"port":"http","fwd":"nat","weight":"heavy"}}\n`,
    ],
    ['delete-service of nothing', '{"cmd":"delete-service","svc":{}}\n'],
    ['start-daemon with a bad spec', '{"cmd":"start-daemon","daemon":{"state":"boss"}}\n'],
    ['sysctl with an object for a value', '{"cmd":"sysctl","name":"secure_tcp","value":{}}\n'],
  ])('answers %s with an error and changes nothing', async (_what, line) => {
    const out = await raw(line);
    const res = JSON.parse(out.trim().split('\n')[0]) as { ok: boolean; errno?: string };
    expect(res.ok).toBe(false);
    expect(typeof res.errno).toBe('string');
    expect(await table()).toBe(before);
  });

  it('refuses an oversized line (EMSGSIZE) and closes that connection', async () => {
    const out = await raw(Buffer.alloc((1 << 20) + 10, 'a'), 500, false);
    expect(JSON.parse(out.trim())).toMatchObject({ ok: false, errno: 'EMSGSIZE' });
    expect(await table()).toBe(before);
  });

  it('ignores a half-written request whose client went away', async () => {
    await raw('{"cmd":"flush"', 100, false);
    expect(await table()).toBe(before);
  });

  it('serves several requests on one connection in order, and blank lines are ignored', async () => {
    const out = await raw('\n{"cmd":"get-timeouts"}\n\n{"cmd":"nope"}\n{"cmd":"get-timeouts"}\n');
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean });
    expect(lines.map((l) => l.ok)).toEqual([true, false, true]);
  });
});
