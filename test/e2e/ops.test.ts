import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { ADMIN_TOKEN, api, BIN, ENGINES, ROOT, runCli, signup, startServer } from '../kit/server.js';
import { connectWs } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';

/** The python datagram listener; resolves once bound. */
async function notifyListener() {
  const path = join(mkdtempSync(join(tmpdir(), 'onebox-notify-')), 'notify.sock');
  const proc = spawn('python3', [join(ROOT, 'test', 'kit', 'notify-socket.py'), path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const datagrams: Array<{ t: number; msg: string }> = [];
  let ready = false;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const d = JSON.parse(line);
    if (d.ready) ready = true;
    else datagrams.push(d);
  });
  await eventually(() => ready, { what: 'the notify socket listener to bind' });
  return {
    path,
    datagrams,
    /** The first datagram matching pred (past or future). */
    waitFor: (pred: (m: string) => boolean, what: string, timeoutMs = 10_000) =>
      eventually(() => datagrams.find((d) => pred(d.msg)), { timeoutMs, intervalMs: 5, what }),
    close: () => proc.stdin!.end(),
  };
}

for (const engine of ENGINES) {
  describe(`systemd notify on ${engine}`, () => {
    test('READY, WATCHDOG while healthy, none while the loop is blocked, STOPPING', async (t) => {
      const sock = await notifyListener();
      t.after(() => sock.close());
      const s = await startServer(engine, {
        NOTIFY_SOCKET: sock.path,
        WATCHDOG_USEC: '400000',
        TEST_MODE: 'true',
        FAULT_BLOCK_ROUTE: 'true',
        BLOCK_WARN_MS: '300',
      });
      t.after(() => s.stop());
      const ready = await sock.waitFor((m) => m.includes('READY=1'), 'READY=1 on the notify socket');
      assert.match(ready.msg, new RegExp(`MAINPID=${s.proc.pid}`));
      assert.match(ready.msg, /STATUS=\d+ connections/);
      // Healthy: a ping every 200 ms.
      await eventually(() => sock.datagrams.filter((d) => d.msg.includes('WATCHDOG=1')).length >= 4, { what: 'four WATCHDOG=1 pings while healthy' });
      const blockMs = 2000;
      const before = Date.now() / 1000;
      const r = await api(s.url, 'POST', '/debug/block', { token: ADMIN_TOKEN, body: { ms: blockMs } });
      assert.equal(r.status, 200);
      const after = Date.now() / 1000;
      const pings = sock.datagrams.filter((d) => d.msg.includes('WATCHDOG=1')).map((d) => d.t);
      // Pings sent before the block may land a little after it began (systemd-notify is a child process).
      const during = pings.filter((p) => p > before + 0.3 && p < after - 0.1);
      assert.deepEqual(during, [], 'no watchdog ping while the loop was blocked');
      await eventually(() => sock.datagrams.some((d) => d.msg.includes('WATCHDOG=1') && d.t > after), { what: 'a WATCHDOG=1 ping after the block ended' });
      const warn = await s.waitForLine((l) => l.msg === 'event loop blocked');
      assert.equal(warn.running, 'POST /debug/block');
      assert.ok(Number(warn.blockedMs) >= 1500);
      s.proc.kill('SIGTERM');
      await sock.waitFor((m) => m.includes('STOPPING=1'), 'STOPPING=1 after SIGTERM');
      assert.equal((await eventually(s.exited, { what: 'the server to exit after SIGTERM' })).code, 0);
    });
  });
}

describe('doctor', () => {
  test('reads this machine and derives the capacity', async () => {
    const r = await runCli(['doctor', '--json'], {});
    const report = JSON.parse(r.stdout);
    const names = report.checks.map((c: any) => c.name);
    for (const n of ['open files (soft limit, this process)', 'fs.file-max', 'net.core.somaxconn', 'net.ipv4.ip_local_port_range', 'memory available', 'CPUs']) {
      assert.ok(names.includes(n), n);
    }
    for (const c of report.checks) assert.ok(['PASS', 'WARN', 'FAIL'].includes(c.verdict));
    const soft = Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);
    assert.equal(Number(report.checks.find((c: any) => c.name.startsWith('open files (soft')).value), soft);
    assert.equal(report.capacity.perProcess, soft - Math.max(128, Math.ceil(soft * 0.1)));
    assert.equal(Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')), Number(report.checks.find((c: any) => c.name === 'net.core.somaxconn').value));
    assert.match(report.sysctl, /net\.core\.somaxconn = 65535/);
    assert.equal(r.code, report.checks.some((c: any) => c.verdict === 'FAIL') ? 1 : 0);
    const text = await runCli(['doctor'], {});
    assert.match(text.stdout, /^(PASS|WARN|FAIL) +open files/m);
    assert.match(text.stdout, /connections per process/);
  });
});

describe('systemd units', () => {
  for (const unit of ['onebox.service', 'onebox@.service']) {
    test(`${unit} passes systemd-analyze verify without warnings`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'onebox-unit-'));
      const text = readFileSync(join(ROOT, 'deploy', 'systemd', unit), 'utf8')
        .replaceAll('/opt/onebox/%i/bin/onebox', BIN)
        .replaceAll('/opt/onebox/bin/onebox', BIN)
        .replaceAll('/opt/onebox/%i', ROOT)
        .replaceAll('/opt/onebox', ROOT);
      const name = unit === 'onebox@.service' ? 'onebox@blue.service' : unit;
      writeFileSync(join(dir, name), text);
      const r = spawnSync('systemd-analyze', ['verify', join(dir, name)], { encoding: 'utf8' });
      const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() && !/EnvironmentFile=.*blue\.env/.test(l));
      assert.equal(r.status, 0, problems.join('\n'));
      assert.deepEqual(problems, []);
      for (const key of ['Type=notify', 'WatchdogSec=', 'Restart=on-failure', 'LimitNOFILE=1048576', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'User=onebox']) {
        assert.ok(text.includes(key), key);
      }
      const grace = Number(/SHUTDOWN_GRACE_MS=(\d+)/.exec(text)![1]) / 1000;
      assert.ok(Number(/TimeoutStopSec=(\d+)s/.exec(text)![1]) > grace);
    });
  }
});

describe('status page', () => {
  test('loads in headless Chromium with live non-zero figures', async (t) => {
    const s = await startServer('bun');
    t.after(() => s.stop());
    const u = await signup(s.url);
    const ws = await connectWs(s.wsUrl, u.token);
    t.after(() => ws.close());
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim(),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1000, height: 520 } });
    await page.goto(`${s.url}/status`);
    const ticker = setInterval(() => void api(s.url, 'GET', '/v1/me', { token: u.token }).catch(() => undefined), 20);
    t.after(() => clearInterval(ticker));
    // Page-side code as strings: this file is type-checked without the DOM library.
    await page.waitForFunction(
      `(() => { const n = (id) => Number(document.getElementById(id).textContent);
        return n('connections') >= 1 && n('rss') > 0 && n('heap') > 0 && n('rps') > 0; })()`,
      undefined,
      { timeout: 15_000 },
    );
    const before = await page.textContent('#meta');
    await page.waitForFunction(`document.getElementById('meta').textContent !== ${JSON.stringify(before)}`, undefined, { timeout: 5000 });
    assert.equal(await page.locator('#procs tr').count(), 1);
    await page.screenshot({ path: process.env.ONEBOX_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'onebox-shot-')), 'status.png') });
  });
});
