/**
 * A redis-server on a free loopback port, which can be stopped and started again: the
 * bench's backplane for WORKERS>1 runs, and the tests' Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../lib/free-port.js';

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** @param args more redis-server arguments, e.g. ['--requirepass', 'pw']. */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc = p;
      let out = '';
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      p.once('error', reject);
      p.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
    });
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null) return;
      await new Promise((r) => {
        p.once('exit', r);
        p.kill('SIGTERM');
      });
    },
  };
}
