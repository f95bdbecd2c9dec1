import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encode, parse, RespConnection, type Reply } from '../../src/realtime/backplane/resp.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { eventually } from '../kit/eventually.js';

test('encode writes bulk strings with their byte length', () => {
  assert.equal(encode(['PUBLISH', 'ob:t:é', 'a b']), '*3\r\n$7\r\nPUBLISH\r\n$7\r\nob:t:é\r\n$3\r\na b\r\n');
});

test('parse reads every reply type and waits for a reply split anywhere', () => {
  const wire = Buffer.from('+OK\r\n-ERR no\r\n:42\r\n$-1\r\n*3\r\n$7\r\nmessage\r\n$4\r\nob:x\r\n$5\r\nhé\r\n\r\n');
  const replies: Reply[] = [];
  let at = 0;
  for (let r = parse(wire, at); r; r = parse(wire, at)) {
    replies.push(r[0]);
    at = r[1];
  }
  assert.equal(at, wire.length);
  assert.equal(replies[0], 'OK');
  assert.ok(replies[1] instanceof Error && replies[1].message === 'ERR no');
  assert.deepEqual(replies.slice(2), [42, null, ['message', 'ob:x', 'hé\r\n']]);
  // Every proper prefix of the last reply is incomplete, not misread.
  const last = wire.subarray(wire.indexOf('*3'));
  for (let n = 0; n < last.length; n++) assert.equal(parse(last.subarray(0, n), 0), undefined, `prefix of ${n} bytes`);
  assert.throws(() => parse(Buffer.from('?x\r\n'), 0), /protocol error/);
});

let redis: RedisServer;
before(async () => {
  redis = await startRedis(['--requirepass', 's3cret']);
});
after(() => redis.stop());

const url = (pass: string) => `redis://:${pass}@127.0.0.1:${redis.port}`;

function connection(u: string, onPush?: (p: Reply[]) => void) {
  const events: string[] = [];
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  const c = new RespConnection({
    url: u,
    connectTimeoutMs: 2000,
    backoff: () => 50,
    onReady: () => {
      events.push('ready');
      ready();
    },
    onDown: (err) => events.push(`down: ${err.message}`),
    onPush,
  });
  c.start();
  return { c, events, readyP };
}

test('a wrong password never becomes ready and says why', async () => {
  const { c, events } = connection(url('wrong'));
  // Two refusals: the retry after the backoff did not get in either.
  await eventually(() => events.filter((e) => e.startsWith('down')).length >= 2, { timeoutMs: 5000, what: 'two refused connection attempts' });
  await c.close();
  assert.ok(!events.includes('ready'));
  assert.match(events[0] ?? '', /WRONGPASS|invalid password/);
  await assert.rejects(c.call('PING'), /not ready/);
});

test('publish reaches a subscriber, and PUBLISH counts the receivers', async () => {
  const got: Reply[][] = [];
  const sub = connection(url('s3cret'), (p) => got.push(p));
  const pub = connection(url('s3cret'));
  await eventually(Promise.all([sub.readyP, pub.readyP]), { timeoutMs: 5000, what: 'both connections to be ready' });
  assert.equal(sub.c.send('SUBSCRIBE', 'ob:t:a', 'ob:t:b'), true);
  await eventually(() => got.length >= 2, { timeoutMs: 5000, what: 'both SUBSCRIBE confirmations' });
  assert.equal(await pub.c.call('PUBLISH', 'ob:t:b', 'hello'), 1);
  assert.equal(await pub.c.call('PUBLISH', 'ob:t:zzz', 'nobody'), 0);
  const big = 'x'.repeat(200_000);
  assert.equal(await pub.c.call('PUBLISH', 'ob:t:a', big), 1);
  await eventually(() => got.length >= 4, { timeoutMs: 5000, what: 'both published messages' });
  assert.deepEqual(got.slice(0, 2), [['subscribe', 'ob:t:a', 1], ['subscribe', 'ob:t:b', 2]]);
  assert.deepEqual(got[2], ['message', 'ob:t:b', 'hello']);
  assert.deepEqual(got[3], ['message', 'ob:t:a', big]);
  await Promise.all([sub.c.close(), pub.c.close()]);
  await assert.rejects(pub.c.call('PING'), /not ready/);
});
