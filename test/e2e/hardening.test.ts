/**
 * Hostile input, black-box on both engines: each case is an input that once crashed a
 * server, starved other users or got a wrong answer (issue 11), and must now get a clear
 * error while everything else goes on.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, CHAT_NAMESPACE, ENGINES, runCli, signup, startServer, type Running } from '../kit/server.js';
import { ClientPool, connectWs, type Client } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { metric } from '../kit/metrics.js';
import { floodUntilDropped } from '../kit/flood.js';
import { rawHttp } from '../kit/raw-http.js';


const nested = (depth: number, leaf = '1') => '['.repeat(depth) + leaf + ']'.repeat(depth);

/**
 * The kernel's TCP state of the server's end of a loopback connection (`01` ESTABLISHED,
 * `04` FIN_WAIT1, ...), or undefined once it is gone: what the server did to a peer that
 * reads nothing, which the paused peer itself cannot see.
 */
function serverSideState(serverPort: number, clientPort: number): string | undefined {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (local?.endsWith(hex(serverPort)) && remote?.endsWith(hex(clientPort))) return state;
  }
  return undefined;
}

function upgradeRequest(token: string, headers: Record<string, string> = {}): string {
  const h = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  return `GET /v1/ws?token=${token} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}

for (const engine of ENGINES) {
  describe(`hostile input on ${engine}`, () => {
    let s: Running;
    let alice: { token: string; id: string };
    const pool = new ClientPool(() => s.wsUrl);
    const open = (token: string) => pool.open(token);
    before(async () => {
      s = await startServer(engine, { MAX_CONNECTIONS: '5', MAX_MESSAGE_BYTES: '1048576' }, CHAT_NAMESPACE);
      alice = await signup(s.url, 'alice');
    });
    after(async () => {
      pool.closeAll();
      await s.stop();
    });

    test('a pub nested 7,000 and 200,000 deep gets json_too_deep; the server and its other sockets go on', async () => {
      const attacker = await open(alice.token);
      const bystander = await open(alice.token);
      bystander.send({ op: 'sub', topic: 'chat:1', id: 's' });
      await bystander.next((f) => f.id === 's');
      for (const depth of [7_000, 200_000]) {
        attacker.ws.send(`{"op":"pub","topic":"room:1","id":"deep","data":${nested(depth)}}`);
        const err = await attacker.next((f) => f.op === 'error');
        assert.equal(err.op, 'error');
        assert.equal(err.code, 'json_too_deep');
      }
      attacker.send({ op: 'pub', topic: 'chat:1', id: 'ok', data: { fine: [[1]] } });
      assert.equal((await bystander.next((f) => f.op === 'msg')).data.fine[0][0], 1);
      await attacker.sync();
      assert.equal(s.proc.exitCode, null);
      attacker.close();
      bystander.close();
    });

    test('POST /v1/events with props nested 200,000 deep: 400 json_too_deep', async () => {
      const body = `{"events":[{"type":"deep","ts":${Date.now()},"props":{"p":${nested(200_000)}}}]}`;
      assert.ok(body.length < 1024 * 1024);
      const r = await api(s.url, 'POST', '/v1/events', { token: alice.token, raw: body, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'json_too_deep');
      // Within the bound, nesting is fine.
      const ok = await api(s.url, 'POST', '/v1/events', { token: alice.token, body: { events: [{ type: 'ok', ts: Date.now(), props: { p: [[[1]]] } }] } });
      assert.equal(ok.status, 202);
    });

    test('a NUL in a text field is 400 validation_failed, and nothing is written', async () => {
      const before = await api(s.url, 'GET', '/v1/me', { token: alice.token });
      assert.equal(before.status, 200);
      const r = await api(s.url, 'PATCH', '/v1/me', { token: alice.token, body: { displayName: 'a\u0000b' } });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'validation_failed');
      const me = await api(s.url, 'GET', '/v1/me', { token: alice.token });
      assert.equal(me.status, 200);
      assert.deepEqual(me.body.user, before.body.user);
    });

    test('bad and aborted handshakes give back their connection slot (MAX_CONNECTIONS=5)', async () => {
      for (let i = 0; i < 6; i++) {
        assert.match(await rawHttp(s.port, upgradeRequest(alice.token, { 'Sec-WebSocket-Version': '99' })), /^HTTP\/1\.1 426 /);
        assert.match(await rawHttp(s.port, upgradeRequest(alice.token, { 'Sec-WebSocket-Key': 'short' })), /^HTTP\/1\.1 400 /);
      }
      // Clients that vanish right after sending the handshake.
      await Promise.all(
        Array.from({ length: 40 }, () => new Promise<void>((resolve) => {
          const sock: Socket = connect(s.port, '127.0.0.1', () => {
            sock.write(upgradeRequest(alice.token));
            sock.destroy();
          });
          sock.on('error', () => undefined);
          sock.on('close', () => resolve());
        })),
      );
      await eventually(async () => (await metric(s.url, 'onebox_ws_connections')) === 0, { what: 'no open connection left' });
      const five: Client[] = [];
      for (let i = 0; i < 5; i++) five.push(await open(alice.token));
      for (const c of five) c.close();
      await eventually(async () => (await metric(s.url, 'onebox_ws_connections')) === 0, { what: 'the five to close' });
    });

    test('a refused handshake answers in JSON with a code', async () => {
      const codeOf = (answer: string) => (JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code;
      const version = await rawHttp(s.port, upgradeRequest(alice.token, { 'Sec-WebSocket-Version': '99' }));
      assert.equal(codeOf(version), 'upgrade_required');
      assert.match(version, /sec-websocket-version: 13/i);
      assert.equal(codeOf(await rawHttp(s.port, upgradeRequest(alice.token, { 'Sec-WebSocket-Key': 'short' }))), 'bad_request');
    });

    test('HTTP/1.0 without Host: health checks answer', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const answer = await rawHttp(s.port, `GET ${path} HTTP/1.0\r\n\r\n`);
        assert.match(answer, /^HTTP\/1\.[01] 200 /, `${path}: ${answer.slice(0, 80)}`);
        assert.match(answer, /"status":"(ok|ready)"/);
      }
    });

    test('a Content-Length far over the limit gets our JSON 413 and a closed connection', async () => {
      const answer = await rawHttp(s.port, `POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{`);
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.match(answer, /connection: close/i);
      assert.match(answer, /"code":"payload_too_large"/);
    });

    test('after a 413 for a 3 MiB body, the keep-alive client’s next request succeeds', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const send = (method: string, path: string, body?: Buffer) =>
        new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
          const req = request(`${s.url}${path}`, { method, agent, headers: body ? { 'content-type': 'application/json', authorization: `Bearer ${alice.token}` } : {} }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
          });
          req.on('error', reject);
          req.end(body);
        });
      try {
        // The server answers and closes before the body is in: the client either reads the
        // 413 (with Connection: close) or, still writing, sees the socket go (EPIPE/ECONNRESET).
        // Either way its pool must not hand the dying socket to the next request.
        const big = await send('POST', '/v1/events', Buffer.alloc(3 * 1024 * 1024, 0x20)).catch((err: NodeJS.ErrnoException) => err);
        if (big instanceof Error) assert.match(String(big.code), /^(EPIPE|ECONNRESET)$/);
        else assert.deepEqual([big.status, big.connection], [413, 'close']);
        for (let i = 0; i < 3; i++) assert.equal((await send('GET', '/healthz')).status, 200);
      } finally {
        agent.destroy();
      }
    });

    test('a client that leaves mid-body is counted as 499, not as a server error', async () => {
      const before = await metric(s.url, 'onebox_http_requests_total{route="/v1/events",method="POST",status="500"}', 0);
      await new Promise<void>((resolve) => {
        const sock = connect(s.port, '127.0.0.1', () => {
          sock.write(`POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"events":[`);
          setTimeout(() => sock.destroy(), 200);
        });
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
      await eventually(
        async () => (await metric(s.url, 'onebox_http_requests_total{route="/v1/events",method="POST",status="499"}', 0)) === 1,
        { what: 'the 499 in the metrics' },
      );
      assert.equal(await metric(s.url, 'onebox_http_requests_total{route="/v1/events",method="POST",status="500"}', 0), before);
      assert.ok(!s.lines.some((l) => l.level === 'error'), 'no error-level log line');
    });
  });

  describe(`slow consumer close on ${engine}`, () => {
    let s: Running;
    let bob: { token: string };
    const PING_INTERVAL_MS = 4000;
    before(async () => {
      // The idle timeout is long so that backpressure, not silence, drops the paused clients.
      s = await startServer(engine, { MAX_BUFFERED_BYTES: '262144', PING_INTERVAL_MS: String(PING_INTERVAL_MS), IDLE_TIMEOUT_MS: '60000' });
      bob = await signup(s.url, 'bob');
    });
    after(() => s.stop());

    const socketOf = (c: Client) => (c.ws as unknown as { _socket: { pause(): void; resume(): void; localPort: number } })._socket;

    test('a dropped consumer that reads again 3 s later gets the queued data, then 1013', async () => {
      const slow = await connectWs(s.wsUrl, bob.token);
      slow.send({ op: 'sub', topic: 'public:flood-a', id: 's' });
      await slow.next((f) => f.id === 's');
      socketOf(slow).pause();
      await floodUntilDropped(s.url, 'public:flood-a');
      await new Promise((r) => setTimeout(r, 3000));
      socketOf(slow).resume();
      const { code } = await slow.waitClosed();
      assert.equal(code, 1013);
      assert.ok(slow.frames.filter((f) => f.op === 'msg').length > 0, 'queued messages arrived before the close');
    });

    test('a dropped consumer that never reads again is cut off within the bound', async () => {
      const slow = await connectWs(s.wsUrl, bob.token);
      slow.send({ op: 'sub', topic: 'public:flood-b', id: 's' });
      await slow.next((f) => f.id === 's');
      socketOf(slow).pause();
      const clientPort = socketOf(slow).localPort;
      assert.equal(serverSideState(s.port, clientPort), '01', "the server's end is found, ESTABLISHED");
      await floodUntilDropped(s.url, 'public:flood-b');
      const dropped = Date.now();
      await eventually(async () => (await metric(s.url, 'onebox_ws_connections')) === 0, { what: 'the dropped connection to be uncounted' });
      // The bound is one PING_INTERVAL_MS (4 s here), checked on the heartbeat's tick: then
      // the server closes its end, whatever is still queued for the peer.
      await eventually(() => serverSideState(s.port, clientPort) !== '01', {
        timeoutMs: PING_INTERVAL_MS * 3,
        what: "the server to close its end of the dropped consumer's connection",
      });
      const elapsed = Date.now() - dropped;
      assert.ok(elapsed <= PING_INTERVAL_MS + 1500, `cut off ${elapsed} ms after the drop; the bound is ${PING_INTERVAL_MS} ms`);
      slow.close();
    });
  });

  describe(`a deep frame with WORKERS=2 and Redis on ${engine}`, () => {
    let redis: RedisServer;
    let s: Running;
    before(async () => {
      redis = await startRedis();
      s = await startServer(engine, { WORKERS: '2', REDIS_URL: redis.url, MAX_MESSAGE_BYTES: '1048576' }, CHAT_NAMESPACE);
    });
    after(async () => {
      await s.stop();
      await redis.stop();
    });
    test('is refused and no worker restarts', async () => {
      const u = await signup(s.url);
      const c = await connectWs(s.wsUrl, u.token);
      c.ws.send(`{"op":"pub","topic":"room:1","id":"deep","data":${nested(200_000)}}`);
      assert.equal((await c.next((f) => f.op === 'error')).code, 'json_too_deep');
      await c.sync();
      c.close();
      assert.ok(!s.lines.some((l) => l.msg === 'worker exited; restarting'));
    });
  });
}

describe('start-up refusals', () => {
  test('an empty DATA_DIR/jwt-secret stops the start, naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onebox-secret-'));
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'jwt-secret'), '');
      const r = await runCli(['serve'], { ENGINE: 'node', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dir });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /jwt-secret/);
      assert.doesNotMatch(r.stdout, /"msg":"listening"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
