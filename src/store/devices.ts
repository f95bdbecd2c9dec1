/** Push targets: one row per user and token, upserted. */
import { randomUUID } from 'node:crypto';
import type { Db } from './db.js';
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

  /** Insert, or refresh the existing row of this user and token; returns the row. */
  async upsert(userId: string, platform: DeviceRow['platform'], token: string, webKeys: string | null): Promise<DeviceRow> {
    const now = Date.now();
    await this.db
      .insertInto('devices')
      .values({ id: randomUUID(), user_id: userId, platform, token, web_keys: webKeys, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(['user_id', 'token']).doUpdateSet({ platform, web_keys: webKeys, updated_at: now }))
      .execute();
    return (await this.db
      .selectFrom('devices')
      .selectAll()
      .where('user_id', '=', userId)
      .where('token', '=', token)
      .executeTakeFirst())!;
  }

  list(userId: string): Promise<DeviceRow[]> {
    return this.db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  }

  byId(id: string): Promise<DeviceRow | undefined> {
    return this.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
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
