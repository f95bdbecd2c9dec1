/**
 * A fresh PostgreSQL database per test file on the server named by ONEBOX_TEST_PG_URL, by
 * default the loopback cluster and role that `npm test` provisions (scripts/test-deps.sh).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabase } from '../../src/cli/bench/pg-database.js';

export const PG_URL = process.env.ONEBOX_TEST_PG_URL || 'postgres://onebox:onebox@127.0.0.1:5432/postgres';

export function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  return freshDatabase(PG_URL, 'onebox_test');
}

/** Where a store of either dialect lives for a test: a fresh PostgreSQL database or SQLite folder. */
export interface TestStore {
  config: { databaseUrl: string | undefined; dataDir: string };
  /** Drop the database, or remove the folder. */
  cleanup(): Promise<void>;
}

/** A fresh, empty store of `dialect` (nothing migrated yet). */
export async function createTestStore(dialect: 'sqlite' | 'postgres', prefix = 'onebox-store-'): Promise<TestStore> {
  if (dialect === 'postgres') {
    const t = await createTestDatabase();
    return { config: { databaseUrl: t.url, dataDir: '' }, cleanup: t.drop };
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { config: { databaseUrl: undefined, dataDir: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}
