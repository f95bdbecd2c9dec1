/** Bytes on a bare TCP connection, for requests that an HTTP client would refuse to send. */
import { connect } from 'node:net';

/**
 * Write `bytes` (latin1) on a new connection and collect everything until the server
 * closes it, the connection fails, or timeoutMs passes (then the connection is destroyed).
 * @param opts.end half-close after writing, as a client that has nothing more to send.
 *   @default false
 * @param opts.timeoutMs @default 5000 ms
 * @returns all the bytes the server sent (latin1), possibly none.
 */
export function rawHttp(port: number, bytes: string, opts: { end?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (out += d));
    // 'close' follows 'error': a reset still resolves with what arrived before it.
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(out));
    sock.setTimeout(opts.timeoutMs ?? 5000, () => sock.destroy());
    if (opts.end) sock.end(bytes, 'latin1');
    else sock.write(bytes, 'latin1');
  });
}
