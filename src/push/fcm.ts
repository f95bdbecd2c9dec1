/**
 * FCM HTTP v1. A service-account JWT (RS256, jose) is exchanged at the account's token_uri
 * for an OAuth access token, shared through single-flight and renewed before it expires;
 * a 401 drops it. UNREGISTERED (404) or an invalid registration token means the device is
 * gone.
 */
import { readFileSync } from 'node:fs';
import { importPKCS8, SignJWT } from 'jose';
import { SingleFlight } from '../lib/single-flight.js';
import type { DeviceRow } from '../store/devices.js';
import { genericResult, type PushProvider, type PushResult, type PushMessage } from './types.js';

export interface FcmOptions {
  serviceAccountFile: string;
  /** @default https://fcm.googleapis.com */
  origin: string;
  /**
   * Deadline of the OAuth token exchange, which every send waits on while it runs.
   * @default 5000 ms (PUSH_SEND_TIMEOUT_MS)
   */
  tokenTimeoutMs?: number;
}

interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri: string;
}

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

export class FcmProvider implements PushProvider {
  private readonly account: ServiceAccount;
  private readonly access: SingleFlight<string>;

  constructor(private readonly o: FcmOptions) {
    this.account = JSON.parse(readFileSync(o.serviceAccountFile, 'utf8')) as ServiceAccount;
    const a = this.account;
    this.access = new SingleFlight(async () => {
      const key = await importPKCS8(a.private_key, 'RS256');
      const assertion = await new SignJWT({ scope: SCOPE })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
        .setIssuer(a.client_email)
        .setAudience(a.token_uri)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(key);
      const res = await fetch(a.token_uri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
        signal: AbortSignal.timeout(o.tokenTimeoutMs ?? 5000),
      });
      if (!res.ok) throw new Error(`fcm token exchange: HTTP ${res.status}`);
      const t = (await res.json()) as { access_token: string; expires_in: number };
      return { value: t.access_token, expiresAt: Date.now() + t.expires_in * 1000 };
    }, 5 * 60_000);
  }

  async send(device: DeviceRow, p: PushMessage, signal: AbortSignal): Promise<PushResult> {
    let token: string;
    try {
      token = await this.access.get();
    } catch (err) {
      return { kind: 'retry', reason: (err as Error).message };
    }
    // FCM data values must be strings.
    const data = Object.fromEntries(Object.entries(p.data).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    data.onebox_id = p.id;
    if (p.topic !== null) data.onebox_topic = p.topic;
    if (p.offset !== null) data.onebox_offset = String(p.offset);
    let res: Response;
    try {
      res = await fetch(`${this.o.origin}/v1/projects/${this.account.project_id}/messages:send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          message: { token: device.token, notification: { title: p.title, body: p.body }, data, android: { collapse_key: p.id } },
        }),
        signal,
      });
    } catch (err) {
      return { kind: 'retry', reason: `fcm: ${(err as Error).message}` };
    }
    let text: string;
    try {
      // Read on success too: an unread body holds the connection (and the signal bounds it).
      text = await res.text();
    } catch (err) {
      return { kind: 'retry', reason: `fcm: ${(err as Error).message}` };
    }
    if (res.ok) return { kind: 'sent' };
    if (res.status === 404 || /UNREGISTERED/.test(text) || (res.status === 400 && /registration token/i.test(text))) {
      return { kind: 'dead', reason: `fcm ${res.status} UNREGISTERED` };
    }
    if (res.status === 401) {
      this.access.invalidate();
      return { kind: 'retry', reason: 'fcm access token refused' };
    }
    return genericResult(res.status, `fcm ${res.status}`, res.headers.get('retry-after'));
  }
}
