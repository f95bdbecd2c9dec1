/**
 * Hostile input found after issue 11's fixes, black-box on both engines and both stores:
 * each case once answered 500 (or 502) and must get the same 4xx code everywhere.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, ENGINES, signup, startServer, type Running } from '../kit/server.js';
import { createTestDatabase } from '../kit/pg.js';
import { eventually } from '../kit/eventually.js';

/** Write one request on a new connection; resolve with everything read until the server closes or the deadline. */
function rawExchange(port: number, request: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (out += d));
    sock.on('error', reject);
    sock.on('close', () => resolve(out));
    sock.setTimeout(timeoutMs, () => sock.destroy());
    sock.write(request, 'latin1');
  });
}

for (const engine of ENGINES) {
  for (const store of ['sqlite', 'postgres'] as const) {
    describe(`hostile ids and endpoints on ${engine} with ${store}`, () => {
      let s: Running;
      let u: { token: string; id: string };
      let dropDb: () => Promise<void> = async () => undefined;
      before(async () => {
        const env: Record<string, string> = {};
        if (store === 'postgres') {
          const t = await createTestDatabase();
          env.DATABASE_URL = t.url;
          dropDb = t.drop;
        }
        s = await startServer(engine, env);
        u = await signup(s.url);
      });
      after(async () => {
        await s.stop();
        await dropDb();
      });

      test('a path parameter holding U+0000 is 404 not_found on every store', async () => {
        for (const [token, path] of [
          [u.token, '/v1/devices/%00'],
          [u.token, '/v1/devices/a%00b'],
          [ADMIN_TOKEN, '/v1/users/%00/dashboard'],
          [ADMIN_TOKEN, `/v1/users/${u.id}%00/dashboard`],
        ] as const) {
          const method = path.startsWith('/v1/devices') ? 'DELETE' : 'GET';
          const r = await api(s.url, method, path, { token });
          assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
          assert.equal(r.body.error.code, 'not_found', path);
        }
        // The same routes still answer for real ids.
        assert.equal((await api(s.url, 'GET', `/v1/users/${u.id}/dashboard`, { token: ADMIN_TOKEN })).status, 200);
      });

      test('a Web Push endpoint that is not a URL to the runtime is 400 validation_failed, not 500', async () => {
        const keys = { p256dh: Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url'), auth: randomBytes(16).toString('base64url') };
        // Strings only: registration never connects or resolves.
        for (const endpoint of ['https://1.2.3.4.5/push', 'https://4294967296/push', 'https://0x100000000/push', 'https://[fe80::1%25eth0]/push', 'https://127.0.0.1%00.example.com/push', 'https://xn--localhost-/push']) {
          const r = await api(s.url, 'POST', '/v1/devices', { token: u.token, body: { platform: 'web', token: { endpoint, keys } } });
          assert.equal(r.status, 400, `${endpoint}: ${JSON.stringify(r.body)}`);
          assert.match(r.body.error.code, /^(validation_failed|push_endpoint_forbidden)$/, endpoint);
          assert.equal(r.body.error.field, 'token.endpoint', endpoint);
        }
        assert.deepEqual((await api(s.url, 'GET', '/v1/devices', { token: u.token })).body.devices, []);
        assert.ok(!s.lines.some((l) => l.level === 'error'), 'no error-level log line');
      });
    });
  }
}

for (const engine of ENGINES) {
  describe(`malformed Host and request targets on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine);
    });
    after(() => s.stop());

    test('a request whose Host or target is no URL gets a JSON error with a code, or is served', async () => {
      for (const [host, target] of [
        ['a b', '/healthz'],
        ['[::1', '/healthz'],
        ['x:99999', '/healthz'],
        ['user@x', '/healthz'],
        ['x/y', '/healthz'],
        ['x', '*'],
      ]) {
        // Bun's parser answers `OPTIONS *` itself, as a malformed request line (docs/errors.md).
        if (engine === 'bun' && target === '*') continue;
        const answer = await rawExchange(s.port, `${target === '*' ? 'OPTIONS' : 'GET'} ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
        const what = `Host ${host}, target ${target}: ${JSON.stringify(answer.slice(0, 200))}`;
        // Bun routes on the path and ignores the Host; Node cannot build the URL. Either
        // the probe answers, or the refusal is ours: JSON with a code from docs/errors.md.
        if (status === 200) continue;
        assert.equal(status, 400, what);
        assert.match(answer, /\r\n\r\n\{"error":\{"code":"bad_request"/, what);
      }
      assert.equal(s.proc.exitCode, null);
    });

    test('a refused WebSocket upgrade or a malformed request holds no descriptor once answered, even when the client never closes its side', async () => {
      const fds = () => readdirSync(`/proc/${s.proc.pid}/fd`).length;
      const base = fds();
      const upgrade = (target: string, key = 'dGhlIHNhbXBsZSBub25jZQ==') =>
        `GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      // A bad token (401), a bad key (400), a path with no WebSocket (404), a malformed header (400): 10 of each.
      const requests = [upgrade('/v1/ws?token=bad'), upgrade('/v1/ws?token=bad', 'short'), upgrade('/v1/nowhere'), 'GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n'].flatMap(
        (r) => Array<string>(10).fill(r),
      );
      const held = await Promise.all(
        requests.map(
          (request) =>
            new Promise<{ sock: Socket; answer: string }>((resolve, reject) => {
              // allowHalfOpen: the client reads the answer to its end and keeps its side open.
              const sock = connect({ port: s.port, host: '127.0.0.1', allowHalfOpen: true });
              let answer = '';
              sock.setEncoding('latin1');
              sock.on('data', (d: string) => (answer += d));
              sock.on('end', () => resolve({ sock, answer }));
              sock.on('error', reject);
              sock.write(request, 'latin1');
            }),
        ),
      );
      try {
        assert.deepEqual(
          held.map((h) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(h.answer)?.[1])),
          [401, 400, 404, 400].flatMap((status) => Array<number>(10).fill(status)),
        );
        await eventually(() => fds() <= base + 2, { what: `the server's descriptors back to ${base} (${fds()} once the answers were read)`, timeoutMs: 5000 });
      } finally {
        for (const h of held) h.sock.destroy();
      }
    });

    test('request metrics label a method outside the common set as other', async () => {
      const methods = ['PROPFIND', 'MKCALENDAR', 'SEARCH', 'PURGE', 'LINK', 'SOURCE'];
      for (const m of methods) assert.match(await rawExchange(s.port, `${m} /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 404 /);
      const body = (await api(s.url, 'GET', '/metrics')).body as string;
      const labels = new Set([...body.matchAll(/^onebox_http_request[^{]*\{[^}]*method="([^"]*)"/gm)].map((m) => m[1]));
      for (const m of methods) assert.ok(!labels.has(m), `method label ${m}`);
      assert.ok(labels.has('other'), [...labels].join(','));
    });
  });
}
