/**
 * The onebox CLI: `serve` (default), `migrate`, `bench`, `doctor`, `deploy`. This is the
 * only module that starts an engine, handles signals and exits the process; server.ts
 * builds what the engine serves.
 */
import { spawn } from 'node:child_process';
import { loadConfig, ConfigError, type Config } from './config.js';
import { createLogger, type Logger } from './observability/logger.js';
import { CLOSE } from './errors.js';
import { reportToSupervisor, supervise, supervisorPort } from './process/supervisor.js';
import { SystemdNotifier } from './process/systemd.js';
import { SupervisorLimits } from './lib/supervisor-limits.js';

// The app, store and engine load lazily: a WORKERS>1 supervisor only supervises and
// should not carry the application's memory.

const HELP: Record<string, string> = {
  main: `usage: onebox <command> [--help]

commands:
  serve     start the server (what npm start runs)
  migrate   bring the database schema to the newest version and exit
  bench     run the capacity benchmark (see onebox bench --help)
  doctor    check this box's limits and the capacity they allow (--json)
  deploy    blue-green deploy behind nginx (--rollback; see onebox deploy --help)
  runtime-flags  print the runtime memory settings for this box (bin/onebox starts with them)

Configuration comes from the environment; see README.md (PORT, ENGINE, DATA_DIR, ...).`,
  serve: `usage: onebox serve

Start the HTTP and WebSocket server on HOST:PORT with ENGINE (bun|node).
SIGTERM or SIGINT drains: /readyz turns 503, WebSockets close with 1001, in-flight
requests finish, and the process exits 0 within SHUTDOWN_GRACE_MS. SIGUSR2 drains the
same way for a deploy, closing WebSockets with 1012 so clients reconnect elsewhere.`,
  doctor: `usage: onebox doctor [--json]

Check open-file limits, somaxconn, port range, file-max, memory and CPUs; print
PASS/WARN/FAIL with the fix, the connection capacity per process and per box, and the
recommended sysctl file. Exits 1 when any check FAILs.`,
  migrate: `usage: onebox migrate

Apply pending migrations to the configured database (SQLite in DATA_DIR, or DATABASE_URL).`,
};

async function serve(config: Config, log: Logger): Promise<void> {
  // Every request and message path handles its own failures; a rejection that slips past
  // one is a bug to log, not a reason to drop every connection of this process.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const { loadEngine } = await import('./engine/index.js');
  const { buildServer } = await import('./server.js');
  const engine = await loadEngine(config.engine);
  const worker = config.workerIndex;
  // A supervised worker counts box-wide limits in the supervisor's tables.
  const port = worker === undefined ? undefined : supervisorPort();
  const limits = port && new SupervisorLimits(port);
  const app = await buildServer(config, log, limits);
  const server = await engine(config, { fetch: app.fetch, gateway: app.gateway }, log);
  app.lifecycle.ready();
  app.startBackground();
  log.info(
    { port: server.port, engine: config.engine, ceiling: app.gateway.ceiling, runtime: process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}` },
    worker === undefined ? 'listening' : 'worker listening',
  );
  if (worker !== undefined) {
    reportToSupervisor(
      server.port,
      () => ({ connections: app.gateway.stats.open, rps: app.live.rps, p99Ms: app.live.p99Ms }),
      (t) => app.setClusterTable(t),
    );
  }
  const notifier = new SystemdNotifier(log, config.systemd);
  notifier.ready(() => `${app.gateway.stats.open} connections`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const deadline = Date.now() + config.shutdownGraceMs;
    // Whatever happens below, the process is gone by the grace deadline.
    setTimeout(() => process.exit(0), config.shutdownGraceMs).unref();
    log.info({ signal, inflight: app.lifecycle.inflight, connections: app.gateway.stats.open }, 'draining');
    app.lifecycle.drain();
    notifier.stopping();
    const httpClosed = server.stopAccepting();
    // SIGUSR2 is the deploy's drain: 1012 tells clients to reconnect (to the new colour).
    if (signal === 'SIGUSR2') app.gateway.closeAll(CLOSE.restart, 'server restarting');
    else app.gateway.closeAll(CLOSE.goingAway, 'server shutting down');
    const left = () => Math.max(0, deadline - Date.now() - 100);
    await Promise.all([app.lifecycle.waitIdle(left()), app.gateway.waitEmpty(left())]);
    app.gateway.terminateAll();
    await Promise.race([httpClosed, new Promise((r) => setTimeout(r, left()))]);
    await server.close();
    await app.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGUSR2', () => void shutdown('SIGUSR2'));
}

async function migrate(config: Config, log: Logger): Promise<void> {
  const { openDb } = await import('./store/db.js');
  const { migrateToLatest } = await import('./store/migrations.js');
  const db = await openDb(config);
  try {
    const result = await migrateToLatest(db);
    for (const r of result.results ?? []) log.info({ migration: r.migrationName, status: r.status }, 'migration');
    log.info({ applied: result.results?.length ?? 0 }, 'schema is current');
  } finally {
    await db.destroy();
  }
}

/** Run `onebox migrate` as a child process, so the supervisor never loads the store. */
function migrateInChild(log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1]!, 'migrate'], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else {
        log.fatal({ code }, 'migrations failed; not starting workers');
        reject(new Error(`onebox migrate exited with ${code}`));
      }
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === 'bench') return (await import('./cli/bench/run.js')).runBench(rest);
  if (command === 'deploy') return (await import('./cli/deploy.js')).deploy(rest);
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP.main);
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[command] ?? HELP.main);
    return HELP[command] ? 0 : 2;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`onebox: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  switch (command) {
    case 'serve':
      if (config.workers > 1 && config.workerIndex === undefined) {
        await supervise(config, log.child({ role: 'supervisor' }), () => migrateInChild(log), new SystemdNotifier(log, config.systemd));
        return 0;
      }
      await serve(config, config.workerIndex === undefined ? log : log.child({ worker: config.workerIndex }));
      return -1;
    case 'migrate':
      await migrate(config, log);
      return 0;
    case 'doctor':
      return (await import('./cli/doctor.js')).doctor(rest, config);
    case 'runtime-flags': {
      const { formatRuntimeFlags, runtimeMemory } = await import('./process/runtime-memory.js');
      process.stdout.write(formatRuntimeFlags(runtimeMemory(config)));
      return 0;
    }
    default:
      console.error(`onebox: unknown command "${command}"\n\n${HELP.main}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`onebox: ${err.message}`);
      process.exit(2);
    }
    console.error(`onebox: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
