/** Table types for the typed query builder. Times are integer milliseconds since the epoch. */

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  display_name: string | null;
  avatar_url: string | null;
  locale: string | null;
  created_at: number;
  updated_at: number;
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
}

export type OutboxStatus = 'pending' | 'sent' | 'failed' | 'dead';

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

export interface Database {
  users: UsersTable;
  events: EventsTable;
  event_counts: EventCountsTable;
  devices: DevicesTable;
  notifications: NotificationsTable;
  push_outbox: PushOutboxTable;
}
