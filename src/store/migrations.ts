/**
 * Versioned schema migrations of state.db, applied in order; a version is never edited once released,
 * only followed by a new one (tasks, workers and batches each added theirs this way).
 */
/** One step of a file's schema: SQL run once, in its own IMMEDIATE transaction, when the file is older. */
export interface Migration {
  version: number
  name: string
  up: string
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
      CREATE INDEX tasks_finished ON tasks (finished_at, state) WHERE finished_at IS NOT NULL;
      CREATE INDEX tasks_created ON tasks (created_at, id);
    `,
  },
  {
    version: 3,
    name: 'workflows',
    // A run keeps the definition it started with, so editing a workflow never changes a run in flight.
    // (workflow_id, scheduled_for) is unique: a schedule occurrence becomes one run, whoever fires it.
    up: `
      CREATE TABLE workflows (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        definition  TEXT NOT NULL,
        schedule    TEXT,
        timezone    TEXT,
        enabled     INTEGER NOT NULL DEFAULT 1,
        next_run_at INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE INDEX workflows_due ON workflows (next_run_at) WHERE enabled = 1 AND next_run_at IS NOT NULL;
      CREATE TABLE workflow_runs (
        id            TEXT PRIMARY KEY,
        workflow_id   TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
        state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        trigger       TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule')),
        scheduled_for INTEGER,
        definition    TEXT NOT NULL,
        error         TEXT,
        created_at    INTEGER NOT NULL,
        started_at    INTEGER,
        finished_at   INTEGER
      );
      CREATE UNIQUE INDEX workflow_runs_occurrence ON workflow_runs (workflow_id, scheduled_for) WHERE scheduled_for IS NOT NULL;
      CREATE INDEX workflow_runs_recent ON workflow_runs (workflow_id, created_at DESC, id DESC);
      CREATE INDEX workflow_runs_active ON workflow_runs (created_at) WHERE state IN ('queued', 'running');
      CREATE TABLE workflow_steps (
        run_id       TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
        step_id      TEXT NOT NULL,
        position     INTEGER NOT NULL,
        type         TEXT NOT NULL,
        task_id      TEXT,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'running', 'done', 'failed', 'cancelled', 'skipped')),
        output       TEXT,
        error        TEXT,
        submitted_at INTEGER,
        finished_at  INTEGER,
        PRIMARY KEY (run_id, step_id)
      );
      CREATE INDEX workflow_steps_task ON workflow_steps (task_id) WHERE task_id IS NOT NULL;
    `,
  },
  {
    version: 4,
    name: 'workers',
    // Pool workers as the supervisor last saw them: `orch pool status` reads it, and a later run reaps the
    // ones a dead run left behind (pid alive, owner gone, command line carrying the run marker).
    up: `
      CREATE TABLE workers (
        pool           TEXT NOT NULL,
        worker_id      TEXT NOT NULL,
        pid            INTEGER,
        pgid           INTEGER,
        port           INTEGER,
        gpu            TEXT,
        run_id         TEXT NOT NULL,
        owner_pid      INTEGER NOT NULL,
        state          TEXT NOT NULL,
        started_at     INTEGER,
        restarts       INTEGER NOT NULL DEFAULT 0,
        served         INTEGER NOT NULL DEFAULT 0,
        inflight       INTEGER NOT NULL DEFAULT 0,
        last_heartbeat INTEGER,
        updated_at     INTEGER NOT NULL,
        PRIMARY KEY (pool, worker_id)
      );
    `,
  },
  {
    version: 5,
    name: 'batches',
    // One row per batch folder `orch batch` has run, keyed by its absolute path (the record the batch runner's processed list is).
    // A failed run is recorded too (exit_status 1 or 2), so one broken folder does not block every later tick.
    up: `
      CREATE TABLE batches (
        path         TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        processed_at INTEGER NOT NULL,
        exit_status  INTEGER NOT NULL,
        summary      TEXT,
        error        TEXT,
        result_path  TEXT
      );
      CREATE INDEX batches_name ON batches (name);
    `,
  },
  {
    version: 6,
    name: 'task counts and list indexes',
    // How many tasks are in each state, and how many are queued per tenant. The task queue moves them in
    // the same transaction as every change it makes (src/tasks/sqlite.ts), so /stats, /metrics and the queue
    // bound read a few rows instead of counting the whole table. Counted once here for a file that already
    // holds tasks. The list's index by creation becomes one by state and creation, plus one by tenant, state
    // and creation, so a page of any filter is a few range reads (src/tasks/sql.ts, listSql).
    up: `
      CREATE TABLE task_counts (
        state TEXT PRIMARY KEY,
        n     INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO task_counts (state, n)
        SELECT s.state, (SELECT COUNT(*) FROM tasks WHERE tasks.state = s.state)
          FROM (SELECT 'queued' AS state UNION ALL SELECT 'running' UNION ALL SELECT 'done'
                UNION ALL SELECT 'failed' UNION ALL SELECT 'cancelled') AS s;
      CREATE TABLE task_queued (
        tenant TEXT PRIMARY KEY,
        n      INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO task_queued (tenant, n) SELECT tenant, COUNT(*) FROM tasks WHERE state = 'queued' GROUP BY tenant;
      DROP INDEX tasks_created;
      CREATE INDEX tasks_state_created ON tasks (state, created_at, id);
      CREATE INDEX tasks_tenant_state_created ON tasks (tenant, state, created_at, id);
    `,
  },
]
