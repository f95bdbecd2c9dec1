import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, redactText, redactUrl } from '../../src/observability/logger.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

test('redactUrl censors secret parameters by their decoded name, keeping the rest', () => {
  for (const name of ['token', '%74oken', 'to%6Ben', 'TOKEN', 'access_token', 'refresh_token', 'admin', '%61dmin', 'password', 'pass%77ord', 'api_key']) {
    const out = redactUrl(`/v1/ws?a=1&${name}=${JWT}&b=2`);
    assert.ok(!out.includes(JWT), `${name}: ${out}`);
    assert.match(out, /\?a=1&.*=\[redacted\]&b=2$/, name);
  }
  assert.equal(redactUrl('/v1/devices?limit=10'), '/v1/devices?limit=10');
  assert.equal(redactUrl('/v1/devices'), '/v1/devices');
  // A bad escape elsewhere does not stop the decoding of the secret's name.
  assert.ok(!redactUrl(`/x?y=%zz&%74oken=${JWT}`).includes(JWT));
});

test('redactText censors URL credentials and secret query values inside free text', () => {
  const msg = `Request cannot be constructed from a URL that includes credentials: http://u:hunter2@x/v1/me?to%6Ben=${JWT}&q=ok`;
  const out = redactText(msg);
  assert.ok(!out.includes('hunter2'), out);
  assert.ok(!out.includes(JWT), out);
  assert.match(out, /q=ok$/);
});

test('the logger scrubs error messages, stacks, nested causes and secret fields', () => {
  let text = '';
  const sink = new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) });
  const log = createLogger('debug', {}, sink);
  const err = new Error(`bad url /status?admin=${JWT}`, { cause: new Error(`inner http://u:${JWT}@x/v1/ws?%74oken=${JWT}`) });
  log.error({ err }, 'failed');
  log.warn({ err: `as text ?access_token=${JWT}` }, 'failed');
  log.info({ password: JWT, headers: { authorization: `Bearer ${JWT}` }, user: { token: JWT } }, 'fields');
  assert.equal(text.trim().split('\n').length, 3);
  assert.ok(!text.includes(JWT), text);
  assert.match(text, /bad url \/status\?admin=\[redacted\]/);
});
