import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddress, limitKey, parseTrustProxy, type TrustProxy } from '../../src/lib/client-address.js';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { answerLimits, SupervisorLimits, type IpcPort, type LimitsReply, type LimitsRequest } from '../../src/lib/supervisor-limits.js';

const trust = (v: string): TrustProxy => {
  const t = parseTrustProxy(v);
  if (typeof t === 'string') throw new Error(t);
  return t;
};

test('TRUST_PROXY forms: off, true = 1 hop, a hop count, a list of addresses and CIDRs', () => {
  assert.equal(trust('false').kind, 'off');
  assert.equal(trust('0').kind, 'off');
  assert.deepEqual(trust('true'), { kind: 'hops', hops: 1 });
  assert.deepEqual(trust('2'), { kind: 'hops', hops: 2 });
  const list = trust('127.0.0.1, 10.0.0.0/8,::1,fd00::/8');
  assert.equal(list.kind, 'proxies');
  for (const bad of ['yes', '10.0.0.0/33', '1.2.3.4/8/9', 'nginx.local', '17', ',']) {
    assert.equal(typeof parseTrustProxy(bad), 'string', bad);
  }
});

test('off: the peer, whatever X-Forwarded-For says', () => {
  assert.equal(clientAddress(trust('false'), '127.0.0.1', '203.0.113.1'), '127.0.0.1');
  assert.equal(clientAddress(trust('false'), '::ffff:192.0.2.7', null), '192.0.2.7');
});

test('1 hop: the right-most entry, so a forged left-most entry changes nothing', () => {
  const t = trust('1');
  assert.equal(clientAddress(t, '127.0.0.1', '203.0.113.1'), '203.0.113.1');
  assert.equal(clientAddress(t, '127.0.0.1', '198.51.100.66, 203.0.113.1'), '203.0.113.1');
  assert.equal(clientAddress(t, '127.0.0.1', ['198.51.100.66', '203.0.113.1']), '203.0.113.1');
  assert.equal(clientAddress(t, '127.0.0.1', undefined), '127.0.0.1');
  assert.equal(clientAddress(t, '127.0.0.1', ' , '), '127.0.0.1');
});

test('2 hops: the second entry from the right; a short chain yields its left-most entry', () => {
  const t = trust('2');
  assert.equal(clientAddress(t, '127.0.0.1', '198.51.100.66, 203.0.113.1, 10.0.0.5'), '203.0.113.1');
  assert.equal(clientAddress(t, '127.0.0.1', '203.0.113.1'), '203.0.113.1');
});

test('a proxy list: walk left over listed proxies; an unlisted peer is the client', () => {
  const t = trust('127.0.0.1,10.0.0.0/8');
  assert.equal(clientAddress(t, '127.0.0.1', '198.51.100.66, 203.0.113.1, 10.1.2.3'), '203.0.113.1');
  assert.equal(clientAddress(t, '::ffff:127.0.0.1', '203.0.113.1'), '203.0.113.1');
  assert.equal(clientAddress(t, '192.0.2.9', '203.0.113.1'), '192.0.2.9');
  assert.equal(clientAddress(t, '127.0.0.1', '10.0.0.1, 10.0.0.2'), '10.0.0.1');
});

test('LocalLimits: a fixed window per key, then Retry-After until it resets', () => {
  const l = new LocalLimits();
  const now = 1_000_000;
  for (let i = 0; i < 3; i++) assert.equal(l.hitNow('k', 3, 60_000, now).allowed, true);
  const over = l.hitNow('k', 3, 60_000, now + 1500);
  assert.equal(over.allowed, false);
  assert.equal(over.retryAfterS, 59);
  assert.equal(l.hitNow('other', 3, 60_000, now).allowed, true);
  assert.equal(l.hitNow('k', 3, 60_000, now + 60_000).allowed, true);
});

