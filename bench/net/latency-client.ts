// The benchmark's latency probe, run in the client namespace:
//   node dist-bench/bench/net/latency-client.js HOST PORT SAMPLES RATE
// One TCP connection to an echo server; every 1/RATE s it sends a 16-byte message and times the
// echo (process.hrtime). The first WARMUP round trips are not kept. Bounded in count (SAMPLES)
// and in time (a deadline of twice the nominal duration plus 5 s). Prints one JSON line:
// {"samples":[µs, ...],"lost":0} or {"error":"..."}.

import { connect } from 'node:net';

const WARMUP = 20;
const MESSAGE = Buffer.alloc(16, 0x6c);

function main(): void {
  const [host, portText, samplesText, rateText] = process.argv.slice(2);
  const port = Number(portText);
  const want = Number(samplesText);
  const rate = Number(rateText);
  if (!host || !(port > 0) || !(want > 0) || !(rate > 0)) {
    process.stderr.write('usage: latency-client HOST PORT SAMPLES RATE\n');
    process.exit(2);
  }
  const samples: number[] = [];
  const interval = 1000 / rate;
  const finish = (error?: string) => {
    process.stdout.write(`${JSON.stringify(error ? { error, samples } : { samples })}\n`);
    process.exit(error ? 1 : 0);
  };
  setTimeout(() => finish(`deadline: ${samples.length} of ${want} samples`), ((want + WARMUP) / rate) * 2000 + 5000);

  const sock = connect({ host, port });
  sock.setNoDelay(true);
  sock.on('error', (err) => finish(err.message));
  sock.on('close', () => finish('connection closed'));
  let sent = 0;
  let got = 0;
  let t0 = 0n;
  let start = 0;
  const sendNext = () => {
    t0 = process.hrtime.bigint();
    got = 0;
    sent++;
    sock.write(MESSAGE);
  };
  sock.on('connect', () => {
    start = Date.now();
    sendNext();
  });
  sock.on('data', (d) => {
    got += d.length;
    if (got < MESSAGE.length) return;
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (sent > WARMUP) samples.push(Math.round(us * 10) / 10);
    if (samples.length >= want) {
      sock.removeAllListeners('close');
      sock.end();
      finish();
      return;
    }
    // Paced from the start time, so a slow round trip does not shift the schedule.
    const due = start + sent * interval;
    setTimeout(sendNext, Math.max(0, due - Date.now()));
  });
}

main();
