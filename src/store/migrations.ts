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
  {
    version: 2,
    name: 'tasks',
    // claim_rank = priority × aging_ms − created_at: ordering by it is ordering by priority + age/aging_ms,
    // whatever `now` is, so the claim reads a small partial index in order instead of sorting the backlog.
    up: `
      CREATE TABLE tasks (
        id               TEXT PRIMARY KEY,
        type             TEXT NOT NULL,
        model            TEXT,
        payload          TEXT,
        priority         REAL NOT NULL DEFAULT 0,
        tenant           TEXT NOT NULL DEFAULT 'default',
        idempotency_key  TEXT,
        state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        stalled_count    INTEGER NOT NULL DEFAULT 0,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        run_after        INTEGER NOT NULL,
        claim_rank       REAL NOT NULL,
        result           TEXT,
        error            TEXT,
        fail_reason      TEXT CHECK (fail_reason IN ('error', 'not_retryable', 'max_attempts', 'stalled', 'cancelled')),
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER
      );
      CREATE UNIQUE INDEX tasks_idempotency ON tasks (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX tasks_claim ON tasks (claim_rank DESC, created_at, id) WHERE state = 'queued';
      CREATE INDEX tasks_due ON tasks (run_after) WHERE state = 'queued';
      CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE state = 'running';
      CREATE INDEX tasks_finished ON tasks (finished_at, state);
      CREATE INDEX tasks_created ON tasks (created_at, id);
    `,
  },
]
