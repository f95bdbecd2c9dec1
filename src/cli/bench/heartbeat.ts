/**
 * `onebox bench --scenario heartbeat`: what app-level pings cost the server. Browsers and
 * React Native do not expose WebSocket protocol pings, so the client SDK detects a dead
 * socket by sending `{"op":"ping"}` when it heard nothing for `pingIntervalMs` (the server
 * answers `pong`). On an idle connection that is one text frame in and one out per interval,
 * on top of the server's protocol ping and its pong.
 *
 * Per engine x workers: start the server, open N idle connections (each its own user,
 * subscribed to one topic, answering protocol pings), then measure windows of W seconds with
 * the clients' app pings off and on, in the order off,on,on,off (repeated per round), so a
 * drift in the shared box's load weighs on both sides alike. Each window: the server's CPU
 * seconds and RSS summed over its processes (/proc), the clients' app pings and pongs, the
 * box's CPU and load average. The figure is the mean CPU and RSS with pings on minus off,
 * scaled to 50,000 connections.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../../lib/scope.js';
import { cleanups } from './cleanups.js';
import { Clients } from './clients.js';
import { signToken } from './jwt.js';
import { boxCpu, loadavg, processTree, sampleProc, treeFigures } from './sampler.js';
import { startTarget } from './target.js';
import { enginesOption, numberOption } from './options.js';

export const HEARTBEAT_HELP = `usage: onebox bench --scenario heartbeat [options]

  --engines LIST      bun,node                                        (bun)
  --workers LIST      worker counts (Redis started when > 1)          (3)
  --connections N     idle WebSockets to hold                         (50000)
  --clients K         client processes (each holds < 20,000 files)    (ceil(N/12500))
  --ping-interval S   the server's PING_INTERVAL_MS and the clients'
                      app ping interval, seconds                      (30)
  --ramp S            seconds to open the connections                 (30)
  --settle S          seconds held before the first window            (15)
  --window S          seconds per measured window                     (60)
  --rounds R          rounds of windows off,on,on,off                 (1)
  --out DIR           report folder          (bench/results/<date>-heartbeat)

Servers listen on 127.0.0.1; clients connect from 127.0.0.2 and up.`;

interface Options {
  engines: Array<'bun' | 'node'>;
  workers: number[];
  connections: number;
  clients: number;
  pingIntervalS: number;
  rampS: number;
  settleS: number;
  windowS: number;
  rounds: number;
  out: string;
}

function parse(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      engines: { type: 'string', default: 'bun' },
      workers: { type: 'string', default: '3' },
      connections: { type: 'string', default: '50000' },
      clients: { type: 'string' },
      'ping-interval': { type: 'string', default: '30' },
      ramp: { type: 'string', default: '30' },
      settle: { type: 'string', default: '15' },
      window: { type: 'string', default: '60' },
      rounds: { type: 'string', default: '1' },
      out: { type: 'string' },
    },
  });
  const engines = enginesOption(v.engines);
  const connections = numberOption(v.connections, 'connections', 1);
  const date = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-');
  return {
    engines,
    workers: v.workers.split(',').map((w) => numberOption(w, 'workers', 1)),
    connections,
    clients: numberOption(v.clients ?? String(Math.max(1, Math.ceil(connections / 12_500))), 'clients', 1),
    pingIntervalS: numberOption(v['ping-interval'], 'ping-interval', 0.05),
    rampS: numberOption(v.ramp, 'ramp', 0.1),
    settleS: numberOption(v.settle, 'settle', 0),
    windowS: numberOption(v.window, 'window', 1),
    rounds: numberOption(v.rounds, 'rounds', 1),
    out: v.out ?? join('bench', 'results', `${date}-heartbeat`),
  };
}


function clientCpu(clients: Clients): number {
  return clients.procs.reduce((a, p) => a + (sampleProc(p.pid!)?.cpuSeconds ?? 0), 0);
}

/** The clients' counts now (not their last once-a-second report). */
async function counts(clients: Clients): Promise<{ appPings: number; pongs: number; open: number }> {
  const all = await clients.ask<{ appPings: number; pongs: number; open: number }>({ cmd: 'stats' }, 'statsNow');
  return all.reduce((a, x) => ({ appPings: a.appPings + x.appPings, pongs: a.pongs + x.pongs, open: a.open + x.open }), { appPings: 0, pongs: 0, open: 0 });
}

export interface HeartbeatWindow {
  appPings: boolean;
  seconds: number;
  /** Server CPU over the window, percent of one core (summed over its processes). */
  serverCpuPercent: number;
  /** RSS and PSS summed over the server processes at the end of the window. */
  rssBytes: number;
  pssBytes: number;
  appPingsSent: number;
  pongsReceived: number;
  clientCpuPercent: number;
  boxCpuPercent: number;
  open: number;
  loadavgAtStart: string;
  loadavgAtEnd: string;
}

