/**
 * Versioned migrations, kept in code so that a release carries its own schema. Column types
 * are portable between SQLite and PostgreSQL (text ids, bigint epoch milliseconds).
 */
import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';

const migrations: Record<string, Migration> = {
  '0001_users': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text')
        .addColumn('avatar_url', 'text')
        .addColumn('locale', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('users').execute();
    },
  },
};

/** Bring the schema to the newest version; throws with the failing migration's error. */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}
