/** Read the server's /metrics (open on loopback) the way the tests need it: one series at a time. */
import { api } from './server.js';

/** The /metrics text. */
export async function scrape(url: string): Promise<string> {
  const r = await api(url, 'GET', '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}`);
  return r.body as string;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The value of one series, named exactly as exported: `onebox_ws_connections`,
 * `onebox_push_total{outcome="retried"}`.
 * @param absent the value of a series not (yet) exported, as a labelled counter before its
 *   first increment. Without it an absent series throws, so that a renamed metric fails
 *   the test instead of reading as 0.
 */
export async function metric(url: string, series: string, absent?: number): Promise<number> {
  const m = new RegExp(`^${escape(series)} (\\S+)$`, 'm').exec(await scrape(url));
  if (m) return Number(m[1]);
  if (absent !== undefined) return absent;
  throw new Error(`${series} is not in /metrics`);
}

/** Per-worker WebSocket connection counts from the cluster table (WORKERS>1). */
export async function clusterConnections(url: string): Promise<Map<string, { pid: number; n: number }>> {
  const out = new Map<string, { pid: number; n: number }>();
  for (const m of (await scrape(url)).matchAll(/^onebox_cluster_ws_connections\{worker="(\d+)",pid="(\d+)"\} (\d+)$/gm)) {
    out.set(m[1]!, { pid: Number(m[2]), n: Number(m[3]) });
  }
  return out;
}
