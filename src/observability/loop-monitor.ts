/**
 * The event-loop block detector, the Node/Bun counterpart of the JVM's pinned-thread
 * tracing. A 50 ms timer measures how late it runs; a lateness over BLOCK_WARN_MS means
 * something held the loop, and the warning names the request route or WebSocket op that
 * most recently started running before the stall (entry points call `enter`). JavaScript
 * cannot inspect the loop while it is blocked, so this is the last thing that began, which
 * for a synchronous hog is the culprit.
 */
import { lateTimer } from './late-timer.js';
import type { Logger } from './logger.js';

const TICK_MS = 50;

export class LoopMonitor {
  /** The last entry point (e.g. `GET` + `/v1/users/1/dashboard`, `ws:pub`) and when it began. */
  private current = 'idle';
  private detail = '';
  private since = 0;
  stalls = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly log: Logger,
    private readonly warnMs: number,
  ) {}

  /**
   * Mark the start of a unit of work. Cheap: assignments only; the label is joined from
   * its parts only when a stall is reported.
   */
  enter(label: string, detail = ''): void {
    this.current = label;
    this.detail = detail;
    this.since = performance.now();
  }

  start(): void {
    this.timer = lateTimer(TICK_MS, (late, now) => {
      if (late > this.warnMs) {
        this.stalls++;
        this.log.warn(
          { blockedMs: Math.round(late), running: this.detail ? `${this.current} ${this.detail}` : this.current, startedMsAgo: Math.round(now - this.since) },
          'event loop blocked',
        );
      }
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
