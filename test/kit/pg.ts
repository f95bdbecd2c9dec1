/**
 * A fresh PostgreSQL database per test file on the server named by ONEBOX_TEST_PG_URL, by
 * default the loopback cluster and role that `npm test` provisions (scripts/test-deps.sh).
 */
import { freshDatabase } from '../../src/cli/bench/pg-database.js';

export const PG_URL = process.env.ONEBOX_TEST_PG_URL || 'postgres://onebox:onebox@127.0.0.1:5432/postgres';

export function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  return freshDatabase(PG_URL, 'onebox_test');
}
