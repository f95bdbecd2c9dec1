/**
 * Peer for `onebox bench --peers`: bare `ws` on node:http, as its README sets it up
 * (noServer is not needed: `server` option), doing what the bench asks of onebox and nothing
 * more. `{"op":"sub","topic"}` adds the socket to the topic's Set and is acknowledged;
 * POST /v1/notify sends the body to every socket in the topic's Set. No heartbeat.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const topics = new Map<string, Set<WebSocket>>();
const server = createServer((req, res) => {
  if (req.url !== '/v1/notify' || req.method !== 'POST') return void res.writeHead(404).end();
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  req.on('end', () => {
    const b = JSON.parse(body) as { topic: string };
    const text = JSON.stringify({ op: 'msg', topic: b.topic, data: b });
    for (const ws of topics.get(b.topic) ?? []) ws.send(text);
    res.writeHead(202).end();
  });
});
const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const f = JSON.parse(String(data)) as { op?: string; topic?: string };
    if (f.op !== 'sub' || !f.topic) return;
    let set = topics.get(f.topic);
    if (!set) topics.set(f.topic, (set = new Set()));
    set.add(ws);
    ws.once('close', () => set.delete(ws));
    ws.send(JSON.stringify({ op: 'ack', for: 'sub', topic: f.topic }));
  });
});
server.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1', backlog: 65_535 }, () => {
  const a = server.address();
  console.log(JSON.stringify({ msg: 'listening', port: typeof a === 'object' && a ? a.port : 0, peer: 'ws-node' }));
});
