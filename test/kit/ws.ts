/** A `ws` client that queues frames so tests can await the next one matching a predicate. */
import WebSocket from 'ws';

type Frame = Record<string, any>;

export class Client {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  pings = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const f = JSON.parse(data.toString()) as Frame;
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
      else this.frames.push(f);
    });
    ws.on('ping', () => this.pings++);
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** The next frame (queued or future) matching pred. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no matching frame')), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(t), resolve(f)) });
    });
  }

  /** Round trip a ping op: everything the server sent before the pong has arrived. */
  async sync(): Promise<void> {
    const id = `sync-${Math.random()}`;
    this.send({ op: 'ping', id });
    await this.next((f) => f.op === 'pong' && f.id === id);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Open an authenticated connection; resolves once open. */
export function connectWs(url: string, token: string, opts: WebSocket.ClientOptions = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, opts);
    const client = new Client(ws);
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
}

/** Attempt an upgrade that should be refused; resolves with status, headers and JSON body. */
export function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('upgrade was accepted'));
    });
    ws.once('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text || 'null') }));
    });
  });
}
