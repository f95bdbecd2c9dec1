/**
 * Bun's native server (Bun.serve, uWebSockets underneath). Routes /v1/ws through the
 * gateway's authorization before `server.upgrade`; everything else goes to the Hono app.
 * Bun's own idle timeout and automatic pings are off: the gateway's heartbeat drives both,
 * so the behaviour (and the figures) match the Node engine.
 */
import { errorResponse } from '../errors.js';
import type { ServerWebSocket } from 'bun';
import type { Conn } from '../realtime/conn.js';
import type { SocketOps } from '../realtime/gateway.js';
import { WS_PATH, type Engine } from './types.js';

type Sock = ServerWebSocket<Conn>;

const ops: SocketOps = {
  send: (s, text) => void (s as Sock).send(text),
  buffered: (s) => (s as Sock).getBufferedAmount(),
  ping: (s) => void (s as Sock).ping(),
  close: (s, code, reason) => (s as Sock).close(code, reason),
  terminate: (s) => (s as Sock).terminate(),
};

const SLASH = 0x2f;

/** The listening address as an authority, for requests that carry no Host. */
function hostOf(srv: { hostname?: string | undefined; port?: number | undefined }): string {
  const h = srv.hostname ?? 'localhost';
  return `${h.includes(':') ? `[${h}]` : h}:${srv.port ?? 80}`;
}

function isWsPath(url: string): boolean {
  // req.url is absolute: skip scheme and authority without building a URL object.
  const start = url.indexOf('/', url.indexOf('//') + 2);
  return url.startsWith(WS_PATH, start) && (url.length === start + WS_PATH.length || url[start + WS_PATH.length] === '?');
}

export const startBun: Engine = async (config, target, log) => {
  const { gateway } = target;
  gateway.attach(ops);
  const server = Bun.serve<Conn>({
    port: config.port,
    hostname: config.host,
    reusePort: config.workers > 1,
    // Far above BODY_LIMIT_BYTES so that JavaScript sees every request: Bun's own 413 has an
    // empty body, while the app answers 413 in JSON from Content-Length or while streaming.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: 75,
    async fetch(req, srv) {
      const ip = srv.requestIP(req)?.address ?? '';
      // HTTP/1.0 without Host: Bun hands over a bare path, which no router can parse.
      if (req.url.charCodeAt(0) === SLASH) req = new Request(`http://${hostOf(srv)}${req.url}`, req);
      if (!isWsPath(req.url)) return target.fetch(req, { ip });
      if (req.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
        return target.fetch(req, { ip });
      }
      const h = req.headers;
      const decision = await gateway.authorize({
        url: req.url,
        authorization: h.get('authorization'),
        ip,
        version: h.get('sec-websocket-version'),
        key: h.get('sec-websocket-key'),
        forwarded: h.get('x-forwarded-for'),
        protocols: h.get('sec-websocket-protocol'),
      });
      if (!decision.ok) return new Response(decision.body, { status: decision.status, headers: decision.headers });
      const headers = decision.protocol ? { 'Sec-WebSocket-Protocol': decision.protocol } : undefined;
      if (srv.upgrade(req, { data: decision.conn, headers })) return undefined;
      gateway.abort(decision.conn);
      return errorResponse('bad_request', 'upgrade failed');
    },
    websocket: {
      maxPayloadLength: config.maxMessageBytes,
      backpressureLimit: config.maxBufferedBytes * 2,
      closeOnBackpressureLimit: false,
      idleTimeout: 0,
      sendPings: false,
      perMessageDeflate: false,
      open: (ws) => gateway.open(ws.data, ws),
      message: (ws, m) => gateway.message(ws.data, m, typeof m !== 'string'),
      pong: (ws) => gateway.pong(ws.data),
      close: (ws, code) => gateway.closed(ws.data, code),
      error: (err, ws) => log.error({ err, conn: ws.data.id }, 'websocket handler failed'),
    },
    error(err) {
      log.error({ err }, 'unhandled server error');
      return errorResponse('internal', 'internal error');
    },
  });
  return {
    port: server.port ?? config.port,
    stopAccepting: () => server.stop(false),
    close: () => server.stop(true),
  };
};
