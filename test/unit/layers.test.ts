/**
 * The rooms of src/ import one way (DESIGN.md, "Shape"): main -> server/cli -> engine -> app ->
 * realtime -> push/mail -> store -> process -> observability -> config/errors -> lib, and no module
 * imports itself back through others. Static and dynamic imports, type-only ones included.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../kit/server.js';

const RANK: Record<string, number> = {
  main: 0,
  server: 1,
  cli: 1,
  engine: 2,
  app: 3,
  realtime: 4,
  push: 5,
  mail: 5,
  store: 6,
  process: 7,
  observability: 8,
  config: 9,
  errors: 9,
  lib: 10,
};

const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The room of a source file: its first folder under src/, or its own name at the top. */
const roomOf = (file: string) => relative(SRC, file).split('/')[0]!.replace(/\.ts$/, '');

const IMPORT = /(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
}

const files = sources(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('every file of src/ sits in a known room', () => {
  for (const f of files) assert.ok(roomOf(f) in RANK, `${relative(ROOT, f)}: room ${roomOf(f)} has no rank`);
});

test('no import runs up the layers', () => {
  const upward: string[] = [];
  for (const [file, imports] of graph) {
    for (const target of imports) {
      const from = roomOf(file);
      const to = roomOf(target);
      if (from !== to && RANK[to]! <= RANK[from]!) upward.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
    }
  }
  assert.deepEqual(upward, []);
});

test('no import cycle among the files of src/', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

/**
 * The one way out: the bench's clients reconnect with the client SDK's own backoff functions
 * (client/src/backoff.ts: pure functions, a type-only import), so the storm figure is the SDK's.
 */
const allowedOutside = (file: string, target: string) =>
  relative(SRC, file).startsWith('cli/bench/') && relative(ROOT, target) === join('client', 'src', 'backoff.ts');

test('nothing in src/ imports from test/ or from outside src/ (but the bench, from the client SDK\'s backoff)', () => {
  const outside: string[] = [];
  for (const [file, imports] of graph) {
    for (const target of imports) {
      if (relative(SRC, target).startsWith('..') && !allowedOutside(file, target)) outside.push(`${relative(SRC, file)} -> ${relative(ROOT, target)}`);
    }
  }
  assert.deepEqual(outside, []);
});

test('serve never loads the bench: main.ts imports src/cli/bench only lazily, for the bench command', () => {
  const main = readFileSync(join(SRC, 'main.ts'), 'utf8');
  const all = [...main.matchAll(/(?:from|import)\s*\(?\s*'(\.\/cli\/bench\/[^']+)'/g)].map((m) => m[0]);
  const lazy = [...main.matchAll(/await import\('(\.\/cli\/bench\/[^']+)'\)/g)];
  assert.ok(all.length > 0, 'main.ts runs the bench');
  assert.equal(lazy.length, all.length, `static imports of the bench in main.ts: ${all.join(', ')}`);
  assert.match(main, /if \(command === 'bench'\) return \(await import\('\.\/cli\/bench\/run\.js'\)\)/);
});
