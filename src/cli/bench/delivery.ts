/**
 * `onebox bench --scenario delivery`: delivery v2 under load, per engine x store x workers.
 *
 * 1. Subscribers: S connections (each its own user), each subscribed to `room:fan` (a
 *    namespace that keeps history: every message is committed to the log before fan-out)
 *    and `bench:fan` (history 0: fire-and-forget). RSS per connection from idle to loaded.
 * 2. Fan-out: M topic notifies to each of the two topics, alternating, each waited for at
 *    every subscriber; latency from the publish timestamp to receipt (as the fanout
 *    scenario), pooled per topic: the durable p99 against the history-0 p99.
 * 3. Durable publishes: P more connections, each keeping a window of W `pub` frames
 *    outstanding to `room:0..T-1` (rooms open to every bench user in a CHANNELS_FILE, no rate bound),
 *    sending the next one as each ack (sent after the commit) arrives: acked pubs/s over the
 *    measured window, ack latency (HDR), errors; then the log's heads are read back from the
 *    store and must count every acked pub.
 * 4. Notify: K sequential POST /v1/notify to one connected user: response latency, and the
 *    delivery latency at that user's connection.
 * Throughout, /metrics is scraped every second on a fresh connection (any worker) for the
 * event-loop delay, and the server runs with BLOCK_WARN_MS low so that every long block is
 * logged with what was running; both are reported per phase.
 */
import { freshDatabase } from './pg-database.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { sleep } from '../../lib/scope.js';
import { openDb } from '../../store/db.js';
import { DEFAULT_NAMESPACES } from '../../realtime/channels.js';
import { Clients } from './clients.js';
import { signToken } from './jwt.js';
import { cleanups } from './cleanups.js';
import { boxCpu, loadavg, sampleProc, treeFigures } from './sampler.js';
import { startTarget, type Target } from './target.js';
import { enginesOption, numberOption } from './options.js';

export const DELIVERY_HELP = `usage: onebox bench --scenario delivery [options]

  --engines LIST      bun,node                                         (bun,node)
  --stores LIST       sqlite,postgres                                  (sqlite)
  --workers LIST      worker counts, e.g. 1,2 (Redis started when > 1) (1)
  --publishers N      connections publishing durable pubs              (500)
  --window W          pubs outstanding per publisher                   (4)
  --topics T          durable topics published to: room:0 .. room:T-1  (100)
  --payload B         filler bytes in each pub's data                  (64)
  --warmup S          seconds of publishing before the measured window (5)
  --duration S        measured seconds of publishing                   (30)
  --subscribers N     connections subscribed to room:fan and bench:fan (10000)
  --messages M        fan-out publishes to each of the two topics      (5)
  --notifies K        sequential POST /v1/notify to a connected user   (200)
  --ramp S            seconds to open the subscribers                  (10)
  --block-warn-ms MS  the server's BLOCK_WARN_MS: blocks logged above  (50)
  --database-url URL  PostgreSQL server for --stores postgres; a fresh database is
                      created per run and dropped after it
                      (postgres://onebox:onebox@127.0.0.1:5432/postgres)
  --out DIR           report folder          (bench/results/<date>-delivery)

Servers listen on 127.0.0.1; clients connect from 127.0.0.2 and up.`;

const SUBS_PER_PROC = 10_000;
const PUB_PROCS = 2;
const FANOUT_WAIT_MS = 30_000;
const DURABLE = 'room:fan';
const VOLATILE = 'bench:fan';
const NOTIFY_USER = 'bench-0';

interface Options {
  engines: Array<'bun' | 'node'>;
  stores: Array<'sqlite' | 'postgres'>;
  workers: number[];
  publishers: number;
  window: number;
  topics: number;
  payload: number;
  warmupS: number;
  durationS: number;
  subscribers: number;
  messages: number;
  notifies: number;
  rampS: number;
  blockWarnMs: number;
  databaseUrl: string;
  out: string;
}

