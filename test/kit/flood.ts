/** Fill a paused consumer's queue through /v1/notify until the server drops it for backpressure. */
import { ADMIN_TOKEN, api } from './server.js';
import { eventually } from './eventually.js';
import { metric } from './metrics.js';

/**
 * Publish 60 kB messages to `topic`, 8 at a time, until onebox_ws_slow_consumers_total
 * rises. The kernel's loopback buffers absorb several MB before the server queues anything.
 * @param opts.maxMessages give up after this many. @default 2000
 * @param opts.timeoutMs @default 60000 ms
 * @returns how many messages and bytes were published.
 */
export async function floodUntilDropped(
  url: string,
  topic: string,
  opts: { maxMessages?: number; timeoutMs?: number } = {},
): Promise<{ sent: number; bytes: number }> {
  const max = opts.maxMessages ?? 2000;
  const chunk = 'y'.repeat(60_000);
  const drops = await metric(url, 'onebox_ws_slow_consumers_total');
  let sent = 0;
  const outcome = await eventually(
    async () => {
      if ((await metric(url, 'onebox_ws_slow_consumers_total')) > drops) return 'dropped';
      if (sent >= max) return `no drop after ${sent} messages`;
      const rs = await Promise.all(
        Array.from({ length: 8 }, () => api(url, 'POST', '/v1/notify', { token: ADMIN_TOKEN, body: { topic, title: 'f', data: { chunk } } })),
      );
      const refused = rs.find((r) => r.status !== 202);
      if (refused) return `POST /v1/notify answered ${refused.status}`;
      sent += rs.length;
      return undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 0, what: `a slow-consumer drop while flooding ${topic}` },
  );
  if (outcome !== 'dropped') throw new Error(`flooding ${topic}: ${outcome}`);
  return { sent, bytes: sent * chunk.length };
}
