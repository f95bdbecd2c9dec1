/** report.json, report.md (the reference article's table shape) and an SVG chart over time. */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

export interface Point {
  t: number;
  connections: number;
  rssBytes: number;
  p99Ms: number;
  rps: number;
}

export interface Row {
  engine: string;
  workers: number;
  scenario: string;
  connectionsTarget: number;
  connectionsHeld: number;
  rateTarget: number;
  rateAchieved: number;
  /** RSS summed over the server processes: pages they share (the runtime) count once each. */
  rssBytes: number;
  /** PSS summed over the server processes: shared pages counted once in all. */
  pssBytes: number;
  rssIdleBytes: number;
  serverProcesses: number;
  heapBytes: number;
  bytesPerConnection: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  httpErrors: Record<string, number>;
  wsFailed: number;
  wsDropped: number;
  wsErrors: Record<string, number>;
  pingsSeen: number;
  pingsExpected: number;
  /** CPU of the server processes over the steady window, percent of one core. */
  cpuPercent: number;
  /** Time the server processes' main threads waited for a core, ms per second of the window (summed over processes). */
  runQueueMsPerSecond: number;
  /** CPU of the bench itself (load generator and WebSocket client processes), same unit. */
  harnessCpuPercent: number;
  /** CPU of the whole box, same unit (at most cores x 100). */
  boxCpuPercent: number;
  tcpMemBytes: number;
  /** Per-connection ping counts from the clients at the end: none may have seen zero. */
  census?: { open: number; openWithoutAnyPing: number; fewestPingsOnOneConnection: number };
  /** /proc/loadavg (1, 5, 15 min) at the end of the steady window: the box is shared. */
  loadAvg?: string;
  /** --pin as asked, and each process's allowed CPUs read back at the end of the steady window (CPU list -> pids). */
  cores?: { pinned: { server: string; harness: string } | null; server: Record<string, number[]>; harness: Record<string, number[]> };
  /** Open connections per worker at the end of the steady window. */
  connectionsPerWorker?: number[];
  fanout?: { p50Ms: number; p99Ms: number; maxMs: number; received: number; expected: number }[];
  /** Failed attempts on the way back, by kind (http_503: over the ceiling, handshake_timeout, ECONNREFUSED...). */
  /**
   * backoff: the clients' (sdk: the client SDK's delays; raw: the bench's own); restartMs: from
   * the signal until the new server listened; loadavg: the box's at the end.
   */
  storm?: { backoff?: 'sdk' | 'raw'; restartMs?: number; backWithinMs: number | null; reconnected: number; errors: Record<string, number>; loadavg?: string };
  maxRps?: { rate: number; p99Ms: number }[];
  series: Point[];
}

/** The latency bound of the targets: max-rps stops at the first step above it. */
export const P99_BOUND_MS = 10;

export const REFERENCE = [
  { label: 'Ktor 2.3 / JDK 21, coroutines on Netty (published, 4 vCPU / 8 GB)', rss: '≈1.2 GB', conns: '50,000', rate: '2,000' },
  { label: 'Ktor 2.3 / JDK 21, virtual threads (published, 4 vCPU / 8 GB)', rss: '≈2.5 GB', conns: '50,000', rate: '2,000' },
];

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const errs = (e: Record<string, number>) => {
  const n = Object.values(e).reduce((a, b) => a + b, 0);
  return n === 0 ? '0' : `${n} (${Object.entries(e).map(([k, v]) => `${k}: ${v}`).join(', ')})`;
};

const cpuSets = (by: Record<string, number[]>) =>
  Object.entries(by)
    .map(([list, pids]) => `${pids.length} on CPU ${list}`)
    .join(', ');
const cores = (c: NonNullable<Row['cores']>) =>
  `${c.pinned ? 'pinned' : 'not pinned'}: server processes ${cpuSets(c.server) || 'n/a'}; harness processes ${cpuSets(c.harness)}`;