function parse(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      engines: { type: 'string', default: 'bun,node' },
      stores: { type: 'string', default: 'sqlite' },
      workers: { type: 'string', default: '1' },
      publishers: { type: 'string', default: '500' },
      window: { type: 'string', default: '4' },
      topics: { type: 'string', default: '100' },
      payload: { type: 'string', default: '64' },
      warmup: { type: 'string', default: '5' },
      duration: { type: 'string', default: '30' },
      subscribers: { type: 'string', default: '10000' },
      messages: { type: 'string', default: '5' },
      notifies: { type: 'string', default: '200' },
      ramp: { type: 'string', default: '10' },
      'block-warn-ms': { type: 'string', default: '50' },
      'database-url': { type: 'string', default: 'postgres://onebox:onebox@127.0.0.1:5432/postgres' },
      out: { type: 'string' },
    },
  });
  const engines = enginesOption(v.engines);
  const stores = v.stores.split(',') as Options['stores'];
  if (stores.some((s) => s !== 'sqlite' && s !== 'postgres')) throw new Error('--stores takes sqlite and/or postgres');
  const date = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-');
  return {
    engines,
    stores,
    workers: v.workers.split(',').map((w) => numberOption(w, 'workers', 1)),
    publishers: numberOption(v.publishers, 'publishers', 1),
    window: numberOption(v.window, 'window', 1),
    topics: numberOption(v.topics, 'topics', 1),
    payload: numberOption(v.payload, 'payload', 0),
    warmupS: numberOption(v.warmup, 'warmup', 0),
    durationS: numberOption(v.duration, 'duration', 1),
    subscribers: numberOption(v.subscribers, 'subscribers', 1),
    messages: numberOption(v.messages, 'messages', 0),
    notifies: numberOption(v.notifies, 'notifies', 0),
    rampS: numberOption(v.ramp, 'ramp', 0.1),
    blockWarnMs: numberOption(v['block-warn-ms'], 'block-warn-ms', 1),
    databaseUrl: v['database-url'],
    out: v.out ?? join('bench', 'results', `${date}-delivery`),
  };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const at = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

function clientCpu(...groups: Clients[]): number {
  return groups.flatMap((g) => g.procs).reduce((a, p) => a + (sampleProc(p.pid!)?.cpuSeconds ?? 0), 0) + (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
}

/** One scrape of /metrics on a fresh connection (with WORKERS>1, whichever worker accepts it). */
function scrape(t: Target): Promise<string> {
  return new Promise((resolve) => {
    const req = get({ host: t.host, port: t.port, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(''));
    });
    req.on('error', () => resolve(''));
    req.on('timeout', () => req.destroy());
  });
}

