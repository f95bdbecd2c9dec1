/**
 * One Redis connection speaking RESP2, just enough for the backplane: PUBLISH with its
 * reply on one connection, SUBSCRIBE/UNSUBSCRIBE and message pushes on another.
 *
 * Hand-written because the backplane is on the per-connection path and node-redis is not
 * lean there: measured on Bun, importing it cost 8.8 MB of RSS per process, and its
 * listener bookkeeping about 1.1 KB per subscribed channel. The backplane subscribes one
 * channel per connected user, so at 15,000 users a worker carried 26 MB for Redis, more
 * than the WebSockets themselves. Here a channel costs nothing beyond the Registry's own
 * entry: after a reconnect the subscriptions are rebuilt from the Registry.
 *
 * `redis://` and `rediss://` (TLS) URLs, with optional user and password (AUTH). The
 * database number is ignored: pub/sub is not per database.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export type Reply = string | number | null | Error | Reply[];

export interface RespOptions {
  url: string;
  connectTimeoutMs: number;
  /** Delay before reconnect attempt n (0-based). */
  backoff: (attempt: number) => number;
  /** Connected (and authenticated): commands may be sent. */
  onReady: () => void;
  /** The connection failed or was lost; it reconnects by itself until close(). */
  onDown: (err: Error) => void;
  /** Subscriber mode: every pushed array (`message`, `subscribe`, ...). */
  onPush?: (push: Reply[]) => void;
}

const CRLF = '\r\n';

/** A RESP2 command: an array of bulk strings. */
export function encode(args: readonly string[]): string {
  let out = `*${args.length}${CRLF}`;
  for (const a of args) out += `$${Buffer.byteLength(a)}${CRLF}${a}${CRLF}`;
  return out;
}

/**
 * Parse one reply at `at`. Returns the reply and where the next one starts, or undefined
 * when `buf` holds only part of it.
 */
export function parse(buf: Buffer, at: number): [Reply, number] | undefined {
  const eol = buf.indexOf(CRLF, at);
  if (eol < 0) return undefined;
  const type = buf[at];
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 0x2b: // +
      return [line, next];
    case 0x2d: // -
      return [new Error(line), next];
    case 0x3a: // :
      return [Number(line), next];
    case 0x24: {
      // $
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: Reply[] = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, pos);
        if (!r) return undefined;
        items.push(r[0]);
        pos = r[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`Redis protocol error: unexpected byte ${type} in a reply`);
  }
}

interface Pending {
  resolve(r: Reply): void;
  reject(e: Error): void;
}

export class RespConnection {
  private socket: Socket | null = null;
  private ready = false;
  private closed = false;
  private attempts = 0;
  private rest: Buffer | null = null;
  private readonly pending: Pending[] = [];
  private readonly host: string;
  private readonly port: number;
  private readonly tls: boolean;
  private readonly auth: string[] | null;

  constructor(private readonly o: RespOptions) {
    const u = new URL(o.url);
    this.tls = u.protocol === 'rediss:';
    this.host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    this.port = Number(u.port || 6379);
    const user = decodeURIComponent(u.username);
    const pass = decodeURIComponent(u.password);
    this.auth = pass ? (user ? ['AUTH', user, pass] : ['AUTH', pass]) : null;
  }

  get isReady(): boolean {
    return this.ready;
  }

  start(): void {
    if (!this.socket && !this.closed) this.open();
  }

  /** Send a command and wait for its reply; rejects at once while disconnected. */
  call(...args: string[]): Promise<Reply> {
    if (!this.ready) return Promise.reject(new Error('Redis connection is not ready'));
    return this.request(args);
  }

  /** Send without waiting (subscriber commands are confirmed by pushes); false while down. */
  send(...args: string[]): boolean {
    if (!this.ready) return false;
    this.write(encode(args));
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.socket;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), 1000).unref();
    });
  }

  private request(args: string[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.write(encode(args));
    });
  }

  /** Written at once: a PUBLISH must leave before the caller's local fan-out loop runs. */
  private write(text: string): void {
    this.socket!.write(text);
  }

  private open(): void {
    const opts = { host: this.host, port: this.port, timeout: this.o.connectTimeoutMs };
    const s = this.tls ? tlsConnect({ ...opts, servername: this.host }) : netConnect(opts);
    this.socket = s;
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    s.once(this.tls ? 'secureConnect' : 'connect', () => {
      s.setTimeout(0);
      void this.handshake();
    });
    s.on('timeout', () => s.destroy(new Error(`connect timeout after ${this.o.connectTimeoutMs} ms`)));
    s.on('data', (chunk: Buffer) => this.receive(chunk));
    s.on('error', (err: Error) => this.o.onDown(err));
    s.once('close', () => this.lost());
  }

  private async handshake(): Promise<void> {
    try {
      if (this.auth) {
        const r = await this.request(this.auth);
        if (r instanceof Error) throw r;
      }
    } catch (err) {
      this.o.onDown(err as Error);
      this.socket?.destroy();
      return;
    }
    this.ready = true;
    this.attempts = 0;
    this.o.onReady();
  }

  private receive(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    let at = 0;
    try {
      for (;;) {
        const r = parse(buf, at);
        if (!r) break;
        at = r[1];
        this.dispatch(r[0]);
      }
    } catch (err) {
      this.socket?.destroy(err as Error);
      return;
    }
    this.rest = at < buf.length ? buf.subarray(at) : null;
  }

  private dispatch(reply: Reply): void {
    if (this.o.onPush && Array.isArray(reply)) return this.o.onPush(reply);
    const p = this.pending.shift();
    if (!p) return;
    if (reply instanceof Error) p.reject(reply);
    else p.resolve(reply);
  }

  private lost(): void {
    const wasReady = this.ready;
    this.ready = false;
    this.socket = null;
    this.rest = null;
    for (const p of this.pending.splice(0)) p.reject(new Error('Redis connection lost'));
    if (this.closed) return;
    if (wasReady) this.o.onDown(new Error('Redis connection lost'));
    setTimeout(() => !this.closed && this.open(), this.o.backoff(this.attempts++)).unref();
  }
}
