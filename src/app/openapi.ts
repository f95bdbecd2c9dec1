/**
 * `GET /openapi.json`: an OpenAPI 3.1 document generated from the same zod schemas that
 * validate requests (zod's JSON Schema output is draft 2020-12, OpenAPI 3.1's dialect).
 */
import { z } from 'zod';
import { DeviceBody } from './routes/devices.js';
import { EventsBody } from './routes/events.js';
import { LoginBody, SignupBody } from './routes/auth.js';
import { PatchMeBody } from './routes/me.js';
import { AppleSignInBody, GoogleSignInBody } from './routes/social.js';
import { NotifyBody } from './routes/notify.js';
import { ReceiptBody } from './routes/receipts.js';
import { RefreshBody } from './routes/sessions.js';
import { ForgotBody, ResetBody } from './routes/password.js';
import { ResendBody, VerifyBody } from './routes/email.js';
import { ChangeEmailBody, ChangePasswordBody, DeleteMeBody } from './routes/account.js';

interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  summary: string;
  auth: 'none' | 'user' | 'admin' | 'user-or-admin' | 'token-or-query';
  body?: z.ZodType;
  /** The body may be left out. @default false */
  bodyOptional?: boolean;
  /** Query parameters, all optional strings. */
  query?: Record<string, string>;
  ok: number;
}

