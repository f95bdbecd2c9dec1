/** A `ws` client that queues frames so tests can await the next one matching a predicate. */
import WebSocket from 'ws';
import { eventually } from './eventually.js';

/** How long an upgrade may take before the attempt fails. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

type Frame = Record<string, any>;

export class Client {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  pings = 0;
  /** The server's `hello`, the first frame of every connection (kept out of `frames`). */
  hello: Frame | undefined;
  /** When each protocol ping arrived (performance.now(), ms). */
  readonly pingTimes: number[] = [];
  private readonly closing: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const f = JSON.parse(data.toString()) as Frame;
      if (f.op === 'hello' && this.hello === undefined) {
        this.hello = f;
        return;
      }
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
      else this.frames.push(f);
    });
    ws.on('ping', () => {
      this.pings++;
      this.pingTimes.push(performance.now());
    });
    this.closing = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** The next frame (queued or future) matching pred; rejects after timeoutMs naming pred. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { pred, resolve: (f: Frame) => (clearTimeout(t), resolve(f)) };
      const t = setTimeout(() => {
        // A waiter left behind would swallow the next matching frame.
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        const seen = this.frames.slice(-3).map((f) => JSON.stringify(f).slice(0, 120));
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a frame matching ${String(pred)}; last unclaimed: ${seen.join(' ') || 'none'}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The close code and reason, once the connection has closed; rejects after timeoutMs. */
  waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return eventually(this.closing, { timeoutMs, what: 'the WebSocket to close' });
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
export function connectWs(url: string, token: string, opts: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<Client> {
  return openWs(`${url}?token=${encodeURIComponent(token)}`, opts.headers ?? {}, opts, protocols);
}

/**
 * Open a connection at exactly this URL (the query is sent as written), offering `protocols`
 * as Sec-WebSocket-Protocol; resolves once open.
 */
export function openWs(url: string, headers: Record<string, string> = {}, opts: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS, ...opts, headers });
    const client = new Client(ws);
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
}

/** Attempt an upgrade that should be refused; resolves with status, headers and JSON body. */
export function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('upgrade was accepted'));
    });
    // A refusal emits no error; a handshake that never answers does (handshakeTimeout).
    ws.on('error', (err) => reject(err));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text || 'null') }));
    });
  });
}

/** The connections a test suite opens, all closed in its `after()`. */
export class ClientPool {
  private readonly clients: Client[] = [];

  /** @param url the server's WebSocket URL, read at each open (the server starts in `before()`). */
  constructor(private readonly url: () => string) {}

  /** Open an authenticated connection (as connectWs) and keep it for closeAll(). */
  async open(token: string, opts?: WebSocket.ClientOptions): Promise<Client> {
    const c = await connectWs(this.url(), token, opts);
    this.clients.push(c);
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}
