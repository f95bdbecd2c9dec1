/**
 * Issue 11, item 9 (readiness): `/readyz` says 503 `store_unavailable` while PostgreSQL
 * cannot be reached and 200 once it can again. The shared PostgreSQL server keeps running:
 * onebox reaches its test database through a loopback TCP proxy that the test controls
 * (refusing connections, or accepting and never answering).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../kit/eventually.js';
import { createTestDatabase, PG_URL } from '../kit/pg.js';
import { api, ENGINES, startServer, type Running } from '../kit/server.js';

type Mode = 'up' | 'refuse' | 'blackhole';

/** A TCP proxy to PostgreSQL on a kernel-chosen loopback port. */
async function startProxy(target: URL): Promise<{ port: number; set(mode: Mode): void; close(): Promise<void> }> {
  let mode: Mode = 'up';
  const sockets = new Set<Socket>();
  const track = (sock: Socket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
  };
  const server: Server = createServer((client) => {
    track(client);
    if (mode === 'refuse') return void client.destroy();
    if (mode === 'blackhole') return; // accepted, never answered
    const upstream = connect(Number(target.port || 5432), target.hostname);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return {
    port: address.port,
    set(next) {
      mode = next;
      // Every connection of the previous mode goes: pooled ones, and held blackholed ones.
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const engine of ENGINES) {
  describe(`readiness follows the store on ${engine} with postgres`, () => {
    let s: Running;
    let proxy: Awaited<ReturnType<typeof startProxy>>;
    let drop: () => Promise<void>;
    before(async () => {
      const db = await createTestDatabase();
      drop = db.drop;
      proxy = await startProxy(new URL(PG_URL!));
      const url = new URL(db.url);
      url.host = `127.0.0.1:${proxy.port}`;
      s = await startServer(engine, { DATABASE_URL: url.toString(), READY_STORE_TIMEOUT_MS: '300' });
    });
    after(async () => {
      await s?.stop();
      await proxy?.close();
      await drop?.();
    });

    const readyz = () => api(s.url, 'GET', '/readyz');
    const becomes = (status: number, what: string) =>
      eventually(async () => ((await readyz()).status === status ? true : undefined), { timeoutMs: 10_000, what });

    test('503 store_unavailable while connections are refused or unanswered, 200 when the store is back', async () => {
      assert.equal((await readyz()).status, 200);

      proxy.set('refuse');
      await becomes(503, '/readyz to answer 503 with the store refusing connections');
      const down = await readyz();
      assert.equal(down.body.error.code, 'store_unavailable');
      assert.ok(Number(down.headers.get('retry-after')) >= 1);
      // Liveness is not readiness: the process itself is fine.
      assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);

      proxy.set('up');
      await becomes(200, '/readyz to answer 200 once the store accepts connections again');

      proxy.set('blackhole');
      await becomes(503, '/readyz to answer 503 with the store never answering');
      const started = performance.now();
      const hung = await readyz();
      assert.equal(hung.status, 503);
      // Bounded by READY_STORE_TIMEOUT_MS (300 ms), with slack for a shared box.
      assert.ok(performance.now() - started < 3000, 'a probe waits at most about the store deadline');

      proxy.set('up');
      await becomes(200, '/readyz to answer 200 once the store answers again');
      // One warning when readiness was lost, one line when it came back; not a line per probe.
      // The lines reach us through a pipe, after the answers they went with.
      const count = (msg: string) => s.lines.filter((l) => l.msg === msg).length;
      const DOWN = 'store unreachable: /readyz answers 503';
      const UP = 'store reachable again: ready';
      await eventually(() => count(DOWN) >= 2 && count(UP) >= 2, { what: 'both losses and both returns logged' });
      assert.equal(count(DOWN), 2);
      assert.equal(count(UP), 2);
    });
  });
}
