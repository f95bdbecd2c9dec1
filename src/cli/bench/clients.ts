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

/** What `Clients.start` spreads over the client processes. */
export interface SpreadStart {
  host: string;
  port: number;
  count: number;
  /** The access token of the i-th socket (0-based over all processes). */
  token: (i: number) => string;
  /** Process k connects from 127.0.0.<firstAddress + k>. @default 2 */
  firstAddress?: number;
  topic: string | string[];
  rampS: number;
  /** Reconnect a closed socket (the storm). @default false */
  reconnect?: boolean;
  /** More fields of each process's start command (ws-client-proc.ts `Start`). */
  extra?: Record<string, unknown>;
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
  /**
   * Spread `count` sockets over the client processes: process k opens its share from
   * 127.0.0.<firstAddress + k> (one source address each: 64K ports apiece), as users
   * `token(i)`, at `count / rampS` a second in all.
   */
  start(o: SpreadStart): void {
    const share = Math.ceil(o.count / this.procs.length);
    this.procs.forEach((p, k) => {
      const from = k * share;
      const n = Math.max(0, Math.min(share, o.count - from));
      p.send({
        cmd: 'start',
        host: o.host,
        port: o.port,
        tokens: Array.from({ length: n }, (_, j) => o.token(from + j)),
        localAddress: `127.0.0.${(o.firstAddress ?? 2) + k}`,
        topic: o.topic,
        rate: Math.max(1, n / Math.max(o.rampS, 0.1)),
        reconnect: o.reconnect ?? false,
        ...o.extra,
      });
    });
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
