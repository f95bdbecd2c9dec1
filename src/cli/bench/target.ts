/**
 * The server under test: started by the bench per engine x workers (bin/onebox through
 * `startServer`, port 0, a fresh data directory, Redis when WORKERS>1), or an existing URL.
 */
import { startRedis, type RedisServer } from './redis-server.js';
import { startServer } from './server-process.js';
import { seedUsers } from './users.js';

export interface Target {
  host: string;
  port: number;
  /** Root pid of the server (supervisor when WORKERS>1), if the bench started it. */
  pid: number | undefined;
  jwtSecret: string | undefined;
  adminToken: string | undefined;
  /** A server the bench started: where its store is (for the bench's own reads and writes). */
  store?: { dataDir: string; databaseUrl: string | undefined };
  /** A server the bench started: create users bench-0 .. bench-<count-1>, the subjects of the tokens it signs. */
  seedUsers?(count: number): Promise<void>;
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
  /** Run the server processes on these CPUs only (--pin). */
  cpus?: string;
}

/** Start onebox (and Redis when several workers need a backplane). */
export async function startTarget(o: StartOptions): Promise<Target> {
  let redis: RedisServer | null = null;
  const env: Record<string, string> = {
    WORKERS: String(o.workers),
    PING_INTERVAL_MS: String(o.pingIntervalS * 1000),
    AUTH_RATE_PER_MIN: '100000',
    ...o.env,
  };
  if (o.workers > 1 && !env.REDIS_URL && !process.env.REDIS_URL) {
    redis = await startRedis();
    env.REDIS_URL = redis.url;
  }
  try {
    const server = await startServer({
      engine: o.engine,
      env,
      inheritEnv: true,
      stderr: 'inherit',
      startTimeoutMs: 60_000,
      ...(o.logFile && { logFile: o.logFile }),
      ...(o.cpus && { cpus: o.cpus }),
    });
    return {
      host: server.host,
      port: server.port,
      get pid() {
        return server.proc.pid;
      },
      jwtSecret: server.jwtSecret,
      adminToken: server.adminToken,
      store: { dataDir: server.dataDir, databaseUrl: env.DATABASE_URL ?? process.env.DATABASE_URL },
      seedUsers: (count) => seedUsers({ dataDir: server.dataDir, databaseUrl: env.DATABASE_URL ?? process.env.DATABASE_URL }, count),
      restart: () => server.restart(),
      async stop() {
        await server.stop();
        await redis?.stop();
      },
    };
  } catch (err) {
    await redis?.stop();
    throw err;
  }
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
