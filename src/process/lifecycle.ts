/**
 * Readiness and drain. `/readyz` answers 503 until `ready()` and again from `drain()`;
 * the HTTP layer counts in-flight requests here so shutdown can wait for them.
 */
export type Phase = 'starting' | 'ready' | 'draining';

export class Lifecycle {
  phase: Phase = 'starting';
  inflight = 0;
  private idleWaiters: Array<() => void> = [];

  ready(): void {
    if (this.phase === 'starting') this.phase = 'ready';
  }

  drain(): void {
    this.phase = 'draining';
  }

  get isReady(): boolean {
    return this.phase === 'ready';
  }

  enter(): void {
    this.inflight++;
  }

  leave(): void {
    this.inflight--;
    if (this.inflight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolve once no request is in flight, or after timeoutMs; true when idle. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.inflight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
