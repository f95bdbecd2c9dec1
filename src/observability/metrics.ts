/**
 * Prometheus metrics (prom-client), the one catalog of every family onebox exports. Hot
 * paths count in plain integers (the `stats` objects of the gateway, the backplane, the push
 * worker) and families read them at scrape time through `collect`, so a request or a
 * WebSocket message costs an integer increment, not a label lookup. `registerFigures` takes
 * those counters by shape, so this room imports none of the rooms above it.
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
function exposeIntegers(
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
  /** The supervisor's table of every worker (empty with WORKERS=1). */
  cluster(): ReadonlyArray<{ index: number; pid: number; connections: number; rssBytes: number; heapBytes: number; restarts: number }>;
}

/** One series per key of a map or of an object of integer counters. */
const labelled = (m: ReadonlyMap<string | number, number> | object, label: string) => () =>
  [...(m instanceof Map ? (m as ReadonlyMap<string | number, number>) : (Object.entries(m) as Array<[string, number]>))].map(
    ([k, n]) => [{ [label]: k }, n] as const,
  );

/** Register every family read from the services' plain counters. */
export function registerFigures(registry: Registry, f: Figures): void {
  const ws = f.ws;
  exposeIntegers(registry, 'gauge', 'onebox_ws_connections', 'Open WebSocket connections', () => ws.open);
  exposeIntegers(registry, 'gauge', 'onebox_ws_connection_ceiling', 'Connection ceiling of this process', () => f.wsCeiling);
  exposeIntegers(registry, 'gauge', 'onebox_ws_handshakes_in_flight', 'Upgrades being authorized or not yet open (bounded by MAX_HANDSHAKES)', () => ws.handshaking + ws.pending);
  exposeIntegers(registry, 'counter', 'onebox_ws_upgrades_refused_total', 'Refused upgrades by reason', labelled(ws.refused, 'reason'), ['reason']);
  exposeIntegers(registry, 'counter', 'onebox_ws_closes_total', 'Closed connections by close code', labelled(ws.closes, 'code'), ['code']);
  exposeIntegers(registry, 'counter', 'onebox_ws_messages_in_total', 'WebSocket messages received', () => ws.messagesIn);
  exposeIntegers(registry, 'counter', 'onebox_ws_messages_out_total', 'WebSocket messages sent', () => ws.messagesOut);
  exposeIntegers(registry, 'counter', 'onebox_ws_pings_sent_total', 'Protocol pings sent', () => ws.pingsSent);
  exposeIntegers(registry, 'counter', 'onebox_ws_slow_consumers_total', 'Connections dropped for backpressure', () => ws.slowConsumers);
  exposeIntegers(registry, 'counter', 'onebox_ws_idle_timeouts_total', 'Connections terminated for silence', () => ws.idleTimeouts);
  exposeIntegers(registry, 'counter', 'onebox_ws_frame_failures_total', 'Frames whose handling failed (answered with an internal error frame)', () => ws.frameFailures);
  const bp = f.backplane;
  if (bp) {
    const b = bp.stats;
    exposeIntegers(registry, 'gauge', 'onebox_backplane_up', 'Redis backplane connected (1) or not (0)', () => b.up);
    exposeIntegers(registry, 'gauge', 'onebox_backplane_channels', 'Redis channels subscribed for local interest', () => bp.channels);
    exposeIntegers(registry, 'counter', 'onebox_backplane_published_total', 'Messages published to Redis', () => b.published);
    exposeIntegers(registry, 'counter', 'onebox_backplane_publish_errors_total', 'Publishes that failed (Redis down)', () => b.publishErrors);
    exposeIntegers(registry, 'counter', 'onebox_backplane_received_total', 'Messages received from other instances', () => b.received);
  }
  exposeIntegers(registry, 'counter', 'onebox_push_total', 'Push outbox outcomes', labelled(f.push, 'outcome'), ['outcome']);
  exposeIntegers(registry, 'counter', 'onebox_dashboard_loads_aborted_total', 'Dashboard loads that observed an abort', labelled(f.dashboardAborts, 'load'), ['load']);
  exposeIntegers(registry, 'counter', 'onebox_event_loop_stalls_total', 'Event-loop stalls over BLOCK_WARN_MS', f.loopStalls);
  exposeIntegers(registry, 'counter', 'onebox_event_flushes_total', 'Event ingestion transactions', f.eventFlushes);
  exposeIntegers(registry, 'gauge', 'onebox_http_requests_in_flight', 'HTTP requests being served', f.httpInFlight);
  const timeouts = f.limitsIpcTimeouts;
  if (timeouts) {
    exposeIntegers(registry, 'counter', 'onebox_limits_ipc_timeouts_total', 'Limit requests the supervisor did not answer in time (WORKERS>1)', timeouts);
  }
  type Row = ReturnType<Figures['cluster']>[number];
  const perWorker = (pick: (w: Row) => number) => () => f.cluster().map((w) => [{ worker: String(w.index), pid: String(w.pid) }, pick(w)] as const);
  const labels = ['worker', 'pid'];
  exposeIntegers(registry, 'gauge', 'onebox_cluster_ws_connections', 'Open WebSockets per worker (WORKERS>1)', perWorker((w) => w.connections), labels);
  exposeIntegers(registry, 'gauge', 'onebox_cluster_resident_memory_bytes', 'RSS per worker (WORKERS>1)', perWorker((w) => w.rssBytes), labels);
  exposeIntegers(registry, 'gauge', 'onebox_cluster_heap_used_bytes', 'JavaScript heap used per worker (WORKERS>1)', perWorker((w) => w.heapBytes), labels);
  exposeIntegers(registry, 'counter', 'onebox_cluster_worker_restarts_total', 'Restarts per worker slot (WORKERS>1)', perWorker((w) => w.restarts), labels);
}
