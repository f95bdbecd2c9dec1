/**
 * Bun's native server (Bun.serve, uWebSockets underneath). Routes /v1/ws through the
 * gateway's authorization before `server.upgrade`; everything else goes to the Hono app.
 * Bun's own idle timeout and automatic pings are off: the gateway's heartbeat drives both,
 * so the behaviour (and the figures) match the Node engine.
 */
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
    // A backstop only: the app answers 413 in JSON below this, from Content-Length or while streaming.
    maxRequestBodySize: config.bodyLimitBytes + 1024 * 1024,
    idleTimeout: 75,
    async fetch(req, srv) {
      const ip = srv.requestIP(req)?.address ?? '';
      if (!isWsPath(req.url)) return target.fetch(req, { ip });
      if (req.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
        return target.fetch(req, { ip });
      }
      const decision = await gateway.authorize({
        url: req.url,
        authorization: req.headers.get('authorization'),
        ip,
        forwarded: req.headers.get('x-forwarded-for'),
      });
      if (!decision.ok) return new Response(decision.body, { status: decision.status, headers: decision.headers });
      if (srv.upgrade(req, { data: decision.conn })) return undefined;
      gateway.abort(decision.conn);
      return new Response(JSON.stringify({ error: { code: 'bad_request', message: 'upgrade failed' } }), {
        status: 400,
        headers: { 'Content-Type': 'application/json' },
      });
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
      return new Response(JSON.stringify({ error: { code: 'internal', message: 'internal error' } }), {
        status: 500,
        headers: { 'Content-Type': 'application/json' },
      });
    },
  });
  return {
    port: server.port ?? config.port,
    stopAccepting: () => server.stop(false),
    close: () => server.stop(true),
  };
};
