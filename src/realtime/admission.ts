/**
 * Who may upgrade, the gateway's door: the handshake's own checks, draining, the connection
 * ceiling, the bound on handshakes in flight (MAX_HANDSHAKES), the token, then the
 * per-address slot. A refusal is an HTTP answer (401, 503 + Retry-After); for a client that
 * offers `onebox.v1` it is an upgrade the gateway closes at once with a close code (4001
 * token_expired, 4003 invalid token or revoked session, 1013 `<code> retry=<s>`), as a
 * browser cannot read a refused upgrade's status. Such refusals hold a descriptor each, so at
 * most REFUSING_MAX run at once (within the open-file reserve the ceiling keeps); past that
 * the HTTP status is the answer.
 *
 * Per-address limit: the client address is derived as on the HTTP side (TRUST_PROXY,
 * lib/client-address.ts) and its slot is taken from the box's `Limits` (the supervisor's
 * table with WORKERS>1) once the token is verified; `releaseIp` gives it back on abort or
 * close, the only two ends of an authorized upgrade.
 *
 * Accounting: `stats.pending` counts authorized upgrades not yet open; every one ends in
 * exactly one of `opened` or `abort`. A refusal's connection has id 0 and is counted in
 * `refusing` from `authorize` until `refusalClosed` or `abort`.
 */
import { CLOSE, errorBody, type ErrorCode } from '../errors.js';
import { clientAddress, limitKey } from '../lib/client-address.js';
import type { Limits } from '../lib/limits.js';
import { openFileLimits } from '../lib/open-files.js';
import type { Logger } from '../observability/logger.js';
import { deriveCeiling } from './ceiling.js';
import { Conn } from './conn.js';
import type { Authentication, GatewayDeps, GatewayOptions, GatewayStats, UpgradeDecision, UpgradeRequest } from './gateway-types.js';
import { SUBPROTOCOL, offersSubprotocol } from './protocol.js';

/** A Sec-WebSocket-Key is the base64 of 16 bytes (RFC 6455 section 4.1). */
const WS_KEY = /^[+/0-9A-Za-z]{21}[AQgw]==$/;

/** Refusals answered with a close code that may be in flight at once (each holds a descriptor). */
export const REFUSING_MAX = 256;

/** The key of an address's WebSocket slots in the box's limit tables. */
const ipKey = (ip: string) => `ws-ip:${limitKey(ip)}`;

/** The close code and reason a refusal's error code becomes for an `onebox.v1` client. */
function refusalClose(code: ErrorCode, retryAfter: string | undefined): { code: number; reason: string } {
  if (code === 'token_expired') return { code: CLOSE.tokenExpired, reason: code };
  if (code === 'unauthorized' || code === 'invalid_token' || code === 'session_revoked') return { code: CLOSE.revoked, reason: code };
  return { code: CLOSE.tryAgainLater, reason: `${code} retry=${retryAfter ?? 1}` };
}

export class Admission {
  readonly ceiling: number;
  /** Set by the gateway's closeAll: every upgrade from then on is refused `not_ready`. */
  draining = false;
  /** Upgrades accepted only to be closed (onebox.v1 refusals), with the close they get. */
  private readonly refusals = new Map<Conn, { code: number; reason: string }>();
  /** Refusal connections from authorize until closed or aborted: the descriptors they hold. */
  private refusing = 0;
  private nextId = 1;

  constructor(
    private readonly config: GatewayOptions,
    private readonly stats: GatewayStats,
    private readonly limits: Limits,
    private readonly log: Logger,
    private readonly authenticate: GatewayDeps['authenticate'],
  ) {
    this.ceiling = config.maxConnections ?? deriveCeiling(openFileLimits()?.soft);
  }

  /**
   * Decide an upgrade. A refusal of a well-formed handshake offering `onebox.v1` becomes an
   * upgrade whose close `refusalFor` gives.
   */
  async authorize(req: UpgradeRequest): Promise<UpgradeDecision> {
    // RFC 6455 section 4.4: another version is refused with the version we speak.
    if (req.version !== '13') {
      return this.refuse('handshake', 426, 'Sec-WebSocket-Version must be 13', 'upgrade_required', { 'Sec-WebSocket-Version': '13' });
    }
    if (!req.key || !WS_KEY.test(req.key)) return this.refuse('handshake', 400, 'invalid Sec-WebSocket-Key', 'bad_request');
    const v1 = offersSubprotocol(req.protocols);
    const decision = await this.decide(req);
    if (decision.ok) {
      if (v1) decision.protocol = SUBPROTOCOL;
      return decision;
    }
    if (!v1 || this.refusing >= REFUSING_MAX) return decision;
    const conn = new Conn(0, '', req.ip, Date.now());
    this.refusing++;
    this.stats.refusedByClose++;
    this.refusals.set(conn, refusalClose(decision.code, decision.headers['Retry-After']));
    return { ok: true, conn, protocol: SUBPROTOCOL };
  }

