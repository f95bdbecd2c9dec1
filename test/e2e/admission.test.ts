/**
 * Upgrade admission (issue 17, the Node reconnect storm): with MAX_HANDSHAKES upgrades in
 * flight, the next one is refused 503 over_capacity with Retry-After before its token is
 * checked, on both engines (the bound is the gateway's). FAULT_STORE_DELAY_MS holds each
 * token check, so the in-flight handshakes stay in flight while the test looks. On Node, a
 * handshake whose client sent FIN meanwhile is dropped, not upgraded (Bun's server does not
 * show a half-closed socket to JavaScript before the upgrade).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { api, ENGINES, startServer, type Running } from '../kit/server.js';
import { connectWs, refusedUpgrade, type Client } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { metric } from '../kit/metrics.js';

for (const engine of ENGINES) {
  describe(`MAX_HANDSHAKES on ${engine}`, () => {
    let s: Running;
    let token: string;
    before(async () => {
      s = await startServer(engine, { TEST_MODE: 'true', FAULT_STORE_DELAY_MS: '5000', MAX_HANDSHAKES: '2' });
      const r = await api(s.url, 'POST', '/v1/auth/signup', { body: { email: `adm-${engine}-${Date.now()}@example.com`, password: 'correct horse battery' } });
      assert.equal(r.status, 201);
      token = r.body.token as string;
    });
    after(() => s.stop());

    test('with MAX_HANDSHAKES=2 in flight a third upgrade is 503 over_capacity with Retry-After; the two then open', async () => {
      const inFlight = [connectWs(s.wsUrl, token), connectWs(s.wsUrl, token)];
      await eventually(async () => (await metric(s.url, 'onebox_ws_handshakes_in_flight')) === 2 || null, { timeoutMs: 4000, what: 'two handshakes in flight' });
      const r = await refusedUpgrade(`${s.wsUrl}?token=${encodeURIComponent(token)}`);
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'over_capacity');
      assert.ok(Number(r.headers['retry-after']) >= 1, String(r.headers['retry-after']));
      assert.equal(await metric(s.url, 'onebox_ws_upgrades_refused_total{reason="handshakes"}'), 1);
      const open: Client[] = await Promise.all(inFlight);
      assert.equal(await metric(s.url, 'onebox_ws_connections'), 2);
      assert.equal(await metric(s.url, 'onebox_ws_handshakes_in_flight'), 0);
      for (const c of open) c.close();
    });

    if (engine === 'node') {
      test('a handshake whose client sent FIN while its token was checked is dropped, never opened, and counted client_gone', async () => {
        const u = new URL(s.url);
        const sock = connect({ host: u.hostname, port: Number(u.port) });
        await new Promise((resolve) => sock.once('connect', resolve));
        sock.write(
          `GET /v1/ws?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
        await eventually(async () => (await metric(s.url, 'onebox_ws_handshakes_in_flight')) === 1 || null, { timeoutMs: 4000, what: 'the handshake in flight' });
        let answer = '';
        sock.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        sock.end();
        await eventually(async () => (await metric(s.url, 'onebox_ws_upgrades_refused_total{reason="client_gone"}', 0)) === 1 || null, {
          timeoutMs: 8000,
          what: 'the handshake to be dropped as client_gone',
        });
        assert.equal(await metric(s.url, 'onebox_ws_handshakes_in_flight'), 0);
        assert.equal(await metric(s.url, 'onebox_ws_connections'), 0);
        assert.doesNotMatch(answer, /101 Switching Protocols/);
      });
    }
  });
}