export interface HeartbeatRow {
  engine: 'bun' | 'node';
  workers: number;
  serverProcesses: number;
  connectionsTarget: number;
  connectionsOpen: number;
  wsFailed: number;
  wsDropped: number;
  pingIntervalS: number;
  rssIdleBytes: number;
  windows: HeartbeatWindow[];
  /** Mean over the windows with app pings on, minus the mean over those off. */
  cpuPercentOn: number;
  cpuPercentOff: number;
  cpuPercentDelta: number;
  cpuPercentDeltaPer50k: number;
  rssDeltaBytes: number;
  rssDeltaBytesPer50k: number;
  /** App pings the clients sent per second with pings on, and the pongs they got back. */
  appPingsPerS: number;
  pongsPerS: number;
  /** Server CPU per app ping and its pong, microseconds. */
  cpuMicrosPerPing: number;
}

async function runOne(o: Options, engine: 'bun' | 'node', workers: number): Promise<HeartbeatRow> {
  const target = await startTarget({ engine, workers, pingIntervalS: o.pingIntervalS, logFile: join(o.out, `server-${engine}-w${workers}.log`) });
  const clients = new Clients(o.clients, 0);
  const stop = async () => {
    clients.stop();
    await target.stop();
  };
  cleanups.add(stop);
  const t0 = Date.now();
  let phase = 'start';
  const progress = setInterval(() => {
    const c = clients.total();
    process.stderr.write(
      `\r[heartbeat ${engine} w=${workers} ${phase} ${Math.round((Date.now() - t0) / 1000)}s] conns ${c.open}/${o.connections} failed ${c.failed} dropped ${c.dropped} | app pings ${c.appPings ?? 0} pongs ${c.pongs ?? 0}   `,
    );
  }, 1000);
  try {
    await sleep(2000);
    const idle = treeFigures(target.pid);
    await target.seedUsers!(o.connections);
    phase = 'ramp';
    clients.start({ host: target.host, port: target.port, count: o.connections, token: (i) => signToken(target.jwtSecret!, `bench-${i}`), topic: 'bench:all', rampS: o.rampS });
    const rampDeadline = Date.now() + (o.rampS + 60) * 1000;
    while (clients.total().open + clients.total().failed < o.connections && Date.now() < rampDeadline) await sleep(250);
    phase = 'settle';
    await sleep(o.settleS * 1000);
    const windows: HeartbeatWindow[] = [];
    const order = Array.from({ length: o.rounds }, () => [false, true, true, false]).flat();
    for (const on of order) {
      await clients.ask({ cmd: 'appPing', intervalMs: on ? o.pingIntervalS * 1000 : 0 }, 'appPing');
      phase = on ? 'pings on' : 'pings off';
      const c0 = await counts(clients);
      const s0 = treeFigures(target.pid);
      const b0 = boxCpu();
      const cc0 = clientCpu(clients);
      const l0 = loadavg();
      const began = Date.now();
      await sleep(o.windowS * 1000);
      const s1 = treeFigures(target.pid, true);
      const b1 = boxCpu();
      const cc1 = clientCpu(clients);
      const seconds = (Date.now() - began) / 1000;
      const c1 = await counts(clients);
      windows.push({
        appPings: on,
        seconds,
        serverCpuPercent: ((s1.cpu - s0.cpu) / seconds) * 100,
        rssBytes: s1.rss,
        pssBytes: s1.pss,
        appPingsSent: c1.appPings - c0.appPings,
        pongsReceived: c1.pongs - c0.pongs,
        clientCpuPercent: ((cc1 - cc0) / seconds) * 100,
        boxCpuPercent: ((b1.busySeconds - b0.busySeconds) / (b1.totalSeconds - b0.totalSeconds)) * cpus().length * 100,
        open: c1.open,
        loadavgAtStart: l0,
        loadavgAtEnd: loadavg(),
      });
    }
    await clients.ask({ cmd: 'appPing', intervalMs: 0 }, 'appPing');
    const end = clients.total();
    const mean = (on: boolean, f: (w: HeartbeatWindow) => number) => {
      const ws = windows.filter((w) => w.appPings === on);
      return ws.reduce((a, w) => a + f(w), 0) / ws.length;
    };
    const cpuOn = mean(true, (w) => w.serverCpuPercent);
    const cpuOff = mean(false, (w) => w.serverCpuPercent);
    const rssDelta = mean(true, (w) => w.rssBytes) - mean(false, (w) => w.rssBytes);
    const perS = (f: (w: HeartbeatWindow) => number) => mean(true, (w) => f(w) / w.seconds);
    const appPingsPerS = perS((w) => w.appPingsSent);
    const scale = 50_000 / Math.max(1, end.open);
    return {
      engine,
      workers,
      serverProcesses: processTree(target.pid!).length,
      connectionsTarget: o.connections,
      connectionsOpen: end.open,
      wsFailed: end.failed,
      wsDropped: end.dropped,
      pingIntervalS: o.pingIntervalS,
      rssIdleBytes: idle.rss,
      windows,
      cpuPercentOn: cpuOn,
      cpuPercentOff: cpuOff,
      cpuPercentDelta: cpuOn - cpuOff,
      cpuPercentDeltaPer50k: (cpuOn - cpuOff) * scale,
      rssDeltaBytes: rssDelta,
      rssDeltaBytesPer50k: rssDelta * scale,
      appPingsPerS,
      pongsPerS: perS((w) => w.pongsReceived),
      cpuMicrosPerPing: appPingsPerS > 0 ? (((cpuOn - cpuOff) / 100) * 1e6) / appPingsPerS : NaN,
    };
  } finally {
    clearInterval(progress);
    process.stderr.write('\n');
    cleanups.delete(stop);
    await stop();
  }
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const signedMib = (b: number) => `${b >= 0 ? '+' : '−'}${mib(Math.abs(b))}`;
const pct = (x: number) => `${x.toFixed(1)} %`;

export function heartbeatMarkdown(rows: HeartbeatRow[], meta: { date: string; machine: string; method: string; command: string }): string {
  const lines = [
    '# onebox bench: heartbeat (app-level pings)',
    '',
    `${meta.date} on ${meta.machine}. ${meta.method}`,
    '',
    `Reproduce: \`${meta.command}\``,
    '',
    '| server | connections | ping interval | server CPU, pings off → on | difference | per 50K | RSS difference per 50K | app pings/s (pongs/s) | CPU per ping + pong |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.engine}, WORKERS=${r.workers} (${r.serverProcesses} process${r.serverProcesses === 1 ? '' : 'es'}) | ${r.connectionsOpen} / ${r.connectionsTarget} | ${r.pingIntervalS} s | ${pct(r.cpuPercentOff)} → ${pct(r.cpuPercentOn)} | ${r.cpuPercentDelta >= 0 ? '+' : ''}${r.cpuPercentDelta.toFixed(1)} % | ${r.cpuPercentDeltaPer50k >= 0 ? '+' : ''}${r.cpuPercentDeltaPer50k.toFixed(1)} % of a core | ${signedMib(r.rssDeltaBytesPer50k)} | ${r.appPingsPerS.toFixed(0)} (${r.pongsPerS.toFixed(0)}) | ${Number.isFinite(r.cpuMicrosPerPing) ? `${r.cpuMicrosPerPing.toFixed(1)} µs` : '–'} |`,
    );
  }
  lines.push('', 'CPU is percent of one core, summed over the server processes. Windows in the order they ran:', '');
  for (const r of rows) {
    lines.push(
      `${r.engine}, WORKERS=${r.workers} (idle RSS before the connections ${mib(r.rssIdleBytes)}; failed ${r.wsFailed}, dropped ${r.wsDropped}):`,
      '',
      '| # | app pings | seconds | server CPU | RSS | PSS | pings sent | pongs received | client CPU | box CPU | load average at start → end |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...r.windows.map(
        (w, i) =>
          `| ${i + 1} | ${w.appPings ? 'on' : 'off'} | ${w.seconds.toFixed(1)} | ${pct(w.serverCpuPercent)} | ${mib(w.rssBytes)} | ${mib(w.pssBytes)} | ${w.appPingsSent} | ${w.pongsReceived} | ${pct(w.clientCpuPercent)} | ${pct(w.boxCpuPercent)} of ${cpus().length * 100} % | ${w.loadavgAtStart} → ${w.loadavgAtEnd} |`,
      ),
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function runHeartbeat(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HEARTBEAT_HELP);
    return 0;
  }
  const o = parse(argv);
  mkdirSync(o.out, { recursive: true });
  const rows: HeartbeatRow[] = [];
  for (const engine of o.engines) for (const workers of o.workers) rows.push(await runOne(o, engine, workers));
  const meta = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform}`,
    method:
      `${o.connections} idle WebSockets (one user each, subscribed to bench:all) from ${o.clients} raw-socket client processes (127.0.0.2+), answering the server's protocol pings (PING_INTERVAL_MS ${o.pingIntervalS * 1000}). ` +
      `Windows of ${o.windowS} s after a ${o.settleS} s settle, in the order off,on,on,off × ${o.rounds}; with app pings on, each connection sends {"op":"ping","id":n} once per ${o.pingIntervalS} s unless a text frame arrived within the interval (the SDK's dead-socket check), spread over the interval by one sweep timer per client process. ` +
      'Server CPU and RSS are summed over every server process from /proc; the difference is the mean of the "on" windows minus the mean of the "off" windows; "per 50K" scales it linearly to 50,000 connections. The clients run at the server\'s priority on the same 2 cores.',
    command: `onebox bench ${argv.join(' ')}`,
  };
  writeFileSync(join(o.out, 'report.json'), `${JSON.stringify({ meta: { ...meta, options: o }, rows }, null, 2)}\n`);
  const md = heartbeatMarkdown(rows, meta);
  writeFileSync(join(o.out, 'report.md'), md);
  console.log(md);
  return rows.every((r) => r.wsFailed === 0 && r.wsDropped === 0 && r.connectionsOpen === r.connectionsTarget) ? 0 : 1;
}
