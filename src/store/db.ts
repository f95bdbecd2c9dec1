/**
 * The one typed query layer (Kysely). SQLite in DATA_DIR by default; PostgreSQL by
 * DATABASE_URL (node-postgres pool). Queries stay portable so both take the same code;
 * `dialect` lets the few places that can do better on PostgreSQL (SKIP LOCKED) do so.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, PostgresDialect, SqliteDialect, type DatabaseConnection, type Driver } from 'kysely';
import { isBusy } from './db-errors.js';
import type { Config } from '../config.js';
import { openSqlite } from './sqlite-driver.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
export type Dialect = 'sqlite' | 'postgres';

/** The settings the store reads. */
export type StoreOptions = Pick<Config, 'databaseUrl' | 'dataDir'>;

/** Which dialect a Db speaks. */
export const dialectOf = new WeakMap<Db, Dialect>();

/** How long a statement waits, in all, for a lock another process holds before SQLITE_BUSY is thrown. */
const BUSY_BUDGET_MS = 5000;

/**
 * SQLite with several writer processes (WORKERS>1): a statement that finds the write lock
 * taken is retried after an asynchronous pause (1, 2, 4 … 50 ms, at most BUSY_BUDGET_MS in
 * all) instead of SQLite's busy handler sleeping inside the call, which would hold this
 * process's event loop for as long as the other process writes. Transactions write first
 * (see message-log.ts), so a retried statement never needs a fresh snapshot.
 */
class PatientSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    const acquire = driver.acquireConnection.bind(driver);
    const patient = new WeakMap<DatabaseConnection, DatabaseConnection>();
    driver.acquireConnection = async () => {
      const conn = await acquire();
      let p = patient.get(conn);
      if (!p) patient.set(conn, (p = patientConnection(conn)));
      return p;
    };
    return driver;
  }
}

function patientConnection(conn: DatabaseConnection): DatabaseConnection {
  return {
    streamQuery: (q, chunk) => conn.streamQuery(q, chunk),
    async executeQuery(q) {
      const deadline = performance.now() + BUSY_BUDGET_MS;
      for (let pause = 1; ; pause = Math.min(50, pause * 2)) {
        try {
          return await conn.executeQuery(q);
        } catch (err) {
          if (!isBusy(err) || performance.now() > deadline) throw err;
          await sleep(pause);
        }
      }
    },
  };
}

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
  const db = new Kysely<Database>({ dialect: new PatientSqliteDialect({ database }) });
  dialectOf.set(db, 'sqlite');
  return db;
}
