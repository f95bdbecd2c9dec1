import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { boxMemory, formatRuntimeFlags, runtimeMemory, workerExecArgv } from '../../src/process/runtime-memory.js';

const GIB = 2 ** 30;
const box = { bytes: 8 * GIB, source: 'meminfo' as const };

test('the heap bound of each worker is 75% of the box divided by WORKERS', () => {
  const one = runtimeMemory({ engine: 'node', workers: 1, workerHeapMb: undefined, semiSpaceMb: 0, bunSmol: false }, box);
  const four = runtimeMemory({ engine: 'node', workers: 4, workerHeapMb: undefined, semiSpaceMb: 0, bunSmol: false }, box);
  assert.equal(one.heapMb, 6144);
  assert.equal(four.heapMb, 1536);
  assert.deepEqual(four.execArgv, ['--max-old-space-size=1536']);
  assert.deepEqual(four.env, {});
});

test('Node gets the heap bound and the semi-space as options; WORKER_HEAP_MB overrides, 0 and SEMI_SPACE_MB=0 keep the runtime defaults', () => {
  const set = runtimeMemory({ engine: 'node', workers: 2, workerHeapMb: 300, semiSpaceMb: 32, bunSmol: true }, box);
  assert.deepEqual(set.execArgv, ['--max-old-space-size=300', '--max-semi-space-size=32']);
  assert.equal(set.smol, false, '--smol is a Bun option');
  const none = runtimeMemory({ engine: 'node', workers: 2, workerHeapMb: 0, semiSpaceMb: 0, bunSmol: false }, box);
  assert.equal(none.heapMb, null);
  assert.deepEqual(none.execArgv, []);
});

test('Bun gets the heap bound as BUN_JSC_forceRAMSize in bytes, and --smol only when asked', () => {
  const r = runtimeMemory({ engine: 'bun', workers: 3, workerHeapMb: undefined, semiSpaceMb: 64, bunSmol: false }, { bytes: 6 * GIB, source: 'cgroup' });
  assert.equal(r.heapMb, 1536);
  assert.deepEqual(r.env, { BUN_JSC_forceRAMSize: String(1536 * 2 ** 20) });
  assert.deepEqual(r.execArgv, [], 'no semi-space option on Bun');
  assert.equal(r.semiSpaceMb, null);
  const smol = runtimeMemory({ engine: 'bun', workers: 1, workerHeapMb: 0, semiSpaceMb: 64, bunSmol: true }, box);
  assert.deepEqual(smol.execArgv, ['--smol']);
  assert.deepEqual(smol.env, {});
});

test("a worker's execArgv keeps the parent's other options and replaces the managed ones", () => {
  const r = runtimeMemory({ engine: 'node', workers: 2, workerHeapMb: 500, semiSpaceMb: 16, bunSmol: false }, box);
  assert.deepEqual(workerExecArgv(['--enable-source-maps', '--max-old-space-size=9000', '--max_semi_space_size=64'], r), [
    '--enable-source-maps',
    '--max-old-space-size=500',
    '--max-semi-space-size=16',
  ]);
});

test('runtime-flags prints the options on the first line and the environment on the second', () => {
  const bun = runtimeMemory({ engine: 'bun', workers: 1, workerHeapMb: 100, semiSpaceMb: 0, bunSmol: true }, box);
  assert.equal(formatRuntimeFlags(bun), `--smol\nBUN_JSC_forceRAMSize=${100 * 2 ** 20}\n`);
  const none = runtimeMemory({ engine: 'node', workers: 1, workerHeapMb: 0, semiSpaceMb: 0, bunSmol: false }, box);
  assert.equal(formatRuntimeFlags(none), '\n\n');
});

test("the box's memory is the cgroup limit when it is below MemTotal, else MemTotal", () => {
  const b = boxMemory();
  const total = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
  assert.ok(b.bytes > 0 && b.bytes <= total);
  assert.equal(b.source === 'meminfo', b.bytes === total);
});
