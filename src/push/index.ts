/** Build the configured providers and the outbox worker. */
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { DeviceStore } from '../store/devices.js';
import type { OutboxStore } from '../store/outbox.js';
import { PushWorker } from './worker.js';

/** The settings the push worker and its providers read. */
export type PushOptions = Pick<Config, 'push' | 'testMode' | 'workers'>;

/** Providers load only when configured: a box without Web Push keys never loads web-push. */
export async function createPushWorker(config: PushOptions, outbox: OutboxStore, devices: DeviceStore, log: Logger): Promise<PushWorker> {
  const p = config.push;
  return new PushWorker(
    outbox,
    devices,
    {
      ios: p.apns && new (await import('./apns.js')).ApnsProvider(p.apns),
      android: p.fcm && new (await import('./fcm.js')).FcmProvider({ ...p.fcm, tokenTimeoutMs: p.sendTimeoutMs }),
      web: p.webPush && new (await import('./web-push.js')).WebPushProvider({ ...p.webPush, allowLoopback: config.testMode }),
    },
    {
      pollMs: p.pollMs,
      leaseMs: p.leaseMs,
      maxAttempts: p.maxAttempts,
      backoffBaseMs: p.backoffBaseMs,
      batch: 50,
      sendTimeoutMs: p.sendTimeoutMs,
      // PUSH_CONCURRENCY holds per box: each worker process takes its share.
      concurrency: Math.max(1, Math.floor(p.concurrency / config.workers)),
    },
    log,
  );
}
