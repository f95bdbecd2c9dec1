/** Recognising driver errors the same way on bun:sqlite, better-sqlite3 and node-postgres. */

/**
 * True for a foreign-key violation: SQLite's `SQLITE_CONSTRAINT_FOREIGNKEY` (both drivers
 * use that code) or PostgreSQL's SQLSTATE 23503.
 */
/** True when SQLite could not take a lock another connection holds (`SQLITE_BUSY`, `SQLITE_BUSY_*`). */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

export function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503';
}

/** True for a unique-constraint violation: SQLite's `SQLITE_CONSTRAINT_UNIQUE` or PostgreSQL's SQLSTATE 23505. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
