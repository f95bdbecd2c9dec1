/**
 * The bench's WebSocket client processes (ws-client-proc.ts, raw sockets), forked and
 * spoken to over IPC: each opens its share of connections from its own loopback address
 * and reports its counts once a second.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

const CLIENT = fileURLToPath(new URL('./ws-client-proc.js', import.meta.url));

export interface ClientStats {
  open: number;
  opened: number;
  failed: number;
  dropped: number;
  pings: number;
  reconnects: number;
  /** App-level `ping` frames sent, and `pong` frames received (the heartbeat scenario). */
  appPings?: number;
  pongs?: number;
  errors: Record<string, number>;
  /** Pubs acknowledged since the last mark (the delivery scenario). */
  pubAcked?: number;
}

export class Clients {
  readonly procs: ChildProcess[] = [];
  readonly stats: ClientStats[] = [];
  /** @param nice scheduling priority of the client processes (0: as the server's). */
  constructor(count: number, nice: number) {
    for (let i = 0; i < count; i++) {
      const p = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      setPriority(p.pid!, nice);
      this.stats.push({ open: 0, opened: 0, failed: 0, dropped: 0, pings: 0, reconnects: 0, errors: {} });
      p.on('message', (m: { type: string } & ClientStats) => {
        if (m.type === 'stats') this.stats[i] = m;
      });
      this.procs.push(p);
    }
  }
  total(): ClientStats {
    const t: ClientStats = { open: 0, opened: 0, failed: 0, dropped: 0, pings: 0, reconnects: 0, errors: {} };
    for (const s of this.stats) {
      for (const k of ['open', 'opened', 'failed', 'dropped', 'pings', 'reconnects'] as const) t[k] += s[k];
      for (const [k, v] of Object.entries(s.errors)) t.errors[k] = (t.errors[k] ?? 0) + v;
      t.pubAcked = (t.pubAcked ?? 0) + (s.pubAcked ?? 0);
      t.appPings = (t.appPings ?? 0) + (s.appPings ?? 0);
      t.pongs = (t.pongs ?? 0) + (s.pongs ?? 0);
    }
    return t;
  }
  ask<T>(msg: object, type: string): Promise<T[]> {
    return Promise.all(
      this.procs.map(
        (p) =>
          new Promise<T>((resolve) => {
            const on = (m: { type: string }) => {
              if (m.type !== type) return;
              p.off('message', on);
              resolve(m as T);
            };
            p.on('message', on);
            p.send(msg);
          }),
      ),
    );
  }
  stop(): void {
    for (const p of this.procs) if (p.connected) p.send({ cmd: 'stop' });
  }
}
