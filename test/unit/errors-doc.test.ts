import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLOSE, ERROR_CODES, WS_ERROR_CODES } from '../../src/errors.js';
import { ROOT } from '../kit/server.js';

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

test('docs/errors.md lists exactly the close codes a client can see', () => {
  const table = section('WebSocket close codes').split(/\n\n/)[1] ?? '';
  const documented = [...table.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]));
  assert.deepEqual(documented.sort(), Object.values(CLOSE).sort());
});
