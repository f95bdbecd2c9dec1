/**
 * Versioned migrations, kept in code so that a release carries its own schema. Column types
 * are portable between SQLite and PostgreSQL (text ids, bigint epoch milliseconds).
 */
import { randomBytes } from 'node:crypto';
import { Migrator, sql, type Kysely, type Migration, type MigrationResultSet } from 'kysely';

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
  '0002_mobile': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('events')
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('props', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_user_ts').on('events').columns(['user_id', 'ts']).execute();
      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('platform', 'text', (c) => c.notNull())
        .addColumn('token', 'text', (c) => c.notNull())
        .addColumn('web_keys', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('devices_user_token', ['user_id', 'token'])
        .execute();
      await db.schema
        .createTable('notifications')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text')
        .addColumn('topic', 'text')
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('live', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('push_outbox')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('notification_id', 'text', (c) => c.notNull().references('notifications.id').onDelete('cascade'))
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_at', 'bigint', (c) => c.notNull())
        .addColumn('claimed_until', 'bigint', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('push_outbox_due').on('push_outbox').columns(['status', 'next_at']).execute();
    },
    async down(db: Kysely<any>) {
      for (const t of ['push_outbox', 'notifications', 'devices', 'events']) await db.schema.dropTable(t).execute();
    },
  },
  '0003_event_counts': {
    // Daily counts per user and type, kept in the ingestion transaction, so the dashboard
    // reads at most types x 30 rows however many events a user sends.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('event_counts')
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('n', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('event_counts_pk', ['user_id', 'day', 'type'])
        .execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('event_counts').execute();
    },
  },
  '0004_devices_by_user': {
    // GET /v1/devices lists a user's devices oldest first: this index answers it in order,
    // without the temporary sort the (user_id, token) unique index left.
    async up(db: Kysely<any>) {
      await db.schema.createIndex('devices_user_created').on('devices').columns(['user_id', 'created_at']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('devices_user_created').execute();
    },
  },
  '0005_delivery': {
    // The per-topic log, receipts and idempotency keys of delivery v2 (issue 13). Offsets are
    // stored as `seq`: OFFSET is reserved in PostgreSQL, and a column named so would need
    // quoting in every hand-written query.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('store_meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      // The epoch is born with the store and changes only when the log is lost (a new
      // database): never on restart, so a client's {offset, epoch} stays valid across deploys.
      await db.insertInto('store_meta').values({ key: 'epoch', value: randomBytes(6).toString('hex') }).execute();
      await db.schema
        .createTable('topic_heads')
        .addColumn('topic', 'text', (c) => c.primaryKey())
        .addColumn('head', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('messages')
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('from_user', 'text')
        .addPrimaryKeyConstraint('messages_pk', ['topic', 'seq'])
        // Data is JSON text: never empty.
        .addCheckConstraint('messages_data', sql`data <> ''`)
        .execute();
      await db.schema
        .createTable('receipts')
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('receipts_pk', ['user_id', 'topic'])
        .execute();
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('response', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['scope', 'key'])
        .execute();
      await db.schema.createIndex('idempotency_keys_created').on('idempotency_keys').column('created_at').execute();
      // SQLite adds one column per ALTER TABLE.
      await db.schema.alterTable('notifications').addColumn('seq', 'bigint').execute();
      await db.schema.alterTable('notifications').addColumn('force', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('notifications').addColumn('received_at', 'bigint').execute();
      await sql`update notifications set topic = 'user:' || user_id where user_id is not null and topic is null`.execute(db);
      // A receipt marks the unreceived notifications of its range: partial, so the index
      // holds only what a receipt can still match, however long the history grows.
      await db.schema
        .createIndex('notifications_unreceived')
        .on('notifications')
        .columns(['topic', 'seq'])
        .where(sql.ref('received_at'), 'is', null)
        .execute();
      // Receipts cancel, and status() lists, the rows of given notifications.
      await db.schema.createIndex('push_outbox_notification').on('push_outbox').column('notification_id').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('push_outbox_notification').execute();
      await db.schema.dropIndex('notifications_unreceived').execute();
      for (const c of ['received_at', 'force', 'seq']) await db.schema.alterTable('notifications').dropColumn(c).execute();
      for (const t of ['idempotency_keys', 'receipts', 'messages', 'topic_heads', 'store_meta']) await db.schema.dropTable(t).execute();
    },
  },
  '0006_topic_members': {
    // Members of `members` namespaces (issue 14). The primary key answers the gateway's
    // "is this user a member of this topic" and the admin API's pages by user id; the
    // second index serves the cascade when a user is deleted.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('topic_members')
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('topic_members_pk', ['topic', 'user_id'])
        .execute();
      await db.schema.createIndex('topic_members_user').on('topic_members').column('user_id').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('topic_members').execute();
    },
  },
  '0007_sessions': {
    // Device sessions (issue 16). A session is one device's login: its id is the `sid` claim
    // of every access token it gets, and its refresh tokens form one family. Each refresh
    // token is stored as its SHA-256 only; a rotated one keeps its row (rotated_at set) so
    // that presenting it again is recognised as reuse. `revoked_at` is indexed for the
    // processes that poll for revocations while the backplane is down. token_cutoffs holds
    // the per-user "not before" of logout-all (every access token of the user issued before
    // it, but those of `except_sid`); no foreign key: a deleted user's cutoff must still
    // reach the processes that poll.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('label', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('sessions_user').on('sessions').columns(['user_id', 'created_at']).execute();
      await db.schema.createIndex('sessions_revoked').on('sessions').column('revoked_at').execute();
      await db.schema
        .createTable('refresh_tokens')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('rotated_at', 'bigint')
        .execute();
      await db.schema.createIndex('refresh_tokens_session').on('refresh_tokens').column('session_id').execute();
      await db.schema
        .createTable('token_cutoffs')
        .addColumn('user_id', 'text', (c) => c.primaryKey())
        .addColumn('not_before', 'bigint', (c) => c.notNull())
        .addColumn('except_sid', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('token_cutoffs_updated').on('token_cutoffs').column('updated_at').execute();
    },
    async down(db: Kysely<any>) {
      for (const t of ['token_cutoffs', 'refresh_tokens', 'sessions']) await db.schema.dropTable(t).execute();
    },
  },
  '0008_accounts': {
    // Email verification, email change and password reset (issue 16). A one-time token is
    // stored only as its SHA-256: the mail holds the token, the table cannot replay it. A
    // token is consumed by one conditional UPDATE (unused and unexpired), so two requests
    // racing with the same token cannot both succeed. `email` binds the token to the address
    // it was sent to: a link mailed to an address the account no longer has does nothing.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('email_verified', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('users').addColumn('pending_email', 'text').execute();
      await db.schema
        .createTable('one_time_tokens')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('one_time_tokens_user').on('one_time_tokens').columns(['user_id', 'kind']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('one_time_tokens').execute();
      for (const c of ['pending_email', 'email_verified']) await db.schema.alterTable('users').dropColumn(c).execute();
    },
  },
  '0009_identities': {
    // Sign in with Apple and Google (issue 16): one row per provider account, found by the
    // provider's subject; the user_id index serves "a user's identities" and the cascade when
    // the user is deleted. `refresh_token` is Apple's, kept only to revoke it at deletion.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('identities')
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('email', 'text')
        .addColumn('email_verified', 'integer', (c) => c.notNull())
        .addColumn('refresh_token', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('identities_pk', ['provider', 'subject'])
        .execute();
      await db.schema.createIndex('identities_user').on('identities').column('user_id').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('identities').execute();
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
