/**
 * Prometheus metrics (prom-client). Hot paths count in plain integers (`stats` objects of
 * the gateway and the HTTP layer) and gauges read them at scrape time through `collect`, so
 * a request or a WebSocket message costs an integer increment, not a label lookup.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  httpDuration: Histogram<'route' | 'method'>;
  loop: IntervalHistogram;
  /** Render the exposition text. */
  render(): Promise<string>;
  close(): void;
}

/** Create the process registry with memory, event-loop and HTTP metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  new Gauge({
    name: 'onebox_process_resident_memory_bytes',
    help: 'Resident set size of this process',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'onebox_process_heap_bytes',
    help: 'JavaScript heap of this process',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const m = process.memoryUsage();
      this.set({ kind: 'used' }, m.heapUsed);
      this.set({ kind: 'total' }, m.heapTotal);
      this.set({ kind: 'external' }, m.external);
    },
  });
  new Gauge({
    name: 'onebox_event_loop_delay_seconds',
    help: 'Event-loop delay since the previous scrape',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      this.set({ quantile: '0.5' }, loop.percentile(50) / 1e9);
      this.set({ quantile: '0.99' }, loop.percentile(99) / 1e9);
      this.set({ quantile: '1' }, loop.max / 1e9);
      loop.reset();
    },
  });
  const httpRequests = new Counter({
    name: 'onebox_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'onebox_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  return {
    registry,
    httpRequests,
    httpDuration,
    loop,
    render: () => registry.metrics(),
    close: () => loop.disable(),
  };
}

/**
 * Expose plain integers kept on a hot path as a Prometheus family read at scrape time.
 * @param type `counter` for totals that only grow, `gauge` for levels.
 */
export function exposeIntegers(
  registry: Registry,
  type: 'counter' | 'gauge',
  name: string,
  help: string,
  read: () => number | Iterable<readonly [Record<string, string | number>, number]>,
  labelNames: string[] = [],
): void {
  const Ctor = type === 'counter' ? Counter : Gauge;
  new Ctor({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Counter | Gauge) {
      this.reset();
      const v = read();
      const set = (labels: Record<string, string | number>, n: number) =>
        this instanceof Gauge ? this.set(labels, n) : this.inc(labels, n);
      if (typeof v === 'number') set({}, v);
      else for (const [labels, n] of v) set(labels, n);
    },
  });
}
