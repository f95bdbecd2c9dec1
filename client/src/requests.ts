/**
 * Requests that wait for an answer by `id` (`pub`, `presence`, `history`, `auth`): each has a
 * deadline in wall time; those marked `resend` (publishes, presence) survive a lost
 * connection and are sent again on the next ready one — a publish keeps its idempotency key,
 * so a retry never publishes twice — while the others fail with `disconnected`.
 */
import { hintedDelay } from './backoff.js';
import { OneboxError } from './errors.js';
import type { Frame, Link } from './link.js';
import type { Clock } from './types.js';

/** Errors a resendable request is retried after (1-2 s later, or on the next connection). */
export const RETRYABLE = new Set(['rate_limited', 'store_unavailable', 'not_ready']);

interface Request {
  id: string;
  frame: Frame;
  resolve: (ack: Frame) => void;
  reject: (err: Error) => void;
  deadline: number;
  timer?: unknown;
  /** A retry after `rate_limited` on the same connection. */
  retryTimer?: unknown;
  resend: boolean;
  sentOn?: Link;
}

export interface RequestDeps {
  clock: Clock;
  random: () => number;
  /** The current connection, if any. */
  link(): Link | undefined;
  /** Paused: deadlines wait for the next connection (no timer runs). */
  paused(): boolean;
}

export class Requests {
  private readonly pending = new Map<string, Request>();
  private seq = 0;

  constructor(private readonly deps: RequestDeps) {}

  /** The id the next request gets (for idempotency keys that follow it). */
  nextSeq(): number {
    return this.seq + 1;
  }

  send(body: Frame, timeoutMs: number, resend: boolean): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      const id = `r${++this.seq}`;
      const r: Request = { id, frame: { ...body, id }, resolve, reject, deadline: this.deps.clock.now() + timeoutMs, resend };
      this.pending.set(id, r);
      this.armDeadline(r);
      if (this.deps.link()?.ready) this.transmit(r);
      else if (!resend) this.settle(id)?.reject(new OneboxError('disconnected', 'not connected'));
      else if (this.deps.paused()) this.clearTimers(r);
    });
  }

  /** The link became ready: send every request not sent on it yet. */
  sendPending(link: Link): void {
    for (const r of [...this.pending.values()]) if (r.sentOn !== link) this.transmit(r);
  }

  /** An `ack` or `error` with an id: settle its request. False when it is not one of ours. */
  answer(f: Frame): boolean {
    const r = typeof f.id === 'string' ? this.pending.get(f.id) : undefined;
    if (!r) return false;
    if (f.op === 'ack') {
      this.settle(r.id)!.resolve(f);
      return true;
    }
    if (r.resend && RETRYABLE.has(f.code)) {
      r.sentOn = undefined;
      const link = this.deps.link();
      if (r.retryTimer !== undefined) this.deps.clock.clearTimeout(r.retryTimer);
      r.retryTimer = this.deps.clock.setTimeout(() => {
        r.retryTimer = undefined;
        if (this.pending.get(r.id) === r && this.deps.link() === link && link?.ready && !r.sentOn) this.transmit(r);
      }, hintedDelay(1, this.deps.random));
      return true;
    }
    this.settle(r.id)!.reject(new OneboxError(String(f.code), String(f.message ?? f.code), r.frame.topic));
    return true;
  }

  /** The link closed: requests that are not resent fail. */
  linkLost(link: Link): void {
    for (const r of [...this.pending.values()]) {
      if (!r.resend && r.sentOn === link) this.settle(r.id)?.reject(new OneboxError('disconnected', 'the connection closed before the answer'));
    }
  }

  /** Pause: no timer runs; the deadlines are checked again when the requests are next sent. */
  stopTimers(): void {
    for (const r of this.pending.values()) this.clearTimers(r);
  }

  rejectAll(err: Error): void {
    for (const r of [...this.pending.values()]) this.settle(r.id)?.reject(err);
  }

  private transmit(r: Request): void {
    const link = this.deps.link();
    if (!link) return;
    if (r.timer === undefined) {
      // Back from a pause: the deadline kept running in wall time.
      if (this.deps.clock.now() >= r.deadline) return void this.settle(r.id)?.reject(this.timeout(r));
      this.armDeadline(r);
    }
    r.sentOn = link;
    link.send(r.frame);
  }

  private timeout(r: Request): OneboxError {
    return new OneboxError('timeout', `no answer to ${String(r.frame.op)} in time`, r.frame.topic);
  }

  private armDeadline(r: Request): void {
    if (r.timer !== undefined) this.deps.clock.clearTimeout(r.timer);
    r.timer = this.deps.clock.setTimeout(() => this.settle(r.id)?.reject(this.timeout(r)), Math.max(0, r.deadline - this.deps.clock.now()));
  }

  private clearTimers(r: Request): void {
    if (r.timer !== undefined) this.deps.clock.clearTimeout(r.timer);
    if (r.retryTimer !== undefined) this.deps.clock.clearTimeout(r.retryTimer);
    r.timer = r.retryTimer = undefined;
  }

  private settle(id: string): Request | undefined {
    const r = this.pending.get(id);
    if (!r) return undefined;
    this.pending.delete(id);
    this.clearTimers(r);
    return r;
  }
}
