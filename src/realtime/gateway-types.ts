/**
 * The gateway's seam: what an engine hands it (`SocketOps`, each `UpgradeRequest`), what it
 * answers (`UpgradeDecision`), and what its owner gives it (`GatewayOptions`, `GatewayDeps`).
 * gateway.ts re-exports these, so callers import from there.
 */
import type { Config } from '../config.js';
import type { ErrorCode } from '../errors.js';
import type { Limits } from '../lib/limits.js';
import type { Logger } from '../observability/logger.js';
import type { Channels } from './channels.js';
import type { Conn } from './conn.js';
import type { HistoryLog } from './delivery.js';
import type { Hub, LocalHub } from './hub.js';
import type { MemberLookup } from './members.js';
import type { Presence, PresenceSync } from './presence.js';
import type { ReceiptBatcher } from './receipts.js';
import type { Registry } from './registry.js';

/** What the engine provides to act on its sockets. */
export interface SocketOps {
  send(sock: unknown, text: string): void;
  /** Bytes queued on the socket and not yet written to the kernel. */
  buffered(sock: unknown): number;
  ping(sock: unknown): void;
  close(sock: unknown, code: number, reason: string): void;
  terminate(sock: unknown): void;
}

export interface UpgradeRequest {
  url: string;
  authorization: string | null | undefined;
  /** The TCP peer address. */
  ip: string;
  /** Sec-WebSocket-Version and Sec-WebSocket-Key, checked before anything is counted. */
  version: string | null | undefined;
  key: string | null | undefined;
  /** The X-Forwarded-For header, as the HTTP side reads it. */
  forwarded: string | readonly string[] | null | undefined;
  /** The Sec-WebSocket-Protocol header: the subprotocols the client offers. */
  protocols?: string | null | undefined;
}

/**
 * Who a token names: a user id, with the token's expiry and issue time (epoch seconds) and
 * its session id when it has them; or why not (401 codes; `store_unavailable` is a 503).
 */
export type Authentication =
  | { ok: true; userId: string; exp?: number; iat?: number; sid?: string }
  | { ok: false; code: 'unauthorized' | 'invalid_token' | 'token_expired' | 'session_revoked' | 'store_unavailable'; message: string };

/**
 * Whether a subscription token grants `userId` the topic: null when it does, else why not.
 * The app verifies it (app/auth/tokens.ts), as it verifies access tokens.
 */
export type SubTokenCheck = (token: string, userId: string, topic: string) => Promise<null | 'invalid_subscription_token' | 'subscription_token_expired'>;

/** The settings the gateway reads. */
export type GatewayOptions = Pick<
  Config,
  | 'maxConnections'
  | 'maxHandshakes'
  | 'maxConnectionsPerIp'
  | 'trustProxy'
  | 'pingIntervalMs'
  | 'idleTimeoutMs'
  | 'maxBufferedBytes'
  | 'maxSubscriptions'
  | 'maxJsonDepth'
  | 'wsPublishPerS'
>;

/** What the gateway is given by its owner. */
export interface GatewayDeps {
  /** Decide who is upgrading (the token, checked however the app checks tokens). */
  authenticate(req: UpgradeRequest): Promise<Authentication>;
  /**
   * Check a fresh token sent on a live connection (the `auth` op), as `authenticate` checks
   * an upgrade's. @default every token is refused (`invalid_token`)
   */
  authenticateToken?: (token: string) => Promise<Authentication>;
  /** The box's per-address slot table. */
  limits: Limits;
  log: Logger;
  /** Build the hub over this process's registry: a backplane wraps the local hub. @default the local hub */
  createHub?: (local: LocalHub, registry: Registry) => Hub;
  /** Told which op starts running (the loop-block detector's label). */
  onActivity?: (label: string) => void;
  /** The namespace rules (CHANNELS_FILE). @default the built-in ones */
  channels?: Channels;
  /** Asks the store whether a user is a member of a topic. @default nobody is a member */
  members?: MemberLookup;
  /** Checks a subscription token. @default every token is invalid_subscription_token */
  verifySubToken?: SubTokenCheck;
  /**
   * The durable log: with it, topics whose namespace keeps history get offsets, recovery,
   * history and receipts. @default every topic fire-and-forget
   */
  history?: { log: HistoryLog; receipts: ReceiptBatcher };
  /** Presence (presence.ts): which topics, the grace, the count-mode bound, the cross-process sync. */
  presence?: {
    /** @default the namespace's `presence` rule (off for a namespace not configured) */
    on?: (topic: string) => boolean;
    /** @default 5000 ms */
    graceMs?: number;
    /** @default 1000 members */
    eventsMax?: number;
    /** @default none: one process */
    createSync?: (presence: Presence) => PresenceSync;
  };
}

/**
 * An upgrade the engine completes (with `protocol` as Sec-WebSocket-Protocol when set), or
 * an HTTP refusal. A refusal for a client that speaks `onebox.v1` is an upgrade too: its
 * connection is closed at once with the refusal's close code (gateway.open does that).
 */
export type UpgradeDecision =
  | { ok: true; conn: Conn; protocol: string | undefined }
  | { ok: false; status: number; headers: Record<string, string>; body: string; code: ErrorCode };

/** The gateway's figures: plain integers, read by the metrics catalog at scrape time. */
export class GatewayStats {
  open = 0;
  /** Authorized upgrades the engine has not opened (or aborted) yet. */
  pending = 0;
  /** Upgrades whose token is being checked now. */
  handshaking = 0;
  messagesIn = 0;
  messagesOut = 0;
  pingsSent = 0;
  slowConsumers = 0;
  idleTimeouts = 0;
  frameFailures = 0;
  readonly refused = new Map<string, number>();
  /** Refusals answered with a close code (onebox.v1 clients) rather than an HTTP status. */
  refusedByClose = 0;
  /** Connections closed at their token's expiry (4001). */
  expired = 0;
  readonly closes = new Map<number, number>();
}
