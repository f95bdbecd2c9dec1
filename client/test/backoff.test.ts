/** Reconnect delays: full-jitter bounds, the cap, the suspended window, server hints. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_DEFAULTS, backoffDelay, hintedDelay, parseCloseReason, restartDelay, suspendedDelay } from '../src/index.js';

const b = BACKOFF_DEFAULTS;

test('full jitter: attempt n waits in [0, min(cap, base × 2^n)), the window doubling up to the cap', () => {
  const windows = [0, 1, 2, 3, 4, 5, 6, 10, 40].map((n) => backoffDelay(b, n, () => 0.999999) + 1);
  assert.deepEqual(windows, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  for (const n of [0, 3, 10]) assert.equal(backoffDelay(b, n, () => 0), 0, 'the low end is 0 (full jitter)');
});

test('jitter spreads a fleet: 10,000 clients at attempt 3 fill the window evenly, none outside it', () => {
  const delays = Array.from({ length: 10_000 }, () => backoffDelay(b, 3, Math.random));
  assert.ok(delays.every((d) => d >= 0 && d < 8000));
  const buckets = [0, 0, 0, 0];
  for (const d of delays) buckets[Math.floor(d / 2000)]!++;
  // Each quarter of the window holds about a quarter of the fleet (±20 % of 2,500).
  for (const n of buckets) assert.ok(n > 2000 && n < 3000, `bucket sizes ${buckets.join(', ')}`);
});

test('suspended retries fall in [0.5, 1] × suspendedRetryMs; a restart spreads over [0, restartSpreadMs); retry=<s> waits [s, 2s]', () => {
  assert.deepEqual([suspendedDelay(b, () => 0), suspendedDelay(b, () => 0.999999)], [30_000, 59_999]);
  assert.deepEqual([restartDelay(b, () => 0), restartDelay(b, () => 0.999999)], [0, 1999]);
  assert.deepEqual([hintedDelay(5, () => 0), hintedDelay(5, () => 0.999999)], [5000, 9999]);
  const custom = { ...b, baseMs: 100, capMs: 400 };
  assert.deepEqual([0, 1, 2, 3].map((n) => backoffDelay(custom, n, () => 0.999999) + 1), [100, 200, 400, 400]);
});

test('close reasons: `<code>` and `<code> retry=<s>` parse; anything else has neither', () => {
  assert.deepEqual(parseCloseReason('over_capacity retry=7'), { code: 'over_capacity', retryS: 7 });
  assert.deepEqual(parseCloseReason('token_expired'), { code: 'token_expired', retryS: undefined });
  assert.deepEqual(parseCloseReason(''), { code: undefined, retryS: undefined });
  assert.deepEqual(parseCloseReason('Some Proxy Said No'), { code: undefined, retryS: undefined });
});
