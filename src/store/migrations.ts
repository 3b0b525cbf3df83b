/**
 * Versioned schema migrations of state.db, applied in order; a version is never edited once released,
 * only followed by a new one. Later issues append theirs (tasks, cache, workers, batches).
 */
import type { Store } from './db.ts'

export interface Migration {
  version: number
  name: string
  up: string | ((store: Store) => void)
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'kv',
    up: `
      CREATE TABLE kv (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
]
