import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conn } from '../../src/realtime/conn.js';
import { Heartbeat } from '../../src/realtime/heartbeat.js';

test('pings are spread evenly over the interval, each connection once per interval', () => {
  const pinged: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: (c) => pinged.push(c.id), idle: () => undefined, tick: () => undefined });
  const conns = Array.from({ length: 400 }, (_, i) => new Conn(i, 'u', '127.0.0.1', 0));
  for (const c of conns) hb.add(c, 0);
  const perTick: number[] = [];
  const ticks = Math.round(1000 / hb.tickMs);
  for (let t = 1; t <= ticks; t++) {
    const before = pinged.length;
    for (const c of conns) hb.touch(c, t * hb.tickMs);
    hb.tick(t * hb.tickMs);
    perTick.push(pinged.length - before);
  }
  assert.equal(pinged.length, 400);
  assert.equal(new Set(pinged).size, 400);
  assert.ok(Math.max(...perTick) - Math.min(...perTick) <= 1, `uneven: ${perTick}`);
});

test('silent connections are terminated once past the idle timeout, active ones kept', () => {
  const idle: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: () => undefined, idle: (c) => idle.push(c.id), tick: () => undefined });
  const quiet = new Conn(1, 'u', '127.0.0.1', 0);
  const chatty = new Conn(2, 'u', '127.0.0.1', 0);
  hb.add(quiet, 0);
  hb.add(chatty, 0);
  for (let t = 0; t <= 2500; t += 25) {
    hb.touch(chatty, t);
    hb.tick(t);
  }
  assert.deepEqual(idle, []);
  hb.touch(chatty, 2525);
  hb.tick(2525);
  assert.deepEqual(idle, [1]);
  hb.remove(chatty);
  hb.tick(10_000);
  assert.deepEqual(idle, [1]);
});

const noHooks = { ping: () => undefined, idle: () => undefined, tick: () => undefined };

test('the interval is cut into one bucket per 25 ms, at least one and at most 120', () => {
  assert.equal(new Heartbeat(1000, 2500, noHooks).tickMs, 25);
  assert.equal(new Heartbeat(10, 100, noHooks).tickMs, 10, 'one bucket below 25 ms');
  assert.equal(new Heartbeat(30_000, 75_000, noHooks).tickMs, 250, '120 buckets at most');
});

test('no bucket holds more than its share: with N connections and B buckets, each tick pings at most ceil(N/B)', () => {
  const perTick: number[] = [];
  let count = 0;
  const hb = new Heartbeat(1000, 1e9, { ping: () => count++, idle: () => undefined, tick: () => undefined });
  const buckets = 1000 / hb.tickMs;
  const n = 3 * buckets + 7;
  for (let i = 0; i < n; i++) hb.add(new Conn(i, 'u', '127.0.0.1', 0), 0);
  for (let t = 1; t <= buckets; t++) {
    count = 0;
    hb.tick(t * hb.tickMs);
    perTick.push(count);
  }
  assert.equal(perTick.reduce((a, b) => a + b, 0), n);
  assert.equal(Math.max(...perTick), Math.ceil(n / buckets));
  assert.equal(Math.min(...perTick), Math.floor(n / buckets));
});

test('over several intervals each connection is pinged once per interval', () => {
  const pings = new Map<number, number>();
  const hb = new Heartbeat(1000, 1e9, { ping: (c) => pings.set(c.id, (pings.get(c.id) ?? 0) + 1), idle: () => undefined, tick: () => undefined });
  for (let i = 0; i < 97; i++) hb.add(new Conn(i, 'u', '127.0.0.1', 0), 0);
  const ticks = 3 * (1000 / hb.tickMs);
  for (let t = 1; t <= ticks; t++) hb.tick(t * hb.tickMs);
  assert.equal(pings.size, 97);
  assert.deepEqual(new Set(pings.values()), new Set([3]));
});

test('a connection silent for exactly the idle timeout stays; one millisecond more and the next tick evicts it', () => {
  const idle: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: () => undefined, idle: (c) => idle.push(c.id), tick: () => undefined });
  const c = new Conn(1, 'u', '127.0.0.1', 0);
  hb.add(c, 100);
  hb.tick(2600);
  assert.deepEqual(idle, [], 'at exactly the timeout');
  hb.tick(2601);
  assert.deepEqual(idle, [1]);
  assert.equal(c.bucket, -1, 'removed from its bucket');
  hb.tick(1e9);
  assert.deepEqual(idle, [1], 'evicted once');
});

test('touch moves a connection to the tail: the sweep evicts the others, oldest first, and keeps it', () => {
  const idle: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: () => undefined, idle: (c) => idle.push(c.id), tick: () => undefined });
  const [a, b, c] = [1, 2, 3].map((id) => new Conn(id, 'u', '127.0.0.1', 0)) as [Conn, Conn, Conn];
  hb.add(a, 0);
  hb.add(b, 10);
  hb.add(c, 20);
  hb.touch(a, 30);
  hb.tick(2525);
  assert.deepEqual(idle, [2, 3]);
  hb.tick(2531);
  assert.deepEqual(idle, [2, 3, 1]);
});

test('touch moves a connection from the middle of the list without losing its neighbours', () => {
  const idle: number[] = [];
  const hb = new Heartbeat(1000, 100, { ping: () => undefined, idle: (c) => idle.push(c.id), tick: () => undefined });
  const conns = [1, 2, 3, 4].map((id) => new Conn(id, 'u', '127.0.0.1', 0));
  for (const c of conns) hb.add(c, 0);
  hb.touch(conns[1]!, 50);
  hb.touch(conns[3]!, 60);
  hb.touch(conns[3]!, 60);
  hb.tick(101);
  assert.deepEqual(idle, [1, 3]);
  hb.tick(161);
  assert.deepEqual(idle, [1, 3, 2, 4]);
});

test('a removed connection is never pinged or evicted, even when touched afterwards', () => {
  const seen: string[] = [];
  const hb = new Heartbeat(1000, 100, { ping: (c) => seen.push(`ping ${c.id}`), idle: (c) => seen.push(`idle ${c.id}`), tick: () => undefined });
  const gone = new Conn(1, 'u', '127.0.0.1', 0);
  hb.add(gone, 0);
  hb.remove(gone);
  hb.touch(gone, 5);
  hb.remove(gone);
  for (let t = 1; t <= 80; t++) hb.tick(t * hb.tickMs);
  assert.deepEqual(seen, []);
});

test('the tick hook runs once per tick with its time, after the idle sweep and the pings', () => {
  const seen: string[] = [];
  const hb = new Heartbeat(1000, 100, { ping: (c) => seen.push(`ping ${c.id}`), idle: (c) => seen.push(`idle ${c.id}`), tick: (now) => seen.push(`tick ${now}`) });
  hb.add(new Conn(1, 'u', '127.0.0.1', 0), 0);
  hb.add(new Conn(2, 'u', '127.0.0.1', 0), 90);
  hb.tick(25);
  hb.tick(150);
  assert.deepEqual(seen, ['ping 1', 'tick 25', 'idle 1', 'ping 2', 'tick 150']);
});

test('start drives the ticks from one timer every intervalMs / buckets; a second start adds none; stop ends them', (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  const ticks: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: () => undefined, idle: () => undefined, tick: (now) => ticks.push(now) });
  hb.start();
  hb.start();
  for (let i = 0; i < 40; i++) t.mock.timers.tick(25);
  assert.equal(ticks.length, 40);
  assert.deepEqual(ticks.slice(0, 3), [25, 50, 75]);
  hb.stop();
  t.mock.timers.tick(1000);
  assert.equal(ticks.length, 40);
});
