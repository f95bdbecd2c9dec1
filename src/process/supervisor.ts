/**
 * WORKERS=N: a supervisor process starts N workers that share one port, restarts a worker
 * that dies (exponential backoff, reset once a worker has run for a minute), forwards
 * SIGTERM/SIGINT and waits for every worker to drain before it exits.
 *
 * Port sharing is the runtime's: on Bun each worker binds with SO_REUSEPORT (the kernel
 * spreads connections); Node 20 has no reusePort, so Node workers come from the cluster
 * module (the primary accepts and hands connections round-robin). Workers report their
 * figures over IPC every second; the supervisor sends the whole table back to every
 * worker, so any worker's /metrics and /status show every process and the total.
 *
 * The supervisor also keeps the box's limit tables (login rate limit, WebSocket slots per
 * client address): workers ask over the same channel (lib/supervisor-limits.ts), slots are
 * held per worker pid and released when that worker exits.
 */
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../lib/free-port.js';
import { workerEnvironment, type Config } from '../config.js';
import { LocalLimits } from '../lib/local-limits.js';
import { answerLimits, isLimitsRequest, type IpcPort, type LimitsReply, type LimitsRequest } from '../lib/supervisor-limits.js';
import type { Logger } from '../observability/logger.js';
import type { SystemdNotifier } from './systemd.js';
import { runtimeMemory, workerExecArgv, type RuntimeMemory } from './runtime-memory.js';

export interface WorkerFigures {
  index: number;
  pid: number;
  connections: number;
  rssBytes: number;
  heapBytes: number;
  rps: number;
  p99Ms: number;
  restarts: number;
}

type ToSupervisor =
  | { type: 'ready'; port: number }
  | ({ type: 'stats' } & Omit<WorkerFigures, 'index' | 'restarts'>)
  | LimitsRequest;
type ToWorker = { type: 'cluster'; workers: WorkerFigures[] } | LimitsReply;

interface Handle {
  pid: number;
  proc: ChildProcess;
  send(msg: ToWorker): void;
}

/** The settings the supervisor reads. */
export type SupervisorOptions = Pick<Config, 'port' | 'host' | 'workers' | 'engine' | 'shutdownGraceMs' | 'workerHeapMb' | 'semiSpaceMb' | 'bunSmol'>;

