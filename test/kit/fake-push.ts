/**
 * Local fake push services that check the wire format the way the real ones do:
 * APNs over h2c HTTP/2 (ES256 provider token, apns-* headers), FCM HTTP v1 (RS256
 * service-account assertion exchanged for an access token, then the message), and a Web
 * Push endpoint (VAPID JWT checked against `k`, the aes128gcm body decrypted per RFC 8291).
 * Tokens starting with `dead` answer as the real service does for an unregistered device.
 * Tokens passed to `silence()` are never answered: the request is recorded with status 0
 * when it arrives and again with status 499 when the client gives up on it.
 */
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createH2, type Http2Server } from 'node:http2';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK, importSPKI, jwtVerify, type JWTPayload } from 'jose';
// @ts-expect-error http_ece ships no types
import ece from 'http_ece';
import webpush from 'web-push';

export interface Received {
  service: 'apns' | 'fcm' | 'web';
  token: string;
  payload: any;
  /** The status answered; 0: held unanswered (a silenced token); 499: the client gave up on it. */
  status: number;
}

const listen = (server: Server | Http2Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

const readBody = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });

export interface FakePush {
  env: Record<string, string>;
  received: Received[];
  /** Resolve when a delivery matching pred has been received. */
  waitFor(pred: (r: Received) => boolean, timeoutMs?: number): Promise<Received>;
  /** A fresh browser subscription whose endpoint is this fake (`dead` → 410). */
  webSubscription(dead?: boolean): { endpoint: string; keys: { p256dh: string; auth: string } };
  /** Answer the next n APNs requests with 429. */
  throttleApns(n: number): void;
  /** Never answer requests for this token (APNs or FCM token, or a Web Push subscription's last path segment). */
  silence(token: string): void;
  close(): Promise<void>;
}

