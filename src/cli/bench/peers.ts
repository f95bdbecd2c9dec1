/**
 * `onebox bench --peers`: the idle-socket and fan-out scenario of `ws-memory`, run in one go
 * against onebox on each engine and against peers doing only what the bench asks (bare
 * `Bun.serve`, bare `ws` on Node, Socket.IO; peers/*.ts), one server process each, with the
 * same raw-socket client processes. Per server: RSS idle and with N subscribed sockets, RSS
 * and PSS per socket, then M publishes to every socket (publish-to-receipt latency). The
 * report gives onebox's figures over each peer's: the price of onebox's features
 * (authentication per socket, heartbeat, registry, limits) over the runtime's floor.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../../lib/scope.js';
import { Clients } from './clients.js';
import { signToken } from './jwt.js';
import { loadavg, pssOf, sampleProc } from './sampler.js';
import { ROOT, startServer, type EngineName, type ServerProcess } from './server-process.js';
import { seedUsers } from './users.js';
import { fanout } from './ws-memory.js';
import { numberOption } from './options.js';

export const PEERS_HELP = `usage: onebox bench --peers [options]

  --servers LIST      onebox-bun,onebox-node,bun-serve,ws-node,socket.io   (all)
  --connections N     subscribed sockets per server process                (15000)
  --clients K         client processes, one loopback address each          (2)
  --ramp S            seconds to open the sockets                          (10)
  --settle S          seconds held before the loaded RSS is read           (10)
  --fanouts M         publishes to every socket, one at a time             (5)
  --out DIR           report folder                 (bench/results/<date>-peers)

One server process each on 127.0.0.1; clients connect from 127.0.0.2 and up.`;

const IDLE_WAIT_MS = 3000;
const TOPIC = 'bench:all';
const BUN = join(ROOT, 'node_modules', 'bun', 'bin', 'bun.exe');
const peerScript = (name: string) => fileURLToPath(new URL(`./peers/${name}.js`, import.meta.url));

interface ServerKind {
  name: string;
  what: string;
  engine: EngineName;
  command?: [string, string[]];
  /** The WebSocket path and whether Socket.IO's protocol runs inside it. */
  path?: string;
  engineIo?: boolean;
  /** onebox only: each socket is its own user, whose token must name an existing user. */
  onebox?: boolean;
}

const SERVERS: ServerKind[] = [
  { name: 'onebox-bun', what: 'onebox, ENGINE=bun, WORKERS=1', engine: 'bun', onebox: true },
  { name: 'onebox-node', what: 'onebox, ENGINE=node, WORKERS=1', engine: 'node', onebox: true },
  { name: 'bun-serve', what: 'bare Bun.serve (uWS pub/sub)', engine: 'bun', command: [BUN, [peerScript('bun-serve')]] },
  { name: 'ws-node', what: 'bare ws on node:http', engine: 'node', command: [process.execPath, [peerScript('ws-node')]] },
  {
    name: 'socket.io',
    what: 'Socket.IO 4 on Node (WebSocket transport)',
    engine: 'node',
    command: [process.execPath, [peerScript('socket-io')]],
    path: '/socket.io/?EIO=4&transport=websocket',
    engineIo: true,
  },
];

/** Which onebox engine each peer is compared with; Socket.IO with both. */
const PAIRS: Array<[string, string]> = [
  ['onebox-bun', 'bun-serve'],
  ['onebox-node', 'ws-node'],
  ['onebox-node', 'socket.io'],
  ['onebox-bun', 'socket.io'],
];

interface Options {
  servers: ServerKind[];
  connections: number;
  clients: number;
  rampS: number;
  settleS: number;
  fanouts: number;
  out: string;
}

export interface PeerRow {
  server: string;
  what: string;
  requested: number;
  opened: number;
  failed: number;
  stillOpenAtEnd: number;
  rssIdleBytes: number;
  rssLoadedBytes: number;
  pssLoadedBytes: number;
  rssPerSocketBytes: number;
  fanout: Array<{ received: number; p50: number; p99: number; max: number }>;
  /** Median over the publishes of each one's p99, ms. */
  fanoutP99Ms: number;
  loadAvg: string;
}

