/**
 * The one typed query layer (Kysely). SQLite in DATA_DIR by default; PostgreSQL by
 * DATABASE_URL (node-postgres pool). Queries stay portable so both take the same code;
 * `dialect` lets the few places that can do better on PostgreSQL (SKIP LOCKED) do so.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import type { Config } from '../config.js';
import { openSqlite } from './sqlite-driver.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
export type Dialect = 'sqlite' | 'postgres';

/** The settings the store reads. */
export type StoreOptions = Pick<Config, 'databaseUrl' | 'dataDir'>;

/** Which dialect a Db speaks. */
export const dialectOf = new WeakMap<Db, Dialect>();

/** Open the configured database. Nothing is migrated here; see migrations.ts. */
export async function openDb(config: StoreOptions): Promise<Db> {
  if (config.databaseUrl) {
    const pg = await import('pg');
    // int8 (bigint columns, count(*)) as numbers: epoch milliseconds and counts fit in 2^53.
    pg.default.types.setTypeParser(20, (v: string) => Number(v));
    const pool = new pg.default.Pool({ connectionString: config.databaseUrl, max: 10 });
    pool.on('error', () => undefined); // an idle client's error; the next query reports it
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialectOf.set(db, 'postgres');
    return db;
  }
  mkdirSync(config.dataDir, { recursive: true });
  const database = await openSqlite(join(config.dataDir, 'onebox.sqlite'));
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  dialectOf.set(db, 'sqlite');
  return db;
}