async function adminJson(t: Target, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${t.host}:${t.port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminToken}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

interface Phase {
  name: string;
  from: number;
  to: number;
  /** Largest `onebox_event_loop_delay_seconds{quantile="1"}` over the scrapes in the phase, ms. */
  scrapeMaxMs: number;
  scrapeP99MaxMs: number;
  scrapes: number;
  loadavgAtEnd: string;
  /** "event loop blocked" log lines in the phase: count, largest, the largest few with what ran. */
  blocked?: { count: number; maxMs: number; worst: Array<{ blockedMs: number; running: string; pid: number }> };
}

export interface DeliveryRow {
  engine: string;
  store: 'sqlite' | 'postgres';
  workers: number;
  loadavgBefore: string;
  subscribers: { target: number; open: number; failed: number; rssIdleBytes: number; rssLoadedBytes: number; bytesPerConnection: number; topics: string[] };
  fanout: {
    messages: Array<{ topic: string; received: number; expected: number; p50Ms: number; p99Ms: number; maxMs: number }>;
    durable: { p50Ms: number; p99Ms: number; maxMs: number; received: number };
    volatile: { p50Ms: number; p99Ms: number; maxMs: number; received: number };
    /** Durable p99 over history-0 p99, pooled over the messages. */
    p99Ratio: number;
  };
  publish: {
    publishers: number;
    open: number;
    window: number;
    topics: number;
    payloadBytes: number;
    warmupS: number;
    windowS: number;
    acked: number;
    ackedPerS: number;
    p50Ms: number;
    p99Ms: number;
    p999Ms: number;
    maxMs: number;
    errors: Record<string, number>;
    unanswered: number;
    /** Sum of the room:0..T-1 heads in the store after the run, and every pub acked over the run: must be equal. */
    committedInStore: number;
    ackedOverRun: number;
    serverCpuPercent: number;
    runQueueMsPerSecond: number;
    harnessCpuPercent: number;
    boxCpuPercent: number;
    loadavgAtEnd: string;
    perSecond: number[];
  };
  notify: { count: number; ok: number; p50Ms: number; p99Ms: number; maxMs: number; delivered: number; deliveryP50Ms: number; deliveryP99Ms: number };
  phases: Phase[];
  wsDropped: number;
}

/**
 * Start `procs` client processes opening `count` connections as users bench-<firstUser>… over
 * `rampS` seconds, each process from its own loopback address from 127.0.0.<firstAddress>.
 */
function startClients(
  t: Target,
  procs: number,
  o: { firstUser: number; count: number; firstAddress: number; topic: string[]; rampS: number },
): Clients {
  const clients = new Clients(procs, 0);
  clients.start({
    host: t.host,
    port: t.port,
    count: o.count,
    token: (i) => signToken(t.jwtSecret!, `bench-${o.firstUser + i}`),
    firstAddress: o.firstAddress,
    topic: o.topic,
    rampS: o.rampS,
  });
  return clients;
}

async function runOne(o: Options, engine: 'bun' | 'node', store: 'sqlite' | 'postgres', workers: number): Promise<DeliveryRow> {
  const tag = `${engine}-${store}-w${workers}`;
  const loadavgBefore = loadavg();
  const db = store === 'postgres' ? await freshDatabase(o.databaseUrl) : null;
  // Rooms any bench user may publish to, at any rate: the publishers are the load.
  const channels = join(mkdtempSync(join(tmpdir(), 'onebox-bench-channels-')), 'channels.json');
  const room = { ...DEFAULT_NAMESPACES.room, subscribe: 'authenticated', publish: 'authenticated', publishPerS: 1_000_000 };
  writeFileSync(channels, JSON.stringify({ namespaces: { ...DEFAULT_NAMESPACES, room } }));
  const env: Record<string, string> = {
    CHANNELS_FILE: channels,
    WS_PUBLISH_PER_S: '1000000',
    BLOCK_WARN_MS: String(o.blockWarnMs),
    MAX_CONNECTIONS: String(o.subscribers + o.publishers + 1000),
    ...(db && { DATABASE_URL: db.url }),
  };
  let target: Target | null = null;
  let subs: Clients | null = null;
  let pubs: Clients | null = null;
  const cleanup = async () => {
    subs?.stop();
    pubs?.stop();
    await target?.stop();
    await db?.drop();
  };
  cleanups.add(cleanup);
  const phases: Phase[] = [];
  let phase: Phase = { name: 'start', from: Date.now(), to: NaN, scrapeMaxMs: 0, scrapeP99MaxMs: 0, scrapes: 0, loadavgAtEnd: '' };
  const enter = (name: string) => {
    phase.to = Date.now();
    phase.loadavgAtEnd = loadavg();
    phases.push(phase);
    phase = { name, from: Date.now(), to: NaN, scrapeMaxMs: 0, scrapeP99MaxMs: 0, scrapes: 0, loadavgAtEnd: '' };
  };
  let lastAcked = 0;
  const perSecond: number[] = [];
  let progress: ReturnType<typeof setInterval> | null = null;
  try {
    target = await startTarget({ engine, workers, pingIntervalS: 30, env, logFile: join(o.out, `server-${tag}.log`) });
    const t = target;
    const t0 = Date.now();
    progress = setInterval(() => {
      void scrape(t).then((text) => {
        const max = Number(/^onebox_event_loop_delay_seconds\{quantile="1"\} (\S+)/m.exec(text)?.[1] ?? NaN) * 1000;
        const p99 = Number(/^onebox_event_loop_delay_seconds\{quantile="0.99"\} (\S+)/m.exec(text)?.[1] ?? NaN) * 1000;
        if (Number.isFinite(max)) {
          phase.scrapeMaxMs = Math.max(phase.scrapeMaxMs, max);
          phase.scrapeP99MaxMs = Math.max(phase.scrapeP99MaxMs, p99);
          phase.scrapes++;
        }
      });
      const s = subs?.total();
      const p = pubs?.total();
      const acked = p?.pubAcked ?? 0;
      const rate = Math.max(0, acked - lastAcked);
      lastAcked = acked;
      if (phase.name === 'publish') perSecond.push(rate);
      process.stderr.write(
        `\r[${tag} ${phase.name} ${Math.round((Date.now() - t0) / 1000)}s] subscribers ${s?.open ?? 0}/${o.subscribers} publishers ${p?.open ?? 0}/${o.publishers} | acked/s ${rate} | loop max ${phase.scrapeMaxMs.toFixed(0)} ms | RSS ${(treeFigures(t.pid).rss / 2 ** 20).toFixed(0)} MB | load ${loadavg()}   `,
      );
    }, 1000);

    await t.seedUsers!(o.subscribers + o.publishers);
    await sleep(2000);
    const rssIdle = treeFigures(t.pid).rss;

    // 1. Subscribers.
    enter('subscribe');
    const subProcs = Math.max(1, Math.ceil(o.subscribers / SUBS_PER_PROC));
    subs = startClients(t, subProcs, { firstUser: 0, count: o.subscribers, firstAddress: 2, topic: [DURABLE, VOLATILE], rampS: o.rampS });
    const settled = (c: Clients, n: number) => c.total().open + c.total().failed >= n;
    let deadline = Date.now() + (o.rampS + 60) * 1000;
    while (!settled(subs, o.subscribers) && Date.now() < deadline) await sleep(250);
    await sleep(5000); // the subscriptions' acks, then a settled heap
    const rssLoaded = treeFigures(t.pid).rss;
    const subStats = subs.total();

    // 2. Fan-out, durable against history 0, alternating.
    enter('fanout');
    const fanMessages: DeliveryRow['fanout']['messages'] = [];
    const pooled: Record<string, number[]> = { [DURABLE]: [], [VOLATILE]: [] };
    // k = -1: one unmeasured message to each first (the first commit and first fan-out of a
    // topic run cold code paths).
    for (let k = -1; k < o.messages; k++) {
      for (const topic of k % 2 === 0 ? [DURABLE, VOLATILE] : [VOLATILE, DURABLE]) {
        const id = `f${k}-${topic}-${randomBytes(3).toString('hex')}`;
        const r = await adminJson(t, '/v1/notify', { topic, title: 'fanout', data: { fanout: id, ts: Date.now() } });
        if (r.status !== 202) throw new Error(`POST /v1/notify ${topic}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
        let lat: number[] = [];
        const until = Date.now() + FANOUT_WAIT_MS;
        do {
          await sleep(200);
          lat = lat.concat((await subs.ask<{ latencies: number[] }>({ cmd: 'fanout', id }, 'fanout')).flatMap((x) => x.latencies));
        } while (lat.length < subStats.open && Date.now() < until);
        const s = sorted(lat);
        await sleep(1000);
        if (k < 0) continue;
        fanMessages.push({ topic, received: s.length, expected: subStats.open, p50Ms: at(s, 50), p99Ms: at(s, 99), maxMs: s.at(-1) ?? NaN });
        pooled[topic]!.push(...s);
      }
    }
    const summary = (xs: number[]) => {
      const s = sorted(xs);
      return { p50Ms: at(s, 50), p99Ms: at(s, 99), maxMs: s.at(-1) ?? NaN, received: s.length };
    };
    const durable = summary(pooled[DURABLE]!);
    const volatile = summary(pooled[VOLATILE]!);

    // 3. Durable publishes.
    enter('publishers-open');
    pubs = startClients(t, PUB_PROCS, { firstUser: o.subscribers, count: o.publishers, firstAddress: 2 + subProcs, topic: [], rampS: 2 });
    deadline = Date.now() + 60_000;
    while (!settled(pubs, o.publishers) && Date.now() < deadline) await sleep(250);
    await sleep(1500);
    const pubOpen = pubs.total().open;
    const topics = Array.from({ length: o.topics }, (_, i) => `room:${i}`);
    enter('publish-warmup');
    for (const p of pubs.procs) p.send({ cmd: 'publish', topics, window: o.window, pad: 'x'.repeat(o.payload) });
    await sleep(o.warmupS * 1000);
    await pubs.ask({ cmd: 'pubMark' }, 'pubMark');
    enter('publish');
    const began = Date.now();
    const before = treeFigures(t.pid);
    const harnessBefore = clientCpu(subs, pubs);
    const boxBefore = boxCpu();
    await sleep(o.durationS * 1000);
    const reports = await pubs.ask<{ ackedAtStop: number; ackedTotal: number; errors: Record<string, number>; unanswered: number; histogram: string }>(
      { cmd: 'pubStop', waitMs: 10_000 },
      'pubReport',
    );
    const wall = (Date.now() - began) / 1000;
    const after = treeFigures(t.pid);
    const harnessAfter = clientCpu(subs, pubs);
    const boxAfter = boxCpu();
    const publishLoad = loadavg();
    enter('publish-drain');
    const h = histogram();
    for (const r of reports) h.add(hdr.decodeFromCompressedBase64(r.histogram));
    const errors: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    const ackedInWindow = reports.reduce((a, r) => a + r.ackedAtStop, 0);
    const ackedOverRun = reports.reduce((a, r) => a + r.ackedTotal, 0);
    // Every acked pub must be in the log: the heads of room:0..T-1 count them all.
    const sdb = await openDb(t.store!);
    let committedInStore: number;
    try {
      const rows = await sdb.selectFrom('topic_heads').select(['topic', 'head']).where('topic', 'in', topics).execute();
      committedInStore = rows.reduce((a, r) => a + Number(r.head), 0);
    } finally {
      await sdb.destroy();
    }

    // 4. Notify to a connected user, one at a time.
    enter('notify');
    const notifyLat: number[] = [];
    let notifyOk = 0;
    for (let i = 0; i < o.notifies; i++) {
      const t1 = performance.now();
      const r = await adminJson(t, '/v1/notify', { userId: NOTIFY_USER, title: 'bench', data: { fanout: 'notify', ts: Date.now() } });
      notifyLat.push(performance.now() - t1);
      if (r.status === 202) notifyOk++;
    }
    await sleep(1000);
    const delivered = sorted((await subs.ask<{ latencies: number[] }>({ cmd: 'fanout', id: 'notify' }, 'fanout')).flatMap((x) => x.latencies));
    const nl = sorted(notifyLat);
    enter('end');
    await sleep(1500); // the clients' last stats report
    const wsDropped = subs.total().dropped + pubs.total().dropped;

    return {
      engine,
      store,
      workers,
      loadavgBefore,
      subscribers: {
        target: o.subscribers,
        open: subStats.open,
        failed: subStats.failed,
        rssIdleBytes: rssIdle,
        rssLoadedBytes: rssLoaded,
        bytesPerConnection: (rssLoaded - rssIdle) / Math.max(1, subStats.open),
        topics: [DURABLE, VOLATILE],
      },
      fanout: { messages: fanMessages, durable, volatile, p99Ratio: durable.p99Ms / volatile.p99Ms },
      publish: {
        publishers: o.publishers,
        open: pubOpen,
        window: o.window,
        topics: o.topics,
        payloadBytes: o.payload,
        warmupS: o.warmupS,
        windowS: wall,
        acked: ackedInWindow,
        ackedPerS: ackedInWindow / wall,
        p50Ms: h.getValueAtPercentile(50) / 1000,
        p99Ms: h.getValueAtPercentile(99) / 1000,
        p999Ms: h.getValueAtPercentile(99.9) / 1000,
        maxMs: h.maxValue / 1000,
        errors,
        unanswered: reports.reduce((a, r) => a + r.unanswered, 0),
        committedInStore,
        ackedOverRun,
        serverCpuPercent: ((after.cpu - before.cpu) / wall) * 100,
        runQueueMsPerSecond: ((after.wait - before.wait) / wall) * 1000,
        harnessCpuPercent: ((harnessAfter - harnessBefore) / wall) * 100,
        boxCpuPercent: ((boxAfter.busySeconds - boxBefore.busySeconds) / (boxAfter.totalSeconds - boxBefore.totalSeconds)) * cpus().length * 100,
        loadavgAtEnd: publishLoad,
        perSecond,
      },
      notify: {
        count: o.notifies,
        ok: notifyOk,
        p50Ms: at(nl, 50),
        p99Ms: at(nl, 99),
        maxMs: nl.at(-1) ?? NaN,
        delivered: delivered.length,
        deliveryP50Ms: at(delivered, 50),
        deliveryP99Ms: at(delivered, 99),
      },
      phases,
      wsDropped,
    };
  } finally {
    if (progress) clearInterval(progress);
    process.stderr.write('\n');
    enter('stopped');
    subs?.stop();
    pubs?.stop();
    await target?.stop();
    await db?.drop();
    cleanups.delete(cleanup);
    attributeBlocks(join(o.out, `server-${tag}.log`), phases);
  }
}

/** The "event loop blocked" lines of the server's log, by the phase they fell in. */
function attributeBlocks(logFile: string, phases: Phase[]): void {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return;
  }
  for (const p of phases) p.blocked = { count: 0, maxMs: 0, worst: [] };
  for (const line of text.split('\n')) {
    if (!line.includes('event loop blocked')) continue;
    let l: { time?: string; blockedMs?: number; running?: string; pid?: number };
    try {
      l = JSON.parse(line) as typeof l;
    } catch {
      continue;
    }
    const ts = Date.parse(l.time ?? '');
    // The block ended when it was logged: it belongs to the phase it ended in.
    const p = phases.find((x) => ts >= x.from && ts < x.to) ?? phases.at(-1)!;
    const b = p.blocked!;
    b.count++;
    b.maxMs = Math.max(b.maxMs, l.blockedMs ?? 0);
    b.worst.push({ blockedMs: l.blockedMs ?? 0, running: l.running ?? '', pid: l.pid ?? 0 });
    b.worst.sort((a, c) => c.blockedMs - a.blockedMs);
    b.worst.length = Math.min(b.worst.length, 5);
  }
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const n0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const errs = (e: Record<string, number>) => {
  const n = Object.values(e).reduce((a, b) => a + b, 0);
  return n === 0 ? '0' : `${n} (${Object.entries(e).map(([k, v]) => `${k}: ${v}`).join(', ')})`;
};

export function deliveryMarkdown(rows: DeliveryRow[], meta: Record<string, unknown>): string {
  const L = [`# onebox bench: delivery`, '', `${String(meta.date)} on ${String(meta.machine)}. ${String(meta.method)}`, ''];
  L.push(
    '## Durable publishes (WebSocket `pub`, acked after the commit)',
    '',
    '| engine | store | workers | publishers x window | topics | window (s) | acked pubs/s | ack p50 / p99 / p99.9 / max (ms) | errors | acked = in the log | server CPU | harness CPU | box CPU | load avg before → end of window |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    const p = r.publish;
    L.push(
      `| ${r.engine} | ${r.store} | ${r.workers} | ${p.open} x ${p.window} | ${p.topics} | ${p.windowS.toFixed(1)} | **${n0(p.ackedPerS)}** | ${f1(p.p50Ms)} / ${f1(p.p99Ms)} / ${f1(p.p999Ms)} / ${f1(p.maxMs)} | ${errs(p.errors)}${p.unanswered ? `, ${p.unanswered} unanswered` : ''} | ${p.committedInStore === p.ackedOverRun ? 'yes' : 'NO'} (${n0(p.committedInStore)} / ${n0(p.ackedOverRun)}) | ${p.serverCpuPercent.toFixed(0)}% | ${p.harnessCpuPercent.toFixed(0)}% | ${p.boxCpuPercent.toFixed(0)}% | ${r.loadavgBefore} → ${p.loadavgAtEnd} |`,
    );
  }
  L.push(
    '',
    'Acked pubs/s counts the acks received by the publishers over the measured window (after the warm-up); "acked = in the log" compares the heads of the published topics in the store after the run with every ack received over the whole run (warm-up included). CPU is percent of one core over the window; "harness" is the bench and its WebSocket client processes on the same cores.',
    '',
    '## Fan-out: durable (`room:fan`, committed before fan-out) against history 0 (`bench:fan`)',
    '',
    '| engine | store | workers | subscribers | durable p50 / p99 / max (ms) | history-0 p50 / p99 / max (ms) | durable p99 / history-0 p99 | median per-message p99, durable / history 0 (ms) | received (durable / history 0) |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  const median = (xs: number[]) => at(sorted(xs), 50);
  for (const r of rows) {
    const f = r.fanout;
    const md = median(f.messages.filter((m) => m.topic === DURABLE).map((m) => m.p99Ms));
    const mv = median(f.messages.filter((m) => m.topic === VOLATILE).map((m) => m.p99Ms));
    L.push(
      `| ${r.engine} | ${r.store} | ${r.workers} | ${r.subscribers.open} | ${f1(f.durable.p50Ms)} / ${f1(f.durable.p99Ms)} / ${f1(f.durable.maxMs)} | ${f1(f.volatile.p50Ms)} / ${f1(f.volatile.p99Ms)} / ${f1(f.volatile.maxMs)} | **${f.p99Ratio.toFixed(2)}x** | ${md} / ${mv} (${(md / mv).toFixed(2)}x) | ${f.durable.received} / ${f.volatile.received} |`,
    );
  }
  L.push(
    '',
    'Each message one topic notify (`POST /v1/notify {topic}`), the two topics alternating; latency from the timestamp taken just before the request to receipt at each subscriber, pooled over the messages of a topic (the ratio column), and the median over the messages of each one\'s p99 (less swayed by one slow message). Per message:',
    '',
  );
  for (const r of rows) {
    L.push(`- ${r.engine} / ${r.store} / WORKERS=${r.workers}: ${r.fanout.messages.map((m) => `${m.topic} ${m.received}/${m.expected} p50 ${m.p50Ms} p99 ${m.p99Ms} max ${m.maxMs}`).join('; ')}`);
  }
  L.push(
    '',
    '## Memory per subscriber connection (each subscribed to both topics)',
    '',
    '| engine | store | workers | connections | RSS idle → loaded | per connection |',
    '|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    const s = r.subscribers;
    L.push(`| ${r.engine} | ${r.store} | ${r.workers} | ${s.open} (failed ${s.failed}) | ${(s.rssIdleBytes / 2 ** 20).toFixed(1)} → ${(s.rssLoadedBytes / 2 ** 20).toFixed(1)} MiB | ${(s.bytesPerConnection / 1024).toFixed(2)} KiB |`);
  }
  L.push('', '## Notify to a connected user (sequential, one at a time)', '', '| engine | store | workers | notifies (202) | response p50 / p99 / max (ms) | delivered | delivery p50 / p99 (ms) |', '|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const n = r.notify;
    L.push(`| ${r.engine} | ${r.store} | ${r.workers} | ${n.count} (${n.ok}) | ${f1(n.p50Ms)} / ${f1(n.p99Ms)} / ${f1(n.maxMs)} | ${n.delivered} | ${n.deliveryP50Ms} / ${n.deliveryP99Ms} |`);
  }
  L.push(
    '',
    '## Event loop, per phase',
    '',
    'Worst loop delay from /metrics (`onebox_event_loop_delay_seconds{quantile="1"}`, scraped every second on a fresh connection, so with several workers each scrape reads whichever worker accepted it) and the server\'s "event loop blocked" log lines (over BLOCK_WARN_MS; every worker logs its own).',
    '',
    '| engine | store | workers | phase | seconds | scrapes | worst delay, scraped (ms) | blocked lines | worst logged (ms) | worst ones: ms, running, pid | load avg at end |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    for (const p of r.phases) {
      if (p.name === 'start' || p.name === 'end') continue;
      const b = p.blocked;
      L.push(
        `| ${r.engine} | ${r.store} | ${r.workers} | ${p.name} | ${((p.to - p.from) / 1000).toFixed(0)} | ${p.scrapes} | ${f1(p.scrapeMaxMs)} | ${b?.count ?? '–'} | ${b ? b.maxMs : '–'} | ${b?.worst.map((w) => `${w.blockedMs} ${w.running} (${w.pid})`).join('; ') ?? ''} | ${p.loadavgAtEnd} |`,
      );
    }
  }
  L.push('', `Connections dropped during the runs: ${rows.map((r) => `${r.engine}/${r.store}/${r.workers}: ${r.wsDropped}`).join(', ')}.`);
  return `${L.join('\n')}\n`;
}

export async function runDelivery(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(DELIVERY_HELP);
    return 0;
  }
  const o = parse(argv);
  mkdirSync(o.out, { recursive: true });
  const rows: DeliveryRow[] = [];
  for (const engine of o.engines) for (const store of o.stores) for (const workers of o.workers) rows.push(await runOne(o, engine, store, workers));
  const meta = {
    scenario: 'delivery',
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform}`,
    options: { ...o, databaseUrl: o.databaseUrl.replace(/\/\/[^@]*@/, '//…@') },
    method:
      `Per engine x store x workers, one server (rooms open to every bench user with no publish rate bound, BLOCK_WARN_MS=${o.blockWarnMs}; a fresh SQLite file or a fresh PostgreSQL database; Redis when WORKERS>1). ` +
      `${o.subscribers} subscriber connections (each its own user) on ${DURABLE} (history: committed before fan-out) and ${VOLATILE} (history 0); after one unmeasured message to each, ${o.messages} topic notifies to each, alternating, each waited for at every subscriber. ` +
      `Then ${o.publishers} publisher connections from ${PUB_PROCS} client processes, each keeping ${o.window} pubs outstanding to room:0..room:${o.topics - 1} (${o.payload} filler bytes each), ${o.warmupS} s warm-up, ${o.durationS} s measured; ack latency from the send to the ack (HDR). ` +
      `Then ${o.notifies} sequential POST /v1/notify to ${NOTIFY_USER}, a connected subscriber. All client processes at normal priority on the same cores as the server.`,
  };
  writeFileSync(join(o.out, 'report.json'), `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  writeFileSync(join(o.out, 'report.md'), deliveryMarkdown(rows, meta));
  console.log(`report: ${join(o.out, 'report.md')}`);
  return rows.every((r) => Object.keys(r.publish.errors).length === 0 && r.publish.committedInStore === r.publish.ackedOverRun && r.wsDropped === 0) ? 0 : 1;
}