function parse(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      servers: { type: 'string', default: SERVERS.map((s) => s.name).join(',') },
      connections: { type: 'string', default: '15000' },
      clients: { type: 'string', default: '2' },
      ramp: { type: 'string', default: '10' },
      settle: { type: 'string', default: '10' },
      fanouts: { type: 'string', default: '5' },
      out: { type: 'string' },
    },
  });
  const servers = v.servers.split(',').map((name) => {
    const s = SERVERS.find((k) => k.name === name);
    if (!s) throw new Error(`--servers takes ${SERVERS.map((k) => k.name).join(', ')}`);
    return s;
  });
  const date = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-');
  return {
    servers,
    connections: numberOption(v.connections, 'connections', 1),
    clients: numberOption(v.clients, 'clients', 1),
    rampS: numberOption(v.ramp, 'ramp', 0.1),
    settleS: numberOption(v.settle, 'settle', 0),
    fanouts: numberOption(v.fanouts, 'fanouts', 1),
    out: v.out ?? join('bench', 'results', `${date}-peers`),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function measure(o: Options, kind: ServerKind): Promise<PeerRow> {
  const N = o.connections;
  const server: ServerProcess = await startServer({
    engine: kind.engine,
    inheritEnv: true,
    stderr: 'inherit',
    env: { WORKERS: '1', MAX_CONNECTIONS: String(N + 100) },
    ...(kind.command && { command: kind.command }),
  });
  let clients: Clients | null = null;
  try {
    const pid = server.proc.pid!;
    if (kind.onebox) await seedUsers({ dataDir: server.dataDir, databaseUrl: process.env.DATABASE_URL }, N);
    await sleep(IDLE_WAIT_MS);
    const idle = sampleProc(pid)!.rssBytes;
    clients = new Clients(o.clients, 0);
    clients.start({
      host: server.host,
      port: server.port,
      count: N,
      // Peers ignore the header; onebox checks it.
      token: (i) => signToken(server.jwtSecret, `bench-${i}`),
      topic: TOPIC,
      rampS: o.rampS,
      extra: { ...(kind.path && { path: kind.path }), ...(kind.engineIo && { engineIo: true }) },
    });
    const deadline = Date.now() + (o.rampS + 60) * 1000;
    const settled = () => {
      const t = clients!.total();
      return t.open + t.failed >= N;
    };
    while (!settled() && Date.now() < deadline) await sleep(100);
    const { open: opened, failed } = clients.total();
    await sleep(o.settleS * 1000);
    const loaded = sampleProc(pid)!.rssBytes;
    const pss = pssOf(pid);
    const fan = [];
    for (let k = 0; k < o.fanouts; k++) {
      fan.push(await fanout(server, clients, TOPIC, k, opened));
      await sleep(500);
    }
    await sleep(1500); // the clients' last stats report
    return {
      server: kind.name,
      what: kind.what,
      requested: N,
      opened,
      failed,
      stillOpenAtEnd: clients.total().open,
      rssIdleBytes: idle,
      rssLoadedBytes: loaded,
      pssLoadedBytes: pss,
      rssPerSocketBytes: Math.round((loaded - idle) / Math.max(1, opened)),
      fanout: fan,
      fanoutP99Ms: median(fan.map((f) => f.p99)),
      loadAvg: loadavg(),
    };
  } finally {
    clients?.stop();
    await server.stop();
  }
}

const kib = (b: number) => `${(b / 1024).toFixed(2)} KiB`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function peersMarkdown(rows: PeerRow[], meta: { date: string; machine: string; method: string; command: string }): string {
  const by = new Map(rows.map((r) => [r.server, r]));
  const lines = [
    '# onebox bench --peers',
    '',
    `${meta.date} on ${meta.machine}. ${meta.method}`,
    '',
    `Command: \`${meta.command}\``,
    '',
    '| server | sockets open (failed, open at the end) | RSS idle | RSS loaded | PSS loaded | RSS per socket | fan-out to all: p50 / p99 / max per publish (ms) | fan-out p99, median | load average at the end |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.what} | ${r.opened} / ${r.requested} (${r.failed}, ${r.stillOpenAtEnd}) | ${mib(r.rssIdleBytes)} | ${mib(r.rssLoadedBytes)} | ${mib(r.pssLoadedBytes)} | ${kib(r.rssPerSocketBytes)} | ${r.fanout.map((f) => `${f.p50}/${f.p99}/${f.max}${f.received < r.opened ? ` (${f.received} received)` : ''}`).join(', ')} | ${r.fanoutP99Ms} | ${r.loadAvg} |`,
    ),
    '',
    'onebox over each peer (above 1: onebox uses more memory or takes longer):',
    '',
    '| onebox | peer | RSS per socket | RSS loaded | fan-out p99 (median) |',
    '|---|---|---|---|---|',
  ];
  for (const [a, b] of PAIRS) {
    const x = by.get(a);
    const y = by.get(b);
    if (!x || !y) continue;
    const ratio = (p: number, q: number) => (q > 0 ? `${(p / q).toFixed(2)}x` : '–');
    lines.push(`| ${a} | ${b} | ${ratio(x.rssPerSocketBytes, y.rssPerSocketBytes)} | ${ratio(x.rssLoadedBytes, y.rssLoadedBytes)} | ${ratio(x.fanoutP99Ms, y.fanoutP99Ms)} |`);
  }
  return `${lines.join('\n')}\n`;
}

export async function runPeers(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(PEERS_HELP);
    return 0;
  }
  const o = parse(argv);
  mkdirSync(o.out, { recursive: true });
  const rows: PeerRow[] = [];
  for (const kind of o.servers) {
    process.stderr.write(`peers: ${kind.name} (load average ${loadavg()})\n`);
    rows.push(await measure(o, kind));
  }
  const meta = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform}`,
    command: `onebox bench --peers ${argv.join(' ')}`.trim(),
    method:
      `Each server in turn, one process, ${o.connections} WebSockets from ${o.clients} raw-socket client processes (127.0.0.2+) opened over ${o.rampS} s, ` +
      `each subscribed to one topic (onebox: each socket its own user with a JWT; peers take no authentication); RSS from /proc/<pid>/status ${IDLE_WAIT_MS / 1000} s after listening and after a ${o.settleS} s settle, ` +
      `PSS from smaps_rollup; then ${o.fanouts} publishes to the topic one at a time (onebox: POST /v1/notify; peers: the same route, publishing the body), latency from the publish timestamp to receipt in each client. ` +
      'Peers do what the bench asks and nothing more: no authentication, no per-address limits, no heartbeat of their own beyond the runtime\'s defaults (Bun: pings near its 120 s idle timeout; Socket.IO: every 25 s), no registry beyond a topic set.',
  };
  writeFileSync(join(o.out, 'peers.json'), `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  const md = peersMarkdown(rows, meta);
  writeFileSync(join(o.out, 'report.md'), md);
  console.log(md);
  return rows.every((r) => r.failed === 0 && r.opened === r.requested && r.fanout.every((f) => f.received === r.opened)) ? 0 : 1;
}
