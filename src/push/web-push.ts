/**
 * Web Push: the `web-push` library builds the request (VAPID JWT, RFC 8291 aes128gcm
 * encryption). The endpoint is a URL the user supplied, so it is sent with node:https (Bun
 * implements the same options) rather than fetch: its `lookup` option lets the socket
 * connect only to addresses `safe-lookup.ts` has checked, and the worker's signal bounds
 * the whole exchange. 404 and 410 mean the subscription is gone.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import webpush from 'web-push';
import type { DeviceRow } from '../store/devices.js';
import { FORBIDDEN, type ForbiddenEndpointError, guardedLookup, resolveChecked, systemResolve, type Resolve } from './safe-lookup.js';
import { genericResult, type PushProvider, type PushResult, type PushMessage } from './types.js';

export interface WebPushOptions {
  publicKey: string;
  privateKey: string;
  /** mailto: or https: contact for the push service. */
  subject: string;
  /** Test mode: endpoints on loopback (and plain http there) are allowed. @default false */
  allowLoopback?: boolean;
  /** Host name resolution; tests inject one. @default the system resolver */
  resolve?: Resolve;
}

export class WebPushProvider implements PushProvider {
  private readonly resolve: Resolve;
  private readonly allowLoopback: boolean;
  // Keep-alive pools: a socket is opened through the guarded lookup, so a reused one is
  // still connected to an address that was checked.
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  private readonly lookup: LookupFunction;

  constructor(private readonly o: WebPushOptions) {
    this.resolve = o.resolve ?? systemResolve;
    this.allowLoopback = o.allowLoopback ?? false;
    const lookup = (this.lookup = guardedLookup(this.resolve, this.allowLoopback));
    this.agents = { http: new HttpAgent({ keepAlive: true, lookup }), https: new HttpsAgent({ keepAlive: true, lookup }) };
  }

  async send(device: DeviceRow, p: PushMessage, signal: AbortSignal): Promise<PushResult> {
    const keys = JSON.parse(device.web_keys ?? '{}') as { p256dh: string; auth: string };
    let details;
    let url: URL;
    try {
      details = webpush.generateRequestDetails({ endpoint: device.token, keys }, JSON.stringify(p), {
        vapidDetails: { subject: this.o.subject, publicKey: this.o.publicKey, privateKey: this.o.privateKey },
        TTL: 86_400,
        contentEncoding: 'aes128gcm',
        // The collapse key (RFC 8030 section 5.4): at most 32 URL-safe characters.
        topic: p.id.replaceAll('-', ''),
      });
      url = new URL(details.endpoint);
    } catch (err) {
      return { kind: 'failed', reason: `web push: ${(err as Error).message}` };
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.allowLoopback)) {
      return { kind: 'failed', reason: `web push: ${url.protocol} endpoint refused` };
    }
    let res: { status: number; retryAfter: string | null };
    try {
      // A literal address never reaches `lookup`: check it here.
      if (isIP(url.hostname.replace(/^\[|\]$/g, ''))) await resolveChecked(this.resolve, url.hostname, this.allowLoopback);
      res = await this.post(url, details.headers as Record<string, string>, details.body as Buffer, signal);
    } catch (err) {
      // By code, not class: an error from `lookup` may reach us re-wrapped by the runtime.
      if ((err as ForbiddenEndpointError).code === FORBIDDEN) return { kind: 'failed', reason: `web push: ${(err as Error).message}` };
      return { kind: 'retry', reason: `web push: ${(err as Error).message}` };
    }
    if (res.status >= 200 && res.status < 300) return { kind: 'sent' };
    if (res.status === 404 || res.status === 410) return { kind: 'dead', reason: `web push ${res.status}` };
    return genericResult(res.status, `web push ${res.status}`, res.retryAfter);
  }

  /** POST and wait for the whole response (its body discarded), or the signal. */
  private post(url: URL, headers: Record<string, string>, body: Buffer, signal: AbortSignal) {
    return new Promise<{ status: number; retryAfter: string | null }>((resolve, reject) => {
      const tls = url.protocol === 'https:';
      const req = (tls ? httpsRequest : httpRequest)(
        url,
        { method: 'POST', headers, signal, lookup: this.lookup, agent: tls ? this.agents.https : this.agents.http },
        (res: IncomingMessage) => {
          res.on('error', reject);
          res.on('end', () => {
            const retryAfter = res.headers['retry-after'];
            resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : null });
          });
          res.resume();
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
