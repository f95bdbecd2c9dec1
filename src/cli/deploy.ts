/**
 * `onebox deploy`: zero-downtime blue-green on one VPS behind nginx.
 *   1. start the idle colour (by default `systemctl start onebox@<colour>`) and wait for
 *      its /readyz;
 *   2. point nginx's `upstream onebox` at it: write the upstream file beside the old one,
 *      `nginx -t`, rename it into place, reload (the old file is restored if the test fails);
 *   3. drain the old colour with SIGUSR2: /readyz 503, WebSockets closed with 1012 so clients
 *      reconnect through nginx to the new colour, in-flight requests complete; wait for it
 *      to stop.
 * `--rollback` does the same towards the previous colour. Every command is a template
 * ({colour}, {port}) so the same flow runs under systemd or, in tests, plain processes.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../lib/scope.js';

export const DEPLOY_HELP = `usage: onebox deploy [--rollback] [options]

  --colours LIST      colour:port pairs                     (blue:8081,green:8082)
  --state-dir DIR     where the live colour is recorded     (/var/lib/onebox-deploy)
  --upstream FILE     nginx file holding "upstream onebox"  (/etc/nginx/onebox-upstream.conf)
  --start CMD         start a colour    (systemctl start onebox@{colour})
  --stop CMD          drain a colour    (systemctl kill --signal=SIGUSR2 onebox@{colour})
  --nginx-test CMD    (nginx -t)        --nginx-reload CMD   (nginx -s reload)
  --settle-ms N       wait after the reload before draining  (1500)
  --ready-timeout S   (60)              --drain-timeout S    (60)
  --rollback          go back to the previous colour`;

interface Opts {
  colours: Array<{ name: string; port: number }>;
  stateDir: string;
  upstream: string;
  start: string;
  stop: string;
  nginxTest: string;
  nginxReload: string;
  settleMs: number;
  readyTimeoutS: number;
  drainTimeoutS: number;
  rollback: boolean;
}

function parse(argv: string[]): Opts {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      colours: { type: 'string', default: 'blue:8081,green:8082' },
      'state-dir': { type: 'string', default: '/var/lib/onebox-deploy' },
      upstream: { type: 'string', default: '/etc/nginx/onebox-upstream.conf' },
      start: { type: 'string', default: 'systemctl start onebox@{colour}' },
      stop: { type: 'string', default: 'systemctl kill --signal=SIGUSR2 onebox@{colour}' },
      'nginx-test': { type: 'string', default: 'nginx -t' },
      'nginx-reload': { type: 'string', default: 'nginx -s reload' },
      'settle-ms': { type: 'string', default: '1500' },
      'ready-timeout': { type: 'string', default: '60' },
      'drain-timeout': { type: 'string', default: '60' },
      rollback: { type: 'boolean', default: false },
    },
  });
  const colours = v.colours!.split(',').map((p) => {
    const [name, port] = p.split(':');
    if (!name || !/^\d+$/.test(port ?? '')) throw new Error(`--colours: "${p}" is not colour:port`);
    return { name, port: Number(port) };
  });
  if (colours.length !== 2) throw new Error('--colours needs exactly two colours');
  return {
    colours,
    stateDir: v['state-dir']!,
    upstream: v.upstream!,
    start: v.start!,
    stop: v.stop!,
    nginxTest: v['nginx-test']!,
    nginxReload: v['nginx-reload']!,
    settleMs: Number(v['settle-ms']),
    readyTimeoutS: Number(v['ready-timeout']),
    drainTimeoutS: Number(v['drain-timeout']),
    rollback: v.rollback!,
  };
}

const say = (msg: string) => console.log(`deploy: ${msg}`);

function run(template: string, colour: { name: string; port: number }): void {
  const cmd = template.replaceAll('{colour}', colour.name).replaceAll('{port}', String(colour.port));
  execSync(cmd, { stdio: 'inherit', shell: '/bin/sh' });
}

async function status(port: number, path: string): Promise<number | 'down'> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 'down';
  }
}

export function upstreamBlock(port: number): string {
  return `# Written by onebox deploy: the live colour.\nupstream onebox {\n    server 127.0.0.1:${port};\n    keepalive 64;\n}\n`;
}

export async function deploy(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(DEPLOY_HELP);
    return 0;
  }
  const o = parse(argv);
  mkdirSync(o.stateDir, { recursive: true });
  const stateFile = join(o.stateDir, 'state.json');
  const state = existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { live: string | null; previous: string | null })
    : { live: null, previous: null };
  const live = o.colours.find((c) => c.name === state.live) ?? null;
  const next = o.rollback
    ? o.colours.find((c) => c.name === state.previous)
    : (o.colours.find((c) => c.name !== state.live) ?? o.colours[0]);
  if (!next || (o.rollback && next === live)) {
    console.error('deploy: nothing to roll back to');
    return 2;
  }

  say(`${live ? `live is ${live.name}; ` : ''}starting ${next.name} on port ${next.port}`);
  if ((await status(next.port, '/healthz')) === 'down') run(o.start, next);
  const readyBy = Date.now() + o.readyTimeoutS * 1000;
  while ((await status(next.port, '/readyz')) !== 200) {
    if (Date.now() > readyBy) {
      console.error(`deploy: ${next.name} not ready after ${o.readyTimeoutS} s; nginx unchanged, stopping it`);
      run(o.stop, next);
      return 1;
    }
    await sleep(200);
  }
  say(`${next.name} is ready`);

  // Atomic switch: the new file is tested in place of the old, which comes back on failure.
  mkdirSync(dirname(o.upstream), { recursive: true });
  const previous = existsSync(o.upstream) ? readFileSync(o.upstream, 'utf8') : null;
  const staged = `${o.upstream}.next`;
  writeFileSync(staged, upstreamBlock(next.port));
  renameSync(staged, o.upstream);
  try {
    execSync(o.nginxTest, { stdio: 'inherit', shell: '/bin/sh' });
  } catch {
    if (previous !== null) writeFileSync(o.upstream, previous);
    console.error('deploy: nginx -t failed; the previous upstream is restored and nginx was not reloaded');
    run(o.stop, next);
    return 1;
  }
  execSync(o.nginxReload, { stdio: 'inherit', shell: '/bin/sh' });
  say(`nginx now sends traffic to ${next.name}`);
  writeFileSync(stateFile, JSON.stringify({ live: next.name, previous: live?.name ?? null }));

  if (live) {
    // Old nginx workers finish what they were proxying before the old colour goes away.
    await sleep(o.settleMs);
    say(`draining ${live.name} (WebSockets close with 1012 and reconnect to ${next.name})`);
    run(o.stop, live);
    const drainBy = Date.now() + o.drainTimeoutS * 1000;
    while ((await status(live.port, '/healthz')) !== 'down') {
      if (Date.now() > drainBy) {
        console.error(`deploy: ${live.name} still answering after ${o.drainTimeoutS} s`);
        return 1;
      }
      await sleep(200);
    }
    say(`${live.name} stopped`);
  }
  say('done');
  return 0;
}
