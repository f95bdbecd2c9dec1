/**
 * What this process knows of revoked sessions, so that checking an access token never asks
 * the store: the session ids revoked within the last access-token lifetime (a token of an
 * older revocation has expired anyway) and, per user, the cutoff of the last logout-all
 * ("not before", epoch seconds: every token of the user issued before it is refused, but
 * those of the one session it kept). The cutoff also catches tokens without a session
 * (issued before sessions existed) and a session deleted with its user. Both are plain maps
 * read on every verification; entries leave once no token they refuse can still be valid.
 *
 * How news arrives: the process that revokes applies it here, closes its own sockets and
 * publishes it on the backplane; the others apply what they receive and close theirs. A
 * process loads the recent revocations from the store at boot, and polls the store while the
 * backplane is down (and once when it comes back), so a message lost meanwhile still lands.
 * Without REDIS_URL there is one process (config.ts refuses WORKERS>1 without it), and
 * nothing to poll for. The same timer sweeps the store hourly of sessions, tokens and cutoffs
 * that no longer refuse anything.
 *
 * Each revocation closes the user's sockets twice: at once, and again one to two ticks later
 * (0.5-1 s). An upgrade whose token was verified just before the news arrived is not yet a
 * connection to close, and an `auth` op in flight has not yet moved its connection to the new
 * session; both are by the second pass.
 */
import type { SessionStore } from '../../store/sessions.js';
import type { Logger } from '../../observability/logger.js';

/** A revocation: sessions of one user, and/or a new cutoff for the user's tokens. */
export interface Revocation {
  userId: string;
  /** Session ids revoked. */
  sids: readonly string[];
  /** The user's tokens issued before this (epoch s) are refused, but those of `exceptSid`. */
  notBefore?: number | undefined;
  exceptSid?: string | undefined;
  /** When it happened (epoch ms). */
  at: number;
}

/** Which of a user's connections a revocation ends (the gateway's `closeUserConnections` filter). */
export type ConnFilter = (c: { sid: string | null }) => boolean;

/** The claims a revocation check reads. */
export interface TokenIdentity {
  userId: string;
  sid?: string | undefined;
  /** Issued at, epoch seconds. */
  iat: number;
}

interface Cutoff {
  notBefore: number;
  exceptSid: string | undefined;
  /** Epoch ms after which it can be forgotten. */
  until: number;
}

const cut = (c: Cutoff, t: { sid?: string | undefined; iat: number }) => t.iat < c.notBefore && (t.sid === undefined || t.sid !== c.exceptSid);

export class RevocationState {
  /** sid -> epoch ms after which it can be forgotten. */
  private readonly sids = new Map<string, number>();
  private readonly cutoffs = new Map<string, Cutoff>();

  /**
   * @param retainMs how long after a revocation its entry is kept: the access-token lifetime
   *   plus a margin for clock skew between processes.
   */
  constructor(private readonly retainMs: number) {}

  /** True when this token's session was revoked, or it predates its user's cutoff. */
  refuses(t: TokenIdentity): boolean {
    if (t.sid !== undefined && this.sids.has(t.sid)) return true;
    const c = this.cutoffs.get(t.userId);
    return c !== undefined && cut(c, t);
  }

  /**
   * Record a revocation; returns the filter of the connections it newly ends, or null when
   * nothing in it was new here (already applied, from the backplane or a poll).
   */
  apply(r: Revocation): ConnFilter | null {
    const fresh = new Set<string>();
    for (const sid of r.sids) {
      if (this.sids.has(sid)) continue;
      this.sids.set(sid, r.at + this.retainMs);
      fresh.add(sid);
    }
    let cutoff: Cutoff | undefined;
    if (r.notBefore !== undefined) {
      const c = this.cutoffs.get(r.userId);
      if (!c || c.notBefore < r.notBefore || (c.notBefore === r.notBefore && c.exceptSid !== r.exceptSid)) {
        cutoff = { notBefore: r.notBefore, exceptSid: r.exceptSid, until: r.notBefore * 1000 + this.retainMs };
        this.cutoffs.set(r.userId, cutoff);
      }
    }
    if (fresh.size === 0 && cutoff === undefined) return null;
    // A connection keeps its session id, not its token's issue time: a cutoff ends the
    // connections without a session (every such token predates it), and those of its
    // sessions end by their ids, which the same revocation carries.
    return (c) => (c.sid !== null ? fresh.has(c.sid) : cutoff !== undefined);
  }

  /** Forget entries whose tokens have all expired. */
  prune(now: number): void {
    for (const [sid, until] of this.sids) if (until <= now) this.sids.delete(sid);
    for (const [user, c] of this.cutoffs) if (c.until <= now) this.cutoffs.delete(user);
  }

  /** Entries held, for tests and metrics. */
  get size(): number {
    return this.sids.size + this.cutoffs.size;
  }
}

/** How revocations travel between processes: the Redis backplane's broadcast channel. */
export interface RevocationBus {
  /** True while messages flow (both connections up). */
  readonly up: boolean;
  publish(text: string): void;
  /** Connect; `receive` gets other processes' messages, `changed` each up/down transition. */
  start(receive: (text: string) => void, changed: (up: boolean) => void): void;
  stop(): Promise<void>;
}

