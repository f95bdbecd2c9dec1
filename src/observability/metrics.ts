/**
 * Prometheus metrics (prom-client), the one catalog of every family onebox exports. Hot
 * paths count in plain integers (the `stats` objects of the gateway, the backplane, the push
 * worker, and `HttpFigures` here for every request) and families read them at scrape time
 * through `collect`, so a request or a WebSocket message costs an integer increment, not a
 * label lookup. `registerFigures` takes those counters by shape, so this room imports none
 * of the rooms above it.
 *
 * prom-client itself loads on the first scrape: its module graph holds about 8 MB of an
 * idle Bun worker's RSS (bench/results/memory-sizing/report.md), and nothing before a
 * scrape needs it, since every figure is a plain integer until then.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Counter, Gauge, Metric, Registry } from 'prom-client';

type PromClient = typeof import('prom-client');

/** Upper bounds (seconds) of the request-latency histogram's buckets. */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** One route and method: request counts by status, latency bucket counts, their sum. */
interface HttpSeries {
  route: string;
  method: string;
  byStatus: Map<number, number>;
  /** Per bucket (not cumulative); the last slot is above every bound (+Inf). */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * Request counts and latencies in plain maps and arrays, read by the registry at scrape
 * time: the per-request cost is one map lookup and two increments.
 */
export class HttpFigures {
  readonly series = new Map<string, HttpSeries>();

