/**
 * `onebox bench`: the reference workload on this box. Per engine x workers: start the
 * server (or target a URL), open C authenticated WebSockets from several client processes
 * and loopback source addresses, each subscribed to one topic and answering pings; hold
 * them while an open-model stream of authenticated, compressed JSON GETs runs; sample RSS,
 * heap, CPU and kernel socket memory every second; then run the scenario's extra step
 * (fanout, storm, max-rps) and write report.json, report.md and chart.svg.
 */
import { cleanups } from './cleanups.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../../lib/scope.js';
import { DEFAULT_CONNECTIONS, HttpLoad, pct } from './http-load.js';
import { P99_BOUND_MS, writeReport, type Point, type Row } from './report.js';
import { boxCpu, loadavg, processTree, pssOf, sampleProc, sockstat } from './sampler.js';
import { Clients } from './clients.js';
import { signToken } from './jwt.js';
import { externalTarget, startTarget, type Target } from './target.js';
import { affinityOf, parsePin, pinSelf, type Pinning } from './pin.js';
import { enginesOption } from './options.js';

export const BENCH_HELP = `usage: onebox bench [options]
       onebox bench ws-memory [options]   RSS per idle WebSocket on one process (--help)

  --scenario S        steady | fanout | storm | max-rps | delivery | heartbeat (steady)
                      max-rps steps from rate/16 up by half until p99 > 10 ms;
                      delivery: durable pubs/s, fan-out durable vs history 0,
                      notify latency (--scenario delivery --help);
                      heartbeat: server CPU of clients' app-level pings on idle
                      sockets, on vs off (--scenario heartbeat --help)
  --connections N     idle WebSockets to hold                      (50000)
  --rate R            JSON GETs per second, constant arrival rate  (2000)
  --ping-interval S   server keep-alive ping period, seconds       (30)
  --ramp S            seconds to open the connections              (30)
  --duration S        steady-state seconds                         (300)
  --engines LIST      bun,node                                     (bun,node)
  --workers LIST      worker counts to try, e.g. 1,4               (4)
  --clients K         client processes (each holds < 20,000 files) (ceil(N/12500))
  --backoff B         storm: how clients come back, sdk (the client SDK's
                      delays: 1012 within 2 s, then full jitter from 1 s
                      doubling to 30 s) or raw (the bench's older 200 ms
                      doubling to 10 s)                            (sdk)
  --out DIR           report folder               (bench/results/<date>-<scenario>)
  --target URL        load a running server instead of starting one
  --jwt-secret S      with --target: sign client tokens (else one signed-up user)
  --admin-token T     with --target: needed by fanout
  --pin P             off | auto | SERVER/HARNESS CPU lists, e.g. 0/1 or 0-3/4-7:
                      the server processes on the first cores, the bench, its client
                      processes, the load generator and Redis on the others
                      (auto with 4+ cores: half each; else off)
  --peers             the idle-socket and fan-out scenario against bare Bun.serve,
                      bare ws on Node and Socket.IO beside onebox (--peers --help)
  --quick             1,000 connections, 200 req/s, 10 s, ping every 2 s

Servers it starts listen on 127.0.0.1; clients connect from 127.0.0.2 and up.
Raise the port range first for large runs: sysctl -w net.ipv4.ip_local_port_range="1024 65000"`;

const MAX_RPS_SETTLE_MS = 15_000;

/**
 * The clients stand in for phones on other machines. Where the server's HTTP latency is the
 * figure (steady, max-rps) they run at nice 10, taking the shared cores only when the server
 * and the load generator (whose clock every latency is read from) leave them free. Where
 * their own work is part of the figure (fan-out receipt, storm reconnects) they run at the
 * server's priority, as phones with their own CPUs would not wait for it.
 */
const clientNice = (scenario: Options['scenario']) => (scenario === 'steady' || scenario === 'max-rps' ? 10 : 0);

interface Options {
  scenario: 'steady' | 'fanout' | 'storm' | 'max-rps';
  connections: number;
  rate: number;
  pingIntervalS: number;
  rampS: number;
  durationS: number;
  engines: Array<'bun' | 'node'>;
  workers: number[];
  clients: number;
  backoff: 'sdk' | 'raw';
  out: string;
  target: string | undefined;
  jwtSecret: string | undefined;
  adminToken: string | undefined;
  pin: Pinning | null;
}

