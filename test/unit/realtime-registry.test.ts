import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conn, holds, topicCount } from '../../src/realtime/conn.js';
import { Registry, type InterestListener } from '../../src/realtime/registry.js';

const conn = (id: number, userId = 'alice') => new Conn(id, userId, '127.0.0.1', 0);

/** A listener that records what it is told as `kind:key:+` / `kind:key:-`. */
function recorder(): { events: string[]; listener: InterestListener } {
  const events: string[] = [];
  return { events, listener: (kind, key, present) => events.push(`${kind}:${key}:${present ? '+' : '-'}`) };
}

test('a connection holds its first topic as a plain string and a Set from the second on', () => {
  const reg = new Registry();
  const c = conn(1);
  assert.equal(reg.subscribe(c, 'a'), true);
  assert.equal(c.topics, 'a');
  assert.equal(reg.subscribe(c, 'b'), true);
  assert.deepEqual(c.topics, new Set(['a', 'b']));
  assert.equal(reg.subscribe(c, 'c'), true);
  assert.equal(topicCount(c), 3);
  assert.deepEqual([...reg.topics.keys()], ['a', 'b', 'c']);
  for (const t of ['a', 'b', 'c']) assert.deepEqual([...reg.topics.get(t)!], [c]);
});

test('subscribing twice to a topic answers false and changes nothing', () => {
  const reg = new Registry();
  const c = conn(1);
  reg.subscribe(c, 'a');
  assert.equal(reg.subscribe(c, 'a'), false);
  assert.equal(c.topics, 'a');
  reg.subscribe(c, 'b');
  assert.equal(reg.subscribe(c, 'b'), false);
  assert.equal(topicCount(c), 2);
  assert.equal(reg.topics.get('b')!.size, 1);
});

test('unsubscribe drops the one topic held, or just that topic from the Set, and forgets empty topics', () => {
  const reg = new Registry();
  const only = conn(1);
  reg.subscribe(only, 'a');
  assert.equal(reg.unsubscribe(only, 'a'), true);
  assert.equal(only.topics, null);
  assert.equal(reg.topics.has('a'), false);

  const many = conn(2);
  const other = conn(3);
  reg.subscribe(many, 'a');
  reg.subscribe(many, 'b');
  reg.subscribe(other, 'a');
  assert.equal(reg.unsubscribe(many, 'a'), true);
  assert.equal(holds(many, 'a'), false);
  assert.equal(holds(many, 'b'), true);
  assert.deepEqual([...reg.topics.get('a')!], [other], 'the topic stays for its other subscriber');
});

test('unsubscribing from a topic not held answers false and leaves the topic map alone', () => {
  const reg = new Registry();
  const c = conn(1);
  const other = conn(2);
  assert.equal(reg.unsubscribe(c, 'a'), false);
  reg.subscribe(other, 'a');
  reg.subscribe(c, 'b');
  assert.equal(reg.unsubscribe(c, 'a'), false, 'string held, another topic asked');
  reg.subscribe(c, 'c');
  assert.equal(reg.unsubscribe(c, 'a'), false, 'Set held, another topic asked');
  assert.deepEqual([...reg.topics.get('a')!], [other]);
});

test('a user with one connection maps straight to it; a second makes a Set; the last to leave removes the user', () => {
  const reg = new Registry();
  const a1 = conn(1);
  const a2 = conn(2);
  const b1 = conn(3, 'bob');
  reg.addUser(a1);
  reg.addUser(b1);
  assert.equal(reg.users.get('alice'), a1);
  assert.deepEqual([...reg.connsOf('alice')!], [a1]);
  reg.addUser(a2);
  assert.ok(reg.users.get('alice') instanceof Set);
  assert.deepEqual([...reg.connsOf('alice')!], [a1, a2]);
  assert.deepEqual([...reg.all()].map((c) => c.id).sort(), [1, 2, 3], 'every connection once');
  reg.removeUser(a1);
  assert.deepEqual([...reg.connsOf('alice')!], [a2]);
  reg.removeUser(a2);
  assert.equal(reg.users.has('alice'), false);
  assert.equal(reg.connsOf('alice'), undefined);
  assert.deepEqual([...reg.connsOf('bob')!], [b1]);
});

