/**
 * The server under test: started by the bench per engine x workers (bin/onebox, a free
 * loopback port, a fresh data directory, Redis when WORKERS>1), or an existing URL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../../lib/free-port.js';
import { startRedis, type RedisServer } from './redis-server.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../../bin/onebox', import.meta.url));

function waitForLine(proc: ChildProcess, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    const t = setTimeout(() => reject(new Error('server did not start in time')), timeoutMs);
    rl.on('line', (line) => {
      if (match(line)) {
        clearTimeout(t);
        resolve(line);
      }
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

export interface Target {
  host: string;
  port: number;
  /** Root pid of the server (supervisor when WORKERS>1), if the bench started it. */
  pid: number | undefined;
  jwtSecret: string | undefined;
  adminToken: string | undefined;
  restart?(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  engine: 'bun' | 'node';
  workers: number;
  pingIntervalS: number;
  env?: Record<string, string>;
  /** Write the server's log lines (stdout) to this file, afresh. */
  logFile?: string;
}

/** Start onebox (and Redis when several workers need a backplane). */
export async function startTarget(o: StartOptions): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), 'onebox-bench-'));
  const port = await freePort();
  const jwtSecret = randomBytes(32).toString('base64url');
  const adminToken = randomBytes(24).toString('base64url');
  let redis: RedisServer | null = null;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ENGINE: o.engine,
    WORKERS: String(o.workers),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    JWT_SECRET: jwtSecret,
    ADMIN_TOKEN: adminToken,
    PING_INTERVAL_MS: String(o.pingIntervalS * 1000),
    LOG_LEVEL: 'info',
    AUTH_RATE_PER_MIN: '100000',
    ...o.env,
  };
  if (o.workers > 1 && !env.REDIS_URL) {
    redis = await startRedis();
    env.REDIS_URL = redis.url;
  }
  const log = o.logFile ? createWriteStream(o.logFile) : null;
  let proc: ChildProcess;
  const boot = async () => {
    proc = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    if (log) proc.stdout!.on('data', (chunk: Buffer) => log.write(chunk));
    await waitForLine(proc, (l) => l.includes('"msg":"listening"'), 60_000);
    proc.stdout!.resume();
  };
  const halt = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await boot();
  return {
    host: '127.0.0.1',
    port,
    get pid() {
      return proc.pid;
    },
    jwtSecret,
    adminToken,
    async restart() {
      await halt();
      await boot();
    },
    async stop() {
      await halt();
      await redis?.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await new Promise((res) => (log ? log.end(res) : res(null)));
    },
  };
}

/** An already running server. */
export function externalTarget(url: string, jwtSecret?: string, adminToken?: string): Target {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 80),
    pid: undefined,
    jwtSecret,
    adminToken,
    stop: async () => undefined,
  };
}

/** An HS256 token for a bench user, signed like the server's own. */
export function signToken(secret: string, sub: string): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, iss: 'onebox', iat: now, exp: now + 86_400 })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
