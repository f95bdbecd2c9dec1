import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Hono } from 'hono';
import { buildServer, type OneboxServer } from '../../src/server.js';
import { handleError } from '../../src/app/error-handler.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'onebox-unit-'));
let app: OneboxServer;
const env = { ip: '127.0.0.1' };
before(async () => {
  app = await buildServer(loadConfig({ DATA_DIR: dir }), createLogger('silent'));
});
after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

test('readyz is 503 while starting, 200 when ready, 503 while draining; API too', async () => {
  const ready = () => app.fetch(new Request('http://x/readyz'), env);
  assert.equal((await ready()).status, 503);
  const api = await app.fetch(new Request('http://x/v1/me'), env);
  assert.equal(api.status, 503);
  assert.equal(((await api.json()) as any).error.code, 'not_ready');
  app.lifecycle.ready();
  assert.equal((await ready()).status, 200);
  app.lifecycle.drain();
  assert.equal((await ready()).status, 503);
  assert.equal((await app.fetch(new Request('http://x/healthz'), env)).status, 200);
});

test('the generated development secret is kept with 0600 permissions', () => {
  assert.equal(statSync(join(dir, 'jwt-secret')).mode & 0o777, 0o600);
});

test('an unexpected error is a 500 without internals', async () => {
  const h = new Hono();
  h.onError(handleError(createLogger('silent')) as never);
  h.get('/boom', () => {
    throw new Error('connection string postgres://user:hunter2@db');
  });
  const res = await h.fetch(new Request('http://x/boom'));
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.deepEqual(JSON.parse(text), { error: { code: 'internal', message: 'internal error' } });
  assert.ok(!text.includes('hunter2'));
});
