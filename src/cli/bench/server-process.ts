/**
 * Start the real server (bin/onebox serve) as a child process and wait for its `listening`
 * log line: the one starter behind the bench's targets, `onebox bench ws-memory` and the
 * tests' servers. Port 0 by default (the port is read from the `listening` line, so no
 * fixed ports and no sleeps); a fresh data directory unless DATA_DIR is given; every
 * stdout line kept, parsed when JSON, for `waitForLine`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pinnedCommand } from './pin.js';

/** The repository (or installed package) root. */
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'onebox');
export const ENGINES = ['bun', 'node'] as const;
export type EngineName = (typeof ENGINES)[number];

/** One stdout line, parsed when JSON (`raw` holds text that is not); `__raw` keeps the text. */
export type ServerLine = Record<string, unknown>;

export interface StartServerOptions {
  engine: EngineName;
  /** More environment, over the defaults below (PORT, HOST, DATA_DIR, LOG_LEVEL, ...). */
  env?: Record<string, string>;
  /** Pass this process's whole environment on (the bench), or only PATH and HOME (tests). @default false */
  inheritEnv?: boolean;
  /** @default 32 random bytes */
  jwtSecret?: string;
  /** @default 24 random bytes */
  adminToken?: string;
  /** Also write every stdout line to this file, afresh. */
  logFile?: string;
  /** Keep stderr lines in `stderr` (tests), or pass them to this process's stderr (bench). @default 'collect' */
  stderr?: 'collect' | 'inherit';
  /** How long to wait for the `listening` line. @default 15000 ms */
  startTimeoutMs?: number;
  /** Run the server (and so its workers) on these CPUs only, taskset's list form. @default any */
  cpus?: string;
  /** Run this instead of `bin/onebox serve`: a peer server of `--peers`, which prints the same `listening` line. */
  command?: [string, string[]];
}

export interface ServerProcess {
  engine: EngineName;
  host: string;
  port: number;
  url: string;
  wsUrl: string;
  jwtSecret: string;
  adminToken: string;
  /** The current process (a new one after `restart`). */
  readonly proc: ChildProcess;
  /** Every stdout line so far, over restarts. */
  lines: ServerLine[];
  stderr: string[];
  dataDir: string;
  /** Settles when the current process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first log line matching the predicate (past or future); rejects on timeout or exit. */
  waitForLine(pred: (l: ServerLine) => boolean, timeoutMs?: number): Promise<ServerLine>;
  /** SIGTERM and wait for the exit, then start again on the same port and data directory. */
  restart(): Promise<void>;
  /** SIGTERM (SIGKILL past the grace period), then remove the data directory if it made one. */
  stop(): Promise<void>;
}

export async function startServer(o: StartServerOptions): Promise<ServerProcess> {
  const madeDataDir = !o.env?.DATA_DIR;
  const dataDir = o.env?.DATA_DIR ?? mkdtempSync(join(tmpdir(), `onebox-${o.engine}-`));
  const jwtSecret = o.jwtSecret ?? randomBytes(32).toString('base64url');
  const adminToken = o.adminToken ?? randomBytes(24).toString('base64url');
  const host = o.env?.HOST ?? '127.0.0.1';
  const env: Record<string, string | undefined> = {
    ...(o.inheritEnv ? process.env : { PATH: process.env.PATH, HOME: process.env.HOME }),
    ENGINE: o.engine,
    PORT: '0',
    HOST: host,
    DATA_DIR: dataDir,
    JWT_SECRET: jwtSecret,
    ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'info',
    ...o.env,
  };
  // The server exits by its grace deadline; SIGKILL only one that hangs past it.
  const killAfterMs = Math.max(10_000, Number(env.SHUTDOWN_GRACE_MS ?? 10_000) + 5_000);
  const log = o.logFile ? createWriteStream(o.logFile) : null;
  const lines: ServerLine[] = [];
  const stderr: string[] = [];
  const watchers = new Set<{ pred: (l: ServerLine) => boolean; resolve: (l: ServerLine) => void }>();
  let proc!: ChildProcess;
  let exited!: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  const spawnOne = () => {
    const [cmd, args] = pinnedCommand(o.cpus, ...(o.command ?? [BIN, ['serve']]));
    proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', o.stderr === 'inherit' ? 'inherit' : 'pipe'] });
    const p = proc;
    exited = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: p.stdout! }).on('line', (text) => {
      log?.write(`${text}\n`);
      let line: ServerLine;
      try {
        line = JSON.parse(text) as ServerLine;
      } catch {
        line = { raw: text };
      }
      line.__raw = text;
      lines.push(line);
      for (const w of [...watchers]) {
        if (w.pred(line)) {
          watchers.delete(w);
          w.resolve(line);
        }
      }
    });
    if (p.stderr) createInterface({ input: p.stderr }).on('line', (t) => stderr.push(t));
  };

  const waitForLine = (pred: (l: ServerLine) => boolean, timeoutMs = 15_000, from = 0) => {
    const found = lines.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    const current = exited;
    return new Promise<ServerLine>((resolve, reject) => {
      const t = setTimeout(() => {
        watchers.delete(w);
        reject(new Error(`timed out waiting for a log line; stderr: ${stderr.join('\n')}`));
      }, timeoutMs);
      const w = {
        pred,
        resolve: (l: ServerLine) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      watchers.add(w);
      void current.then(({ code, signal }) => {
        if (watchers.delete(w)) {
          clearTimeout(t);
          reject(new Error(`server exited (${signal ?? code}); stderr: ${stderr.join('\n')}`));
        }
      });
    });
  };

  // WORKERS>1: the supervisor logs `listening` once every worker is up.
  const boot = async () => {
    const from = lines.length;
    spawnOne();
    const listening = await waitForLine((l) => l.msg === 'listening', o.startTimeoutMs ?? 15_000, from);
    return Number(listening.port);
  };
  const halt = async () => {
    const p = proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  };

  let port: number;
  try {
    port = await boot();
  } catch (err) {
    await halt();
    log?.end();
    if (madeDataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  // A restart comes back on the same port, where clients reconnect.
  env.PORT = String(port);
  return {
    engine: o.engine,
    host,
    port,
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}/v1/ws`,
    jwtSecret,
    adminToken,
    get proc() {
      return proc;
    },
    lines,
    stderr,
    dataDir,
    get exited() {
      return exited;
    },
    waitForLine: (pred, timeoutMs) => waitForLine(pred, timeoutMs),
    async restart() {
      await halt();
      await boot();
    },
    async stop() {
      await halt();
      if (madeDataDir) rmSync(dataDir, { recursive: true, force: true });
      await new Promise((resolve) => (log ? log.end(resolve) : resolve(null)));
    },
  };
}