export const OPERATIONS: Operation[] = [
  { method: 'post', path: '/v1/auth/signup', summary: 'Create an account; opens a session: {token, refreshToken, expiresIn, user}', auth: 'none', body: SignupBody, ok: 201 },
  { method: 'post', path: '/v1/auth/login', summary: 'Exchange email and password for a session: {token, refreshToken, expiresIn, user}', auth: 'none', body: LoginBody, ok: 200 },
  {
    method: 'post',
    path: '/v1/auth/apple',
    summary: "Sign in with Apple: the ID token (and the raw nonce whose SHA-256 the app gave Apple, and the authorization code) -> the login answer; 201 when the account was created",
    auth: 'none',
    body: AppleSignInBody,
    ok: 200,
  },
  {
    method: 'post',
    path: '/v1/auth/google',
    summary: 'Sign in with Google: the ID token (and the nonce the app gave Google) -> the login answer; 201 when the account was created',
    auth: 'none',
    body: GoogleSignInBody,
    ok: 200,
  },
  {
    method: 'post',
    path: '/v1/auth/refresh',
    summary: 'Rotate a refresh token: {token, refreshToken, expiresIn, user}; the old refresh token stops working (presented again after REFRESH_REUSE_GRACE_S, its session is revoked)',
    auth: 'none',
    body: RefreshBody,
    ok: 200,
  },
  { method: 'post', path: '/v1/auth/logout', summary: "End this session: by the bearer access token, or by a body {refreshToken} (no bearer needed); its sockets close with 4003", auth: 'none', ok: 204 },
  { method: 'post', path: '/v1/auth/logout-all', summary: "End every session of the user, this one included; their sockets close with 4003", auth: 'user', ok: 204 },
  { method: 'post', path: '/v1/auth/verify', summary: 'Consume a mailed verification token (signup, resend, or change of email, which then takes effect): {user}', auth: 'none', body: VerifyBody, ok: 200 },
  { method: 'post', path: '/v1/auth/verify/resend', summary: 'Mail a new verification link to an unverified account; 202 whatever the address', auth: 'none', body: ResendBody, ok: 202 },
  { method: 'post', path: '/v1/auth/password/forgot', summary: 'Mail a password reset link (valid PASSWORD_RESET_TTL_S, once); 202 whatever the address', auth: 'none', body: ForgotBody, ok: 202 },
  { method: 'post', path: '/v1/auth/password/reset', summary: 'Set a new password with the mailed token; every session of the account is revoked (sockets close with 4003)', auth: 'none', body: ResetBody, ok: 204 },
  { method: 'post', path: '/v1/me/password', summary: 'Change the password with the current one; every other session is revoked', auth: 'user', body: ChangePasswordBody, ok: 204 },
  { method: 'post', path: '/v1/me/email', summary: 'Change the email: it becomes `pendingEmail` and takes effect once the link mailed to it is used: {user}', auth: 'user', body: ChangeEmailBody, ok: 202 },
  { method: 'delete', path: '/v1/me', summary: 'Delete the account and everything of it, with {password} or a login within FRESH_LOGIN_S; its sockets close, its tokens die', auth: 'user', body: DeleteMeBody, bodyOptional: true, ok: 204 },
  { method: 'get', path: '/v1/me/sessions', summary: 'Live sessions: {sessions: [{id, label, createdAt, lastUsedAt, expiresAt, current}]}', auth: 'user', ok: 200 },
  { method: 'delete', path: '/v1/me/sessions/{id}', summary: 'End one session of the user; its sockets close with 4003', auth: 'user', ok: 204 },
  { method: 'get', path: '/v1/me', summary: 'The signed-in profile', auth: 'user', ok: 200 },
  { method: 'patch', path: '/v1/me', summary: 'Update the profile', auth: 'user', body: PatchMeBody, ok: 200 },
  { method: 'get', path: '/v1/users/{id}/dashboard', summary: 'Profile and event counts (own, or admin)', auth: 'user-or-admin', ok: 200 },
  { method: 'post', path: '/v1/events', summary: 'Ingest up to 500 analytics events', auth: 'user', body: EventsBody, ok: 202 },
  { method: 'post', path: '/v1/devices', summary: 'Register (upsert) a push target', auth: 'user', body: DeviceBody, ok: 201 },
  { method: 'get', path: '/v1/devices', summary: 'List own push targets', auth: 'user', ok: 200 },
  { method: 'delete', path: '/v1/devices/{id}', summary: 'Remove an own push target', auth: 'user', ok: 204 },
  { method: 'post', path: '/v1/notify', summary: 'Notify a user (logged, live, pushed unless a receipt covers it) or a topic; Idempotency-Key header', auth: 'admin', body: NotifyBody, ok: 202 },
  { method: 'get', path: '/v1/notifications/{id}', summary: 'Where a notification stands: received, pushed, push_failed or pending', auth: 'admin', ok: 200 },
  { method: 'post', path: '/v1/receipts', summary: 'Cumulative receipt: everything of a topic up to an offset was read', auth: 'user', body: ReceiptBody, ok: 204 },
  { method: 'put', path: '/v1/topics/{topic}/members/{userId}', summary: 'Add a member to a topic of a `members` namespace (201; 200 if already one)', auth: 'admin', ok: 201 },
  { method: 'delete', path: '/v1/topics/{topic}/members/{userId}', summary: "Remove a member; their live subscriptions to the topic end at once (membership_revoked)", auth: 'admin', ok: 204 },
  {
    method: 'get',
    path: '/v1/topics/{topic}/members',
    summary: 'A page of a topic\'s members by user id: {members: [{userId, addedAt}], next}',
    auth: 'admin',
    query: { limit: 'members per page, 1-1000 (default 100)', cursor: "the previous page's `next`" },
    ok: 200,
  },
  { method: 'get', path: '/v1/ws', summary: 'WebSocket upgrade (bearer or ?token=)', auth: 'token-or-query', ok: 101 },
];

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
  },
};

/** Build the document (once; it does not change at run time). */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const params: Array<Record<string, unknown>> = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    for (const [name, description] of Object.entries(op.query ?? {})) params.push({ name, in: 'query', required: false, description, schema: { type: 'string' } });
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      ...(op.auth !== 'none' && { security: [{ bearer: [] }] }),
      ...(params.length > 0 && { parameters: params }),
      ...(op.body && {
        requestBody: {
          required: !op.bodyOptional,
          content: { 'application/json': { schema: z.toJSONSchema(op.body, { io: 'input', unrepresentable: 'any' }) } },
        },
      }),
      responses: {
        [op.ok]: { description: 'success' },
        default: { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'onebox', version: '1' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: errorSchema },
    },
  };
}
