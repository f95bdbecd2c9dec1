/**
 * systemd's notify protocol (sd_notify): READY=1 once migrated and listening, STATUS= with
 * the connection count, WATCHDOG=1 at half WATCHDOG_USEC while the event loop is healthy,
 * STOPPING=1 when the drain starts.
 *
 * Node has no unix datagram sockets, so both engines send through the `systemd-notify`
 * binary that ships with systemd wherever NOTIFY_SOCKET exists; the unit sets
 * NotifyAccess=all because the datagram comes from that child, and `--pid` names us as
 * the main process. No native addon, nothing to build.
 *
 * Watchdog: a blocked loop fires no timer, so no ping goes out and systemd restarts the
 * service. A loop that is alive but stalling (the ping timer itself ran late by more than
 * half the interval) also skips its ping: better a restart than a box that answers nothing.
 */
import { spawn } from 'node:child_process';
import { lateTimer } from '../observability/late-timer.js';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';

/** What systemd handed this process (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID). */
export type SystemdOptions = Config['systemd'];

export class SystemdNotifier {
  readonly enabled: boolean;
  private readonly watchdogMs: number | undefined;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly log: Logger,
    options: SystemdOptions,
  ) {
    this.enabled = Boolean(options.notifySocket);
    const usec = options.watchdogUsec ?? 0;
    const forUs = options.watchdogPid === undefined || options.watchdogPid === process.pid;
    this.watchdogMs = this.enabled && forUs && usec > 0 ? usec / 1000 : undefined;
  }

  notify(...states: string[]): void {
    if (!this.enabled) return;
    const child = spawn('systemd-notify', [`--pid=${process.pid}`, ...states], { stdio: 'ignore' });
    child.once('error', (err) => this.log.warn({ err: err.message }, 'systemd-notify failed'));
  }

  /** READY=1, then WATCHDOG=1 every half WATCHDOG_USEC and STATUS= every 10 s. */
  ready(status: () => string): void {
    if (!this.enabled) return;
    this.notify('READY=1', `STATUS=${status()}`);
    let lastStatus = performance.now();
    if (this.watchdogMs === undefined) {
      this.timer = setInterval(() => this.notify(`STATUS=${status()}`), 10_000);
      this.timer.unref();
      return;
    }
    const period = this.watchdogMs / 2;
    this.timer = lateTimer(period, (late, now) => {
      if (late > period) {
        this.log.warn({ lateMs: late }, 'event loop stalled: withholding the watchdog ping');
        return;
      }
      const states = ['WATCHDOG=1'];
      if (now - lastStatus >= 10_000) {
        states.push(`STATUS=${status()}`);
        lastStatus = now;
      }
      this.notify(...states);
    });
  }

  stopping(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.notify('STOPPING=1', 'STATUS=draining');
  }
}
