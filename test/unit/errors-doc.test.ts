import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/app/errors.js';
import { WS_ERROR_CODES } from '../../src/realtime/protocol.js';
import { ROOT } from '../helpers/server.js';

const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
const section = (title: string) => doc.split(/^## /m).find((s) => s.startsWith(title)) ?? '';
const codesIn = (text: string) => new Set([...text.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]));

test('docs/errors.md lists exactly the HTTP error codes, with their statuses', () => {
  const http = section('HTTP');
  assert.deepEqual([...codesIn(http)].sort(), Object.keys(ERROR_CODES).sort());
  for (const [code, status] of Object.entries(ERROR_CODES)) {
    assert.match(http, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), code);
  }
});

test('docs/errors.md lists exactly the WebSocket error codes', () => {
  assert.deepEqual([...codesIn(section('WebSocket `error`'))].sort(), [...WS_ERROR_CODES].sort());
});