export function parseBenchArgs(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', default: 'steady' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'ping-interval': { type: 'string' },
      ramp: { type: 'string' },
      duration: { type: 'string' },
      engines: { type: 'string', default: 'bun,node' },
      workers: { type: 'string' },
      clients: { type: 'string' },
      backoff: { type: 'string', default: 'sdk' },
      out: { type: 'string' },
      target: { type: 'string' },
      'jwt-secret': { type: 'string' },
      'admin-token': { type: 'string' },
      quick: { type: 'boolean', default: false },
      pin: { type: 'string' },
    },
  });
  const q = v.quick;
  const num = (s: string | undefined, dflt: number, name: string) => {
    const n = s === undefined ? dflt : Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
    return n;
  };
  const scenario = v.scenario as Options['scenario'];
  if (!['steady', 'fanout', 'storm', 'max-rps'].includes(scenario)) throw new Error('--scenario must be steady, fanout, storm or max-rps');
  const engines = enginesOption(v.engines!);
  const connections = num(v.connections, q ? 1000 : 50_000, 'connections');
  if (v.backoff !== 'sdk' && v.backoff !== 'raw') throw new Error('--backoff must be sdk or raw');
  const date = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-');
  return {
    scenario,
    connections,
    rate: num(v.rate, q ? 200 : 2000, 'rate'),
    pingIntervalS: num(v['ping-interval'], q ? 2 : 30, 'ping-interval'),
    rampS: num(v.ramp, q ? 2 : 30, 'ramp'),
    durationS: num(v.duration, q ? 10 : 300, 'duration'),
    engines,
    workers: (v.workers ?? (q ? '1' : '4')).split(',').map(Number),
    clients: num(v.clients, Math.max(1, Math.ceil(connections / 12_500)), 'clients'),
    backoff: v.backoff,
    out: v.out ?? join('bench', 'results', `${date}-${scenario}${q ? '-quick' : ''}`),
    target: v.target,
    jwtSecret: v['jwt-secret'],
    adminToken: v['admin-token'],
    pin: v.target ? null : parsePin(v.pin),
  };
}


async function json(t: Target, method: string, path: string, body?: unknown, token?: string): Promise<any> {
  const res = await fetch(`http://${t.host}:${t.port}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A bench user with enough devices that GET /v1/devices is compressed (over 1 KB). */
async function seed(t: Target): Promise<string> {
  const email = `bench-${randomBytes(6).toString('hex')}@example.com`;
  const { token } = await json(t, 'POST', '/v1/auth/signup', { email, password: 'bench password 1' });
  for (let i = 0; i < 8; i++) {
    const p256dh = Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url');
    await json(t, 'POST', '/v1/devices', {
      platform: 'web',
      token: { endpoint: `https://push.example.com/send/${randomBytes(48).toString('hex')}`, keys: { p256dh, auth: randomBytes(16).toString('base64url') } },
    }, token);
  }
  return token;
}

function serverFigures(t: Target, withPss = false): { rss: number; pss: number; cpu: number; wait: number; procs: number } {
  if (t.pid === undefined) return { rss: NaN, pss: NaN, cpu: NaN, wait: NaN, procs: 0 };
  let rss = 0;
  let pss = 0;
  let cpu = 0;
  let wait = 0;
  let procs = 0;
  for (const pid of processTree(t.pid)) {
    const s = sampleProc(pid);
    if (!s) continue;
    // bin/onebox execs the runtime; a redis-server the bench started is not a child.
    rss += s.rssBytes;
    if (withPss) pss += pssOf(pid);
    cpu += s.cpuSeconds;
    wait += s.runQueueSeconds;
    procs++;
  }
  return { rss, pss, cpu, wait, procs };
}

/** CPU seconds of this harness: the load generator (this process) and the client processes. */
function harnessCpu(clients: Clients): number {
  const own = process.cpuUsage();
  const children = clients.procs.reduce((a, p) => a + (sampleProc(p.pid!)?.cpuSeconds ?? 0), 0);
  return (own.user + own.system) / 1e6 + children;
}

/**
 * From one scrape of /metrics: open connections per worker and the JavaScript heap summed
 * over workers (the cluster table, WORKERS>1), or the single process's figures.
 */
