/**
 * The bench's users, written straight into the store of a server the bench started: a
 * token's subject must be a user that exists (a deleted user's token is refused), and
 * signing up tens of thousands through the API would spend minutes in scrypt. The rows
 * have no usable password; ids are `bench-<n>`, the subjects of the tokens the bench signs.
 */
import { openDb } from '../../store/db.js';

const BATCH = 500;

/** Insert users `bench-<from>` .. `bench-<from+count-1>` (present ones are left as they are). */
export async function seedUsers(store: { dataDir: string; databaseUrl: string | undefined }, count: number, from = 0): Promise<void> {
  const db = await openDb(store);
  try {
    const now = Date.now();
    for (let i = 0; i < count; i += BATCH) {
      const rows = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => {
        const id = `bench-${from + i + k}`;
        return { id, email: `${id}@bench.invalid`, password_hash: '!', display_name: null, avatar_url: null, locale: null, created_at: now, updated_at: now };
      });
      await db.insertInto('users').values(rows).onConflict((oc) => oc.doNothing()).execute();
    }
  } finally {
    await db.destroy();
  }
}
