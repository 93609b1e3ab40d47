// One running instance per network namespace and file: a program holds an abstract Unix socket
// named after the file it owns (lvsd its control socket, lvs-realserver its journal) for as
// long as it runs. Abstract sockets live in the network namespace and vanish with their
// process, so a lock is never stale, and another start in the same namespace learns that the
// owner is alive before it touches the owner's files.

import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';

/** The abstract socket name for `what` (a program and its file); hashed to fit in sun_path. */
function lockName(what: string): string {
  return `\0lvs-ts/${createHash('sha256').update(what).digest('hex').slice(0, 40)}`;
}

export interface InstanceLock {
  release(): void;
}

/**
 * Hold the lock for `what`; resolves with it, or with undefined when another live process of
 * this network namespace holds it.
 */
export function lockInstance(what: string): Promise<InstanceLock | undefined> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((sock) => sock.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(err);
    });
    server.listen(lockName(what), () => {
      // The lock never keeps the process alive by itself.
      server.unref();
      resolve({ release: () => server.close() });
    });
  });
}
