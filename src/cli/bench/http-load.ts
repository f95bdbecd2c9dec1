/**
 * Open-model HTTP load (constant arrival rate, like k6's constant-arrival-rate): request i
 * is due at start + i/rate whether or not earlier ones have answered, and its latency is
 * measured from that intended time, so a stall shows up in full (no coordinated omission).
 * Latencies go to an HDR histogram in microseconds.
 *
 * The generator shares the box with the server it measures, so it must be cheap: requests
 * go out through undici's Client.dispatch, one keep-alive connection per Client, rather
 * than node:http. With node:http the bench process took about a quarter of a core at
 * 2,000 req/s; with undici the whole harness (generator and client processes) went from
 * 49% to 35-40% of a core.
 */
import * as hdr from 'hdr-histogram-js';
import { Client } from 'undici';

/** Keep-alive connections the generator holds unless told otherwise. */
export const DEFAULT_CONNECTIONS = 128;

const latencies = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

export interface HttpLoadOptions {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  /** Connections kept to the server. @default 128 */
  connections?: number;
  /** A request not answered within this is an error. @default 10000 ms */
  timeoutMs?: number;
}

export class HttpLoad {
  /** Latencies since the last reset(). */
  readonly histogram = latencies();
  /** Latencies since the caller last reset it (the progress line: the last second). */
  readonly window = latencies();
  sent = 0;
  ok = 0;
  errors: Record<string, number> = {};
  /** Connections with no request in flight, the one idle longest first. */
  private readonly idle: Client[];
  /** Requests waiting for a connection (all busy). */
  private readonly waiting: Array<(kind: string | null) => void> = [];
  private readonly clients: Client[];
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly o: HttpLoadOptions) {
    const timeout = o.timeoutMs ?? 10_000;
    this.clients = Array.from(
      { length: o.connections ?? DEFAULT_CONNECTIONS },
      () => new Client(`http://${o.host}:${o.port}`, { pipelining: 1, headersTimeout: timeout, bodyTimeout: timeout, keepAliveTimeout: 600_000, connect: { timeout } }),
    );
    // Requests rotate over every connection (a FIFO of idle ones), as many clients' would.
    this.idle = [...this.clients];
  }

  /**
   * Open every connection before measuring, as many clients would have: with requests
   * rotating over all of them, SO_REUSEPORT spreads the load over the workers instead of
   * over whichever few connections a burst happened to open.
   */
  async connect(): Promise<void> {
    await Promise.all(this.clients.map(() => new Promise<unknown>((resolve) => this.send(resolve))));
  }

  /** The bearer token of the requests. */
  authorize(token: string): void {
    this.o.headers.authorization = `Bearer ${token}`;
  }

  /** Run at `rate` req/s for `durationMs` (or until stop()). */
  run(rate: number, durationMs: number): Promise<void> {
    const start = performance.now();
    const total = Math.floor((durationMs * rate) / 1000);
    let issued = 0;
    return new Promise((resolve) => {
      this.timer = setInterval(() => {
        const now = performance.now();
        // Request i is due at start + i/rate: the first one at once.
        const due = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1);
        while (issued < due) this.one(start + (issued++ * 1000) / rate);
        if (now - start >= durationMs) {
          this.stop();
          resolve();
        }
      }, 1);
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reset the totals (after a warm-up). */
  reset(): void {
    this.histogram.reset();
    this.window.reset();
    this.sent = 0;
    this.ok = 0;
    this.errors = {};
  }

  close(): void {
    for (const c of this.clients) void c.destroy();
  }

  private one(intended: number): void {
    this.sent++;
    this.send((kind) => {
      const us = Math.max(1, Math.round((performance.now() - intended) * 1000));
      this.histogram.recordValue(us);
      this.window.recordValue(us);
      if (kind === null) this.ok++;
      else this.errors[kind] = (this.errors[kind] ?? 0) + 1;
    });
  }

  /** One GET on the connection idle longest; `done` gets null for a 200, else the kind of error. */
  private send(done: (kind: string | null) => void): void {
    const client = this.idle.shift();
    if (client) this.dispatch(client, done);
    else this.waiting.push(done);
  }

  private dispatch(client: Client, done: (kind: string | null) => void): void {
    let status = 0;
    const release = () => {
      const next = this.waiting.shift();
      if (next) this.dispatch(client, next);
      else this.idle.push(client);
    };
    const finish = (kind: string | null) => {
      // After an error undici is still failing the Client's queue: hand it the next request
      // only once that is over (re-entering there trips its internal assertion).
      if (kind === null) release();
      else queueMicrotask(release);
      done(kind);
    };
    client.dispatch(
      { path: this.o.path, method: 'GET', headers: this.o.headers },
      // Client.dispatch takes the callback handler (onConnect ... onComplete).
      {
        onConnect: () => undefined,
        onHeaders: (statusCode) => {
          status = statusCode;
          return true;
        },
        onData: () => true,
        onComplete: () => finish(status === 200 ? null : `http_${status}`),
        onError: (err) => finish((err as NodeJS.ErrnoException).code ?? 'request_error'),
      },
    );
  }
}

/** Percentile in milliseconds. */
export const pct = (h: hdr.Histogram, p: number) => h.getValueAtPercentile(p) / 1000;
