/**
 * `npm pack` in client/ makes a package a user can install: installed from the tarball into an
 * empty project (offline: it has no dependencies to fetch), it imports on Node and its type
 * declarations type-check a consumer under strict NodeNext resolution.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT } from '../../test/kit/server.js';

const dir = mkdtempSync(join(tmpdir(), 'onebox-client-pack-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('npm pack → npm install from the tarball: no dependencies, ESM import works, the .d.ts type-check a consumer', () => {
  const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], join(ROOT, 'client'))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed[0]!.files.map((f) => f.path);
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'README.md', 'package.json']) assert.ok(files.includes(f), `${f} is in the package`);
  assert.ok(!files.some((f) => f.startsWith('test/')), 'tests are not shipped');

  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  npm(['install', '--offline', '--no-audit', '--no-fund', join(dir, packed[0]!.filename)], app);
  const manifest = JSON.parse(readFileSync(join(app, 'node_modules', 'onebox-client', 'package.json'), 'utf8'));
  assert.equal(manifest.dependencies, undefined, 'zero runtime dependencies');

  const run = execFileSync(process.execPath, ['--input-type=module', '-e', "import * as c from 'onebox-client'; console.log(Object.keys(c).sort().join(','))"], { cwd: app, encoding: 'utf8' });
  for (const name of ['Onebox', 'OneboxError', 'Subscription', 'bindAppLifecycle', 'memoryStorage']) assert.ok(run.trim().split(',').includes(name), `exports ${name}`);

  writeFileSync(
    join(app, 'consumer.ts'),
    `import { Onebox, type Message, type ConnectionState } from 'onebox-client';
const ob = new Onebox({ url: 'wss://x/v1/ws', getToken: async () => 't' });
ob.on('state', (s: ConnectionState) => void s);
const sub = ob.subscribe<{ text: string }>('room:1', (m: Message<{ text: string }>) => void m.data.text);
sub.on('gap', (g) => void g.offset);
const r: Promise<{ offset?: number }> = ob.publish('room:1', { text: 'hi' });
void r;
// The browser's WebSocket and storage fit the options as they are.
new Onebox({ url: 'wss://x/v1/ws', getToken: () => 't', WebSocket: globalThis.WebSocket, storage: globalThis.localStorage });
`,
  );
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], types: [], noEmit: true }, files: ['consumer.ts'] }));
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { encoding: 'utf8' });
});
