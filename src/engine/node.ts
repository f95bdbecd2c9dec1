/**
 * Node's engine: node:http with Hono's node adapter for requests and `ws` (noServer) for
 * WebSockets. Upgrades are authorized by the gateway before `handleUpgrade`, and a refusal
 * is written as a plain HTTP response on the raw socket. Socket listeners are shared
 * functions that find their Conn through a symbol property: no closure per connection.
 * Malformed requests and oversized headers get a JSON error from `clientError` instead of
 * Node's bare status line.
 */
import { createServer, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Conn } from '../realtime/conn.js';
import type { Gateway, SocketOps } from '../realtime/gateway.js';
import { WS_PATH, type Engine } from './types.js';

const CONN = Symbol('onebox.conn');
type Sock = WebSocket & { [CONN]: Conn };

const ops: SocketOps = {
  send: (s, text) => (s as Sock).send(text),
  buffered: (s) => (s as Sock).bufferedAmount,
  ping: (s) => (s as Sock).ping(),
  close: (s, code, reason) => (s as Sock).close(code, reason),
  terminate: (s) => (s as Sock).terminate(),
};

function rawResponse(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, 'Connection: close', `Content-Length: ${Buffer.byteLength(body)}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

function ignore(): void {}

export const startNode: Engine = async (config, target, log) => {
  const { gateway } = target;
  gateway.attach(ops);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });

  const connOf = (ws: WebSocket) => (ws as Sock)[CONN];
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    gateway.message(connOf(this), data as Buffer, isBinary);
  }
  function onPong(this: WebSocket): void {
    gateway.pong(connOf(this));
  }
  function onClose(this: WebSocket, code: number): void {
    gateway.closed(connOf(this), code);
  }
  function onError(this: WebSocket, err: Error): void {
    log.debug({ err: err.message, conn: connOf(this).id }, 'websocket error');
  }

  const listener = getRequestListener((req, env) =>
    target.fetch(req, { ip: (env as { incoming: IncomingMessage }).incoming.socket.remoteAddress ?? '' }),
  );
  const server = createServer({ keepAliveTimeout: 75_000, headersTimeout: 20_000, requestTimeout: 60_000 }, listener);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore);
    const path = req.url ?? '/';
    if (!(path === WS_PATH || path.startsWith(`${WS_PATH}?`))) {
      rawResponse(socket, 404, { 'Content-Type': 'application/json' }, JSON.stringify({ error: { code: 'not_found', message: 'no WebSocket here' } }));
      return;
    }
    void upgrade(gateway, req, socket, head);
  });

  async function upgrade(gw: Gateway, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const decision = await gw.authorize({
      url: req.url ?? '/',
      authorization: req.headers.authorization,
      ip: req.socket.remoteAddress ?? '',
      forwarded: req.headers['x-forwarded-for'],
    });
    if (!decision.ok) return rawResponse(socket, decision.status, decision.headers, decision.body);
    if (socket.destroyed) return gw.abort(decision.conn);
    socket.removeListener('error', ignore);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const sock = ws as Sock;
      sock[CONN] = decision.conn;
      sock.on('message', onMessage);
      sock.on('pong', onPong);
      sock.on('close', onClose);
      sock.on('error', onError);
      gw.open(decision.conn, sock);
    });
  }

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const overflow = err.code === 'HPE_HEADER_OVERFLOW';
    const status = overflow ? 431 : 400;
    const code = overflow ? 'headers_too_large' : 'bad_request';
    rawResponse(socket, status, { 'Content-Type': 'application/json' }, JSON.stringify({ error: { code, message: STATUS_CODES[status] } }));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep accept queue: Node's default backlog (511) overflows in a reconnect storm and
    // the kernel answers the overflow with resets. The kernel caps it at somaxconn.
    server.listen({ port: config.port, host: config.host, backlog: 65_535 }, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : config.port,
    stopAccepting: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // close() drops connections idle now; a keep-alive connection that finishes its
        // response later must be dropped then, or it would hold the drain open.
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        server.once('close', () => clearInterval(sweep));
      }),
    close: async () => {
      server.closeAllConnections();
      wss.close();
    },
  };
};
