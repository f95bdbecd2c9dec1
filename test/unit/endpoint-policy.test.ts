/**
 * The SSRF guard of Web Push endpoints. Forbidden addresses appear here only as strings
 * handed to the checker, and every resolver is injected: nothing here sends a packet
 * anywhere but loopback, and nothing asks real DNS.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { forbiddenAddress, forbiddenEndpoint } from '../../src/push/endpoint-policy.js';
import { FORBIDDEN, guardedLookup, resolveChecked, type Resolve } from '../../src/push/safe-lookup.js';

const FORBIDDEN_ADDRESSES: Array<[string, string]> = [
  ['0.0.0.0', 'reserved'],
  ['0.1.2.3', 'reserved'],
  ['10.0.0.1', 'private'],
  ['100.64.0.1', 'shared'],
  ['100.127.255.254', 'shared'],
  ['127.0.0.1', 'loopback'],
  ['127.255.0.9', 'loopback'],
  ['169.254.169.254', 'link-local'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['192.168.1.1', 'private'],
  ['198.18.0.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['::', 'reserved'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:a9fe:a9fe', 'link-local'], // 169.254.169.254, as URL() writes it
  ['::10.0.0.1', 'reserved'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['64:ff9b::a9fe:a9fe', 'link-local'],
  ['64:ff9b:1::1', 'reserved'],
  ['100::1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['2001::1', 'reserved'],
  ['2002:a00:1::1', 'reserved'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['fe80::1', 'link-local'],
  ['febf::1', 'link-local'],
  ['fec0::1', 'reserved'],
  ['ff02::1', 'multicast'],
  // Outside global unicast 2000::/3: nothing IANA routes on the internet.
  ['::ffff:0:7f00:1', 'reserved'], // IPv4-translated, not IPv4-mapped
  ['100:0:0:1::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['e000::1', 'reserved'],
  ['not-an-ip', 'reserved'],
];

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '100.63.255.255', '100.128.0.0', '172.32.0.1', '2606:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::808:808'];

test('every private, loopback, link-local, CGNAT, multicast and reserved address is refused, IPv4 and IPv6', () => {
  for (const [ip, reason] of FORBIDDEN_ADDRESSES) assert.equal(forbiddenAddress(ip, false), reason, ip);
  for (const ip of PUBLIC) assert.equal(forbiddenAddress(ip, false), null, ip);
});

test('test mode lets loopback through, and nothing else', () => {
  for (const ip of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) assert.equal(forbiddenAddress(ip, true), null, ip);
  for (const [ip, reason] of FORBIDDEN_ADDRESSES.filter(([, r]) => r !== 'loopback')) assert.equal(forbiddenAddress(ip, true), reason, ip);
});

test('registration: endpoint URLs are judged by literal address and by names that cannot be public', () => {
  const refused: Array<[string, string]> = [
    ['https://169.254.169.254/latest/meta-data/', 'link-local'],
    ['https://10.0.0.1/push', 'private'],
    ['https://localhost:8443/push', 'loopback'],
    ['https://LOCALHOST./push', 'loopback'],
    ['https://api.localhost/push', 'loopback'],
    ['https://127.1/push', 'loopback'], // URL() normalises the short form
    ['https://2130706433/push', 'loopback'], // and the integer form
    ['https://0x7f000001/push', 'loopback'],
    ['https://[::1]/push', 'loopback'],
    ['https://[::ffff:169.254.169.254]/push', 'link-local'],
    ['https://[fd00::1]:8443/push', 'private'],
    ['https://100.100.100.200/push', 'shared'],
    ['https://printer.local/push', 'private'],
    ['https://metadata.google.internal/push', 'private'],
    ['https://router.home.arpa/push', 'private'],
    ['https://intranet/push', 'private'],
  ];
  for (const [url, reason] of refused) assert.equal(forbiddenEndpoint(new URL(url), false), reason, url);
  for (const url of ['https://fcm.googleapis.com/fcm/send/x', 'https://updates.push.services.mozilla.com/wpush/v2/x', 'https://8.8.8.8/x']) {
    assert.equal(forbiddenEndpoint(new URL(url), false), null, url);
  }
  assert.equal(forbiddenEndpoint(new URL('https://localhost:8443/push'), true), null);
  assert.equal(forbiddenEndpoint(new URL('http://127.0.0.1:9/push'), true), null);
  assert.equal(forbiddenEndpoint(new URL('https://10.0.0.1/push'), true), 'private');
});

/** A resolver from a fixed table, counting its calls; a name not in it fails as DNS would. */
const table = (answers: Record<string, string[][]>) => {
  const calls: string[] = [];
  const resolve: Resolve = async (host) => {
    calls.push(host);
    const queue = answers[host];
    const next = queue && (queue.length > 1 ? queue.shift()! : queue[0]!);
    if (!next) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return next.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, calls };
};

