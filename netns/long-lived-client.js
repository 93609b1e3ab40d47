#!/usr/bin/env node
// A client for the ECMP lab (test/netns/ecmp.test.ts, scripts/demo-ecmp.sh): N long-lived TCP
// connections to ADDR:PORT (an echo service), each sending a line every 100 ms and expecting its
// echo, and a new short connection every 50 ms, for SECONDS. At the end it prints one JSON line:
// how many long-lived connections opened and how many failed (reset, closed, or silent for 3 s),
// and the short ones' successes, failures and longest outage. With --progress it also prints a
// line a second.
//   node netns/long-lived-client.js ADDR PORT N SECONDS [--progress]
'use strict';
const net = require('node:net');

const [addr, port, n, seconds] = [
  process.argv[2],
  Number(process.argv[3]),
  Number(process.argv[4]),
  Number(process.argv[5]),
];
const progress = process.argv.includes('--progress');
const failed = new Set();
const last = new Map();
let opened = 0;

for (let i = 0; i < n; i++) {
  setTimeout(() => {
    const s = net.connect(port, addr);
    s.setNoDelay(true);
    let buf = '';
    s.on('connect', () => {
      opened++;
      last.set(i, Date.now());
    });
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) {
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
        last.set(i, Date.now());
      }
    });
    s.on('error', () => failed.add(i));
    s.on('close', () => failed.add(i));
    setInterval(() => {
      if (!s.destroyed) s.write(`x${i}\n`);
    }, 100).unref();
  }, i * 5);
}

let shortOk = 0;
let shortFail = 0;
let worst = 0;
let streakStart = 0;
const shortTimer = setInterval(() => {
  const s = net.connect(port, addr);
  const started = Date.now();
  let settled = false;
  const done = (ok) => {
    if (settled) return;
    settled = true;
    s.destroy();
    if (ok) {
      shortOk++;
      if (streakStart) {
        worst = Math.max(worst, started - streakStart);
        streakStart = 0;
      }
    } else {
      shortFail++;
      if (!streakStart) streakStart = started;
    }
  };
  s.setTimeout(1000, () => done(false));
  s.on('error', () => done(false));
  s.on('connect', () => s.write('short\n'));
  s.on('data', () => done(true));
}, 50);

const t0 = Date.now();
const ticker = progress
  ? setInterval(() => {
      const t = Math.round((Date.now() - t0) / 1000);
      console.log(
        `  ${String(t).padStart(3)} s: ${opened - failed.size} of ${n} long-lived connections alive, ${failed.size} failed; short: ${shortOk} ok, ${shortFail} failed`,
      );
    }, 1000)
  : null;

setTimeout(() => {
  clearInterval(shortTimer);
  if (ticker) clearInterval(ticker);
  const now = Date.now();
  for (const [i, t] of last) if (now - t > 3000) failed.add(i);
  console.log(JSON.stringify({ opened, failed: failed.size, shortOk, shortFail, worstOutageMs: worst }));
  process.exit(0);
}, seconds * 1000);
