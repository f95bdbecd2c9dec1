/** The Hono environment shared by every route, and the services routes reach. */
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Lifecycle } from '../process/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import type { Db } from '../store/db.js';
import type { UserStore } from '../store/users.js';
import type { DeviceStore } from '../store/devices.js';
import type { EventWriter } from '../store/events.js';
import type { OutboxStore } from '../store/outbox.js';
import type { Hub } from '../realtime/hub.js';
import type { PushWorker } from '../push/worker.js';
import type { LiveStats } from '../observability/live-stats.js';
import type { LoopMonitor } from '../observability/loop-monitor.js';
import type { SubTokenService, TokenService } from './auth/tokens.js';
import { clientAddress, type TrustProxy } from '../lib/client-address.js';
import type { Limits } from '../lib/limits.js';
import type { KnownUsers } from './auth/known-users.js';
import type { Channels } from '../realtime/channels.js';
import type { StoreHistory } from '../realtime/store-history.js';
import type { ReceiptStore } from '../store/receipts.js';
import type { MemberStore } from '../store/members.js';
import type { StoreProbe } from './store-probe.js';
import type { SocialSignIn } from './auth/social.js';
import type { Sessions } from './auth/sessions.js';
import type { AccountStore } from '../store/accounts.js';
import type { AccountMail } from './auth/account-mail.js';
import type { AccountDeletion } from './auth/account-deletion.js';

/** What the engine hands the app with each request. */
export interface Bindings {
  /** The peer address of the TCP connection. */
  ip: string;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    requestId: string;
    userId: string;
    /** The session of the bearer token (its `sid` claim); undefined for tokens from before sessions. */
    sid: string | undefined;
    /** Set when the bearer is ADMIN_TOKEN. */
    admin: boolean;
  };
}

/** The settings the HTTP app reads. */
export type AppOptions = Pick<
  Config,
  | 'engine'
  | 'adminToken'
  | 'trustProxy'
  | 'corsOrigins'
  | 'compressMinBytes'
  | 'bodyLimitBytes'
  | 'authRatePerMin'
  | 'maxJsonDepth'
  | 'maxDevicesPerUser'
  | 'dashboardTimeoutMs'
  | 'testMode'
  | 'faultStoreDelayMs'
  | 'faultBlockRoute'
  | 'faultCrashAfterCommit'
  | 'pushFallbackMs'
  | 'mailPerAddressPerHour'
  | 'emailVerifyTtlS'
  | 'requireEmailVerification'
  | 'signupEnumerationSafe'
  | 'freshLoginS'
>;

export interface Services {
  config: AppOptions;
  log: Logger;
  db: Db;
  users: UserStore;
  tokens: TokenService;
  /**
   * Device sessions: `start` answers login/signup/social sign-in, `revokeAll` ends every
   * session of a user (but one) on every process, sockets included.
   */
  sessions: Sessions;
  /** Signs and checks subscription tokens (an app route that grants a topic issues one). */
  subTokens: SubTokenService;
  /** The cached does-this-user-still-exist check behind `tokens`. */
  knownUsers: KnownUsers;
  /** The store's reachability, for `/readyz`. */
  storeProbe: StoreProbe;
  metrics: Metrics;
  lifecycle: Lifecycle;
  devices: DeviceStore;
  events: EventWriter;
  outbox: OutboxStore;
  hub: Hub;
  push: PushWorker;
  live: LiveStats;
  loopMonitor: LoopMonitor;
  /** The box's limit tables (the supervisor's when WORKERS>1). */
  limits: Limits;
  /** Dashboard loads that observed an abort, by load. */
  dashboardAborts: { profile: number; metrics: number };
  /** Namespace rules: who reads and publishes, which topics keep history. */
  channels: Channels;
  /** Members of `members` topics. */
  members: MemberStore;
  /** The per-topic message log (offsets, idempotency keys). */
  history: StoreHistory;
  receipts: ReceiptStore;
  /** Sign in with Apple and Google, and the revocation of Apple tokens at account deletion. */
  social: SocialSignIn;
  /** Email verification, change of email, password reset and change (the store side). */
  accounts: AccountStore;
  /** The mails of those flows, sent after the HTTP answer. */
  accountMail: AccountMail;
  /** `DELETE /v1/me`: deletes the user and everything theirs; hooks run before and after. */
  accountDeletion: AccountDeletion;
}

/**
 * The client address: the peer, or the X-Forwarded-For entry TRUST_PROXY designates. The
 * WebSocket gateway derives it with the same function, so both sides count one client.
 */
export function clientIp(trust: TrustProxy, peer: string, forwarded: string | null | undefined): string {
  return clientAddress(trust, peer, forwarded);
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}
