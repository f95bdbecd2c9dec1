/**
 * A repeating timer that knows how late each run came: the event loop's health, seen from
 * inside it. A loop held by synchronous work fires no timer; the next run then comes late
 * by about the time it was held. The block detector and the systemd watchdog both read it.
 */

/**
 * Call `tick(lateMs, now)` every `periodMs` (unref'd); `lateMs` is how much later than
 * scheduled this run came. Returns the timer, for clearInterval.
 */
export function lateTimer(periodMs: number, tick: (lateMs: number, now: number) => void): ReturnType<typeof setInterval> {
  let expected = performance.now() + periodMs;
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - expected;
    expected = now + periodMs;
    tick(late, now);
  }, periodMs);
  timer.unref();
  return timer;
}