async function clusterFigures(t: Target): Promise<{ spread: number[]; heap: number }> {
  let text: string;
  try {
    text = await (await fetch(`http://${t.host}:${t.port}/metrics`)).text();
  } catch {
    return { spread: [], heap: NaN };
  }
  const spread = [...text.matchAll(/^onebox_cluster_ws_connections\{worker="(\d+)"[^}]*\} (\d+)/gm)]
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => Number(m[2]));
  const heaps = [...text.matchAll(/^onebox_cluster_heap_used_bytes\{[^}]*\} (\d+)/gm)].map((m) => Number(m[1]));
  return spread.length > 0
    ? { spread, heap: heaps.reduce((a, b) => a + b, 0) }
    : {
        spread: [Number(/^onebox_ws_connections (\d+)/m.exec(text)?.[1] ?? NaN)],
        heap: Number(/^onebox_process_heap_bytes\{kind="used"\} (\d+)/m.exec(text)?.[1] ?? NaN),
      };
}

/** What an interrupted or failed bench must stop: it started these processes. */
let running: { target: Target; clients: Clients } | null = null;
function abandon(code: number): void {
  const r = running;
  r?.clients.stop();
  void Promise.allSettled([r ? r.target.stop() : Promise.resolve(), ...[...cleanups].map((f) => f())]).finally(() => process.exit(code));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abandon(130));
process.once('uncaughtException', (err) => {
  console.error(`onebox bench: ${err.stack ?? err.message}`);
  abandon(1);
});