export async function startFakePush(): Promise<FakePush> {
  const dir = mkdtempSync(join(tmpdir(), 'onebox-push-'));
  const received: Received[] = [];
  const waiters: Array<{ pred: (r: Received) => boolean; resolve: (r: Received) => void }> = [];
  const silenced = new Set<string>();
  const record = (r: Received) => {
    received.push(r);
    for (const w of [...waiters]) {
      if (!w.pred(r)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(r);
    }
  };

  // APNs
  const apnsKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const apnsKeyFile = join(dir, 'AuthKey_TESTKEY123.p8');
  writeFileSync(apnsKeyFile, apnsKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const apnsPublic = await importSPKI(apnsKeys.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'ES256');
  let throttle = 0;
  const apns = createH2();
  // close() waits for sessions to end; the server under test keeps its session open.
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  apns.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  apns.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', async () => {
      const answer = (status: number, body?: object) => {
        stream.respond({ ':status': status, 'content-type': 'application/json' });
        stream.end(body ? JSON.stringify(body) : undefined);
      };
      const token = String(headers[':path']).replace('/3/device/', '');
      try {
        const auth = String(headers.authorization ?? '');
        const { protectedHeader, payload } = await jwtVerify(auth.replace(/^bearer /, ''), apnsPublic, { algorithms: ['ES256'] });
        if (protectedHeader.kid !== 'TESTKEY123' || payload.iss !== 'TEAM123456') return answer(403, { reason: 'InvalidProviderToken' });
        if (headers['apns-topic'] !== 'com.example.app' || headers[':method'] !== 'POST') return answer(400, { reason: 'BadTopic' });
      } catch {
        return answer(403, { reason: 'InvalidProviderToken' });
      }
      const payload = JSON.parse(Buffer.concat(chunks).toString());
      if (silenced.has(token)) {
        record({ service: 'apns', token, payload, status: 0 });
        stream.on('close', () => record({ service: 'apns', token, payload, status: 499 }));
        return;
      }
      if (throttle > 0) {
        throttle--;
        record({ service: 'apns', token, payload, status: 429 });
        return answer(429, { reason: 'TooManyRequests' });
      }
      const status = token.startsWith('dead') ? 410 : 200;
      record({ service: 'apns', token, payload, status });
      answer(status, status === 410 ? { reason: 'Unregistered', timestamp: Date.now() } : undefined);
    });
  });
  const apnsPort = await listen(apns);

  // FCM
  const fcmKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const fcmPublic = await importSPKI(fcmKeys.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'RS256');
  let accessTokens = 0;
  const issued = new Set<string>();
  const fcm = createServer(async (req, res) => {
    const body = await readBody(req);
    const json = (status: number, o: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o));
    };
    if (req.url === '/token') {
      const form = new URLSearchParams(body.toString());
      try {
        const { payload } = await jwtVerify(form.get('assertion') ?? '', fcmPublic, {
          algorithms: ['RS256'],
          issuer: 'onebox@demo.iam.gserviceaccount.com',
          audience: `http://127.0.0.1:${fcmPort}/token`,
        });
        if ((payload as JWTPayload & { scope?: string }).scope !== 'https://www.googleapis.com/auth/firebase.messaging') throw new Error('scope');
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') throw new Error('grant');
      } catch {
        return json(400, { error: 'invalid_grant' });
      }
      const t = `access-${++accessTokens}`;
      issued.add(t);
      return json(200, { access_token: t, expires_in: 3600, token_type: 'Bearer' });
    }
    if (req.url === '/v1/projects/demo/messages:send' && req.method === 'POST') {
      if (!issued.has(String(req.headers.authorization).replace('Bearer ', ''))) return json(401, { error: { status: 'UNAUTHENTICATED' } });
      const { message } = JSON.parse(body.toString());
      if (silenced.has(message.token)) {
        record({ service: 'fcm', token: message.token, payload: message, status: 0 });
        res.on('close', () => record({ service: 'fcm', token: message.token, payload: message, status: 499 }));
        return;
      }
      const status = String(message.token).startsWith('dead') ? 404 : 200;
      record({ service: 'fcm', token: message.token, payload: message, status });
      if (status === 404) return json(404, { error: { code: 404, status: 'NOT_FOUND', details: [{ errorCode: 'UNREGISTERED' }] } });
      return json(200, { name: 'projects/demo/messages/1' });
    }
    json(404, {});
  });
  const fcmPort = await listen(fcm);
  const serviceAccountFile = join(dir, 'service-account.json');
  writeFileSync(
    serviceAccountFile,
    JSON.stringify({
      type: 'service_account',
      project_id: 'demo',
      client_email: 'onebox@demo.iam.gserviceaccount.com',
      private_key: fcmKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      token_uri: `http://127.0.0.1:${fcmPort}/token`,
    }),
  );

  // Web Push
  const vapid = webpush.generateVAPIDKeys();
  const subscribers = new Map<string, { ecdh: ReturnType<typeof createECDH>; auth: string }>();
  const web = createServer(async (req, res) => {
    const body = await readBody(req);
    const id = (req.url ?? '').replace('/push/', '');
    const sub = subscribers.get(id);
    const end = (status: number) => {
      res.writeHead(status);
      res.end();
    };
    if (!sub) return end(404);
    try {
      const m = /^vapid t=([^,]+), k=(.+)$/.exec(String(req.headers.authorization));
      if (!m || m[2] !== vapid.publicKey) throw new Error('vapid header');
      const raw = Buffer.from(m[2], 'base64url');
      const key = await importJWK(
        { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') },
        'ES256',
      );
      await jwtVerify(m[1]!, key, { algorithms: ['ES256'], audience: `http://127.0.0.1:${webPort}` });
      if (req.headers['content-encoding'] !== 'aes128gcm' || !req.headers.ttl) throw new Error('headers');
    } catch {
      return end(403);
    }
    const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth }) as Buffer;
    if (silenced.has(id)) {
      const payload = JSON.parse(plain.toString());
      record({ service: 'web', token: id, payload, status: 0 });
      res.on('close', () => record({ service: 'web', token: id, payload, status: 499 }));
      return;
    }
    const status = id.startsWith('dead') ? 410 : 201;
    record({ service: 'web', token: id, payload: JSON.parse(plain.toString()), status });
    end(status);
  });
  const webPort = await listen(web);

  return {
    env: {
      APNS_KEY_FILE: apnsKeyFile,
      APNS_KEY_ID: 'TESTKEY123',
      APNS_TEAM_ID: 'TEAM123456',
      APNS_TOPIC: 'com.example.app',
      APNS_ORIGIN: `http://127.0.0.1:${apnsPort}`,
      FCM_SERVICE_ACCOUNT_FILE: serviceAccountFile,
      FCM_ORIGIN: `http://127.0.0.1:${fcmPort}`,
      VAPID_PUBLIC_KEY: vapid.publicKey,
      VAPID_PRIVATE_KEY: vapid.privateKey,
      VAPID_SUBJECT: 'mailto:ops@example.com',
    },
    received,
    waitFor(pred, timeoutMs = 10_000) {
      const found = received.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { pred, resolve: (r: Received) => (clearTimeout(t), resolve(r)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for a push matching ${String(pred)}; ${received.length} received`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    webSubscription(dead = false) {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16).toString('base64url');
      const id = `${dead ? 'dead' : 'sub'}-${randomBytes(6).toString('hex')}`;
      subscribers.set(id, { ecdh, auth });
      return { endpoint: `http://127.0.0.1:${webPort}/push/${id}`, keys: { p256dh: ecdh.getPublicKey('base64url'), auth } };
    },
    throttleApns(n) {
      throttle = n;
    },
    silence(token) {
      silenced.add(token);
    },
    async close() {
      await Promise.all([
        new Promise((r) => {
          apns.close(r);
          for (const session of sessions) session.destroy();
        }),
        new Promise((r) => (fcm.closeAllConnections(), fcm.close(r))),
        new Promise((r) => (web.closeAllConnections(), web.close(r))),
      ]);
    },
  };
}
