/**
 * Device sessions (issue 16): what login, signup, refresh and the logout routes do. A
 * session gets short access tokens (its id in their `sid` claim) and opaque refresh tokens
 * that rotate on every use (store/sessions.ts). Revoking a session, or all of a user's, is
 * written to the store, then in force on this process at once and on the others through the
 * backplane (revocations.ts): their access tokens are refused and their sockets closed with
 * 4003 `session_revoked`, without any store query per request.
 */
import { AppError } from '../../errors.js';
import { isForeignKeyViolation } from '../../store/db-errors.js';
import { hashRefreshToken, newRefreshToken, type SessionRow, type SessionStore } from '../../store/sessions.js';
import { toPublicUser, type PublicUser, type UserRow, type UserStore } from '../../store/users.js';
import type { KnownUsers } from './known-users.js';
import type { Revocations } from './revocations.js';
import type { TokenService } from './tokens.js';

/** The answer of login, signup and refresh. */
export interface SessionAnswer {
  /** The access token (JWT, `Authorization: Bearer`). */
  token: string;
  /** Opaque; presented once to `POST /v1/auth/refresh`. */
  refreshToken: string;
  /** Seconds the access token is valid for. */
  expiresIn: number;
  user: PublicUser;
}

/** A session as `GET /v1/me/sessions` shows it: no secrets. */
export interface PublicSession {
  id: string;
  label: string | null;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  /** The session of the token that asked. */
  current: boolean;
}

export interface SessionOptions {
  /** Refresh-token lifetime. @default 2592000 s (REFRESH_TTL_S) */
  refreshTtlS: number;
  /** Re-issue window of a rotated refresh token; 0 disables. @default 30 s (REFRESH_REUSE_GRACE_S) */
  reuseGraceS: number;
}

const iso = (ms: number) => new Date(Number(ms)).toISOString();

export class Sessions {
  constructor(
    private readonly store: SessionStore,
    private readonly users: UserStore,
    private readonly tokens: TokenService,
    private readonly revocations: Revocations,
    private readonly knownUsers: KnownUsers,
    private readonly o: SessionOptions,
  ) {}

  /**
   * Open a session for a user who just proved who they are (login, signup, social sign-in).
   * @param opts.label the device label shown in the session list.
   * @param opts.user the user's row the caller checked the password against (login), or has
   *   at hand. A password change or reset that commits between that check and the session's
   *   insert revokes every session before this one exists: the row is read again once the
   *   session is stored, and a password hash other than `opts.user`'s refuses the login (a
   *   change committed after that read revokes the session itself).
   */
  async start(userId: string, opts: { label?: string | undefined; user?: UserRow } = {}): Promise<SessionAnswer> {
    const user = opts.user ?? (await this.users.byId(userId));
    if (!user) throw new AppError('invalid_credentials', 'no such user');
    const refreshToken = newRefreshToken();
    let session: SessionRow;
    try {
      session = await this.store.create(userId, opts.label ?? null, hashRefreshToken(refreshToken), Date.now(), this.o.refreshTtlS * 1000);
    } catch (err) {
      if (!isForeignKeyViolation(err)) throw err;
      this.knownUsers.forget(userId);
      throw new AppError('invalid_credentials', 'no such user', { cause: err });
    }
    if (opts.user) {
      const now = await this.users.byId(userId);
      if (now?.password_hash !== user.password_hash) {
        await this.store.revoke(userId, session.id, Date.now());
        throw new AppError('invalid_credentials', 'wrong email or password');
      }
    }
    return this.answer(session, refreshToken, user);
  }

  /** Rotate a refresh token: a new access and refresh token for its session. */
  async refresh(refreshToken: string): Promise<SessionAnswer> {
    const next = newRefreshToken();
    const r = await this.store.rotate(hashRefreshToken(refreshToken), {
      nextHash: hashRefreshToken(next),
      now: Date.now(),
      ttlMs: this.o.refreshTtlS * 1000,
      graceMs: this.o.reuseGraceS * 1000,
    });
    if (r.kind === 'invalid') throw new AppError('invalid_refresh_token', 'unknown or expired refresh token: log in again');
    if (r.kind === 'reused') {
      // Reuse after the grace: the token was copied. Whoever holds the family now, thief or
      // owner, logs in again.
      this.revocations.publish({ userId: r.session.user_id, sids: [r.session.id], at: r.session.revoked_at! });
    }
    if (r.kind !== 'rotated') throw new AppError('session_revoked', 'this session was revoked: log in again');
    const user = await this.users.byId(r.session.user_id);
    if (!user) throw new AppError('invalid_refresh_token', "the session's user no longer exists");
    return this.answer(r.session, next, user);
  }

  /** Revoke the session a refresh token belongs to (logout with only the refresh token). */
  async logoutByRefreshToken(refreshToken: string): Promise<void> {
    const session = await this.store.byRefreshHash(hashRefreshToken(refreshToken));
    if (session) await this.revoke(session.user_id, session.id);
  }

  /** Revoke one session of a user; false when the user has no such live session. */
  async revoke(userId: string, sid: string): Promise<boolean> {
    const now = Date.now();
    if (!(await this.store.revoke(userId, sid, now))) return false;
    this.revocations.publish({ userId, sids: [sid], at: now });
    return true;
  }

  /**
   * Revoke every session of a user but `exceptSid` (logout-all, password reset and change,
   * account deletion): every access token of the user issued until now but those of
   * `exceptSid` is refused, and their sockets closed, on every process within about a second.
   */
  async revokeAll(userId: string, opts: { exceptSid?: string | undefined } = {}): Promise<void> {
    const now = Date.now();
    const notBefore = Math.floor(now / 1000);
    const sids = await this.store.revokeAll(userId, opts.exceptSid, now, notBefore);
    this.revocations.publish({ userId, sids, notBefore, exceptSid: opts.exceptSid, at: now });
  }

  /** A user's live sessions, newest first; `current` marks `currentSid`. */
  async list(userId: string, currentSid: string | undefined): Promise<PublicSession[]> {
    const rows = await this.store.list(userId, Date.now());
    return rows.map((s) => ({
      id: s.id,
      label: s.label,
      createdAt: iso(s.created_at),
      lastUsedAt: iso(s.last_used_at),
      expiresAt: iso(s.expires_at),
      current: s.id === currentSid,
    }));
  }

  private async answer(session: SessionRow, refreshToken: string, user: UserRow): Promise<SessionAnswer> {
    return { token: await this.tokens.issue(user.id, session.id), refreshToken, expiresIn: this.tokens.ttlS, user: toPublicUser(user) };
  }
}
