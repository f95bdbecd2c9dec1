/**
 * A client process for bench/ws-memory: opens its share of WebSocket connections from one
 * loopback source address (each process here may hold at most 20,000 files), subscribes
 * each to the bench topic, and reports receipt latency of fan-out messages to the parent.
 */
import WebSocket from 'ws';

interface Start {
  cmd: 'open';
  url: string;
  tokens: string[];
  localAddress: string;
  topic: string;
  concurrency: number;
}

const sockets: WebSocket[] = [];
const latencies = new Map<string, number[]>();
let closed = 0;
let pings = 0;

function send(msg: unknown): void {
  process.send!(msg);
}

function openOne(url: string, token: string, localAddress: string, topic: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${token}`, { localAddress, perMessageDeflate: false });
    ws.once('open', () => {
      ws.send(JSON.stringify({ op: 'sub', topic, id: 1 }));
    });
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as { op: string; data?: { data?: { fanout?: string; ts?: number } } };
      if (f.op === 'ack') resolve();
      else if (f.op === 'msg' && f.data?.data?.fanout) {
        const id = f.data.data.fanout;
        let l = latencies.get(id);
        if (!l) latencies.set(id, (l = []));
        l.push(Date.now() - f.data.data.ts!);
      }
    });
    ws.on('ping', () => pings++);
    ws.once('error', reject);
    ws.once('close', () => closed++);
    sockets.push(ws);
  });
}

process.on('message', (msg: Start | { cmd: 'report'; id: string } | { cmd: 'stats' } | { cmd: 'close' }) => {
  if (msg.cmd === 'open') {
    void (async () => {
      let next = 0;
      let failed = 0;
      const worker = async () => {
        while (next < msg.tokens.length) {
          const token = msg.tokens[next++]!;
          await openOne(msg.url, token, msg.localAddress, msg.topic).catch(() => failed++);
        }
      };
      await Promise.all(Array.from({ length: msg.concurrency }, worker));
      send({ type: 'opened', opened: msg.tokens.length - failed, failed });
    })();
  } else if (msg.cmd === 'report') {
    send({ type: 'report', id: msg.id, latencies: latencies.get(msg.id) ?? [] });
  } else if (msg.cmd === 'stats') {
    send({ type: 'stats', open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length, closed, pings });
  } else {
    for (const s of sockets) s.terminate();
    process.exit(0);
  }
});
