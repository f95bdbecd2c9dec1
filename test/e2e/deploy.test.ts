/**
 * Blue-green with real nginx on loopback: a steady request rate and open WebSocket clients
 * through nginx while `onebox deploy` switches from blue to green (and back with
 * --rollback). No HTTP request may fail; every WebSocket is closed with 1012 and reconnects
 * to the new colour.
 */
import { DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { freePort } from '../../src/lib/free-port.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { BIN, JWT_SECRET, ROOT, api, signup } from '../kit/server.js';
import { connectWs, type Client } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { metric } from '../kit/metrics.js';

const nginxBin = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];

describe('blue-green deploy behind nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebox-bg-'));
  let nginx: ChildProcess;
  let front: number;
  let blue: number;
  let green: number;
  let deployArgs: string[];

  const deploy = (...extra: string[]) =>
    eventually(
      new Promise<number | null>((resolve) => {
        const p = spawn(BIN, ['deploy', ...deployArgs, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
        p.stdout.resume();
        p.on('exit', resolve);
      }),
      { timeoutMs: 60_000, what: `onebox deploy ${extra.join(' ')} to exit` },
    );

  before(async () => {
    [front, blue, green] = await Promise.all([freePort(), freePort(), freePort()]);
    const conf = join(dir, 'nginx.conf');
    writeFileSync(join(dir, 'onebox-upstream.conf'), `upstream onebox { server 127.0.0.1:${blue}; }\n`);
    const site = readFileSync(join(ROOT, 'deploy', 'nginx', 'onebox-site.conf'), 'utf8')
      .replace('include /etc/nginx/onebox-upstream.conf;', `include ${join(dir, 'onebox-upstream.conf')};`)
      .replace('listen 80;', `listen 127.0.0.1:${front};`)
      .replace('/var/log/nginx/onebox-ws.log', join(dir, 'ws.log'));
    writeFileSync(join(dir, 'site.conf'), site);
    writeFileSync(
      conf,
      `daemon off; master_process on; worker_processes 2; pid ${dir}/nginx.pid; error_log ${dir}/error.log; worker_shutdown_timeout 20s;\n` +
        `events { worker_connections 1024; }\nhttp { access_log ${dir}/access.log; client_body_temp_path ${dir}; proxy_temp_path ${dir}; ` +
        `fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir}; include ${join(dir, 'site.conf')}; }\n`,
    );
    nginx = spawn(nginxBin!, ['-c', conf, '-p', dir], { stdio: 'inherit' });
    // Rooms any signed-in user may read and publish to: the recovery case publishes to one.
    const rooms = { ...DEFAULT_NAMESPACES, room: { ...DEFAULT_NAMESPACES.room, subscribe: 'authenticated', publish: 'authenticated' } };
    writeFileSync(join(dir, 'channels.json'), JSON.stringify({ namespaces: rooms }));
    const env = `ENGINE=bun HOST=127.0.0.1 DATA_DIR=${dir}/data JWT_SECRET=${JWT_SECRET} TRUST_PROXY=true SHUTDOWN_GRACE_MS=8000 LOG_LEVEL=warn CHANNELS_FILE=${dir}/channels.json WS_PUBLISH_PER_S=1000`;
    deployArgs = [
      '--colours', `blue:${blue},green:${green}`,
      '--state-dir', join(dir, 'state'),
      '--upstream', join(dir, 'onebox-upstream.conf'),
      '--start', `${env} PORT={port} nohup ${BIN} serve > ${dir}/{colour}.log 2>&1 & echo $! > ${dir}/{colour}.pid`,
      '--stop', `kill -USR2 $(cat ${dir}/{colour}.pid)`,
      '--nginx-test', `${nginxBin} -t -q -c ${conf} -p ${dir}`,
      '--nginx-reload', `${nginxBin} -s reload -c ${conf} -p ${dir}`,
      '--settle-ms', '1500',
    ];
    assert.equal(await deploy(), 0, 'first deploy (blue)');
  });

  after(async () => {
    for (const c of ['blue', 'green']) {
      try {
        process.kill(Number(readFileSync(join(dir, `${c}.pid`), 'utf8')), 'SIGTERM');
      } catch {
        /* not running */
      }
    }
    nginx.kill('SIGQUIT');
    await eventually(new Promise((r) => nginx.once('exit', r)), { what: 'nginx to exit on SIGQUIT' });
  });

  test('switch under load: zero failed requests, every socket reconnects to the new colour', async () => {
    const base = `http://127.0.0.1:${front}`;
    const u = await signup(base);
    // Five clients that reconnect on close, as the mobile SDK would.
    const closes: number[] = [];
    const sockets: WebSocket[] = [];
    let stopping = false;
    const connect = (i: number) => {
      const ws = new WebSocket(`ws://127.0.0.1:${front}/v1/ws?token=${u.token}`);
      sockets[i] = ws;
      ws.on('error', () => undefined);
      ws.on('close', (code) => {
        if (stopping) return;
        closes.push(code);
        setTimeout(() => connect(i), 50 + Math.random() * 200);
      });
    };
    for (let i = 0; i < 5; i++) connect(i);
    const fiveOn = (colour: string, port: number) =>
      eventually(async () => (await metric(`http://127.0.0.1:${port}`, 'onebox_ws_connections')) === 5, {
        timeoutMs: 15_000,
        intervalMs: 50,
        what: `the five WebSocket clients to be connected to ${colour}`,
      });
    await fiveOn('blue', blue);

    // Steady load through nginx: 100 req/s on keep-alive connections.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const results = { ok: 0, failed: [] as string[], retriedStale: 0 };
    let loading = true;
    // An idle keep-alive connection that nginx closes at the moment the client reuses it is
    // retried once, as Node's docs (request.reusedSocket), OkHttp and browsers do for
    // idempotent requests (RFC 9112, 9.3.1). Any other error counts as a failure.
    const one = (retry = true): Promise<void> =>
      new Promise<void>((resolve) => {
        // The retry goes on a fresh connection, so it cannot meet another stale one.
        const req = request(`${base}/v1/me`, { agent: retry ? agent : false, headers: { authorization: `Bearer ${u.token}` } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) results.ok++;
            else results.failed.push(`HTTP ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (e: NodeJS.ErrnoException) => {
          if (retry && req.reusedSocket && (e.code === 'ECONNRESET' || e.message === 'socket hang up')) {
            results.retriedStale++;
            void one(false).then(resolve);
            return;
          }
          results.failed.push(e.message);
          resolve();
        });
        req.end();
      });
    const inflight: Promise<void>[] = [];
    const loop = (async () => {
      while (loading) {
        inflight.push(one());
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await deploy(), 0, 'deploy to green');
    await fiveOn('green', green);
    await new Promise((r) => setTimeout(r, 500));
    loading = false;
    await loop;
    await Promise.all(inflight);
    agent.destroy();

    assert.deepEqual(results.failed, []);
    assert.ok(results.ok > 100, `${results.ok} requests`);
    assert.ok(results.retriedStale <= 16, `${results.retriedStale} stale keep-alive retries`);
    assert.deepEqual(closes, [1012, 1012, 1012, 1012, 1012]);
    assert.equal((await api(`http://127.0.0.1:${blue}`, 'GET', '/healthz').catch(() => ({ status: 0 }))).status, 0, 'blue stopped');
    assert.match(readFileSync(join(dir, 'onebox-upstream.conf'), 'utf8'), new RegExp(`server 127\\.0\\.0\\.1:${green};`));

    assert.equal(await deploy('--rollback'), 0, 'rollback to blue');
    await fiveOn('blue', blue);
    assert.deepEqual(closes.slice(5), [1012, 1012, 1012, 1012, 1012]);
    stopping = true;
    for (const ws of sockets) ws.terminate();
  });

  test('since across a deploy: the epoch is stable and what was missed before and after the switch replays in order', async () => {
    const wsUrl = `ws://127.0.0.1:${front}/v1/ws`;
    const u = await signup(`http://127.0.0.1:${front}`);
    const topic = `room:deploy-${Date.now()}`;
    const publish = async (c: Client, from: number, n: number) => {
      for (let i = from; i < from + n; i++) c.send({ op: 'pub', id: `p${i}`, topic, data: i });
      for (let i = from; i < from + n; i++) assert.equal((await c.next((f) => f.id === `p${i}`)).offset, i);
    };
    const reader = await connectWs(wsUrl, u.token);
    reader.send({ op: 'sub', id: 's', topic });
    const { offset, epoch } = await reader.next((f) => f.id === 's');
    assert.equal(offset, 0);
    reader.close();

    const before = await connectWs(wsUrl, u.token);
    await publish(before, 1, 25);
    assert.equal(await deploy(), 0, 'deploy to the other colour');
    assert.equal((await before.waitClosed()).code, 1012);
    const afterSwitch = await connectWs(wsUrl, u.token);
    await publish(afterSwitch, 26, 25);

    const back = await connectWs(wsUrl, u.token);
    const seen: number[] = [];
    back.ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.op === 'msg' && f.topic === topic) seen.push(f.offset);
    });
    back.send({ op: 'sub', id: 'r', topic, since: { offset: 0, epoch } });
    const ack = await back.next((f) => f.id === 'r');
    assert.deepEqual([ack.recovered, ack.epoch, ack.offset], [true, epoch, 50]);
    await eventually(() => seen.length >= 50, { what: 'the 50 missed messages' });
    await publish(afterSwitch, 51, 1);
    await eventually(() => seen.includes(51), { what: 'the live message after the replay' });
    assert.deepEqual(seen, Array.from({ length: 51 }, (_, i) => i + 1));
    afterSwitch.close();
    back.close();
  });

  test('a config nginx -t rejects leaves the live upstream untouched', async () => {
    const live = readFileSync(join(dir, 'onebox-upstream.conf'), 'utf8');
    const bad = deployArgs.map((a) => (a.includes(' -t -q ') ? 'false' : a));
    const code = await eventually(
      new Promise<number | null>((resolve) => {
        const p = spawn(BIN, ['deploy', ...bad], { stdio: ['ignore', 'ignore', 'ignore'] });
        p.on('exit', resolve);
      }),
      { timeoutMs: 60_000, what: 'onebox deploy with a failing nginx -t to exit' },
    );
    assert.equal(code, 1);
    assert.equal(readFileSync(join(dir, 'onebox-upstream.conf'), 'utf8'), live);
  });
});