export function markdown(rows: Row[], meta: Record<string, unknown>): string {
  const lines = [
    `# onebox bench: ${String(meta.scenario)}`,
    '',
    `${String(meta.date)} on ${String(meta.machine)}. ${String(meta.method)}`,
    '',
    '| server | connections held | req/s (target) | RSS total | PSS total | heap | bytes/conn | p50 | p99 | p99.9 (ms) | errors (HTTP / WS) | pings seen / expected | CPU |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.engine}, WORKERS=${r.workers} (${r.serverProcesses} processes) | ${r.connectionsHeld} / ${r.connectionsTarget} | ${r.rateAchieved.toFixed(0)} (${r.rateTarget}) | ${mb(r.rssBytes)} | ${mb(r.pssBytes)} | ${mb(r.heapBytes)} | ${r.bytesPerConnection.toFixed(0)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.p999Ms)} | ${errs(r.httpErrors)} / ${r.wsFailed + r.wsDropped} | ${r.pingsSeen} / ${r.pingsExpected} | ${r.cpuPercent.toFixed(0)}% |`,
    );
  }
  for (const ref of REFERENCE) {
    lines.push(`| *reference:* ${ref.label} | ${ref.conns} | ${ref.rate} | ${ref.rss} | – | – | – | – | – | – | – | – | – |`);
  }
  lines.push(
    '',
    'Reference rows are the published figures of the article onebox measures itself against; they were not measured here.',
    '',
    'RSS total sums every server process\'s resident set, so pages they share (the runtime binary, mapped by each worker) count once per process; PSS total counts them once in all, which is what the processes use together. CPU is percent of one core over the steady window.',
  );
  for (const r of rows) {
    if (r.census) {
      lines.push(
        '',
        `Pings, ${r.engine} WORKERS=${r.workers}: ${r.census.openWithoutAnyPing === 0 ? 'every' : `${r.census.open - r.census.openWithoutAnyPing} of ${r.census.open}`} open connection${r.census.openWithoutAnyPing === 0 ? '' : 's'} saw pings; the fewest on one connection over the whole run: ${r.census.fewestPingsOnOneConnection}.`,
      );
    }
    lines.push(
      '',
      `CPU during the steady window, ${r.engine} WORKERS=${r.workers}${r.cores ? ` (${cores(r.cores)})` : ''}${r.loadAvg ? `, load average ${r.loadAvg} at its end` : ''}: server ${r.cpuPercent.toFixed(0)}%, bench harness on the same box (load generator and WebSocket client processes) ${r.harnessCpuPercent.toFixed(0)}%, whole box ${r.boxCpuPercent.toFixed(0)}% of ${cpus().length * 100}%. The servers' event-loop threads waited ${r.runQueueMsPerSecond.toFixed(0)} ms per second (summed over processes) for a free core (/proc/<pid>/schedstat).`,
    );
  }
  for (const r of rows) {
    if (r.fanout?.length) {
      lines.push('', `Fan-out, ${r.engine} WORKERS=${r.workers}: one publish to every connection, publish-to-receipt latency:`, '', '| # | received / expected | p50 | p99 | max (ms) |', '|---|---|---|---|---|');
      r.fanout.forEach((f, i) => lines.push(`| ${i + 1} | ${f.received} / ${f.expected} | ${f.p50Ms} | ${f.p99Ms} | ${f.maxMs} |`));
    }
    if (r.storm) {
      lines.push('', `Storm, ${r.engine} WORKERS=${r.workers}: server restarted (SIGTERM, drain, start${r.storm.restartMs === undefined ? '' : `: listening again ${(r.storm.restartMs / 1000).toFixed(1)} s after the signal`}); all ${r.connectionsTarget} clients open again ${r.storm.backWithinMs === null ? 'NOT within the wait' : `within ${(r.storm.backWithinMs / 1000).toFixed(1)} s of the signal`} (${r.storm.reconnected} reconnects, ${r.storm.backoff === 'sdk' ? "the client SDK's backoff (1012: within 2 s; then full jitter from 1 s doubling to 30 s)" : 'jittered exponential backoff (200 ms doubling to 10 s)'}; clients report once a second; failed attempts: ${errs(r.storm.errors)})${r.storm.loadavg ? `; load average at the end ${r.storm.loadavg}` : ''}.`);
    }
    if (r.maxRps?.length) {
      const within = r.maxRps.filter((s) => s.p99Ms <= P99_BOUND_MS).at(-1);
      lines.push(
        '',
        `Max rate, ${r.engine} WORKERS=${r.workers}, with the connections held (10 s per step: rate → p99):`,
        '',
        r.maxRps.map((s) => `${s.rate} req/s → ${ms(s.p99Ms)} ms`).join('; '),
        '',
        within ? `Highest rate with p99 at most ${P99_BOUND_MS} ms: ${within.rate} req/s.` : `No step kept p99 at or under ${P99_BOUND_MS} ms.`,
      );
    }
  }
  lines.push('', `Connections per worker at the end of the steady window: ${rows.map((r) => `${r.engine}/${r.workers}: ${(r.connectionsPerWorker ?? []).join(' / ') || 'n/a'}`).join('; ')}.`);
  lines.push('', `Kernel TCP memory at the end (outside RSS): ${rows.map((r) => `${r.engine}/${r.workers}: ${mb(r.tcpMemBytes)}`).join(', ')}.`);
  return `${lines.join('\n')}\n`;
}

