/**
 * Web Push: the `web-push` library builds the request (VAPID JWT, RFC 8291 aes128gcm
 * encryption); it is sent with fetch so the endpoint may be any URL the subscription names.
 * 404 and 410 mean the subscription is gone.
 */
import webpush from 'web-push';
import type { DeviceRow } from '../store/devices.js';
import type { NotificationPayload } from '../store/outbox.js';
import { genericResult, type PushProvider, type PushResult } from './types.js';

export interface WebPushOptions {
  publicKey: string;
  privateKey: string;
  /** mailto: or https: contact for the push service. */
  subject: string;
}

export class WebPushProvider implements PushProvider {
  constructor(private readonly o: WebPushOptions) {}

  async send(device: DeviceRow, p: NotificationPayload): Promise<PushResult> {
    const keys = JSON.parse(device.web_keys ?? '{}') as { p256dh: string; auth: string };
    let details;
    try {
      details = webpush.generateRequestDetails({ endpoint: device.token, keys }, JSON.stringify(p), {
        vapidDetails: { subject: this.o.subject, publicKey: this.o.publicKey, privateKey: this.o.privateKey },
        TTL: 86_400,
        contentEncoding: 'aes128gcm',
      });
    } catch (err) {
      return { kind: 'failed', reason: `web push: ${(err as Error).message}` };
    }
    let res: Response;
    try {
      res = await fetch(details.endpoint, {
        method: details.method,
        headers: details.headers as Record<string, string>,
        body: details.body,
      });
    } catch (err) {
      return { kind: 'retry', reason: `web push: ${(err as Error).message}` };
    }
    await res.arrayBuffer();
    if (res.status >= 200 && res.status < 300) return { kind: 'sent' };
    if (res.status === 404 || res.status === 410) return { kind: 'dead', reason: `web push ${res.status}` };
    return genericResult(res.status, `web push ${res.status}`, res.headers.get('retry-after'));
  }
}
