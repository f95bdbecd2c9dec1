/**
 * A loopback TCP proxy for the integration tests: one front port whose target can be switched
 * (a deploy's new colour), and `blackhole()`, which makes every open connection silent in both
 * directions without closing it, as a phone that changed networks or a NAT that forgot the
 * mapping does: neither end learns of it from TCP.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Where new connections go. */
  target: number;
  /** Stop forwarding on every open connection, leaving them open. */
  blackhole(): void;
  close(): Promise<void>;
}

export async function startProxy(target: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const all = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(proxy.target, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    all.add(client).add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      all.delete(client);
      all.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    target,
    blackhole() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
        // Dropped, never delivered: what a dead path does to bytes in flight.
        a.removeAllListeners('data');
        b.removeAllListeners('data');
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of all) s.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
