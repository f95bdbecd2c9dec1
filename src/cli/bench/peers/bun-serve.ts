/**
 * Peer for `onebox bench --peers`: a bare `Bun.serve` doing what the bench asks of onebox
 * and nothing more. Upgrades on /v1/ws (no authentication), `{"op":"sub","topic"}` subscribes
 * with uWS's own pub/sub and is acknowledged, POST /v1/notify publishes the body to its topic.
 * Bun's defaults otherwise (idle timeout 120 s with automatic pings). Run with bun; prints
 * the `listening` line the bench's starter waits for.
 */
import type { ServerWebSocket } from 'bun';

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? '127.0.0.1',
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === '/v1/ws') return srv.upgrade(req) ? undefined : new Response('upgrade failed', { status: 400 });
    if (url.pathname === '/v1/notify' && req.method === 'POST') {
      const body = (await req.json()) as { topic: string };
      srv.publish(body.topic, JSON.stringify({ op: 'msg', topic: body.topic, data: body }));
      return new Response(null, { status: 202 });
    }
    return new Response('not found', { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    message(ws: ServerWebSocket, m) {
      const f = JSON.parse(String(m)) as { op?: string; topic?: string };
      if (f.op === 'sub' && f.topic) {
        ws.subscribe(f.topic);
        ws.send(JSON.stringify({ op: 'ack', for: 'sub', topic: f.topic }));
      }
    },
  },
});
console.log(JSON.stringify({ msg: 'listening', port: server.port, peer: 'bun-serve' }));