  /** Count one answered request. @param seconds its duration */
  record(route: string, method: string, status: number, seconds: number): void {
    const key = `${method} ${route}`;
    let s = this.series.get(key);
    if (!s) {
      s = { route, method, byStatus: new Map(), buckets: new Float64Array(HTTP_BUCKETS.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    s.byStatus.set(status, (s.byStatus.get(status) ?? 0) + 1);
    let i = 0;
    while (i < HTTP_BUCKETS.length && seconds > HTTP_BUCKETS[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
  }
}

export interface Metrics {
  http: HttpFigures;
  loop: IntervalHistogram;
  /** The exposition's Content-Type (Prometheus text 0.0.4). */
  contentType: string;
  /** Render the exposition text (loads prom-client on the first call). */
  render(): Promise<string>;
  close(): void;
}

/** Create the process metrics: memory, event loop and HTTP figures; families of `registerFigures` join them. */
export function createMetrics(): Metrics {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const http = new HttpFigures();
  let registry: Promise<Registry> | null = null;
  const metrics: Metrics & { figures?: Figures } = {
    http,
    loop,
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    render: () => {
      registry ??= import('prom-client').then((prom) => buildRegistry(prom, metrics, metrics.figures));
      return registry.then((r) => r.metrics());
    },
    close: () => loop.disable(),
  };
  return metrics;
}

/** Register every family once, on the first scrape. */
function buildRegistry(prom: PromClient, m: Metrics, figures: Figures | undefined): Registry {
  const { Counter, Gauge, Registry } = prom;
  const registry = new Registry();
  const loop = m.loop;
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
      const mem = process.memoryUsage();
      this.set({ kind: 'used' }, mem.heapUsed);
      this.set({ kind: 'total' }, mem.heapTotal);
      this.set({ kind: 'external' }, mem.external);
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
  const series = m.http.series;
  new Counter({
    name: 'onebox_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of series.values()) for (const [status, n] of s.byStatus) this.inc({ route: s.route, method: s.method, status }, n);
    },
  });
  registry.registerMetric(httpDurationFamily(series));
  if (figures) addFigureFamilies(registry, prom, figures);
  return registry;
}

/**
 * The latency histogram as a family of its own: prom-client's Histogram has no way to be
 * read from counts kept elsewhere, and the registry asks a family only for `get()`. The
 * values are the ones a Histogram renders: cumulative `_bucket` per bound and `+Inf`,
 * `_sum`, `_count`.
 */
function httpDurationFamily(series: ReadonlyMap<string, HttpSeries>): Metric {
  const name = 'onebox_http_request_duration_seconds';
  const family = {
    name,
    help: 'HTTP request latency by route pattern',
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const s of series.values()) {
        let cumulative = 0;
        for (let i = 0; i <= HTTP_BUCKETS.length; i++) {
          cumulative += s.buckets[i]!;
          values.push({ labels: { le: i < HTTP_BUCKETS.length ? HTTP_BUCKETS[i]! : '+Inf', route: s.route, method: s.method }, value: cumulative, metricName: `${name}_bucket` });
        }
        values.push({ labels: { route: s.route, method: s.method }, value: s.sum, metricName: `${name}_sum` });
        values.push({ labels: { route: s.route, method: s.method }, value: s.count, metricName: `${name}_count` });
      }
      return Promise.resolve({ name, help: family.help, type: 'histogram', values, aggregator: 'sum' });
    },
  };
  return family as unknown as Metric;
}

/**
 * Expose plain integers kept on a hot path as a Prometheus family read at scrape time.
 * @param type `counter` for totals that only grow, `gauge` for levels.
 */
function exposeIntegers(
  registry: Registry,
  prom: PromClient,
  type: 'counter' | 'gauge',
  name: string,
  help: string,
  read: () => number | Iterable<readonly [Record<string, string | number>, number]>,
  labelNames: string[] = [],
): void {
  const Ctor = type === 'counter' ? prom.Counter : prom.Gauge;
  new Ctor({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Counter | Gauge) {
      this.reset();
      const v = read();
      const set = (labels: Record<string, string | number>, n: number) =>
        this instanceof prom.Gauge ? this.set(labels, n) : this.inc(labels, n);
      if (typeof v === 'number') set({}, v);
      else for (const [labels, n] of v) set(labels, n);
    },
  });
}

type ExposeArgs = Parameters<typeof exposeIntegers> extends [Registry, PromClient, ...infer R] ? R : never;

/** Where the catalog reads the figures the services keep (structural: any object of this shape). */
export interface Figures {
  ws: {
    open: number;
    pending: number;
    handshaking: number;
    messagesIn: number;
    messagesOut: number;
    pingsSent: number;
    slowConsumers: number;
    idleTimeouts: number;
    frameFailures: number;
    refused: ReadonlyMap<string, number>;
    closes: ReadonlyMap<number, number>;
  };
  wsCeiling: number;
  /** The Redis backplane's counters, when there is one. */
  backplane: { stats: { up: number; published: number; publishErrors: number; received: number }; channels: number } | null;
  /** Push outcomes: an object of integer counters, one per outcome. */
  push: object;
  dashboardAborts: object;
  loopStalls(): number;
  eventFlushes(): number;
  httpInFlight(): number;
  /** Requests the supervisor did not answer in time, when limits go through it (WORKERS>1). */
  limitsIpcTimeouts: (() => number) | null;
  /** Revoked sessions and cutoffs held in memory, and store polls made for missed revocations. */
  revocations: { held(): number; polls(): number };
  /** The supervisor's table of every worker (empty with WORKERS=1). */
  cluster(): ReadonlyArray<{ index: number; pid: number; connections: number; rssBytes: number; heapBytes: number; restarts: number }>;
}

/** One series per key of a map or of an object of integer counters. */
const labelled = (m: ReadonlyMap<string | number, number> | object, label: string) => () =>
  [...(m instanceof Map ? (m as ReadonlyMap<string | number, number>) : (Object.entries(m) as Array<[string, number]>))].map(
    ([k, n]) => [{ [label]: k }, n] as const,
  );

/**
 * Add the families read from the services' plain counters; they join the registry when the
 * first scrape builds it, so call this before serving.
 */
export function registerFigures(metrics: Metrics, f: Figures): void {
  (metrics as Metrics & { figures?: Figures }).figures = f;
}

function addFigureFamilies(registry: Registry, prom: PromClient, f: Figures): void {
  const expose = (...a: ExposeArgs) => exposeIntegers(registry, prom, ...a);
  const ws = f.ws;
  expose('gauge', 'onebox_ws_connections', 'Open WebSocket connections', () => ws.open);
  expose('gauge', 'onebox_ws_connection_ceiling', 'Connection ceiling of this process', () => f.wsCeiling);
  expose('gauge', 'onebox_ws_handshakes_in_flight', 'Upgrades being authorized or not yet open (bounded by MAX_HANDSHAKES)', () => ws.handshaking + ws.pending);
  expose('counter', 'onebox_ws_upgrades_refused_total', 'Refused upgrades by reason', labelled(ws.refused, 'reason'), ['reason']);
  expose('counter', 'onebox_ws_closes_total', 'Closed connections by close code', labelled(ws.closes, 'code'), ['code']);
  expose('counter', 'onebox_ws_messages_in_total', 'WebSocket messages received', () => ws.messagesIn);
  expose('counter', 'onebox_ws_messages_out_total', 'WebSocket messages sent', () => ws.messagesOut);
  expose('counter', 'onebox_ws_pings_sent_total', 'Protocol pings sent', () => ws.pingsSent);
  expose('counter', 'onebox_ws_slow_consumers_total', 'Connections dropped for backpressure', () => ws.slowConsumers);
  expose('counter', 'onebox_ws_idle_timeouts_total', 'Connections terminated for silence', () => ws.idleTimeouts);
  expose('counter', 'onebox_ws_frame_failures_total', 'Frames whose handling failed (answered with an internal error frame)', () => ws.frameFailures);
  const bp = f.backplane;
  if (bp) {
    const b = bp.stats;
    expose('gauge', 'onebox_backplane_up', 'Redis backplane connected (1) or not (0)', () => b.up);
    expose('gauge', 'onebox_backplane_channels', 'Redis channels subscribed for local interest', () => bp.channels);
    expose('counter', 'onebox_backplane_published_total', 'Messages published to Redis', () => b.published);
    expose('counter', 'onebox_backplane_publish_errors_total', 'Publishes that failed (Redis down)', () => b.publishErrors);
    expose('counter', 'onebox_backplane_received_total', 'Messages received from other instances', () => b.received);
  }
  expose('counter', 'onebox_push_total', 'Push outbox outcomes', labelled(f.push, 'outcome'), ['outcome']);
  expose('counter', 'onebox_dashboard_loads_aborted_total', 'Dashboard loads that observed an abort', labelled(f.dashboardAborts, 'load'), ['load']);
  expose('counter', 'onebox_event_loop_stalls_total', 'Event-loop stalls over BLOCK_WARN_MS', f.loopStalls);
  expose('counter', 'onebox_event_flushes_total', 'Event ingestion transactions', f.eventFlushes);
  expose('gauge', 'onebox_http_requests_in_flight', 'HTTP requests being served', f.httpInFlight);
  expose('gauge', 'onebox_revocations_held', 'Revoked sessions and logout-all cutoffs held in memory (refused without a store query)', f.revocations.held);
  expose('counter', 'onebox_revocation_polls_total', 'Store polls for revocations (boot, and while the backplane is down)', f.revocations.polls);
  const timeouts = f.limitsIpcTimeouts;
  if (timeouts) {
    expose('counter', 'onebox_limits_ipc_timeouts_total', 'Limit requests the supervisor did not answer in time (WORKERS>1)', timeouts);
  }
  type Row = ReturnType<Figures['cluster']>[number];
  const perWorker = (pick: (w: Row) => number) => () => f.cluster().map((w) => [{ worker: String(w.index), pid: String(w.pid) }, pick(w)] as const);
  const labels = ['worker', 'pid'];
  expose('gauge', 'onebox_cluster_ws_connections', 'Open WebSockets per worker (WORKERS>1)', perWorker((w) => w.connections), labels);
  expose('gauge', 'onebox_cluster_resident_memory_bytes', 'RSS per worker (WORKERS>1)', perWorker((w) => w.rssBytes), labels);
  expose('gauge', 'onebox_cluster_heap_used_bytes', 'JavaScript heap used per worker (WORKERS>1)', perWorker((w) => w.heapBytes), labels);
  expose('counter', 'onebox_cluster_worker_restarts_total', 'Restarts per worker slot (WORKERS>1)', perWorker((w) => w.restarts), labels);
}
