/**
 * The embedded SQLite file behind Kysely's SqliteDialect. On Bun it is bun:sqlite, on Node
 * better-sqlite3 (12.x; 13.x needs Node 22). Kysely expects better-sqlite3's statement shape
 * (`reader`, `all`, `run`, `iterate`), so bun:sqlite gets a small adapter.
 */
import type { SqliteDatabase, SqliteStatement } from 'kysely';

const PRAGMAS = [
  'PRAGMA journal_mode = WAL',
  'PRAGMA synchronous = NORMAL',
  'PRAGMA foreign_keys = ON',
  // SQLite's busy handler sleeps synchronously, holding the event loop: keep it short and
  // wait out a longer lock asynchronously (db.ts retries SQLITE_BUSY with backoff).
  'PRAGMA busy_timeout = 5',
];

interface BunStatement {
  columnNames: string[];
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  iterate(...params: unknown[]): IterableIterator<unknown>;
}
interface BunDatabase {
  prepare(sql: string): BunStatement;
  exec(sql: string): void;
  close(): void;
  readonly inTransaction: boolean;
}

function adaptBun(db: BunDatabase): SqliteDatabase {
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const stmt = db.prepare(sql);
      return {
        reader: stmt.columnNames.length > 0,
        all: (params) => stmt.all(...(params as unknown[])),
        run: (params) => stmt.run(...(params as unknown[])),
        iterate: (params) => stmt.iterate(...(params as unknown[])),
      };
    },
  };
}

const NO_OP: SqliteStatement = {
  reader: false,
  all: () => [],
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  iterate: () => [][Symbol.iterator](),
};

/**
 * Kysely's SQLite driver prepares every query anew; preparing was a tenth of the CPU of a
 * simple GET. Queries built by Kysely have a small fixed set of SQL texts, so statements
 * are cached by text (bounded, oldest dropped first).
 */
function cachePrepared(db: SqliteDatabase, inTransaction: () => boolean, max = 500): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      // SQLite rolls a transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR):
      // Kysely's ROLLBACK would then fail with "no transaction is active" and that error
      // would replace the cause (a full disk) in the log.
      if (sql === 'rollback') return inTransaction() ? db.prepare(sql) : NO_OP;
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = db.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

/** Open (creating if needed) the SQLite file with WAL, foreign keys and a busy timeout. */
export async function openSqlite(file: string): Promise<SqliteDatabase> {
  if (process.versions.bun) {
    const spec = 'bun:sqlite';
    const { Database } = (await import(spec)) as { Database: new (f: string, o: object) => BunDatabase };
    const db = new Database(file, { create: true, strict: false });
    for (const p of PRAGMAS) db.exec(p);
    return cachePrepared(adaptBun(db), () => db.inTransaction);
  }
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(file);
  for (const p of PRAGMAS) db.exec(p);
  return cachePrepared(db as unknown as SqliteDatabase, () => db.inTransaction);
}