test('send time: a name is refused when any address it resolves to is forbidden', async () => {
  const { resolve } = table({
    'push.example.com': [['93.184.216.34', '2606:2800:220:1::1']],
    'mixed.example.com': [['93.184.216.34', '10.0.0.5']],
    'meta.example.com': [['169.254.169.254']],
    'mapped.example.com': [['::ffff:127.0.0.1']],
    'loop.example.com': [['127.0.0.1']],
  });
  assert.deepEqual(await resolveChecked(resolve, 'push.example.com', false), [
    { address: '93.184.216.34', family: 4 },
    { address: '2606:2800:220:1::1', family: 6 },
  ]);
  for (const host of ['mixed.example.com', 'meta.example.com', 'mapped.example.com', 'loop.example.com']) {
    await assert.rejects(resolveChecked(resolve, host, false), (e: NodeJS.ErrnoException) => e.code === FORBIDDEN, host);
  }
  // Test mode: loopback passes, private still does not.
  assert.equal((await resolveChecked(resolve, 'loop.example.com', true)).length, 1);
  await assert.rejects(resolveChecked(resolve, 'mixed.example.com', true), (e: NodeJS.ErrnoException) => e.code === FORBIDDEN);
  // A literal address is checked without asking the resolver.
  await assert.rejects(resolveChecked(resolve, '[fe80::1]', true), (e: NodeJS.ErrnoException) => e.code === FORBIDDEN);
  await assert.rejects(resolveChecked(resolve, 'nowhere.example.com', false), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND');
});

const lookupOnce = (lookup: ReturnType<typeof guardedLookup>, host: string, options: { all?: boolean; family?: number }) =>
  new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number | undefined }>((resolve) =>
    lookup(host, options, (err, address, family) => resolve({ err, address, family })),
  );

test('send time: the socket lookup yields only addresses it checked, once per connection (no rebinding gap)', async () => {
  // The rebinding attacker's name: public on the first query, private on the second.
  const { resolve, calls } = table({ 'rebind.example.com': [['93.184.216.34'], ['10.0.0.1']] });
  const lookup = guardedLookup(resolve, false);
  const first = await lookupOnce(lookup, 'rebind.example.com', { all: true });
  assert.equal(first.err, null);
  assert.deepEqual(first.address, [{ address: '93.184.216.34', family: 4 }]);
  const second = await lookupOnce(lookup, 'rebind.example.com', {});
  assert.equal(second.err?.code, FORBIDDEN);
  assert.deepEqual(calls, ['rebind.example.com', 'rebind.example.com'], 'one resolution per connection, the one that was checked');
  const v6 = table({ 'dual.example.com': [['93.184.216.34', '2606:2800:220:1::1']] });
  const only6 = await lookupOnce(guardedLookup(v6.resolve, false), 'dual.example.com', { family: 6 });
  assert.deepEqual([only6.address, only6.family], ['2606:2800:220:1::1', 6]);
});

test('send time: http.request connects to the address the guarded lookup checked, and nowhere when refused', async (t) => {
  let connections = 0;
  const server = createServer((_req, res) => res.end('ok'));
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  const port = (server.address() as AddressInfo).port;
  const { resolve } = table({ 'push.test': [['127.0.0.1']] });
  const get = (allowLoopback: boolean) =>
    new Promise<string>((done) => {
      const req = request(`http://push.test:${port}/`, { agent: false, lookup: guardedLookup(resolve, allowLoopback) }, (res) => {
        res.resume();
        res.on('end', () => done(String(res.statusCode)));
      });
      req.on('error', (e: NodeJS.ErrnoException) => done(String(e.code)));
      req.end();
    });
  // `push.test` exists only in the injected table: reaching the server proves the socket used it.
  assert.equal(await get(true), '200');
  assert.equal(connections, 1);
  assert.equal(await get(false), FORBIDDEN);
  assert.equal(connections, 1, 'the refused name opened no connection');
});
