/** Table types for the typed query builder. Times are integer milliseconds since the epoch. */
import type { Generated } from 'kysely';

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  display_name: string | null;
  avatar_url: string | null;
  locale: string | null;
  created_at: number;
  updated_at: number;
}

export interface Database {
  users: UsersTable;
}

export type { Generated };