async function runOne(o: Options, engine: 'bun' | 'node', workers: number): Promise<Row> {
  const target = o.target
    ? externalTarget(o.target, o.jwtSecret, o.adminToken)
    : await startTarget({
        engine,
        workers,
        pingIntervalS: o.pingIntervalS,
        logFile: join(o.out, `server-${engine}-w${workers}.log`),
        ...(o.pin && { cpus: o.pin.server }),
      });
  const clients = new Clients(o.clients, clientNice(o.scenario));
  running = { target, clients };
  const load = new HttpLoad({
    host: target.host,
    port: target.port,
    path: '/v1/devices',
    headers: { authorization: '', 'accept-encoding': 'br, gzip' },
  });
  const series: Point[] = [];
  const t0 = Date.now();
  let phase = 'start';
  const progress = setInterval(() => {
    const c = clients.total();
    const f = serverFigures(target);
    const p99 = pct(load.window, 99);
    const rps = load.window.totalCount;
    load.window.reset();
    series.push({ t: (Date.now() - t0) / 1000, connections: c.open, rssBytes: f.rss, p99Ms: rps > 0 ? p99 : NaN, rps });
    process.stderr.write(
      `\r[${engine} w=${workers} ${phase} ${Math.round((Date.now() - t0) / 1000)}s] conns ${c.open}/${o.connections} failed ${c.failed} dropped ${c.dropped} | req/s ${rps} p99 ${rps ? p99.toFixed(1) : '-'} ms | RSS ${(f.rss / 2 ** 20).toFixed(0)} MB   `,
    );
  }, 1000);
  try {
    await sleep(2000);
    const idle = serverFigures(target);
    const httpToken = await seed(target);
    load.authorize(httpToken);
    // Client tokens: one user per connection when we can sign, else the seeded user.
    if (target.jwtSecret) await target.seedUsers?.(o.connections);
    const token = (i: number) => (target.jwtSecret ? signToken(target.jwtSecret, `bench-${i}`) : httpToken);
    phase = 'ramp';
    clients.start({
      host: target.host,
      port: target.port,
      count: o.connections,
      token,
      topic: 'bench:all',
      rampS: o.rampS,
      reconnect: o.scenario === 'storm',
      extra: { backoff: o.backoff },
    });
    const rampDeadline = Date.now() + (o.rampS + 60) * 1000;
    while (clients.total().open < o.connections && Date.now() < rampDeadline) await sleep(250);
    phase = 'warm-up';
    await load.connect();
    await load.run(o.rate, Math.min(5000, o.durationS * 1000));
    load.reset();
    phase = 'steady';
    const before = serverFigures(target);
    const harnessBefore = harnessCpu(clients);
    const boxBefore = boxCpu();
    const pingsBefore = clients.total().pings;
    const startedAt = Date.now();
    let minOpen = Infinity;
    const watch = setInterval(() => (minOpen = Math.min(minOpen, clients.total().open)), 250);
    await load.run(o.rate, o.durationS * 1000);
    clearInterval(watch);
    await sleep(1500); // the clients' last stats report
    const wall = (Date.now() - startedAt) / 1000;
    const after = serverFigures(target, true);
    const harnessAfter = harnessCpu(clients);
    const boxAfter = boxCpu();
    const c = clients.total();
    const { spread, heap } = await clusterFigures(target);
    const serverPids = target.pid === undefined ? [] : processTree(target.pid);
    const row: Row = {
      engine: o.target ? `target ${o.target}` : engine,
      workers,
      scenario: o.scenario,
      connectionsTarget: o.connections,
      connectionsHeld: Number.isFinite(minOpen) ? minOpen : c.open,
      rateTarget: o.rate,
      rateAchieved: (load.ok + Object.values(load.errors).reduce((a, b) => a + b, 0)) / o.durationS,
      rssBytes: after.rss,
      pssBytes: after.pss,
      rssIdleBytes: idle.rss,
      serverProcesses: after.procs,
      heapBytes: heap,
      bytesPerConnection: (after.rss - idle.rss) / Math.max(1, c.open),
      p50Ms: pct(load.histogram, 50),
      p99Ms: pct(load.histogram, 99),
      p999Ms: pct(load.histogram, 99.9),
      httpErrors: { ...load.errors },
      wsFailed: c.failed,
      wsDropped: c.dropped,
      wsErrors: c.errors,
      pingsSeen: c.pings - pingsBefore,
      pingsExpected: Math.floor((c.open * o.durationS) / o.pingIntervalS),
      cpuPercent: ((after.cpu - before.cpu) / wall) * 100,
      runQueueMsPerSecond: ((after.wait - before.wait) / wall) * 1000,
      harnessCpuPercent: ((harnessAfter - harnessBefore) / wall) * 100,
      boxCpuPercent: ((boxAfter.busySeconds - boxBefore.busySeconds) / (boxAfter.totalSeconds - boxBefore.totalSeconds)) * cpus().length * 100,
      tcpMemBytes: sockstat().tcpMemBytes,
      connectionsPerWorker: spread,
      loadAvg: loadavg(),
      // Read back from the kernel: the server's tree, and everything else this bench started.
      cores: {
        pinned: o.pin,
        server: affinityOf(serverPids),
        harness: affinityOf(processTree(process.pid).filter((pid) => !serverPids.includes(pid))),
      },
      series,
    };
    const census = await clients.ask<{ open: number; noPing: number; minPings: number }>({ cmd: 'census' }, 'census');
    row.census = {
      open: census.reduce((a, x) => a + x.open, 0),
      openWithoutAnyPing: census.reduce((a, x) => a + x.noPing, 0),
      fewestPingsOnOneConnection: Math.min(...census.map((x) => x.minPings)),
    };

    if (o.scenario === 'fanout') {
      phase = 'fanout';
      row.fanout = [];
      for (let k = 0; k < 5; k++) {
        const id = `f${k}-${randomBytes(3).toString('hex')}`;
        await json(target, 'POST', '/v1/notify', { topic: 'bench:all', title: 'fanout', data: { fanout: id, ts: Date.now() } }, target.adminToken);
        let lat: number[] = [];
        const until = Date.now() + 30_000;
        do {
          await sleep(500);
          lat = (await clients.ask<{ latencies: number[] }>({ cmd: 'fanout', id }, 'fanout')).flatMap((x) => x.latencies).concat(lat);
        } while (lat.length < c.open && Date.now() < until);
        lat.sort((a, b) => a - b);
        const at = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
        row.fanout.push({ p50Ms: at(0.5), p99Ms: at(0.99), maxMs: lat.at(-1) ?? NaN, received: lat.length, expected: c.open });
        await sleep(1000);
      }
    }
    if (o.scenario === 'storm' && target.restart) {
      phase = 'storm';
      const { reconnects: reconnectsBefore, errors: errorsBefore, opened: openedBefore } = clients.total();
      const began = Date.now();
      await target.restart();
      const restartMs = Date.now() - began;
      let back: number | null = null;
      const until = Date.now() + 120_000;
      while (Date.now() < until) {
        // Back means every client opened again, not just a count that has not moved yet: the
        // clients report once a second, and a stale report still says all are open.
        const now = clients.total();
        if (now.opened - openedBefore >= o.connections && now.open >= o.connections) {
          back = Date.now() - began;
          break;
        }
        await sleep(100);
      }
      const end = clients.total();
      const errors = Object.fromEntries(
        Object.entries(end.errors)
          .map(([k, v]) => [k, v - (errorsBefore[k] ?? 0)] as const)
          .filter(([, v]) => v > 0),
      );
      row.storm = { backoff: o.backoff, restartMs, backWithinMs: back, reconnected: end.reconnects - reconnectsBefore, errors, loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') };
    }
    if (o.scenario === 'max-rps') {
      phase = 'max-rps';
      row.maxRps = [];
      // A server overloaded by the steady window is still draining it: let it, first.
      await sleep(MAX_RPS_SETTLE_MS);
      // From a sixteenth of --rate up by half each step, so the answer is found below --rate
      // too; each step warms up for 2 s, then 10 s are measured.
      for (let rate = Math.max(25, Math.round(o.rate / 16)); rate <= 100_000; rate = Math.round(rate * 1.5)) {
        await load.run(rate, 2_000);
        load.reset();
        await load.run(rate, 10_000);
        const p99 = pct(load.histogram, 99);
        row.maxRps.push({ rate, p99Ms: p99 });
        if (p99 > P99_BOUND_MS) break;
      }
    }
    return row;
  } finally {
    clearInterval(progress);
    process.stderr.write('\n');
    load.close();
    clients.stop();
    await target.stop();
    running = null;
  }
}

export async function runBench(argv: string[]): Promise<number> {
  if (argv[0] === 'ws-memory') return (await import('./ws-memory.js')).runWsMemory(argv.slice(1));
  const at = argv.indexOf('--scenario');
  const own = (name: string) => (at >= 0 && argv[at + 1] === name) || argv.includes(`--scenario=${name}`);
  if (own('delivery')) return (await import('./delivery.js')).runDelivery(argv);
  if (own('heartbeat')) return (await import('./heartbeat.js')).runHeartbeat(argv);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(BENCH_HELP);
    return 0;
  }
  if (argv.includes('--peers')) return (await import('./peers.js')).runPeers(argv.filter((a) => a !== '--peers'));
  const o = parseBenchArgs(argv);
  mkdirSync(o.out, { recursive: true });
  // Before anything is forked: the client processes and Redis inherit the harness cores.
  if (o.pin) pinSelf(o.pin.harness);
  const rows: Row[] = [];
  const combos = o.target ? [['target', o.workers[0] ?? 1] as const] : o.engines.flatMap((e) => o.workers.map((w) => [e, w] as const));
  for (const [engine, workers] of combos) {
    rows.push(await runOne(o, engine === 'target' ? 'bun' : engine, workers));
  }
  const meta = {
    scenario: o.scenario,
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform}`,
    options: { ...o, jwtSecret: undefined, adminToken: undefined },
    method:
      `${o.connections} WebSockets from ${o.clients} raw-socket client processes (127.0.0.2+), each subscribed to one topic and answering pings every ${o.pingIntervalS} s; ` +
      `${o.rate} req/s of GET /v1/devices (JWT, SQLite, brotli) at a constant arrival rate over ${DEFAULT_CONNECTIONS} keep-alive connections used in turn, latency from the intended send time (HDR); ` +
      `${o.durationS} s steady state after a ${o.rampS} s ramp; RSS, PSS and CPU summed over every server process from /proc; heap from /metrics. ` +
      `The WebSocket client processes run at nice ${clientNice(o.scenario)} (they stand in for phones elsewhere); the load generator at normal priority. ` +
      (o.pin
        ? `Pinned (--pin ${o.pin.server}/${o.pin.harness}): server processes on CPU ${o.pin.server}, the bench, its client processes, the load generator and Redis on CPU ${o.pin.harness}.`
        : `Not pinned: server and harness share every core.`),
  };
  writeReport(o.out, rows, meta);
  console.log(`report: ${join(o.out, 'report.md')}`);
  return rows.every((r) => Object.keys(r.httpErrors).length === 0 && r.wsFailed === 0 && r.wsDropped === 0) ? 0 : 1;
}
