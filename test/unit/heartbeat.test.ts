import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conn } from '../../src/realtime/conn.js';
import { Heartbeat } from '../../src/realtime/heartbeat.js';

test('pings are spread evenly over the interval, each connection once per interval', () => {
  const pinged: number[] = [];
  const hb = new Heartbeat(1000, 2500, { ping: (c) => pinged.push(c.id), idle: () => undefined, tick: () => undefined });
  const conns = Array.from({ length: 400 }, (_, i) => new Conn(i, 'u', '127.0.0.1', 0, 1));
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
  const quiet = new Conn(1, 'u', '127.0.0.1', 0, 1);
  const chatty = new Conn(2, 'u', '127.0.0.1', 0, 1);
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
