/** Table types for the typed query builder. Times are integer milliseconds since the epoch. */
import type { Generated } from 'kysely';

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  display_name: string | null;
  avatar_url: string | null;
  locale: string | null;
  created_at: number;
  updated_at: number;
  /** 1 once the owner answered a mail sent to `email` (or reset their password through one). */
  email_verified: Generated<number>;
  /** The address a change of email waits to have verified; `email` stays until then. */
  pending_email: string | null;
}

/** What a one-time token does when it is consumed. */
export type OneTimeTokenKind = 'verify_email' | 'change_email' | 'reset_password';

/** Links and codes sent by mail; only the SHA-256 of each token is kept. */
export interface OneTimeTokensTable {
  /** SHA-256 of the token, base64url. */
  hash: string;
  user_id: string;
  kind: OneTimeTokenKind;
  /** The address the token was sent to (for change_email, the new one). */
  email: string;
  expires_at: number;
  /** When it was consumed; a token works once. */
  used_at: number | null;
  created_at: number;
}

export interface EventsTable {
  user_id: string;
  type: string;
  ts: number;
  /** JSON text. */
  props: string;
  received_at: number;
}

/** Events per user, type and UTC day (days since the epoch). */
export interface EventCountsTable {
  user_id: string;
  type: string;
  day: number;
  n: number;
}

export interface DevicesTable {
  id: string;
  user_id: string;
  platform: 'ios' | 'android' | 'web';
  /** APNs device token, FCM registration token, or the Web Push endpoint URL. */
  token: string;
  /** Web Push only: the subscription's `keys` as JSON text. */
  web_keys: string | null;
  created_at: number;
  updated_at: number;
}

export interface NotificationsTable {
  id: string;
  user_id: string | null;
  topic: string | null;
  /** JSON text: {title, body, data}. */
  payload: string;
  live: number;
  created_at: number;
  /** Offset of the message in `topic`'s log (null: history-0 topic or an older row). */
  seq: number | null;
  /** 1 when `push: true` forced the push: a receipt does not cancel it. */
  force: number;
  /** When a receipt first covered `seq` on the user's channel. */
  received_at: number | null;
}

/** `received`: cancelled before sending because a receipt covered the message. */
export type OutboxStatus = 'pending' | 'sent' | 'failed' | 'dead' | 'received';

export interface PushOutboxTable {
  id: string;
  notification_id: string;
  device_id: string;
  status: OutboxStatus;
  attempts: number;
  next_at: number;
  /** A claim lease: until then one worker owns the row. */
  claimed_until: number;
  last_error: string | null;
  updated_at: number;
}

/** Store-wide values; `epoch` is written once by migration 0005. */
export interface StoreMetaTable {
  key: string;
  value: string;
}

/** The last offset handed out per topic; kept when its messages are trimmed. */
export interface TopicHeadsTable {
  topic: string;
  head: number;
}

/** The per-topic log. `seq` is the message's offset (gapless per topic). */
export interface MessagesTable {
  topic: string;
  seq: number;
  ts: number;
  /** JSON text. */
  data: string;
  from_user: string | null;
}

/** Per user and topic, the highest offset a client has acknowledged ("I have everything up to"). */
export interface ReceiptsTable {
  user_id: string;
  topic: string;
  seq: number;
  updated_at: number;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  /** Digest of the request, to tell a retry from a different request under the same key. */
  hash: string;
  /** The first response (text), null until the first request completes. */
  response: string | null;
  created_at: number;
}

/** Members of topics in `members` namespaces (issue 14): who may read them without a token. */
export interface TopicMembersTable {
  topic: string;
  user_id: string;
  created_at: number;
}

/** One device's login (issue 16): its id is the `sid` claim of its access tokens. */
export interface SessionsTable {
  id: string;
  user_id: string;
  /** The device label the client gave, or its User-Agent. */
  label: string | null;
  created_at: number;
  /** The last login or refresh. */
  last_used_at: number;
  /** When its current refresh token stops working. */
  expires_at: number;
  revoked_at: number | null;
}

/** A session's refresh tokens, by SHA-256 (hex); the current one has no `rotated_at`. */
export interface RefreshTokensTable {
  hash: string;
  session_id: string;
  created_at: number;
  expires_at: number;
  rotated_at: number | null;
}

/** Per user: access tokens issued before `not_before` (epoch seconds) are refused, but those of session `except_sid`. */
export interface TokenCutoffsTable {
  user_id: string;
  not_before: number;
  except_sid: string | null;
  updated_at: number;
}

/** A provider account (Sign in with Apple / Google) linked to a user. */
export interface IdentitiesTable {
  provider: 'apple' | 'google';
  /** The provider's stable user id (the ID token's `sub`). */
  subject: string;
  user_id: string;
  /** The audience of the last ID token (the app's client id); Apple's calls need it. */
  client_id: string;
  /** The email the provider last gave, lower-cased; null when it gave none. */
  email: string | null;
  /** 1 when the provider vouched for `email`. */
  email_verified: number;
  /** Apple only: the refresh token of the last code exchange, revoked when the user is deleted. */
  refresh_token: string | null;
  created_at: number;
  updated_at: number;
}

export interface Database {
  users: UsersTable;
  events: EventsTable;
  event_counts: EventCountsTable;
  devices: DevicesTable;
  notifications: NotificationsTable;
  push_outbox: PushOutboxTable;
  store_meta: StoreMetaTable;
  topic_heads: TopicHeadsTable;
  messages: MessagesTable;
  receipts: ReceiptsTable;
  idempotency_keys: IdempotencyKeysTable;
  topic_members: TopicMembersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  token_cutoffs: TokenCutoffsTable;
  one_time_tokens: OneTimeTokensTable;
  identities: IdentitiesTable;
}
