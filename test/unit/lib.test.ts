import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError, DeadlineError, scoped, sleep } from '../../src/lib/scope.js';
import { SingleFlight } from '../../src/lib/single-flight.js';

test('scoped resolves with every result in order', async () => {
  const r = await scoped({}, async () => 1, async () => 'two');
  assert.deepEqual(r, [1, 'two']);
});

test('a failing task aborts the others, and scoped waits for them to settle', async () => {
  let sawAbort = false;
  let settled = false;
  const boom = new Error('boom');
  await assert.rejects(
    scoped(
      {},
      async () => {
        throw boom;
      },
      async (signal) => {
        try {
          await sleep(5000, signal);
        } catch (e) {
          sawAbort = true;
          throw e;
        } finally {
          settled = true;
        }
      },
    ),
    (e) => e === boom,
  );
  assert.ok(sawAbort);
  assert.ok(settled);
});

test('the deadline aborts every task with a DeadlineError', async () => {
  const aborted: string[] = [];
  const task = (name: string) => async (signal: AbortSignal) => {
    signal.addEventListener('abort', () => aborted.push(name));
    await sleep(5000, signal);
  };
  await assert.rejects(scoped({ timeoutMs: 30 }, task('a'), task('b')), DeadlineError);
  assert.deepEqual(aborted.sort(), ['a', 'b']);
});

test('the parent signal cancels the scope', async () => {
  const parent = new AbortController();
  const p = scoped({ signal: parent.signal }, (s) => sleep(5000, s), (s) => sleep(5000, s));
  parent.abort();
  await assert.rejects(p, CancelledError);
});

test('single-flight: concurrent callers share one load', async () => {
  let n = 0;
  const sf = new SingleFlight(async () => {
    n++;
    await sleep(10);
    return { value: `v${n}`, expiresAt: Date.now() + 3_600_000 };
  });
  const all = await Promise.all(Array.from({ length: 20 }, () => sf.get()));
  assert.equal(n, 1);
  assert.ok(all.every((v) => v === 'v1'));
  assert.equal(await sf.get(), 'v1');
  assert.equal(n, 1);
});

test('single-flight: a failure is not cached', async () => {
  let n = 0;
  const sf = new SingleFlight(async () => {
    n++;
    if (n === 1) throw new Error('transient');
    return { value: 'ok', expiresAt: Infinity };
  });
  const first = await Promise.allSettled([sf.get(), sf.get()]);
  assert.ok(first.every((r) => r.status === 'rejected'));
  assert.equal(n, 1);
  assert.equal(await sf.get(), 'ok');
  assert.equal(n, 2);
});

test('single-flight: a value near expiry is refreshed once', async () => {
  let n = 0;
  const t0 = 1_000_000;
  const sf = new SingleFlight(async () => {
    n++;
    return { value: n, expiresAt: t0 + 120_000 * n };
  }, 60_000);
  assert.equal(await sf.get(t0), 1);
  assert.equal(await sf.get(t0 + 30_000), 1);
  const near = await Promise.all([sf.get(t0 + 70_000), sf.get(t0 + 70_000), sf.get(t0 + 70_000)]);
  assert.deepEqual(near, [2, 2, 2]);
  assert.equal(n, 2);
});
