/**
 * Start the real server (bin/onebox) per engine on port 0 with a fresh data directory,
 * and wait for its `listening` log line: no fixed ports, no sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as cryptoModule from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'onebox');
export const ENGINES = ['bun', 'node'] as const;
export type EngineName = (typeof ENGINES)[number];
export const JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

type Line = Record<string, unknown>;

export interface Running {
  engine: EngineName;
  port: number;
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  /** Every stdout line so far, parsed when JSON (`__raw` keeps the text). */
  lines: Line[];
  stderr: string[];
  dataDir: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolve with the first log line matching the predicate (past or future). */
  waitForLine(pred: (l: Line) => boolean, timeoutMs?: number): Promise<Line>;
  stop(): Promise<void>;
}

export async function startServer(engine: EngineName, env: Record<string, string> = {}): Promise<Running> {
  const dataDir = env.DATA_DIR ?? mkdtempSync(join(tmpdir(), `onebox-${engine}-`));
  const proc = spawn(BIN, ['serve'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ENGINE: engine,
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      JWT_SECRET,
      ADMIN_TOKEN,
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_MS: '3000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Line[] = [];
  const stderr: string[] = [];
  const watchers = new Set<{ pred: (l: Line) => boolean; resolve: (l: Line) => void }>();
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
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
  createInterface({ input: proc.stderr! }).on('line', (t) => stderr.push(t));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const waitForLine = (pred: (l: Line) => boolean, timeoutMs = 15_000) => {
    const found = lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Line>((resolve, reject) => {
      const t = setTimeout(() => {
        watchers.delete(w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line matching ${String(pred)}; stderr: ${stderr.join('\n')}`));
      }, timeoutMs);
      const w = {
        pred,
        resolve: (l: Line) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      watchers.add(w);
      void exited.then(() => {
        if (watchers.delete(w)) {
          clearTimeout(t);
          reject(new Error(`server exited while waiting for a log line matching ${String(pred)}; stderr: ${stderr.join('\n')}`));
        }
      });
    });
  };

  const listening = await waitForLine((l) => l.msg === 'listening');
  const port = Number(listening.port);
  return {
    engine,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    proc,
    lines,
    stderr,
    dataDir,
    exited,
    waitForLine,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (!env.DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Run the CLI to completion (for config errors and one-shot commands).
 * @param timeoutMs past it the command is killed and the promise rejects. @default 30000 ms
 */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`timed out after ${timeoutMs} ms waiting for \`onebox ${args.join(' ')}\` to exit; stderr: ${stderr}`));
    }, timeoutMs);
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: any;
}

/**
 * JSON request helper. One fresh connection per request (agent: false): test servers come
 * and go on ports the kernel hands out again, and a pooled keep-alive connection to a
 * server that stopped would fail the next server's first request on the same port.
 */
export function api(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method, headers, agent: false, localAddress: opts.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode!, headers: h, body: parsed });
      });
    });
    req.on('error', reject);
    // A connection handed to a worker at the moment it dies (Node cluster) never answers.
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.end(body);
  });
}

let seq = 0;
/** Sign up a fresh user; returns its token and id. */
export async function signup(base: string, prefix = 'user'): Promise<{ token: string; id: string; email: string }> {
  const email = `${prefix}-${process.pid}-${Date.now()}-${seq++}@example.com`;
  const res = await api(base, 'POST', '/v1/auth/signup', { body: { email, password: 'correct horse battery' } });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { token: res.body.token, id: res.body.user.id, email };
}

/** Sign an HS256 token with arbitrary claims and header (for forged/expired/none cases). */
export function rawJwt(header: object, payload: object, secret: string | null): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  if (secret === null) return `${input}.`;
  return `${input}.${cryptoModule.createHmac('sha256', secret).update(input).digest('base64url')}`;
}
