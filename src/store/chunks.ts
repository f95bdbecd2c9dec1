/**
 * Rows per multi-row INSERT: powers of two up to 256, so a batch of any size compiles to a
 * handful of distinct SQL texts and SQLite's prepared-statement cache (keyed by text, see
 * sqlite-driver.ts) keeps hitting. 256 rows of a few columns stay far below the parameter
 * limits of SQLite (32766) and PostgreSQL (65535).
 */
const MAX_ROWS = 256;

/** Split rows into chunks of 256, 128, …, 1 rows, in order. */
export function insertChunks<T>(rows: T[]): T[][] {
  const out: T[][] = [];
  let i = 0;
  for (let size = MAX_ROWS; size >= 1; size >>= 1) {
    while (rows.length - i >= size) {
      out.push(rows.slice(i, i + size));
      i += size;
    }
  }
  return out;
}