test('LocalLimits: slots per key box-wide, released per owner and all at once when the owner exits', () => {
  const l = new LocalLimits();
  assert.equal(l.acquireFor(101, 'a', 3), true);
  assert.equal(l.acquireFor(102, 'a', 3), true);
  assert.equal(l.acquireFor(102, 'a', 3), true);
  assert.equal(l.acquireFor(101, 'a', 3), false);
  l.releaseFor(101, 'b');
  l.releaseFor(103, 'a');
  assert.equal(l.held('a'), 3, 'a release the owner does not hold is ignored');
  assert.equal(l.releaseOwner(102), 2);
  assert.equal(l.held('a'), 1);
  assert.equal(l.acquireFor(101, 'a', 3), true);
  l.releaseFor(101, 'a');
  l.releaseFor(101, 'a');
  assert.equal(l.held('a'), 0);
  assert.equal(l.releaseOwner(101), 0);
});

/** A fake IPC port: the test decides when (and whether) the supervisor answers. */
function fakePort() {
  const sent: LimitsRequest[] = [];
  let listener: (m: unknown) => void = () => undefined;
  const port: IpcPort = {
    send: (m) => void sent.push(m),
    onMessage: (l) => void (listener = l),
  };
  return { port, sent, reply: (r: LimitsReply) => listener(r) };
}

test('SupervisorLimits asks the supervisor and returns its answer', async () => {
  const table = new LocalLimits();
  const { port, sent, reply } = fakePort();
  const limits = new SupervisorLimits(port, 1000);
  const answer = () => {
    const r = answerLimits(table, 7, sent.shift()!);
    if (r) reply(r);
  };
  const a = limits.acquire('ws-ip:x', 1);
  answer();
  assert.equal(await a, true);
  const b = limits.acquire('ws-ip:x', 1);
  answer();
  assert.equal(await b, false);
  limits.release('ws-ip:x');
  answer();
  assert.equal(table.held('ws-ip:x'), 0);
  const h = limits.hit('auth-ip:x', 1, 60_000);
  answer();
  assert.deepEqual(await h, { allowed: true, retryAfterS: 60 });
  limits.close();
});

test('SupervisorLimits without an answer by the deadline: a slot is refused and a late grant given back; a hit is counted locally', async () => {
  const table = new LocalLimits();
  const { port, sent, reply } = fakePort();
  const limits = new SupervisorLimits(port, 40);
  const req = limits.acquire('ws-ip:x', 3);
  assert.equal(await req, false);
  assert.equal(limits.stats.timeouts, 1);
  // The supervisor grants it after the worker gave up: the worker releases it.
  reply(answerLimits(table, 7, sent.shift()!)!);
  assert.equal(table.held('ws-ip:x'), 1);
  const release = sent.shift()!;
  assert.deepEqual(release, { type: 'limits.release', key: 'ws-ip:x' });
  answerLimits(table, 7, release);
  assert.equal(table.held('ws-ip:x'), 0);

  const hits = [];
  for (let i = 0; i < 3; i++) hits.push(await limits.hit('auth-ip:x', 2, 60_000));
  assert.deepEqual(hits.map((h) => h.allowed), [true, true, false], 'falls back to a per-process counter');
  assert.equal(limits.stats.timeouts, 4);
  limits.close();
});

test('SupervisorLimits on a closed channel answers at once: slot refused, hit counted locally', async () => {
  const limits = new SupervisorLimits({ send: () => false, onMessage: () => undefined }, 60_000);
  assert.equal(await limits.acquire('ws-ip:x', 3), false);
  assert.equal((await limits.hit('k', 1, 60_000)).allowed, true);
  assert.equal((await limits.hit('k', 1, 60_000)).allowed, false);
  limits.close();
});

test('per-address limits count IPv4 by address and IPv6 by its /64, whatever the spelling', () => {
  assert.equal(limitKey('203.0.113.9'), '203.0.113.9');
  assert.equal(limitKey('::ffff:203.0.113.9'), '::ffff:203.0.113.9');
  const one64 = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:7'];
  assert.deepEqual(new Set(one64.map(limitKey)), new Set(['2001:db8:1:2::/64']));
  assert.notEqual(limitKey('2001:db8:1:3::1'), limitKey('2001:db8:1:2::1'));
  assert.equal(limitKey('::1'), '0:0:0:0::/64');
  assert.equal(limitKey('fe80::1'), 'fe80:0:0:0::/64');
});
