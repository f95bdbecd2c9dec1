/** Build the configured providers and the outbox worker. */
import type { Config } from '../config.js';
import type { Logger } from '../ops/logger.js';
import type { DeviceStore } from '../store/devices.js';
import type { OutboxStore } from '../store/outbox.js';
import { ApnsProvider } from './apns.js';
import { FcmProvider } from './fcm.js';
import { WebPushProvider } from './web-push.js';
import { PushWorker } from './worker.js';

export function createPushWorker(config: Config, outbox: OutboxStore, devices: DeviceStore, log: Logger): PushWorker {
  const p = config.push;
  return new PushWorker(
    outbox,
    devices,
    {
      ios: p.apns && new ApnsProvider(p.apns),
      android: p.fcm && new FcmProvider(p.fcm),
      web: p.webPush && new WebPushProvider(p.webPush),
    },
    { pollMs: p.pollMs, leaseMs: p.leaseMs, maxAttempts: p.maxAttempts, backoffBaseMs: p.backoffBaseMs, batch: 50 },
    log,
  );
}
