/**
 * The one JWT signer outside the server: HS256 tokens the bench hands its clients, and the
 * tests' forged, expired and unsigned ones. Hand-written on purpose: it must also make the
 * tokens a library refuses to make (`alg: none`, any header).
 */
import { createHmac } from 'node:crypto';

/** Sign an HS256 token with any header and claims; `secret` null leaves it unsigned (`alg: none`). */
export function signJwt(header: object, payload: object, secret: string | null): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  if (secret === null) return `${input}.`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A bench user's access token, signed like the server's own (HS256, issuer onebox, audience onebox:access, valid 24 h). */
export function signToken(secret: string, sub: string): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { sub, iss: 'onebox', aud: 'onebox:access', iat: now, exp: now + 86_400 }, secret);
}
