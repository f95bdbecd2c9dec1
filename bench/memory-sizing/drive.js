/* global Request, TextDecoder, performance, setTimeout */
// In-process request driver for bench/memory-sizing: builds the app (dist/src, SQLite, no
// socket) and runs N authenticated GET /v1/devices (8 devices, brotli) through app.fetch with
// 64 in flight, after a warm-up of N/4. Prints one JSON line: CPU per request (user+system of
// this process), GC count and time (Node; perf_hooks 'gc' entries), RSS and heap at the end.
// No network and no load generator: on a shared box this keeps the figure to the server's own
// work. ROUTE=events drives POST /v1/events (batches of 100, 202) instead: more allocation
// per request. Usage: [node flags | bun flags] bench/memory-sizing/drive.js [requests]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

const root = new URL('../../', import.meta.url).pathname;
const N = Number(process.argv[2] ?? 20000);
process.env.DATA_DIR = mkdtempSync(join(tmpdir(), 'onebox-drive-'));
process.env.LOG_LEVEL = 'warn';
process.env.JWT_SECRET = 'drive-secret-drive-secret-drive-secret-0123';
const { loadConfig } = await import(join(root, 'dist/src/config.js'));
const { createLogger } = await import(join(root, 'dist/src/observability/logger.js'));
const { buildServer } = await import(join(root, 'dist/src/server.js'));
const config = loadConfig();
const app = await buildServer(config, createLogger('warn'));
app.lifecycle.ready();
const env = { ip: '127.0.0.1' };
const call = async (method, path, body, token) => {
  const headers = { 'content-type': 'application/json', 'accept-encoding': 'br, gzip' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await app.fetch(new Request(`http://127.0.0.1${path}`, { method, headers, body: body && JSON.stringify(body) }), env);
  const buf = await res.arrayBuffer();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status}`);
  return buf;
};
const signup = JSON.parse(new TextDecoder().decode(await call('POST', '/v1/auth/signup', { email: 'drive@example.com', password: 'correct horse battery' }).then((b) => new Uint8Array(b))));
for (let i = 0; i < 8; i++) {
  await call('POST', '/v1/devices', {
    platform: 'web',
    token: { endpoint: `https://push.example.com/send/device-${i}-${'0123456789'.repeat(7)}`, keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' } },
  }, signup.token);
}
const now = Date.now();
const batch = { events: Array.from({ length: 100 }, (_, i) => ({ type: ['app.open', 'tap', 'view', 'purchase'][i % 4], ts: now - i * 60000, props: { screen: 'home', i } })) };
async function run(n) {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      if (process.env.ROUTE === 'events') await call('POST', '/v1/events', batch, signup.token);
      else await call('GET', '/v1/devices', undefined, signup.token);
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
}
await run(N / 4);
const gc = { count: 0, ms: 0 };
let obs = null;
if (!process.versions.bun) {
  obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
}
const c0 = process.cpuUsage();
const t0 = performance.now();
await run(N);
const wall = performance.now() - t0;
const c = process.cpuUsage(c0);
await new Promise((r) => setTimeout(r, 50));
obs?.disconnect();
const m = process.memoryUsage();
console.log(JSON.stringify({
  runtime: process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`,
  execArgv: process.execArgv.join(' '),
  forceRAMSize: process.env.BUN_JSC_forceRAMSize ?? null,
  route: process.env.ROUTE === 'events' ? 'POST /v1/events (100 events)' : 'GET /v1/devices',
  requests: N,
  cpuUsPerReq: +((c.user + c.system) / N).toFixed(1),
  reqPerCpuS: Math.round(N / ((c.user + c.system) / 1e6)),
  wallMs: Math.round(wall),
  gcCount: process.versions.bun ? null : gc.count,
  gcMs: process.versions.bun ? null : Math.round(gc.ms),
  rssMiB: +(m.rss / 2 ** 20).toFixed(1),
  heapUsedMiB: +(m.heapUsed / 2 ** 20).toFixed(1),
  load: (await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' '),
}));
await app.close();
process.exit(0);
