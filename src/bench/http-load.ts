/**
 * Open-model HTTP load (constant arrival rate, like k6's constant-arrival-rate): request i
 * is due at start + i/rate whether or not earlier ones have answered, and its latency is
 * measured from that intended time, so a stall shows up in full (no coordinated omission).
 * Latencies go to an HDR histogram in microseconds.
 */
import { Agent, request } from 'node:http';
import * as hdr from 'hdr-histogram-js';

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
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  /** Latencies of the last second only, for the progress line and max-rps steps. */
  window = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  sent = 0;
  ok = 0;
  errors: Record<string, number> = {};
  private readonly agent: Agent;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly o: HttpLoadOptions) {
    // FIFO hands each request the connection idle longest, so requests rotate over all of
    // them (Node's default, LIFO, keeps reusing the few most recent ones).
    this.agent = new Agent({ keepAlive: true, maxSockets: o.connections ?? 128, scheduling: 'fifo' });
  }

  /**
   * Open every connection before measuring, as many clients would have: with requests
   * rotating over all of them, SO_REUSEPORT spreads the load over the workers instead of
   * over whichever few connections a burst happened to open.
   */
  async connect(): Promise<void> {
    const n = this.o.connections ?? 128;
    await Promise.all(Array.from({ length: n }, () => new Promise<unknown>((resolve) => this.send(resolve))));
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
    this.agent.destroy();
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

  /** One GET; `done` gets null for a 200, else the kind of error. */
  private send(done: (kind: string | null) => void): void {
    const req = request(
      { host: this.o.host, port: this.o.port, path: this.o.path, headers: this.o.headers, agent: this.agent, timeout: this.o.timeoutMs ?? 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode === 200 ? null : `http_${res.statusCode}`));
        res.on('error', () => done('response_error'));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'request_error'));
    req.end();
  }
}

/** Percentile in milliseconds. */
export const pct = (h: hdr.Histogram, p: number) => h.getValueAtPercentile(p) / 1000;
