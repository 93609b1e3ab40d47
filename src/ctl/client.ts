// The client side of the control socket: one request, one reply, one connection.
// Wire format (protocol.ts): one JSON object per line each way.

import { connect } from 'node:net';
import { ControlSocketError } from '../errors';
import type { Request, Response } from './protocol';

function isResponse(v: unknown): v is Response {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as { ok?: unknown; errno?: unknown };
  return r.ok === true || (r.ok === false && typeof r.errno === 'string');
}

/**
 * Sends `req` to lvsd at `socketPath` and resolves with its reply. Rejects with a
 * ControlSocketError when the daemon cannot be reached, does not answer within `timeoutMs`,
 * or answers something that is not a Response.
 */
export function request(socketPath: string, req: Request, timeoutMs = 5000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let connected = false;
    let settled = false;
    let buf = '';

    const finish = (err: ControlSocketError | null, res?: Response): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };

    const parseLine = (line: string): void => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        finish(new ControlSocketError('protocol', socketPath, undefined, 'reply is not valid JSON'));
        return;
      }
      if (isResponse(value)) finish(null, value);
      else finish(new ControlSocketError('protocol', socketPath, undefined, 'reply is not a response object'));
    };

    const timer = setTimeout(() => {
      finish(new ControlSocketError('timeout', socketPath, undefined, `no reply within ${timeoutMs} ms`));
    }, timeoutMs);

    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      sock.write(`${JSON.stringify(req)}\n`);
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) parseLine(buf.slice(0, nl));
    });
    sock.on('end', () => {
      if (buf.trim() !== '') parseLine(buf);
      else finish(new ControlSocketError('protocol', socketPath, undefined, 'connection closed without a reply'));
    });
    sock.on('close', () => {
      finish(new ControlSocketError('protocol', socketPath, undefined, 'connection closed without a reply'));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const kind = connected ? 'protocol' : 'connect';
      finish(new ControlSocketError(kind, socketPath, err.code, err.message));
    });
  });
}