/** Overlap of successive polls: a revocation committed late with an earlier timestamp is still seen. */
const POLL_OVERLAP_MS = 5000;
/** Poll period while the backplane is down: sockets close within about this plus one query. */
const POLL_MS = 500;
const PRUNE_MS = 60_000;
const SWEEP_MS = 3_600_000;

export interface RevocationsDeps {
  store: SessionStore;
  state: RevocationState;
  /** Close this process's connections of a user that the filter selects (4003 `session_revoked`). */
  closeSockets: (userId: string, which: ConnFilter) => void;
  /** The backplane. @default none: one process */
  bus?: RevocationBus | undefined;
  log: Logger;
  /** How far back boot loads revocations (ms): the state's retention. */
  retainMs: number;
}

/** Spreads revocations: applies them here, publishes them, receives and polls for the others'. */
export class Revocations {
  private timer: ReturnType<typeof setInterval> | null = null;
  /** The next poll reads from here (ms): the start of the last successful one, less the overlap. */
  private cursor = Date.now();
  /** One poll is due even with the backplane up: at start, and each time it comes back. */
  private catchUp = true;
  private polling = false;
  private lastPrune = 0;
  private lastSweep = Date.now();
  /** Revocations enforced since the last tick, closed again on the tick after next. */
  private closedNow: Array<{ userId: string; which: ConnFilter }> = [];
  private closeAgain: Array<{ userId: string; which: ConnFilter }> = [];
  /** Polls made, for tests. */
  polls = 0;

  constructor(private readonly d: RevocationsDeps) {}

  get state(): RevocationState {
    return this.d.state;
  }

  /** Load the revocations still in force from the store (before listening). */
  async load(now = Date.now()): Promise<void> {
    await this.poll(now - this.d.retainMs, false);
    this.cursor = now - POLL_OVERLAP_MS;
  }

  /** Listen to the backplane, and poll while it is down. */
  start(): void {
    this.d.bus?.start(
      (text) => this.received(text),
      (up) => {
        if (up) this.catchUp = true;
      },
    );
    this.timer = setInterval(() => this.tick(), POLL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.d.bus?.stop();
  }

  /** A revocation made by this process: in force here at once, then told to the others. */
  publish(r: Revocation): void {
    this.enforce(r);
    this.d.bus?.publish(JSON.stringify(r));
  }

  private enforce(r: Revocation): void {
    const which = this.d.state.apply(r);
    if (!which) return;
    this.d.closeSockets(r.userId, which);
    this.closedNow.push({ userId: r.userId, which });
  }

  private received(text: string): void {
    let r: Revocation;
    try {
      const v = JSON.parse(text) as Partial<Revocation>;
      if (typeof v.userId !== 'string' || !Array.isArray(v.sids) || typeof v.at !== 'number') throw new Error('malformed');
      if (!v.sids.every((s) => typeof s === 'string') || (v.notBefore !== undefined && typeof v.notBefore !== 'number')) throw new Error('malformed');
      if (v.exceptSid !== undefined && typeof v.exceptSid !== 'string') throw new Error('malformed');
      r = v as Revocation;
    } catch {
      this.d.log.warn('revocations: ignored a malformed backplane message');
      return;
    }
    this.enforce(r);
  }

  private tick(): void {
    const now = Date.now();
    for (const { userId, which } of this.closeAgain) this.d.closeSockets(userId, which);
    this.closeAgain = this.closedNow;
    this.closedNow = [];
    if (now - this.lastPrune >= PRUNE_MS) {
      this.lastPrune = now;
      this.d.state.prune(now);
    }
    if (now - this.lastSweep >= SWEEP_MS) {
      this.lastSweep = now;
      this.d.store.sweep(now - this.d.retainMs).catch((err: unknown) => this.d.log.warn({ err: (err as Error).message }, 'sessions: sweeping the store failed'));
    }
    const bus = this.d.bus;
    // One process (no backplane): every revocation was made here.
    if (!bus || this.polling || (bus.up && !this.catchUp)) return;
    this.catchUp = false;
    this.polling = true;
    void this.poll(this.cursor, true)
      .then(
        () => {
          this.cursor = now - POLL_OVERLAP_MS;
        },
        (err: unknown) => {
          this.catchUp = true;
          this.d.log.warn({ err: (err as Error).message }, 'revocations: polling the store failed');
        },
      )
      .finally(() => {
        this.polling = false;
      });
  }

  private async poll(since: number, close: boolean): Promise<void> {
    this.polls++;
    const [sessions, cutoffs] = await Promise.all([this.d.store.revokedSince(since), this.d.store.cutoffsSince(since)]);
    const byUser = new Map<string, Revocation>();
    const entry = (userId: string, at: number) => {
      let r = byUser.get(userId);
      if (!r) byUser.set(userId, (r = { userId, sids: [], at }));
      return r as { userId: string; sids: string[]; notBefore?: number; exceptSid?: string | undefined; at: number };
    };
    for (const s of sessions) {
      const r = entry(s.user_id, s.revoked_at);
      r.sids.push(s.id);
      // Retention counts from the newest revocation in the group: never too short.
      r.at = Math.max(r.at, s.revoked_at);
    }
    for (const c of cutoffs) {
      const r = entry(c.user_id, c.updated_at);
      r.notBefore = c.not_before;
      r.exceptSid = c.except_sid ?? undefined;
    }
    for (const r of byUser.values()) {
      if (close) this.enforce(r);
      else this.d.state.apply(r);
    }
  }
}
