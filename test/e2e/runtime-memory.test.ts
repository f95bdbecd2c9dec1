import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { api, ENGINES, startServer } from '../kit/server.js';
import { startRedis } from '../kit/redis.js';

const MIB = 2 ** 20;

/** /status.json's runtime block, from loopback. */
async function runtimeOf(url: string): Promise<{ heapLimitBytes: number | null; semiSpaceMb: number | null; smol: boolean }> {
  const r = await api(url, 'GET', '/status.json');
  assert.equal(r.status, 200);
  return (r.body as { runtime: { heapLimitBytes: number | null; semiSpaceMb: number | null; smol: boolean } }).runtime;
}

for (const engine of ENGINES) {
  describe(`runtime memory settings on ${engine}`, () => {
    test('bin/onebox starts the runtime with WORKER_HEAP_MB (and SEMI_SPACE_MB or BUN_SMOL); /status.json reports them', async (t) => {
      const s = await startServer(engine, { WORKER_HEAP_MB: '300', SEMI_SPACE_MB: '32', BUN_SMOL: 'true' });
      t.after(() => s.stop());
      const rt = await runtimeOf(s.url);
      if (engine === 'node') {
        // V8's heap_size_limit is the old space plus the young generation (three semi-spaces).
        assert.ok(rt.heapLimitBytes! >= 300 * MIB && rt.heapLimitBytes! <= (300 + 3 * 32) * MIB, `heap limit ${rt.heapLimitBytes}`);
        assert.equal(rt.semiSpaceMb, 32);
        assert.equal(rt.smol, false);
      } else {
        assert.equal(rt.heapLimitBytes, 300 * MIB);
        assert.equal(rt.semiSpaceMb, null);
        assert.equal(rt.smol, true);
      }
    });
  });
}

describe('runtime memory settings with WORKERS=2 and Redis on node', () => {
  test('the supervisor starts every worker with the heap bound sized for its share', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const s = await startServer('node', { WORKERS: '2', REDIS_URL: redis.url, WORKER_HEAP_MB: '256', SEMI_SPACE_MB: '16' });
    t.after(() => s.stop());
    // Each request lands on one worker; the cluster module hands connections round-robin.
    for (let i = 0; i < 4; i++) {
      const rt = await runtimeOf(s.url);
      assert.ok(rt.heapLimitBytes! >= 256 * MIB && rt.heapLimitBytes! <= (256 + 3 * 16) * MIB, `heap limit ${rt.heapLimitBytes}`);
      assert.equal(rt.semiSpaceMb, 16);
    }
  });
});
