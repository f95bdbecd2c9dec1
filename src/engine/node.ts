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
import { getRequestListener, RequestError } from '@hono/node-server';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Conn } from '../realtime/conn.js';
import type { Gateway, SocketOps } from '../realtime/gateway.js';
import { SUBPROTOCOL } from '../realtime/protocol.js';
import { ERROR_CODES, errorBody, errorResponse, type ErrorCode } from '../errors.js';
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
  // Closed once flushed, as Node's HTTP server closes a `Connection: close` response: the
  // server's sockets allow half-open, so end() alone would keep the descriptor until the
  // client closes its side, which a hostile one never does.
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
}

/** A JSON error (code and status from the one list) written on a socket Node's HTTP layer gave up on. */
function rawError(socket: Duplex, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const all = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers };
  rawResponse(socket, ERROR_CODES[code], all, errorBody(code, message));
}

function ignore(): void {}

/**
 * The client already sent FIN or went away: it stopped waiting for this handshake (its
 * handshake timeout, in a reconnect storm where the cluster primary queued the connection
 * longer than that). Checking the token and upgrading it would be work for nobody, taken
 * from the handshakes whose clients still wait.
 */
const clientGone = (socket: Duplex) => socket.destroyed || !socket.readable;

export const startNode: Engine = async (config, target, log) => {
  const { gateway } = target;
  gateway.attach(ops);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // The one subprotocol we speak, when offered; ws would otherwise select the first offered.
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });

  // A handshake ws refuses (method, Upgrade, key, version, subprotocol) is answered in JSON
  // like every other error; RFC 6455 4.4 asks for the versions we speak beside it.
  wss.on('wsClientError', (err: Error, socket: Duplex) =>
    rawError(socket, 'bad_request', err.message, { 'Sec-WebSocket-Version': '13' }),
  );

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

  const listener = getRequestListener(
    (req, env) => target.fetch(req, { ip: (env as { incoming: IncomingMessage }).incoming.socket.remoteAddress ?? '' }),
    {
      // HTTP/1.0 health checks send no Host: the request is built against the listen address.
      hostname: config.host.includes(':') ? `[${config.host}]` : config.host,
      // A Host or target no URL can be built from (`Host: a b`, `OPTIONS *`) fails before the
      // app runs; the adapter's own answer is a bare 400 with no body.
      errorHandler: (err) => {
        if (err instanceof RequestError) return errorResponse('bad_request', 'malformed Host or request target', undefined, { Connection: 'close' });
        log.error({ err }, 'unhandled request error');
        return errorResponse('internal', 'internal error');
      },
    },
  );
  const server = createServer(
    { keepAliveTimeout: 75_000, headersTimeout: 20_000, requestTimeout: 60_000, requireHostHeader: false },
    listener,
  );

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore);
    const path = req.url ?? '/';
    if (!(path === WS_PATH || path.startsWith(`${WS_PATH}?`))) {
      rawError(socket, 'not_found', 'no WebSocket here');
      return;
    }
    void upgrade(gateway, req, socket, head);
  });

  /** Counted with the refusals (onebox_ws_upgrades_refused_total{reason="client_gone"}). */
  const skip = (gw: Gateway, socket: Duplex) => {
    gw.stats.refused.set('client_gone', (gw.stats.refused.get('client_gone') ?? 0) + 1);
    socket.destroy();
  };

  async function upgrade(gw: Gateway, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (clientGone(socket)) return skip(gw, socket);
    const h = req.headers;
    const decision = await gw.authorize({
      url: req.url ?? '/',
      authorization: h.authorization,
      ip: req.socket.remoteAddress ?? '',
      version: h['sec-websocket-version'],
      key: h['sec-websocket-key'],
      forwarded: h['x-forwarded-for'],
      protocols: h['sec-websocket-protocol'],
    });
    if (!decision.ok) return rawResponse(socket, decision.status, decision.headers, decision.body);
    const conn = decision.conn;
    if (clientGone(socket)) {
      skip(gw, socket);
      return gw.abort(conn);
    }
    socket.removeListener('error', ignore);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const sock = ws as Sock;
      sock[CONN] = conn;
      sock.on('message', onMessage);
      sock.on('pong', onPong);
      sock.on('close', onClose);
      sock.on('error', onError);
      gw.open(conn, sock);
    });
    // Without verifyClient, ws completes or refuses a handshake synchronously: it answers a
    // bad one (version, key) itself and destroys a socket that went away, never calling back.
    // Either way the slot comes back now; abort() after open() is a no-op.
    if (conn.sock === null) gw.abort(conn);
  }

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
    rawError(socket, code, STATUS_CODES[ERROR_CODES[code]]!);
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
