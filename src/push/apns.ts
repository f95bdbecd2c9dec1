/**
 * APNs over HTTP/2 (node:http2; Bun implements it too) with an ES256 provider token
 * signed by jose. The token is shared and renewed through single-flight well inside
 * Apple's one-hour limit; a 403 ExpiredProviderToken drops it so the next send renews.
 * A send whose deadline passes cancels its stream (RST_STREAM); if the session has not
 * answered anything since that stream began, the session is silent (black-holed TCP, a
 * handshake that never ends) and is dropped so the next send connects afresh.
 */
import { readFileSync } from 'node:fs';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { importPKCS8, SignJWT } from 'jose';
import { SingleFlight } from '../lib/single-flight.js';
import type { DeviceRow } from '../store/devices.js';
import { genericResult, type PushProvider, type PushResult, type PushMessage } from './types.js';

export interface ApnsOptions {
  keyFile: string;
  keyId: string;
  teamId: string;
  /** The app's bundle id (apns-topic). */
  topic: string;
  /** @default https://api.push.apple.com */
  origin: string;
}

const DEAD_REASONS = new Set(['Unregistered', 'BadDeviceToken', 'DeviceTokenNotForTopic']);

export class ApnsProvider implements PushProvider {
  private session: ClientHttp2Session | null = null;
  /** When the current session last answered a stream (performance.now()). */
  private answeredAt = 0;
  private readonly token: SingleFlight<string>;

  constructor(private readonly o: ApnsOptions) {
    const pem = readFileSync(o.keyFile, 'utf8');
    this.token = new SingleFlight(async () => {
      const key = await importPKCS8(pem, 'ES256');
      const iat = Math.floor(Date.now() / 1000);
      const jwt = await new SignJWT({ iss: o.teamId, iat }).setProtectedHeader({ alg: 'ES256', kid: o.keyId }).sign(key);
      return { value: jwt, expiresAt: (iat + 50 * 60) * 1000 };
    }, 5 * 60_000);
  }

  private connect(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = connect(this.o.origin);
    session.on('error', () => undefined);
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    session.unref();
    this.session = session;
    this.answeredAt = 0;
    return session;
  }

  async send(device: DeviceRow, p: PushMessage, signal: AbortSignal): Promise<PushResult> {
    const jwt = await this.token.get();
    const onebox = { id: p.id, topic: p.topic, offset: p.offset };
    const body = JSON.stringify({ aps: { alert: { title: p.title, body: p.body }, sound: 'default' }, data: p.data, onebox });
    if (signal.aborted) return { kind: 'retry', reason: 'apns: aborted before sending' };
    return new Promise<PushResult>((outcome) => {
      let req: ClientHttp2Stream;
      let session: ClientHttp2Session;
      const started = performance.now();
      const onAbort = () => {
        try {
          req.close(constants.NGHTTP2_CANCEL);
        } catch {
          /* already closed */
        }
        if (this.session === session && this.answeredAt < started) {
          session.destroy();
          this.session = null;
        }
        outcome({ kind: 'retry', reason: `apns: ${String((signal.reason as Error | undefined)?.message ?? 'aborted')}` });
      };
      const resolve = (r: PushResult) => {
        signal.removeEventListener('abort', onAbort);
        outcome(r);
      };
      try {
        session = this.connect();
        req = session.request({
          ':method': 'POST',
          ':path': `/3/device/${device.token}`,
          authorization: `bearer ${jwt}`,
          'apns-topic': this.o.topic,
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-collapse-id': p.id,
          'content-type': 'application/json',
        });
      } catch (err) {
        resolve({ kind: 'retry', reason: `apns connect: ${(err as Error).message}` });
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      let status = 0;
      let text = '';
      req.setEncoding('utf8');
      req.on('response', (h) => {
        status = Number(h[':status']);
        if (this.session === session) this.answeredAt = performance.now();
      });
      req.on('data', (d: string) => (text += d));
      req.on('error', (err) => resolve({ kind: 'retry', reason: `apns: ${err.message}` }));
      req.on('end', () => {
        if (status === 200) return resolve({ kind: 'sent' });
        let reason = '';
        try {
          reason = (JSON.parse(text) as { reason?: string }).reason ?? '';
        } catch {
          /* empty body */
        }
        if (status === 410 || DEAD_REASONS.has(reason)) return resolve({ kind: 'dead', reason: `apns ${status} ${reason}` });
        if (status === 403 && reason === 'ExpiredProviderToken') {
          this.token.invalidate();
          return resolve({ kind: 'retry', reason: 'apns provider token expired' });
        }
        resolve(genericResult(status, `apns ${status} ${reason}`));
      });
      req.end(body);
    });
  }

  close(): void {
    this.session?.close();
  }
}
