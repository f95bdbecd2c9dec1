/**
 * "Nothing of theirs is left": every text cell of every table of the store that contains a
 * given string (a user id, an email), found by reading the schema, so that a table added
 * later is searched too without this list knowing it.
 */
import { sql } from 'kysely';
import type { Db } from '../../src/store/db.js';

/** `table.column: n` for each text column holding `needle` anywhere in n rows. */
export async function cellsContaining(db: Db, needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const table of await db.introspection.getTables()) {
    if (table.name.startsWith('kysely_')) continue;
    for (const column of table.columns) {
      if (!/text|char/i.test(column.dataType)) continue;
      const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table.name)} where ${sql.ref(column.name)} like ${`%${needle}%`}`.execute(db);
      const n = Number(rows[0]?.n ?? 0);
      if (n > 0) found.push(`${table.name}.${column.name}: ${n}`);
    }
  }
  return found;
}
