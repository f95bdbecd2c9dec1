/**
 * `onebox bench ws-memory`: RSS per idle WebSocket connection on one server process, per
 * engine: (RSS with N subscribed connections − RSS idle) / N, plus the time one topic
 * message takes to reach all N subscribers. Uses the bench's own pieces: the server
 * starter, its users, the raw-socket client processes and the JWT signer. Writes
 * ws-memory-<engine>.json and .md to --out.
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../../lib/scope.js';
import { Clients } from './clients.js';
import { signToken } from './jwt.js';
import { sampleProc } from './sampler.js';
import { startServer, type EngineName, type ServerProcess } from './server-process.js';
import { seedUsers } from './users.js';
import { enginesOption, numberOption } from './options.js';

export const WS_MEMORY_HELP = `usage: onebox bench ws-memory [options]

  --engines LIST      bun,node                                     (bun,node)
  --connections N     idle subscribed WebSockets on one process    (10000)
  --clients K         client processes, one loopback address each  (2)
  --ramp S            seconds to open the connections              (5)
  --settle S          seconds held before the loaded RSS is read   (10)
  --topic T           the topic every connection subscribes to     (bench:all)
                      (room:… has presence: each user's join is an event)
  --out DIR           report folder                                (bench/results)

One server process (WORKERS=1) on 127.0.0.1; clients connect from 127.0.0.2 and up.`;

const IDLE_WAIT_MS = 3000;
const FANOUTS = 5;
const FANOUT_WAIT_MS = 10_000;

interface Options {
  engines: EngineName[];
  connections: number;
  clients: number;
  rampS: number;
  settleS: number;
  topic: string;
  out: string;
}

function parse(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      engines: { type: 'string', default: 'bun,node' },
      connections: { type: 'string', default: '10000' },
      clients: { type: 'string', default: '2' },
      ramp: { type: 'string', default: '5' },
      settle: { type: 'string', default: '10' },
      topic: { type: 'string', default: 'bench:all' },
      out: { type: 'string', default: join('bench', 'results') },
    },
  });
  const engines = enginesOption(v.engines);
  return {
    engines,
    connections: numberOption(v.connections, 'connections', 1),
    clients: numberOption(v.clients, 'clients', 1),
    rampS: numberOption(v.ramp, 'ramp', 0.1),
    settleS: numberOption(v.settle, 'settle', 0),
    topic: v.topic,
    out: v.out,
  };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** One publish to the topic (POST /v1/notify), then the receipt latencies the clients saw, until all arrived or the wait ends. */
