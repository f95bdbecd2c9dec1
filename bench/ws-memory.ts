/**
 * RSS per idle WebSocket connection, per engine, on one server process:
 * (RSS with N subscribed connections − RSS idle) / N, plus the time to deliver one topic
 * message to all N subscribers. Usage:
 *   node dist/bench/ws-memory.js [--engine bun|node] [--connections 15000] [--clients 2]
 * Writes bench/results/ws-memory-<engine>.json and .md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../src/lib/scope.js';
import { sampleProc } from '../src/cli/bench/sampler.js';
import { signToken } from '../src/cli/bench/target.js';
import { ADMIN_TOKEN, JWT_SECRET, ROOT, startServer, type EngineName } from '../test/kit/server.js';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'bun' },
    connections: { type: 'string', default: '15000' },
    clients: { type: 'string', default: '2' },
    settle: { type: 'string', default: '10' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
  },
});
const engine = values.engine as EngineName;
const N = Number(values.connections);
const CLIENTS = Number(values.clients);
const TOPIC = 'bench:all';

const rssOf = (pid: number) => sampleProc(pid)!.rssBytes;
const sockstat = () => readFileSync('/proc/net/sockstat', 'utf8').trim();

const token = (sub: string) => signToken(JWT_SECRET, sub);

function ask<T>(child: ChildProcess, msg: object, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    child.send(msg);
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const server = await startServer(engine, { MAX_CONNECTIONS: String(N + 100), LOG_LEVEL: 'info' });
  const pid = server.proc.pid!;
  await sleep(3000);
  const idleRss = rssOf(pid);
  const started = Date.now();
  const children = Array.from({ length: CLIENTS }, () => fork(join(ROOT, 'dist', 'bench', 'ws-client.js')));
  const share = Math.ceil(N / CLIENTS);
  const opened = await Promise.all(
    children.map((c, i) => {
      const tokens = Array.from({ length: Math.min(share, N - i * share) }, (_, j) => token(`bench-${i * share + j}`));
      return ask<{ opened: number; failed: number }>(
        c,
        { cmd: 'open', url: server.wsUrl, tokens, localAddress: `127.0.0.${i + 2}`, topic: TOPIC, concurrency: 200 },
        'opened',
      );
    }),
  );
  const openMs = Date.now() - started;
  const total = opened.reduce((a, o) => a + o.opened, 0);
  const failed = opened.reduce((a, o) => a + o.failed, 0);
  await sleep(Number(values.settle) * 1000);
  const loadedRss = rssOf(pid);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const heapUsed = Number(/onebox_process_heap_bytes\{kind="used"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
  const sock = sockstat();

  const fanouts: Array<{ received: number; p50: number; p99: number; max: number }> = [];
  for (let k = 0; k < 5; k++) {
    const id = `f${k}`;
    const res = await fetch(`${server.url}/v1/notify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: TOPIC, title: 'fanout', data: { fanout: id, ts: Date.now() } }),
    });
    if (res.status !== 202) throw new Error(`notify ${res.status}`);
    let all: number[] = [];
    for (let tries = 0; tries < 100; tries++) {
      await sleep(100);
      const parts = await Promise.all(children.map((c) => ask<{ latencies: number[] }>(c, { cmd: 'report', id }, 'report')));
      all = parts.flatMap((p) => p.latencies);
      if (all.length >= total) break;
    }
    all.sort((a, b) => a - b);
    fanouts.push({ received: all.length, p50: pct(all, 50), p99: pct(all, 99), max: all[all.length - 1] ?? NaN });
  }
  const stats = await Promise.all(children.map((c) => ask<{ open: number; closed: number }>(c, { cmd: 'stats' }, 'stats')));
  for (const c of children) c.send({ cmd: 'close' });
  await server.stop();

  const perConn = (loadedRss - idleRss) / total;
  const report = {
    engine,
    runtime: engine === 'bun' ? 'bun (Bun.serve)' : `node ${process.version} (node:http + ws)`,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30) },
    connections: { requested: N, opened: total, failed, stillOpenAtEnd: stats.reduce((a, s) => a + s.open, 0), openMs },
    rss: { idleBytes: idleRss, loadedBytes: loadedRss, perConnectionBytes: Math.round(perConn) },
    heapUsedBytes: heapUsed,
    kernelSockstat: sock,
    fanoutMs: fanouts,
    method:
      'One server process (WORKERS=1), each connection authenticated with its own user token and subscribed to one topic; ' +
      `RSS from /proc/<pid>/status VmRSS, idle after 3 s, loaded after a ${values.settle} s settle; clients are ${CLIENTS} ws-npm processes on 127.0.0.2+. ` +
      'Fan-out: POST /v1/notify to the topic, latency from the publish timestamp to receipt in each client.',
  };
  mkdirSync(values.out!, { recursive: true });
  writeFileSync(join(values.out!, `ws-memory-${engine}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const md = `# WebSocket memory, ${engine}

${report.date} on ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memGiB} GiB.

| engine | connections | idle RSS | loaded RSS | RSS per connection | heap used | fan-out to all, p50 / p99 / max (ms) |
|---|---|---|---|---|---|---|
| ${engine} | ${total} (failed ${failed}) | ${(idleRss / 2 ** 20).toFixed(1)} MiB | ${(loadedRss / 2 ** 20).toFixed(1)} MiB | ${(perConn / 1024).toFixed(2)} KiB | ${(heapUsed / 2 ** 20).toFixed(1)} MiB | ${fanouts.map((f) => `${f.p50}/${f.p99}/${f.max} (${f.received})`).join(', ')} |

Kernel sockets (not in RSS), from /proc/net/sockstat while loaded:

\`\`\`
${sock}
\`\`\`

${report.method}
`;
  writeFileSync(join(values.out!, `ws-memory-${engine}.md`), md);
  console.log(md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
