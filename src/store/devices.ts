/**
 * Push targets: one row per user and token, upserted, at most `max` per user. Past the cap
 * a registration replaces the user's least recently registered device (stale tokens pile
 * up on reinstalls, and a user must never be locked out of push on their new phone); one
 * notify then costs at most `max` sends.
 */
import { randomUUID } from 'node:crypto';
import { dialectOf, type Db } from './db.js';
import type { DevicesTable } from './schema.js';

export type DeviceRow = DevicesTable;

export interface PublicDevice {
  id: string;
  platform: DeviceRow['platform'];
  token: string;
  createdAt: string;
  updatedAt: string;
}

export function toPublicDevice(d: DeviceRow): PublicDevice {
  return {
    id: d.id,
    platform: d.platform,
    token: d.token,
    createdAt: new Date(Number(d.created_at)).toISOString(),
    updatedAt: new Date(Number(d.updated_at)).toISOString(),
  };
}

export class DeviceStore {
  constructor(private readonly db: Db) {}

  /**
   * Insert, or refresh the existing row of this user and token; then, past `max` devices,
   * delete the user's least recently registered ones.
   * @param max devices one user may hold (the API passes MAX_DEVICES_PER_USER). @default Infinity
   * @returns the row.
   */
  async upsert(userId: string, platform: DeviceRow['platform'], token: string, webKeys: string | null, max = Infinity): Promise<DeviceRow> {
    const postgres = dialectOf.get(this.db) === 'postgres';
    return this.db.transaction().execute(async (tx) => {
      // Concurrent registrations of one user take turns, so the cap holds exactly. SQLite
      // needs no lock: the INSERT below takes the database's write lock first.
      if (postgres) await tx.selectFrom('users').select('id').where('id', '=', userId).forUpdate().execute();
      const now = Date.now();
      await tx
        .insertInto('devices')
        .values({ id: randomUUID(), user_id: userId, platform, token, web_keys: webKeys, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['user_id', 'token']).doUpdateSet({ platform, web_keys: webKeys, updated_at: now }))
        .execute();
      const device = (await tx
        .selectFrom('devices')
        .selectAll()
        .where('user_id', '=', userId)
        .where('token', '=', token)
        .executeTakeFirst())!;
      if (!Number.isFinite(max)) return device;
      const others = await tx
        .selectFrom('devices')
        .select('id')
        .where('user_id', '=', userId)
        .where('id', '!=', device.id)
        .orderBy('updated_at', 'desc')
        .orderBy('created_at', 'desc')
        .execute();
      const replaced = others.slice(Math.max(0, max - 1)).map((d) => d.id);
      if (replaced.length > 0) await tx.deleteFrom('devices').where('id', 'in', replaced).execute();
      return device;
    });
  }

  list(userId: string): Promise<DeviceRow[]> {
    return this.db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  }

  /** Delete a device of this user; false when it is not theirs or does not exist. */
  async remove(userId: string, id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('devices').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** Delete a device whose token the provider declared dead. */
  async removeDead(id: string): Promise<void> {
    await this.db.deleteFrom('devices').where('id', '=', id).execute();
  }
}
