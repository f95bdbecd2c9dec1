import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BIN } from '../kit/server.js';

const out = mkdtempSync(join(tmpdir(), 'onebox-benchq-'));
after(() => rmSync(out, { recursive: true, force: true }));

test('onebox bench --quick writes a complete report with zero errors on both engines', async () => {
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(BIN, ['bench', '--quick', '--engines', 'bun,node', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.resume();
    p.on('exit', resolve);
  });
  assert.equal(code, 0);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.equal(report.meta.scenario, 'steady');
  assert.equal(report.reference.length, 2);
  assert.deepEqual(report.rows.map((r: any) => r.engine), ['bun', 'node']);
  for (const r of report.rows) {
    assert.equal(r.connectionsHeld, 1000, r.engine);
    assert.deepEqual(r.httpErrors, {}, r.engine);
    assert.equal(r.wsFailed + r.wsDropped, 0, r.engine);
    assert.ok(r.rateAchieved >= 190, `${r.engine} rate ${r.rateAchieved}`);
    assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.p999Ms >= r.p99Ms, r.engine);
    assert.ok(r.rssBytes > 0 && r.heapBytes > 0 && r.cpuPercent > 0, r.engine);
    // Shared pages count once in PSS: less than the RSS sum, yet most of it.
    assert.ok(r.pssBytes > r.rssBytes * 0.3 && r.pssBytes <= r.rssBytes, `${r.engine} PSS ${r.pssBytes} RSS ${r.rssBytes}`);
    assert.ok(r.harnessCpuPercent > 0 && r.boxCpuPercent >= r.cpuPercent * 0.9, `${r.engine} CPU figures`);
    assert.equal(r.census.openWithoutAnyPing, 0, `${r.engine}: every client saw pings`);
    assert.ok(r.pingsSeen >= r.pingsExpected * 0.9, `${r.engine} pings ${r.pingsSeen}/${r.pingsExpected}`);
    assert.ok(r.series.length >= 10);
  }
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /\| server \| connections held \| req\/s \(target\) \| RSS total \| PSS total \| heap \| bytes\/conn \| p50 \| p99 \| p99\.9 \(ms\)/);
  assert.match(md, /\*reference:\* Ktor/);
  assert.equal((readFileSync(join(out, 'chart.svg'), 'utf8').match(/<polyline/g) ?? []).length, 6);
});

test('onebox bench --scenario heartbeat: clients send app pings only in the "on" windows, and get a pong each', async () => {
  const dir = join(out, 'heartbeat');
  const code = await new Promise<number | null>((resolve) => {
    const args = ['bench', '--scenario', 'heartbeat', '--engines', 'bun', '--workers', '1', '--connections', '200', '--clients', '1', '--ping-interval', '0.5', '--ramp', '1', '--settle', '0', '--window', '2', '--out', dir];
    const p = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.resume();
    p.on('exit', resolve);
  });
  assert.equal(code, 0);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  const [row] = report.rows;
  assert.equal(row.connectionsOpen, 200);
  assert.equal(row.wsFailed + row.wsDropped, 0);
  assert.deepEqual(row.windows.map((w: any) => w.appPings), [false, true, true, false]);
  for (const w of row.windows) {
    if (w.appPings) {
      assert.ok(w.appPingsSent > 0 && w.pongsReceived > 0, `pings ${w.appPingsSent}, pongs ${w.pongsReceived}`);
      // Every pong answers a ping: at most the window's pings plus those in flight at its start.
      assert.ok(w.pongsReceived <= w.appPingsSent + 200, `pings ${w.appPingsSent}, pongs ${w.pongsReceived}`);
    } else {
      assert.equal(w.appPingsSent, 0);
    }
    assert.ok(w.serverCpuPercent >= 0 && w.rssBytes > 0);
  }
  assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /\| server \| connections \| ping interval \| server CPU, pings off → on \|/);
});

test('onebox bench --pin 0/1 runs every server process on CPU 0 and every harness process on CPU 1, and the report says so', { skip: availableParallelism() < 2 && 'needs 2 cores' }, async () => {
  const dir = join(out, 'pin');
  const code = await new Promise<number | null>((resolve) => {
    // Few sockets and requests: one core for the server and one for the harness on a shared box.
    const args = ['bench', '--quick', '--engines', 'node', '--connections', '100', '--rate', '50', '--duration', '3', '--pin', '0/1', '--out', dir];
    const p = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.resume();
    p.on('exit', resolve);
  });
  // The claim is where the processes ran, not the latency on one busy core: a report is enough.
  assert.ok(code === 0 || code === 1, `exit ${code}`);
  const [row] = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).rows;
  assert.deepEqual(row.cores.pinned, { server: '0', harness: '1' });
  assert.deepEqual(Object.keys(row.cores.server), ['0']);
  assert.ok(row.cores.server['0'].length >= 1);
  // The bench itself and its client processes (one, at 1,000 sockets).
  assert.deepEqual(Object.keys(row.cores.harness), ['1']);
  assert.ok(row.cores.harness['1'].length >= 2);
  assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /pinned: server processes 1 on CPU 0; harness processes \d+ on CPU 1/);
});

test('onebox bench --peers measures onebox on both engines, bare Bun.serve, bare ws and Socket.IO with every socket open and every publish received, and gives onebox over each peer', async () => {
  const dir = join(out, 'peers');
  const code = await new Promise<number | null>((resolve) => {
    const args = ['bench', '--peers', '--connections', '200', '--clients', '1', '--ramp', '1', '--settle', '0', '--fanouts', '1', '--out', dir];
    const p = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.resume();
    p.on('exit', resolve);
  });
  assert.equal(code, 0);
  const { rows } = JSON.parse(readFileSync(join(dir, 'peers.json'), 'utf8'));
  assert.deepEqual(rows.map((r: any) => r.server), ['onebox-bun', 'onebox-node', 'bun-serve', 'ws-node', 'socket.io']);
  for (const r of rows) {
    assert.deepEqual([r.opened, r.failed, r.stillOpenAtEnd], [200, 0, 200], r.server);
    assert.equal(r.fanout[0].received, 200, r.server);
    assert.ok(r.rssLoadedBytes > 0 && r.rssIdleBytes > 0, r.server);
  }
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  for (const pair of ['| onebox-bun | bun-serve |', '| onebox-node | ws-node |', '| onebox-node | socket.io |']) assert.ok(md.includes(pair), pair);
});
