#!/usr/bin/env node
// A UDP server for lab real servers: answers each datagram with "<NAME> <datagram>".
//   node netns/udp-echo.js NAME [PORT [ADDRESS]]   (an IPv6 ADDRESS, :: say, makes it an IPv6 socket)
// DR and TUN real servers bind the VIP, so that replies leave with the VIP as their source.
'use strict';
const dgram = require('node:dgram');

const name = process.argv[2] || 'server';
const port = Number(process.argv[3] || 53);
const address = process.argv[4] || '0.0.0.0';
const sock = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
sock.on('message', (msg, rinfo) => sock.send(Buffer.concat([Buffer.from(`${name} `), msg]), rinfo.port, rinfo.address));
sock.bind(port, address, () => process.stdout.write(`${name} udp listening on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
