/** What a push provider answers, in the worker's terms. */
import type { DeviceRow } from '../store/devices.js';
import type { NotificationPayload } from '../store/outbox.js';

export type PushResult =
  | { kind: 'sent' }
  /** The token is dead (uninstalled, expired): remove the device. */
  | { kind: 'dead'; reason: string }
  /** Try again later (429, 5xx, network). */
  | { kind: 'retry'; reason: string; afterMs?: number | undefined }
  /** Permanently refused (bad payload, bad configuration): give up on this row. */
  | { kind: 'failed'; reason: string };

/**
 * One notification as pushed: its content, plus the notification id (also the collapse id,
 * so a repeated send replaces rather than stacks), and its topic and offset in the log, so
 * the woken app can acknowledge (`POST /v1/receipts`) and resume from there.
 */
export interface PushMessage extends NotificationPayload {
  id: string;
  topic: string | null;
  offset: number | null;
}

export interface PushProvider {
  /**
   * Send one notification. `signal` aborts at the worker's per-send deadline (or shutdown):
   * release the request then; the worker has already counted the send as a retry.
   */
  send(device: DeviceRow, message: PushMessage, signal: AbortSignal): Promise<PushResult>;
  close?(): void;
}

/** Retry-After in seconds or an HTTP date, as milliseconds. */
export function retryAfterMs(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const s = Number(value);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(value);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

/** Map an HTTP status to retry/failed for statuses a provider has no special meaning for. */
export function genericResult(status: number, reason: string, retryAfter?: string | null): PushResult {
  if (status === 429 || status >= 500) return { kind: 'retry', reason, afterMs: retryAfterMs(retryAfter) };
  return { kind: 'failed', reason };
}
