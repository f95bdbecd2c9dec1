/**
 * The durable push outbox. `notify` commits a notification row and one outbox row per
 * device in one transaction before the API answers 202. Workers claim due rows with a
 * lease in a single UPDATE … RETURNING: a row is owned by one claimer until its lease
 * ends, and a claimer that dies leaves it to be claimed again once the lease has passed
 * (at-least-once delivery across crashes).
 */
import { randomUUID } from 'node:crypto';
import { dialectOf, type Db } from './db.js';
import type { DeviceRow } from './devices.js';

export interface NotificationPayload {
  title: string;
  body: string;
  data: Record<string, unknown>;
}

export interface ClaimedPush {
  id: string;
  attempts: number;
  notificationId: string;
  payload: NotificationPayload;
  device: DeviceRow | null;
  deviceId: string;
}

export class OutboxStore {
  constructor(private readonly db: Db) {}

  /** Record a notification and queue it for `devices`, atomically. */
  async create(
    id: string,
    target: { userId: string } | { topic: string },
    payload: NotificationPayload,
    live: number,
    devices: DeviceRow[],
  ): Promise<number> {
    const now = Date.now();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('notifications')
        .values({
          id,
          user_id: 'userId' in target ? target.userId : null,
          topic: 'topic' in target ? target.topic : null,
          payload: JSON.stringify(payload),
          live,
          created_at: now,
        })
        .execute();
      if (devices.length > 0) {
        await tx
          .insertInto('push_outbox')
          .values(
            devices.map((d) => ({
              id: randomUUID(),
              notification_id: id,
              device_id: d.id,
              status: 'pending' as const,
              attempts: 0,
              next_at: now,
              claimed_until: 0,
              last_error: null,
              updated_at: now,
            })),
          )
          .execute();
      }
    });
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
      .select(['id', 'payload'])
      .where('id', 'in', [...new Set(claimed.map((c) => c.notification_id))])
      .execute();
    const devices = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('id', 'in', [...new Set(claimed.map((c) => c.device_id))])
      .execute();
    const noteById = new Map(notes.map((n) => [n.id, JSON.parse(n.payload) as NotificationPayload]));
    const deviceById = new Map(devices.map((d) => [d.id, d]));
    return claimed.map((c) => ({
      id: c.id,
      attempts: Number(c.attempts),
      notificationId: c.notification_id,
      payload: noteById.get(c.notification_id)!,
      device: deviceById.get(c.device_id) ?? null,
      deviceId: c.device_id,
    }));
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
}
