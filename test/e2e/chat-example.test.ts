/**
 * The chat example (examples/chat/, built on onebox-client) in headless Chromium against a
 * real onebox (Bun): two users chat; B goes offline (the SDK's pause, as a phone in the
 * background), A sends, B comes back and shows every message once and in order; the server
 * restarts and both pages recover. The screenshot goes to ONEBOX_CHAT_SCREENSHOT when set
 * (docs/chat-example.png is made that way).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { ROOT, startServer } from '../kit/server.js';
import { eventually } from '../kit/eventually.js';

const WAIT = { timeout: 20_000 };

/** The example's static server (examples/chat/serve.mjs) on port 0; resolves with its origin. */
async function serveExample(t: { after: (fn: () => void) => void }): Promise<string> {
  const proc = spawn(process.execPath, [join(ROOT, 'examples', 'chat', 'serve.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => proc.kill('SIGTERM'));
  let origin: string | undefined;
  createInterface({ input: proc.stdout }).on('line', (line) => (origin ??= /on (http:\/\/[^/ ]+)\//.exec(line)?.[1]));
  return eventually(() => origin, { what: 'the chat example server to listen' });
}

const texts = (page: Page) => page.locator('#messages li .text').allTextContents();
const offsets = async (page: Page) => Promise.all((await page.locator('#messages li').all()).map(async (li) => Number(await li.getAttribute('data-offset'))));
const count = (page: Page, selector: string, n: number, what: string) => eventually(async () => (await page.locator(selector).count()) === n, { timeoutMs: 20_000, what });

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

test('chat example in Chromium: B pauses, A sends, B shows every message once in order; both recover from a server restart', async (t) => {
  const origin = await serveExample(t);
  const s = await startServer('bun', { CHANNELS_FILE: join(ROOT, 'examples', 'chat', 'channels.json'), CORS_ORIGINS: origin });
  t.after(() => s.stop());
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  // One context each: two users with their own storage, as two phones.
  const open = async (name: string) => {
    const page = await (await browser.newContext({ viewport: { width: 900, height: 560 } })).newPage();
    await page.goto(`${origin}/?api=${encodeURIComponent(s.url)}`);
    await page.fill('#email', `${name.toLowerCase()}@example.com`);
    await page.fill('#password', 'a chat password');
    await page.fill('#name', name);
    await page.click('#do-signup');
    await page.waitForSelector('#state[data-state="connected"]', WAIT);
    return page;
  };
  const a = await open('Alice');
  const b = await open('Bob');
  // Presence: each page lists both users.
  await count(a, '#members li', 2, 'Alice to see two members');
  await count(b, '#members li', 2, 'Bob to see two members');

  await send(a, 'hello Bob');
  await count(b, '#messages li', 1, 'Bob to get the first message');

  await b.click('#pause');
  await b.waitForSelector('#state[data-state="disconnected"]', WAIT);
  const sent = Array.from({ length: 20 }, (_, i) => `while you were away ${i + 1}`);
  for (const text of sent) await send(a, text);
  await count(a, '#messages li', 21, "Alice's 20 messages to be acknowledged and shown to her");
  assert.equal(await b.locator('#messages li').count(), 1, 'a paused page receives nothing');

  await b.click('#pause');
  await b.waitForSelector('#state[data-state="connected"]', WAIT);
  await count(b, '#messages li', 21, 'Bob to catch up');
  assert.deepEqual(await texts(b), ['hello Bob', ...sent]);
  const seen = await offsets(b);
  assert.deepEqual(seen, await offsets(a));
  assert.ok(seen.every((o, i) => i === 0 || o > seen[i - 1]!), `offsets in order: ${seen.join(',')}`);

  // Restart: both pages see the connection go and come back on their own.
  const downA = a.waitForSelector('#state:not([data-state="connected"])', WAIT);
  const downB = b.waitForSelector('#state:not([data-state="connected"])', WAIT);
  await s.restart();
  await Promise.all([downA, downB]);
  await a.waitForSelector('#state[data-state="connected"]', WAIT);
  await b.waitForSelector('#state[data-state="connected"]', WAIT);
  await send(a, 'the server restarted');
  await send(b, 'and we are both back');
  await count(a, '#messages li', 23, 'Alice to get both messages after the restart');
  await count(b, '#messages li', 23, 'Bob to get both messages after the restart');
  for (const page of [a, b]) {
    const all = await texts(page);
    assert.deepEqual(all.slice(0, 21), ['hello Bob', ...sent]);
    assert.deepEqual(new Set(all.slice(21)), new Set(['the server restarted', 'and we are both back']));
  }
  assert.deepEqual(await offsets(a), await offsets(b));
  await count(a, '#members li', 2, 'Alice to see two members after the restart');
  await count(b, '#members li', 2, 'Bob to see two members after the restart');
  await b.screenshot({ path: process.env.ONEBOX_CHAT_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'onebox-shot-')), 'chat.png') });
});