/** One panel per series (connections, RSS, p99), one line per row. */
export function svg(rows: Row[]): string {
  const W = 900;
  const H = 180;
  const pad = 50;
  const colors = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];
  const panels: Array<[string, (p: Point) => number, (v: number) => string]> = [
    ['connections', (p) => p.connections, (v) => v.toFixed(0)],
    ['RSS (MB)', (p) => p.rssBytes / 2 ** 20, (v) => v.toFixed(0)],
    ['p99 (ms, per second)', (p) => p.p99Ms, (v) => v.toFixed(1)],
  ];
  const parts: string[] = [];
  panels.forEach(([title, get, fmt], i) => {
    const y0 = i * (H + 30) + 20;
    const all = rows.flatMap((r) => r.series.map(get)).filter(Number.isFinite);
    const max = Math.max(1, ...all);
    const tmax = Math.max(1, ...rows.flatMap((r) => r.series.map((p) => p.t)));
    parts.push(`<text x="${pad}" y="${y0 - 5}" font-size="13">${title}</text>`);
    parts.push(`<rect x="${pad}" y="${y0}" width="${W - 2 * pad}" height="${H}" fill="none" stroke="#ccc"/>`);
    parts.push(`<text x="5" y="${y0 + 10}" font-size="10">${fmt(max)}</text><text x="5" y="${y0 + H}" font-size="10">0</text>`);
    rows.forEach((r, k) => {
      const pts = r.series
        .filter((p) => Number.isFinite(get(p)))
        .map((p) => `${(pad + (p.t / tmax) * (W - 2 * pad)).toFixed(1)},${(y0 + H - (get(p) / max) * H).toFixed(1)}`)
        .join(' ');
      parts.push(`<polyline fill="none" stroke="${colors[k % colors.length]}" stroke-width="1.5" points="${pts}"/>`);
    });
  });
  const legendY = panels.length * (H + 30) + 15;
  rows.forEach((r, k) =>
    parts.push(`<text x="${pad + k * 200}" y="${legendY}" font-size="12" fill="${colors[k % colors.length]}">${r.engine}, WORKERS=${r.workers}</text>`),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${legendY + 10}" font-family="sans-serif">${parts.join('')}</svg>\n`;
}

export function writeReport(dir: string, rows: Row[], meta: Record<string, unknown>): void {
  writeFileSync(join(dir, 'report.json'), `${JSON.stringify({ meta, reference: REFERENCE, rows }, null, 2)}\n`);
  writeFileSync(join(dir, 'report.md'), markdown(rows, meta));
  writeFileSync(join(dir, 'chart.svg'), svg(rows));
}
