/**
 * The durable push outbox. `notify` commits a notification row and one outbox row per
 * device in one transaction before the API answers 202 (with the log entry too, through
 * createIn). A push row is due at `dueAt`: at once when the user has no connection, else
 * after the fallback delay, during which a receipt covering the notification's offset sets
 * it `received` (receipts.ts) and it is never claimed. Workers claim due rows with a
 * lease in a single UPDATE … RETURNING: a row is owned by one claimer until its lease
 * ends, and a claimer that dies leaves it to be claimed again once the lease has passed
 * (at-least-once delivery across crashes).
 */
import { randomUUID } from 'node:crypto';
import { dialectOf, type Db } from './db.js';
import type { DeviceRow } from './devices.js';
import { insertChunks } from './chunks.js';
import type { OutboxStatus } from './schema.js';

export interface NotificationPayload {
  title: string;
  body: string;
  data: Record<string, unknown>;
}

export interface ClaimedPush {
  id: string;
  attempts: number;
  notificationId: string;
  /** The notification's topic (`user:<id>` for a user) and offset in its log, for the payload. */
  topic: string | null;
  offset: number | null;
  payload: NotificationPayload;
  device: DeviceRow | null;
  deviceId: string;
}

/** A notification to record, with a push row per device. */
export interface NewNotification {
  id: string;
  target: { userId: string } | { topic: string };
  payload: NotificationPayload;
  /** Connections it reached when it went out (kept for the record). */
  live: number;
  devices: DeviceRow[];
  /** Offset of the message in the topic's log (`user:<id>` for a user). */
  offset?: number | null;
  /** `push: true`: pushed even when a receipt covers it. @default false */
  force?: boolean;
  /** When the push rows become due (epoch ms). @default now */
  dueAt?: number;
}

/** Where a notification stands, for `GET /v1/notifications/:id`. */
export interface NotificationStatus {
  /**
   * `received` when a receipt covered it (whatever was pushed); else `pushed` when a push row
   * was sent; `push_failed` when every push row failed or was dead; `pending` otherwise.
   */
  state: 'received' | 'pushed' | 'push_failed' | 'pending';
  receivedAt?: number;
  topic: string | null;
  offset: number | null;
  createdAt: number;
  rows: Array<{ id: string; deviceId: string; status: OutboxStatus; attempts: number; nextAt: number; lastError: string | null; updatedAt: number }>;
}

export class OutboxStore {
  constructor(private readonly db: Db) {}

  /**
   * Record a notification and queue it for its devices, atomically: in the caller's
   * transaction `tx` (notify commits the log entry of the same message with it), else in one
   * of its own. A user's notification is filed under the topic `user:<id>`.
   * @returns push rows queued
   */
  async create(n: NewNotification, tx?: Db): Promise<number> {
    if (!tx) return this.db.transaction().execute((t) => this.create(n, t));
    const { id, target, payload, live, devices } = n;
    const now = Date.now();
    await tx
      .insertInto('notifications')
      .values({
        id,
        user_id: 'userId' in target ? target.userId : null,
        topic: 'userId' in target ? `user:${target.userId}` : target.topic,
        payload: JSON.stringify(payload),
        live,
        created_at: now,
        seq: n.offset ?? null,
        force: n.force ? 1 : 0,
        received_at: null,
      })
      .execute();
    const rows = devices.map((d) => ({
      id: randomUUID(),
      notification_id: id,
      device_id: d.id,
      status: 'pending' as const,
      attempts: 0,
      next_at: n.dueAt ?? now,
      claimed_until: 0,
      last_error: null,
      updated_at: now,
    }));
    for (const chunk of insertChunks(rows)) await tx.insertInto('push_outbox').values(chunk).execute();
    return devices.length;
  }

