/**
 * Request rate and p99 over the last second, for /status (Prometheus has the long view).
 * Latencies land in log-spaced buckets (about 10% wide) counted in a plain array; a
 * one-second timer turns the current array into the published figures and clears it.
 */
const BUCKETS = 160;
const BASE = 0.05; // ms, upper bound of bucket 0
const GROWTH = 1.1;

export class LiveStats {
  private counts = new Uint32Array(BUCKETS);
  private n = 0;
  rps = 0;
  p99Ms = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  record(ms: number): void {
    const i = ms <= BASE ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / BASE) / Math.log(GROWTH)));
    this.counts[i]!++;
    this.n++;
  }

  start(): void {
    this.timer = setInterval(() => this.roll(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private roll(): void {
    this.rps = this.n;
    let target = Math.ceil(this.n * 0.99);
    let p99 = 0;
    for (let i = 0; i < BUCKETS && target > 0; i++) {
      target -= this.counts[i]!;
      if (target <= 0) p99 = BASE * GROWTH ** i;
    }
    this.p99Ms = p99;
    this.counts.fill(0);
    this.n = 0;
  }
}