/** Workers start with the runtime memory settings of runtime-memory.ts (and the parent's other options). */
async function spawner(script: string, memory: RuntimeMemory): Promise<(env: NodeJS.ProcessEnv) => Handle> {
  const execArgv = workerExecArgv(process.execArgv, memory);
  if (process.versions.bun) {
    const { fork } = await import('node:child_process');
    return (env) => {
      const proc = fork(script, ['serve'], { env: { ...env, ...memory.env }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return { pid: proc.pid!, proc, send: (m) => proc.connected && proc.send(m) };
    };
  }
  const cluster = (await import('node:cluster')).default;
  cluster.setupPrimary({ exec: script, args: ['serve'], execArgv, silent: false });
  return (env) => {
    const w = cluster.fork({ ...env, ...memory.env });
    return { pid: w.process.pid!, proc: w.process, send: (m) => w.isConnected() && w.send(m) };
  };
}

/**
 * Run the supervisor until SIGTERM/SIGINT; resolves when every worker has exited.
 * @param prepare runs once before any worker starts (migrations: Kysely's SQLite migrator
 *   has no cross-process lock, so N workers must not migrate a fresh file at once).
 */
export async function supervise(config: SupervisorOptions, log: Logger, prepare: () => Promise<void>, notifier: SystemdNotifier): Promise<void> {
  await prepare();
  const port = config.port === 0 ? await freePort(config.host) : config.port;
  const memory = runtimeMemory(config);
  const spawn = await spawner(process.argv[1]!, memory);
  const table = new Map<number, WorkerFigures>();
  const handles = new Map<number, Handle>();
  const limits = new LocalLimits();
  let stopping = false;
  let readyCount = 0;
  let announced = false;

  const start = (index: number, restarts: number, failures: number) => {
    const startedAt = Date.now();
    const h = spawn(workerEnvironment(index, { port, workers: config.workers }));
    handles.set(index, h);
    table.set(index, { index, pid: h.pid, connections: 0, rssBytes: 0, heapBytes: 0, rps: 0, p99Ms: 0, restarts });
    let alive = true;
    h.proc.on('message', (m: ToSupervisor) => {
      if (isLimitsRequest(m)) {
        // 'exit' may be seen before the last messages of the channel: a dead worker's
        // requests are dropped, or a slot taken for it would never come back.
        if (!alive) return;
        const reply = answerLimits(limits, h.pid, m);
        if (reply) h.send(reply);
        return;
      }
      const row = table.get(index)!;
      if (m.type === 'ready') {
        if (!announced && ++readyCount === config.workers) {
          announced = true;
          log.info({ port, workers: config.workers, engine: config.engine, pid: process.pid, heapMbPerWorker: memory.heapMb, runtimeArgs: memory.execArgv }, 'listening');
          notifier.ready(() => `${config.workers} workers, ${[...table.values()].reduce((a, w) => a + w.connections, 0)} connections`);
        }
      } else if (m.type === 'stats') {
        Object.assign(row, { pid: m.pid, connections: m.connections, rssBytes: m.rssBytes, heapBytes: m.heapBytes, rps: m.rps, p99Ms: m.p99Ms });
      }
    });
    h.proc.once('exit', (code, signal) => {
      alive = false;
      const freed = limits.releaseOwner(h.pid);
      if (freed > 0) log.info({ worker: index, pid: h.pid, slots: freed }, 'released the exited worker\'s connection slots');
      handles.delete(index);
      if (stopping) return;
      const ranMs = Date.now() - startedAt;
      const nextFailures = ranMs > 60_000 ? 0 : failures + 1;
      const delay = Math.min(30_000, 250 * 2 ** (nextFailures - 1));
      log.error({ worker: index, pid: h.pid, code, signal, restartInMs: delay }, 'worker exited; restarting');
      setTimeout(() => !stopping && start(index, restarts + 1, nextFailures), delay);
    });
  };
  for (let i = 0; i < config.workers; i++) start(i, 0, 0);

  const broadcast = setInterval(() => {
    const msg: ToWorker = { type: 'cluster', workers: [...table.values()].filter((w) => handles.has(w.index)) };
    for (const h of handles.values()) h.send(msg);
  }, 1000);

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      clearInterval(broadcast);
      notifier.stopping();
      log.info({ signal, workers: handles.size }, 'draining workers');
      const kill = setTimeout(() => {
        for (const h of handles.values()) h.proc.kill('SIGKILL');
      }, config.shutdownGraceMs + 2000);
      kill.unref();
      if (handles.size === 0) return resolve();
      for (const h of handles.values()) {
        h.proc.once('exit', () => handles.size === 0 && resolve());
        h.proc.kill(signal);
      }
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGUSR2', () => stop('SIGUSR2'));
  });
  log.info('stopped');
}

/** In a supervised worker: its end of the IPC channel, for SupervisorLimits. */
export function supervisorPort(): IpcPort | undefined {
  if (!process.send) return undefined;
  return {
    send: (m) => process.connected && process.send!(m satisfies ToSupervisor),
    onMessage: (listener) => void process.on('message', listener),
  };
}

/** In a worker: report readiness and figures to the supervisor, receive the cluster table. */
export function reportToSupervisor(
  port: number,
  figures: () => { connections: number; rps: number; p99Ms: number },
  onTable: (t: WorkerFigures[]) => void,
): void {
  if (!process.send) return;
  process.send({ type: 'ready', port } satisfies ToSupervisor);
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    process.send?.({ type: 'stats', pid: process.pid, ...figures(), rssBytes: m.rss, heapBytes: m.heapUsed } satisfies ToSupervisor);
  }, 1000);
  timer.unref();
  process.on('message', (m: ToWorker) => {
    if (m?.type === 'cluster') onTable(m.workers);
  });
  // The supervisor is gone (killed): a worker must not linger holding the port.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
