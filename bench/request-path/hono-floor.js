/* global Bun */
// Hono's own cost on one core, for bench/request-path/run.sh (FLOOR=1): one GET /healthz
// route answering like onebox's, behind MIDDLEWARE empty middlewares (each only awaits next).
import { Hono } from 'hono';

const app = new Hono();
for (let i = 0; i < Number(process.env.MIDDLEWARE ?? 0); i++) app.use(async (_c, next) => { await next(); });
app.get('/healthz', (c) => c.json({ status: 'ok' }));
Bun.serve({ port: Number(process.env.PORT), hostname: '127.0.0.1', fetch: app.fetch });
