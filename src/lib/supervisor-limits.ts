/**
 * A worker's `Limits` when WORKERS>1: every hit and slot is counted by the supervisor, one
 * table for the box, over the IPC channel the supervisor already has to each worker
 * (request id -> reply). The supervisor answers with `answerLimits` from a `LocalLimits`
 * that keeps slots per worker pid, so a worker that dies gives its slots back.
 *
 * Every request has a deadline (`timeoutMs`); one interval, running only while requests
 * are pending, expires them in order. Without an answer in time:
 * - a rate-limit hit is counted by this worker alone (the limit degrades to per process,
 *   never to none);
 * - a slot is refused (fail closed: the upgrade gets 503 + Retry-After and the client
 *   retries); if the grant arrives late, the slot is released at once, so nothing leaks.
 * A supervisor that is gone ends the worker anyway (cluster.ts), so this is for a stall.
 */
import type { HitResult, Limits } from './limits.js';
import { LocalLimits } from './local-limits.js';

export type LimitsRequest =
  | { type: 'limits.hit'; id: number; key: string; limit: number; windowMs: number }
  | { type: 'limits.acquire'; id: number; key: string; max: number }
  | { type: 'limits.release'; key: string };

export interface LimitsReply {
  type: 'limits.reply';
  id: number;
  /** hit: allowed; acquire: granted. */
  ok: boolean;
  /** hit only. */
  retryAfterS?: number;
}

/** The worker's end of the IPC channel. */
export interface IpcPort {
  /** Throws or returns false when the channel is closed. */
  send(msg: LimitsRequest): boolean | void;
  onMessage(listener: (msg: unknown) => void): void;
}

type Ask = { type: 'limits.hit'; key: string; limit: number; windowMs: number } | { type: 'limits.acquire'; key: string; max: number };

interface Pending {
  deadline: number;
  /** Set for an acquire: the key to release if the grant comes after the deadline. */
  acquireKey: string | null;
  resolve(reply: LimitsReply | null): void;
}

/** Abandoned acquires remembered for a late grant; beyond this the oldest is forgotten. */
const MAX_ABANDONED = 10_000;

export class SupervisorLimits implements Limits {
  /** Requests that got no answer in time (exported as a metric). */
  readonly stats = { timeouts: 0 };
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Map<number, string>();
  private readonly fallback = new LocalLimits();
  private nextId = 1;
  private sweeper: ReturnType<typeof setInterval> | null = null;

  /**
   * @param port the IPC channel to the supervisor.
   * @param timeoutMs deadline of one request; an answer may be given up on up to a quarter
   *   later (one sweep for every pending request). @default 1000 ms
   */
  constructor(
    private readonly port: IpcPort,
    private readonly timeoutMs = 1000,
  ) {
    port.onMessage((m) => this.onMessage(m));
  }

  async hit(key: string, limit: number, windowMs: number): Promise<HitResult> {
    const reply = await this.ask({ type: 'limits.hit', key, limit, windowMs }, null);
    if (reply === null) return this.fallback.hitNow(key, limit, windowMs);
    return { allowed: reply.ok, retryAfterS: reply.retryAfterS ?? 1 };
  }

  async acquire(key: string, max: number): Promise<boolean> {
    return (await this.ask({ type: 'limits.acquire', key, max }, key))?.ok ?? false;
  }

  release(key: string): void {
    this.send({ type: 'limits.release', key });
  }

  /** Stop the deadline sweep and answer whatever is pending as unanswered. */
  close(): void {
    this.stopSweeper();
    for (const p of this.pending.values()) p.resolve(null);
    this.pending.clear();
  }

  private ask(req: Ask, acquireKey: string | null): Promise<LimitsReply | null> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { deadline: Date.now() + this.timeoutMs, acquireKey, resolve });
      if (!this.send({ ...req, id } as LimitsRequest)) {
        this.pending.delete(id);
        return resolve(null);
      }
      if (this.sweeper === null) {
        // Referenced: it runs only while something waits, and that wait must end.
        this.sweeper = setInterval(() => this.expire(), Math.max(1, Math.floor(this.timeoutMs / 4)));
      }
    });
  }

  private send(msg: LimitsRequest): boolean {
    try {
      return this.port.send(msg) !== false;
    } catch {
      return false;
    }
  }

  private onMessage(m: unknown): void {
    const reply = m as LimitsReply | null;
    if (reply?.type !== 'limits.reply') return;
    const p = this.pending.get(reply.id);
    if (p) {
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.stopSweeper();
      p.resolve(reply);
      return;
    }
    const key = this.abandoned.get(reply.id);
    if (key === undefined) return;
    this.abandoned.delete(reply.id);
    // Granted after we refused the upgrade: nobody holds it.
    if (reply.ok) this.release(key);
  }

  private expire(now = Date.now()): void {
    // One deadline for all, so insertion order is deadline order.
    for (const [id, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(id);
      this.stats.timeouts++;
      if (p.acquireKey !== null) {
        this.abandoned.set(id, p.acquireKey);
        if (this.abandoned.size > MAX_ABANDONED) this.abandoned.delete(this.abandoned.keys().next().value!);
      }
      p.resolve(null);
    }
    if (this.pending.size === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

/** True for the messages a worker sends the supervisor's limit tables. */
export function isLimitsRequest(m: unknown): m is LimitsRequest {
  const t = (m as { type?: unknown } | null)?.type;
  return t === 'limits.hit' || t === 'limits.acquire' || t === 'limits.release';
}

/**
 * The supervisor's side: apply a worker's request to the box's table.
 * @param owner the worker's pid (its slots are released together when it exits).
 * @returns the reply to send back, or undefined for a release.
 */
export function answerLimits(table: LocalLimits, owner: number, m: LimitsRequest): LimitsReply | undefined {
  switch (m.type) {
    case 'limits.hit': {
      const r = table.hitNow(m.key, m.limit, m.windowMs);
      return { type: 'limits.reply', id: m.id, ok: r.allowed, retryAfterS: r.retryAfterS };
    }
    case 'limits.acquire':
      return { type: 'limits.reply', id: m.id, ok: table.acquireFor(owner, m.key, m.max) };
    case 'limits.release':
      table.releaseFor(owner, m.key);
      return undefined;
  }
}