  /** The close a refusal's connection gets on open (once), or undefined for an admitted one. */
  refusalFor(conn: Conn): { code: number; reason: string } | undefined {
    const close = this.refusals.get(conn);
    this.refusals.delete(conn);
    return close;
  }

  /** An admitted upgrade opened: it is no longer pending. */
  opened(): void {
    this.stats.pending--;
  }

  /** The engine could not complete an authorized upgrade: give back what it held. */
  abort(conn: Conn): void {
    if (conn.id === 0) {
      this.refusals.delete(conn);
      this.refusing--;
      return;
    }
    this.stats.pending--;
    this.releaseIp(conn);
  }

  /** A refusal's socket closed: its descriptor is free. */
  refusalClosed(conn: Conn): void {
    if (conn.sock !== null) this.refusing--;
  }

  /** The one place a per-address slot is given back (abort, or close of an open socket). */
  releaseIp(conn: Conn): void {
    if (this.config.maxConnectionsPerIp !== undefined) this.limits.release(ipKey(conn.ip));
  }

  private async decide(req: UpgradeRequest): Promise<UpgradeDecision> {
    if (this.draining) return this.refuse('draining', 503, 'server is shutting down', 'not_ready');
    if (this.stats.open + this.stats.pending >= this.ceiling) {
      return this.refuse('ceiling', 503, 'connection ceiling reached');
    }
    // In a reconnect storm a process that takes every handshake answers each one later than
    // the client waits; refused early and cheaply, the client comes back after Retry-After to
    // a process that answers the ones it took in time.
    const bound = this.config.maxHandshakes;
    if (bound !== undefined && this.stats.handshaking + this.stats.pending >= bound) {
      return this.refuse('handshakes', 503, 'too many handshakes in progress');
    }
    this.stats.handshaking++;
    let auth: Authentication;
    try {
      auth = await this.authenticate(req);
    } finally {
      this.stats.handshaking--;
    }
    if (!auth.ok) {
      // A store that cannot be asked is not the client's fault: 503 + Retry-After, never a
      // 401 that would sign it out.
      if (auth.code === 'store_unavailable') return this.refuse('store', 503, auth.message, auth.code);
      return this.refuse('unauthorized', 401, auth.message, auth.code);
    }
    // Re-check after the await: other upgrades may have been admitted meanwhile.
    if (this.draining) return this.refuse('draining', 503, 'server is shutting down', 'not_ready');
    if (this.stats.open + this.stats.pending >= this.ceiling) {
      return this.refuse('ceiling', 503, 'connection ceiling reached');
    }
    this.stats.pending++;
    const ip = clientAddress(this.config.trustProxy, req.ip, req.forwarded);
    const perIp = this.config.maxConnectionsPerIp;
    if (perIp !== undefined) {
      let granted = false;
      try {
        granted = await this.limits.acquire(ipKey(ip), perIp);
      } catch (err) {
        this.log.warn({ err }, 'per-address slot unavailable');
      }
      if (!granted) {
        this.stats.pending--;
        return this.refuse('per_ip', 503, 'too many connections from this address');
      }
      if (this.draining) {
        this.stats.pending--;
        this.limits.release(ipKey(ip));
        return this.refuse('draining', 503, 'server is shutting down', 'not_ready');
      }
    }
    const conn = new Conn(this.nextId++, auth.userId, ip, Date.now());
    conn.exp = auth.exp ?? 0;
    conn.sid = auth.sid ?? null;
    return { ok: true, conn, protocol: undefined };
  }

  private refuse(reason: string, status: number, message: string, code: ErrorCode = 'over_capacity', extra?: Record<string, string>): UpgradeDecision {
    this.stats.refused.set(reason, (this.stats.refused.get(reason) ?? 0) + 1);
    // The client asked to leave HTTP: a refused upgrade ends the connection rather than keep it.
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', Connection: 'close', ...extra };
    if (status === 503) headers['Retry-After'] = String(1 + Math.floor(Math.random() * 10));
    return { ok: false, status, headers, body: errorBody(code, message), code };
  }
}