  /** Claim up to `limit` due rows for `leaseMs`. */
  async claim(now: number, limit: number, leaseMs: number): Promise<ClaimedPush[]> {
    const postgres = dialectOf.get(this.db) === 'postgres';
    const claimed = await this.db
      .updateTable('push_outbox')
      .set({ claimed_until: now + leaseMs, updated_at: now })
      .where('id', 'in', (eb) => {
        const due = eb
          .selectFrom('push_outbox')
          .select('id')
          .where('status', '=', 'pending')
          .where('next_at', '<=', now)
          .where('claimed_until', '<=', now)
          .orderBy('next_at')
          .limit(limit);
        // PostgreSQL: concurrent claimers skip each other's rows instead of queueing on them.
        return postgres ? due.forUpdate().skipLocked() : due;
      })
      // Re-checked on the row itself: under concurrent claimers only one update matches.
      .where('claimed_until', '<=', now)
      .where('status', '=', 'pending')
      .returning(['id', 'attempts', 'notification_id', 'device_id'])
      .execute();
    if (claimed.length === 0) return [];
    const notes = await this.db
      .selectFrom('notifications')
      .select(['id', 'payload', 'topic', 'seq'])
      .where('id', 'in', [...new Set(claimed.map((c) => c.notification_id))])
      .execute();
    const devices = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('id', 'in', [...new Set(claimed.map((c) => c.device_id))])
      .execute();
    const noteById = new Map(notes.map((n) => [n.id, n]));
    const deviceById = new Map(devices.map((d) => [d.id, d]));
    return claimed.map((c) => {
      const note = noteById.get(c.notification_id)!;
      return {
        id: c.id,
        attempts: Number(c.attempts),
        notificationId: c.notification_id,
        topic: note.topic,
        offset: note.seq === null ? null : Number(note.seq),
        payload: JSON.parse(note.payload) as NotificationPayload,
        device: deviceById.get(c.device_id) ?? null,
        deviceId: c.device_id,
      };
    });
  }

  /**
   * A notification without an offset (its namespace keeps no history, so no receipt can
   * cover it) that reached a live connection: its pending push rows are not needed.
   */
  async receivedLive(notificationId: string, now = Date.now()): Promise<void> {
    await this.db
      .updateTable('push_outbox')
      .set({ status: 'received', updated_at: now })
      .where('notification_id', '=', notificationId)
      .where('status', '=', 'pending')
      .execute();
  }

  /** Make a notification's pending push rows due now (nobody held the user when it went out). */
  async dueNow(notificationId: string, now = Date.now()): Promise<void> {
    await this.db
      .updateTable('push_outbox')
      .set({ next_at: now, updated_at: now })
      .where('notification_id', '=', notificationId)
      .where('status', '=', 'pending')
      .where('next_at', '>', now)
      .execute();
  }

  async finish(id: string, status: 'sent' | 'failed' | 'dead', error: string | null): Promise<void> {
    await this.db
      .updateTable('push_outbox')
      .set({ status, last_error: error, claimed_until: 0, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
  }

  async retry(id: string, attempts: number, nextAt: number, error: string): Promise<void> {
    await this.db
      .updateTable('push_outbox')
      .set({ attempts, next_at: nextAt, last_error: error, claimed_until: 0, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
  }

  /** Rows by status, for metrics and tests. */
  async counts(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('push_outbox')
      .select((eb) => ['status', eb.fn.countAll<number | string>().as('n')])
      .groupBy('status')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /** The outbox rows of one notification. */
  forNotification(id: string) {
    return this.db.selectFrom('push_outbox').selectAll().where('notification_id', '=', id).execute();
  }

  /** Where a notification stands; undefined when there is no such notification. */
  async status(id: string): Promise<NotificationStatus | undefined> {
    const note = await this.db
      .selectFrom('notifications')
      .select(['topic', 'seq', 'created_at', 'received_at'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!note) return undefined;
    const rows = (await this.forNotification(id)).map((r) => ({
      id: r.id,
      deviceId: r.device_id,
      status: r.status,
      attempts: Number(r.attempts),
      nextAt: Number(r.next_at),
      lastError: r.last_error,
      updatedAt: Number(r.updated_at),
    }));
    const base = {
      topic: note.topic,
      offset: note.seq === null ? null : Number(note.seq),
      createdAt: Number(note.created_at),
      rows,
    };
    if (note.received_at !== null) return { state: 'received', receivedAt: Number(note.received_at), ...base };
    if (rows.some((r) => r.status === 'sent')) return { state: 'pushed', ...base };
    if (rows.length > 0 && rows.every((r) => r.status === 'failed' || r.status === 'dead')) return { state: 'push_failed', ...base };
    return { state: 'pending', ...base };
  }
}
