/**
 * The tests' servers: the bench's starter (src/cli/bench/server-process.ts) with the
 * tests' fixed secrets, a short shutdown grace and stderr kept for failure messages.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import { request as httpRequest } from 'node:http';
import { BIN, startServer as startProcess, type EngineName, type ServerProcess } from '../../src/cli/bench/server-process.js';

export { BIN, ENGINES, ROOT, type EngineName } from '../../src/cli/bench/server-process.js';
export const JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

export type Running = ServerProcess;

/**
 * A namespace any signed-in user may read and publish to, keeping history as rooms do: for
 * tests of delivery rather than of access rules (those use the built-in `room`).
 */
export const CHAT_NAMESPACE = { chat: { subscribe: 'authenticated', publish: 'authenticated', history: { size: 100, ttlS: 600 } } } as const;

/**
 * Start bin/onebox serve on port 0 with a fresh data directory (unless env.DATA_DIR) and wait until it listens.
 * @param namespaces added to the built-in ones in a CHANNELS_FILE made for this server (removed on stop).
 */
export async function startServer(engine: EngineName, env: Record<string, string> = {}, namespaces?: Record<string, object>): Promise<Running> {
  let dir: string | undefined;
  if (namespaces) {
    dir = mkdtempSync(join(tmpdir(), 'onebox-channels-'));
    writeFileSync(join(dir, 'channels.json'), JSON.stringify({ namespaces: { ...DEFAULT_NAMESPACES, ...namespaces } }));
    env = { CHANNELS_FILE: join(dir, 'channels.json'), ...env };
  }
  const s = await startProcess({ engine, jwtSecret: JWT_SECRET, adminToken: ADMIN_TOKEN, env: { SHUTDOWN_GRACE_MS: '3000', ...env } }).catch((err: unknown) => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  if (!dir) return s;
  const stop = s.stop.bind(s);
  return Object.assign(s, {
    stop: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  });
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
export async function signup(base: string, prefix = 'user'): Promise<{ token: string; refreshToken: string; id: string; email: string }> {
  const email = `${prefix}-${process.pid}-${Date.now()}-${seq++}@example.com`;
  const res = await api(base, 'POST', '/v1/auth/signup', { body: { email, password: 'correct horse battery' } });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { token: res.body.token, refreshToken: res.body.refreshToken, id: res.body.user.id, email };
}