export async function fanout(server: ServerProcess, clients: Clients, topic: string, k: number, expected: number): Promise<{ received: number; p50: number; p99: number; max: number }> {
  const id = `f${k}`;
  const res = await fetch(`${server.url}/v1/notify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topic, title: 'fanout', data: { fanout: id, ts: Date.now() } }),
  });
  if (res.status !== 202) throw new Error(`POST /v1/notify: HTTP ${res.status}`);
  let all: number[] = [];
  const until = Date.now() + FANOUT_WAIT_MS;
  do {
    await sleep(100);
    // The clients hand over what they received since the last ask.
    all = all.concat((await clients.ask<{ latencies: number[] }>({ cmd: 'fanout', id }, 'fanout')).flatMap((x) => x.latencies));
  } while (all.length < expected && Date.now() < until);
  all.sort((a, b) => a - b);
  return { received: all.length, p50: pct(all, 50), p99: pct(all, 99), max: all.at(-1) ?? NaN };
}

/** The server's count of WebSocket frames sent. */
async function messagesOut(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^onebox_ws_messages_out_total (\d+)$/m.exec(text)?.[1] ?? NaN);
}

/** Measure one engine, print and write its report; false when a connection failed or dropped. */
async function measure(o: Options, engine: EngineName): Promise<boolean> {
  const N = o.connections;
  const server = await startServer({ engine, inheritEnv: true, stderr: 'inherit', env: { WORKERS: '1', MAX_CONNECTIONS: String(N + 100) } });
  let clients: Clients | null = null;
  try {
    const pid = server.proc.pid!;
    await seedUsers({ dataDir: server.dataDir, databaseUrl: process.env.DATABASE_URL }, N);
    await sleep(IDLE_WAIT_MS);
    // Scraped before the idle sample: the server loads its metrics registry on the first
    // scrape, and the loaded sample comes after scrapes, so both must include it.
    const sentBefore = await messagesOut(server);
    const idleRss = sampleProc(pid)!.rssBytes;
    const started = Date.now();
    clients = new Clients(o.clients, 0);
    clients.start({ host: server.host, port: server.port, count: N, token: (i) => signToken(server.jwtSecret, `bench-${i}`), topic: o.topic, rampS: o.rampS });
    const deadline = Date.now() + (o.rampS + 60) * 1000;
    const settled = () => {
      const t = clients!.total();
      return t.open + t.failed >= N;
    };
    while (!settled() && Date.now() < deadline) await sleep(100);
    const openMs = Date.now() - started;
    const { open: opened, failed } = clients.total();
    await sleep(o.settleS * 1000);
    // Frames sent while opening and settling: one `sub` ack each, plus presence events where the topic has presence.
    const framesWhileOpening = (await messagesOut(server)) - sentBefore;
    const loadedRss = sampleProc(pid)!.rssBytes;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const heapUsed = Number(/onebox_process_heap_bytes\{kind="used"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
    const sock = readFileSync('/proc/net/sockstat', 'utf8').trim();
    const fanouts = [];
    for (let k = 0; k < FANOUTS; k++) fanouts.push(await fanout(server, clients, o.topic, k, opened));
    await sleep(1500); // the clients' last stats report
    const stillOpen = clients.total().open;

    const perConn = (loadedRss - idleRss) / Math.max(1, opened);
    const report = {
      engine,
      runtime: engine === 'bun' ? 'bun (Bun.serve)' : 'node (node:http + ws)',
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), loadAvg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') },
      topic: o.topic,
      connections: { requested: N, opened, failed, stillOpenAtEnd: stillOpen, openMs, framesWhileOpening },
      rss: { idleBytes: idleRss, loadedBytes: loadedRss, perConnectionBytes: Math.round(perConn) },
      heapUsedBytes: heapUsed,
      kernelSockstat: sock,
      fanoutMs: fanouts,
      method:
        `One server process (WORKERS=1), each connection authenticated with its own user token and subscribed to one topic (${o.topic}); ` +
        `RSS from /proc/<pid>/status VmRSS, idle ${IDLE_WAIT_MS / 1000} s after listening, loaded after a ${o.settleS} s settle; ` +
        `clients are ${o.clients} raw-socket bench client processes on 127.0.0.2+, opening the connections over ${o.rampS} s. ` +
        'Fan-out: POST /v1/notify to the topic, latency from the publish timestamp to receipt in each client. ' +
        'Reproduce: onebox bench ws-memory --engines ' + engine + ` --connections ${N} --clients ${o.clients}${o.topic === 'bench:all' ? '' : ` --topic ${o.topic}`}.`,
    };
    writeFileSync(join(o.out, `ws-memory-${engine}.json`), `${JSON.stringify(report, null, 2)}\n`);
    const md = `# WebSocket memory, ${engine}

${report.date} on ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memGiB} GiB; load average ${report.machine.loadAvg} at the end.

Topic \`${o.topic}\`; ${framesWhileOpening} frames sent while opening and settling (${opened} of them \`sub\` acks).

| engine | connections | idle RSS | loaded RSS | RSS per connection | heap used | fan-out to all, p50 / p99 / max (ms) |
|---|---|---|---|---|---|---|
| ${engine} | ${opened} (failed ${failed}, open at the end ${stillOpen}) | ${(idleRss / 2 ** 20).toFixed(1)} MiB | ${(loadedRss / 2 ** 20).toFixed(1)} MiB | ${(perConn / 1024).toFixed(2)} KiB | ${(heapUsed / 2 ** 20).toFixed(1)} MiB | ${fanouts.map((f) => `${f.p50}/${f.p99}/${f.max} (${f.received})`).join(', ')} |

Kernel sockets (not in RSS), from /proc/net/sockstat while loaded:

\`\`\`
${sock}
\`\`\`

${report.method}
`;
    writeFileSync(join(o.out, `ws-memory-${engine}.md`), md);
    console.log(md);
    return failed === 0 && opened === N && stillOpen === opened;
  } finally {
    clients?.stop();
    await server.stop();
  }
}

export async function runWsMemory(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(WS_MEMORY_HELP);
    return 0;
  }
  const o = parse(argv);
  mkdirSync(o.out, { recursive: true });
  let ok = true;
  for (const engine of o.engines) ok = (await measure(o, engine)) && ok;
  return ok ? 0 : 1;
}
