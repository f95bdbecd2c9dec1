/**
 * Peer for `onebox bench --peers`: Socket.IO 4 on Node (its default engine, `ws`
 * underneath), WebSocket transport only (the bench's clients do not poll). A `sub` event
 * joins the room and is acknowledged; POST /v1/notify emits `msg` with the body to the room.
 * Socket.IO's defaults otherwise (heartbeat every 25 s).
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const server = createServer();
const io = new Server(server, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  socket.on('sub', (topic: unknown) => {
    if (typeof topic !== 'string') return;
    void socket.join(topic);
    socket.emit('ack', { for: 'sub', topic });
  });
});
server.on('request', (req, res) => {
  if (req.url !== '/v1/notify' || req.method !== 'POST') return;
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  req.on('end', () => {
    const b = JSON.parse(body) as { topic: string };
    io.to(b.topic).emit('msg', { op: 'msg', topic: b.topic, data: b });
    res.writeHead(202).end();
  });
});
server.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1', backlog: 65_535 }, () => {
  const a = server.address();
  console.log(JSON.stringify({ msg: 'listening', port: typeof a === 'object' && a ? a.port : 0, peer: 'socket.io' }));
});
