/**
 * The one typed query layer (Kysely). SQLite in DATA_DIR by default; PostgreSQL by
 * DATABASE_URL. Queries stay portable so both take the same code.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
import type { Config } from '../config.js';
import { openSqlite } from './sqlite-driver.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** Open the configured database. Nothing is migrated here; see migrations.ts. */
export async function openDb(config: Config): Promise<Db> {
  if (config.databaseUrl) {
    throw new Error('DATABASE_URL: PostgreSQL is not supported by this build yet; unset it to use SQLite');
  }
  mkdirSync(config.dataDir, { recursive: true });
  const database = await openSqlite(join(config.dataDir, 'onebox.sqlite'));
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
}
