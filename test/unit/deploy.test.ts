import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { clientAddress, parseTrustProxy } from '../../src/lib/client-address.js';
import { ROOT } from '../kit/server.js';

const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'k8s', 'onebox.yaml'), 'utf8')).map((d) => d.toJS());
const byKind = (kind: string) => docs.find((d) => d.kind === kind);

test('k8s Deployment probes /healthz and /readyz on the container port', () => {
  const dep = byKind('Deployment');
  const c = dep.spec.template.spec.containers[0];
  const port = c.ports.find((p: any) => p.name === 'http');
  assert.equal(port.containerPort, Number(c.env.find((e: any) => e.name === 'PORT').value));
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.port, 'http');
  assert.equal(c.livenessProbe.httpGet.port, 'http');
});

test('k8s termination grace outlasts preStop plus the drain', () => {
  const spec = byKind('Deployment').spec.template.spec;
  const c = spec.containers[0];
  const drainS = Number(c.env.find((e: any) => e.name === 'SHUTDOWN_GRACE_MS').value) / 1000;
  const preStopS = Number(c.lifecycle.preStop.exec.command.at(-1));
  assert.ok(spec.terminationGracePeriodSeconds > drainS + preStopS);
});

test('k8s Service and PodDisruptionBudget select the Deployment and target its port', () => {
  const labels = byKind('Deployment').spec.template.metadata.labels;
  const svc = byKind('Service');
  const pdb = byKind('PodDisruptionBudget');
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(labels[k], v);
  for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(labels[k], v);
  assert.equal(svc.spec.ports[0].targetPort, 'http');
  assert.ok(pdb.spec.minAvailable < byKind('Deployment').spec.replicas);
});

const nginx = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx']).stdout.toString().trim().split('\n')[0];
test('the several-boxes nginx example passes nginx -t', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebox-nginx-'));
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `pid ${dir}/nginx.pid; error_log ${dir}/error.log; events {} http { access_log off; ` +
      `client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir}; ` +
      `include ${join(ROOT, 'deploy', 'nginx', 'onebox-boxes.conf')}; }`,
  );
  const r = spawnSync(nginx!, ['-t', '-c', conf, '-p', dir]);
  assert.equal(r.status, 0, r.stderr.toString());
});

/** The settings a unit's `Environment=` lines give the server (EnvironmentFile= aside). */
function unitEnvironment(unit: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, 'deploy', 'systemd', unit), 'utf8').split('\n')) {
    if (!line.startsWith('Environment=')) continue;
    for (const pair of line.slice('Environment='.length).trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      env.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  }
  return env;
}

for (const unit of ['onebox.service', 'onebox@.service']) {
  test(`${unit} listens on loopback behind nginx and names the client nginx saw, not nginx`, () => {
    const env = unitEnvironment(unit);
    assert.equal(env.get('HOST'), '127.0.0.1');
    const trust = parseTrustProxy(env.get('TRUST_PROXY') ?? 'false');
    assert.ok(typeof trust !== 'string', String(trust));
    // nginx (deploy/nginx) connects from loopback and appends $remote_addr; a client's own
    // X-Forwarded-For entries are further left. Without this every client of the box is
    // 127.0.0.1: one login limit and one MAX_CONNECTIONS_PER_IP for all, /metrics and
    // /status open as "loopback".
    for (const peer of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      assert.equal(clientAddress(trust, peer, '198.51.100.7'), '198.51.100.7', peer);
      assert.equal(clientAddress(trust, peer, '127.0.0.1, 198.51.100.7'), '198.51.100.7', peer);
    }
  });
}
