#!/usr/bin/env node
// A tiny HTTP server for lab real servers: answers every request with its own name, and serves
// /bytes/N (N bytes of a fixed pseudo-random pattern) for transfer tests.
//   node netns/http-server.js NAME [PORT [ADDRESS]]   (ADDRESS :: for IPv6 and IPv4; default 0.0.0.0)
'use strict';
const http = require('node:http');
const { pattern } = require('./pattern.js');

const name = process.argv[2] || 'server';
const port = Number(process.argv[3] || 80);
const address = process.argv[4] || '0.0.0.0';

const server = http.createServer((req, res) => {
  const m = /^\/bytes\/(\d+)$/.exec(req.url || '');
  if (m) {
    const body = pattern(Math.min(Number(m[1]), 64 * 1024 * 1024));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
    return;
  }
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
    });
    req.on('end', () => res.end(`${name} got ${n}\n`));
    return;
  }
  res.setHeader('content-type', 'text/plain');
  res.end(`${name}\n`);
});
server.listen(port, address, () => process.stdout.write(`${name} listening on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
