// A TCP echo server for the benchmark's latency test, run on a real server:
//   node dist-bench/bench/net/echo-server.js PORT
// Listens on every address (DR and TUN real servers answer from the VIP they own).

import { createServer } from 'node:net';

const port = Number(process.argv[2] ?? 7007);
const server = createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('data', (d) => sock.write(d));
  sock.on('error', () => sock.destroy());
});
server.listen(port, '::', () => process.stdout.write(`echo listening on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
