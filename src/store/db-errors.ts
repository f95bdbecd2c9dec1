/** Recognising driver errors the same way on bun:sqlite, better-sqlite3 and node-postgres. */

/**
 * True for a foreign-key violation: SQLite's `SQLITE_CONSTRAINT_FOREIGNKEY` (both drivers
 * use that code) or PostgreSQL's SQLSTATE 23503.
 */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503';
}
