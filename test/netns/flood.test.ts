// A SYN flood from spoofed sources against the VIP while a real client keeps making requests
// (issue 8): hping3 sends a bounded number of SYNs at a bounded rate; lvsd's table stays under
// --max-conns, the half-open entries expire, its memory stays bounded, and at least 99 % of the
// client's requests succeed. (The half-open entries' expiry and drop_entry's sweep are timed in
// the unit tests: SYN_RECV lasts 60 s.)

import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, netnsUnavailable } from '../helpers/netns';

function hpingMissing(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v hping3'], { stdio: 'ignore' });
  } catch {
    return 'hping3 is not installed: run scripts/setup.sh';
  }
  return undefined;
}

const why = netnsUnavailable(hpingMissing);
if (why) console.warn(`skipping netns flood test: ${why}`);

const VIP = '192.168.0.1';
const FLOOD_PACKETS = 30000;
const MAX_CONNS = 100000;

describe.skipIf(why !== undefined)('a SYN flood from spoofed sources through NAT', () => {
  const lab = new Lab('s');

  beforeAll(async () => {
    await lab.up('nat');
    await lab.startHttpServers();
    await lab.startLvsd(['--max-conns', String(MAX_CONNS), '--sysctl', 'secure_tcp=3']);
    await lab.addVirtualService(['-t', `${VIP}:80`], ['172.16.0.1', '172.16.0.2'], '-m');
  });

  afterAll(async () => {
    await lab.down();
  });

  it('keeps serving the real client, within the connection limit', async () => {
    // 30 000 SYNs at ~10 000 a second (hping3 -i u100), from random sources, then it stops.
    const flood = lab.exec(
      lab.client,
      ['hping3', '-q', '-S', '-p', '80', '--rand-source', '-i', 'u100', '-c', String(FLOOD_PACKETS), VIP],
      60_000,
    );
    const results: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 3500) {
      const r = await lab.curl(`http://${VIP}/`, ['--max-time', '2']);
      results.push(r.code);
    }
    await flood;
    const ok = results.filter((c) => c === 0).length;
    console.log(`flood: ${ok}/${results.length} client requests succeeded during ${FLOOD_PACKETS} spoofed SYNs`);
    expect(results.length).toBeGreaterThan(20);
    expect(ok / results.length).toBeGreaterThanOrEqual(0.99);

    const stats = await lab.engineStats();
    // The spoofed SYNs are tracked as half-open connections (secure_tcp keeps them in SYN_RECV).
    expect(stats.conns).toBeLessThanOrEqual(MAX_CONNS);
    // Most of them: when both cores are busy (the rest of the suite runs beside this test) the
    // kernel drops some at the TUN's queue before lvsd reads them (89 % seen once, 94-96 % alone).
    expect(stats.stats.conns).toBeGreaterThanOrEqual(FLOOD_PACKETS * 0.8);
    const rss = await lab.lvsdRss();
    console.log(`flood: lvsd table ${stats.conns} entries, table_full ${stats.drops.table_full ?? 0}, rss ${rss} KiB`);
    expect(rss).toBeGreaterThan(0);
    // 65 MB idle; the text of the /proc connection files once grew it past 170 MB here.
    expect(rss).toBeLessThan(128 * 1024);
  });
});