test('removing a connection the registry does not list leaves the user alone', () => {
  const reg = new Registry();
  const a1 = conn(1);
  const a2 = conn(2);
  const stranger = conn(3);
  reg.addUser(a1);
  reg.removeUser(stranger);
  assert.equal(reg.users.get('alice'), a1);
  reg.addUser(a2);
  reg.removeUser(stranger);
  assert.deepEqual([...reg.connsOf('alice')!], [a1, a2]);
});

test('interest listeners are told of the first and the last connection of a topic only', () => {
  const reg = new Registry();
  const { events, listener } = recorder();
  reg.onInterest(listener);
  const [c1, c2, c3] = [conn(1), conn(2), conn(3)];
  reg.subscribe(c1, 't');
  reg.subscribe(c2, 't');
  reg.subscribe(c3, 't');
  reg.subscribe(c3, 't');
  assert.deepEqual(events, ['topic:t:+']);
  reg.unsubscribe(c1, 't');
  reg.unsubscribe(c2, 't');
  reg.unsubscribe(c2, 't');
  assert.deepEqual(events, ['topic:t:+']);
  reg.unsubscribe(c3, 't');
  assert.deepEqual(events, ['topic:t:+', 'topic:t:-']);
});

test('interest listeners are told of the first and the last connection of a user only', () => {
  const reg = new Registry();
  const { events, listener } = recorder();
  reg.onInterest(listener);
  const [a1, a2] = [conn(1), conn(2)];
  reg.addUser(a1);
  reg.addUser(a2);
  assert.deepEqual(events, ['user:alice:+']);
  reg.removeUser(a1);
  assert.deepEqual(events, ['user:alice:+']);
  reg.removeUser(a2);
  assert.deepEqual(events, ['user:alice:+', 'user:alice:-']);
});

test('every listener is told, in the order they registered', () => {
  const reg = new Registry();
  const order: string[] = [];
  reg.onInterest((_k, key) => order.push(`first:${key}`));
  reg.onInterest((_k, key) => order.push(`second:${key}`));
  reg.subscribe(conn(1), 't');
  assert.deepEqual(order, ['first:t', 'second:t']);
});

test('the function onInterest returns stops that listener and no other', () => {
  const reg = new Registry();
  const kept = recorder();
  const dropped = recorder();
  reg.onInterest(kept.listener);
  const stop = reg.onInterest(dropped.listener);
  const c = conn(1);
  reg.subscribe(c, 'a');
  stop();
  reg.subscribe(c, 'b');
  reg.unsubscribe(c, 'a');
  assert.deepEqual(dropped.events, ['topic:a:+']);
  assert.deepEqual(kept.events, ['topic:a:+', 'topic:b:+', 'topic:a:-']);
});

test('unsubscribeAll drops every topic of a connection, telling listeners of the topics it was last in', () => {
  const reg = new Registry();
  const { events, listener } = recorder();
  const c = conn(1);
  const other = conn(2);
  reg.subscribe(c, 'a');
  reg.subscribe(c, 'b');
  reg.subscribe(c, 'c');
  reg.subscribe(other, 'b');
  reg.onInterest(listener);
  reg.unsubscribeAll(c);
  assert.equal(topicCount(c), 0);
  assert.deepEqual(events.sort(), ['topic:a:-', 'topic:c:-']);
  assert.deepEqual([...reg.topics.keys()], ['b']);
  assert.deepEqual([...reg.topics.get('b')!], [other]);
  reg.unsubscribeAll(c);
  assert.equal(events.length, 2, 'a second call tells nothing');
});

test('unsubscribeAll of a connection holding one topic as a string', () => {
  const reg = new Registry();
  const c = conn(1);
  reg.subscribe(c, 'a');
  reg.unsubscribeAll(c);
  assert.equal(c.topics, null);
  assert.equal(reg.topics.size, 0);
});
