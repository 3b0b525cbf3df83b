/**
 * The SQL of the sqlite task queue (./sqlite.ts) and the mapping between rows and `Task` values. Every
 * statement is a constant with bound parameters; lists (claim filters, dead owners) travel as one JSON array
 * read with json_each, so the statement text never varies and stays in the Store's statement cache.
 */
import type { Task, TaskError } from './queue.ts'
import { cursorError } from './rules.ts'

/** A task as stored: the JSON columns as text, plus the claim rank (priority × aging − created_at). */
export type TaskRow = Omit<Task, 'payload' | 'result' | 'error'> & {
  payload: string | null
  result: string | null
  error: string | null
  claim_rank: number
}

/** `payload`: the submitted value itself, when known, saves parsing back what was just serialised. */
export function rowToTask(row: TaskRow, payload?: unknown): Task {
  return {
    id: row.id,
    type: row.type,
    model: row.model,
    payload: payload === undefined ? parseJson(row.payload) : payload,
    priority: row.priority,
    tenant: row.tenant,
    idempotency_key: row.idempotency_key,
    state: row.state,
    attempts: row.attempts,
    max_attempts: row.max_attempts,
    stalled_count: row.stalled_count,
    lease_owner: row.lease_owner,
    lease_expires_at: row.lease_expires_at,
    run_after: row.run_after,
    result: parseJson(row.result),
    error: parseJson(row.error) as TaskError | null,
    fail_reason: row.fail_reason,
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  }
}

function parseJson(text: string | null): unknown {
  return text === null ? null : JSON.parse(text)
}

/** JSON text for a column; `undefined` (no payload, no result) is stored as NULL and read back as null. */
export function toJson(value: unknown): string | null {
  return value === undefined ? null : (JSON.stringify(value) ?? null)
}

export const INSERT_TASK = `
  INSERT INTO tasks (id, type, model, payload, priority, tenant, idempotency_key, state, attempts, max_attempts,
                     stalled_count, run_after, claim_rank, created_at, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, 0, ?, ?, ?, ?)
  ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`

export function insertParams(row: TaskRow): Array<string | number | null> {
  const { id, type, model, payload, priority, tenant, idempotency_key, max_attempts, run_after, claim_rank, created_at, updated_at } = row
  return [id, type, model, payload, priority, tenant, idempotency_key, max_attempts, run_after, claim_rank, created_at, updated_at]
}

export const SELECT_BY_KEY = 'SELECT * FROM tasks WHERE tenant = ? AND idempotency_key = ?'
export const SELECT_BY_ID = 'SELECT * FROM tasks WHERE id = ?'
export const SELECT_OWNED = "SELECT * FROM tasks WHERE id = ? AND state = 'running' AND lease_owner = ?"

// INDEXED BY pins the hot statements to their small partial indexes (the planner has no statistics to
// prefer them): reading tasks_claim in rank order and stopping at LIMIT beats collecting every due task
// and sorting them. Parameters: owner, lease expiry, now, types, models, limit.
export const CLAIM = `
  UPDATE tasks
     SET state = 'running', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2,
         started_at = ?3, updated_at = ?3
   WHERE id IN (
     SELECT id FROM tasks INDEXED BY tasks_claim
      WHERE state = 'queued' AND run_after <= ?3
        AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4)))
        AND (?5 IS NULL OR model IN (SELECT value FROM json_each(?5)))
      ORDER BY claim_rank DESC, created_at, id
      LIMIT ?6)
  RETURNING *`

export const RENEW = `
  UPDATE tasks SET lease_expires_at = ?, updated_at = ?
   WHERE id = ? AND state = 'running' AND lease_owner = ?`

export const COMPLETE = `
  UPDATE tasks SET state = 'done', result = ?, lease_expires_at = NULL, updated_at = ?, finished_at = ?
   WHERE id = ? AND state = 'running' AND lease_owner = ?
  RETURNING *`

export const RETRY = `
  UPDATE tasks SET state = 'queued', run_after = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
   WHERE id = ?
  RETURNING *`

export const FAIL = `
  UPDATE tasks SET state = 'failed', fail_reason = ?, error = ?, lease_expires_at = NULL, updated_at = ?, finished_at = ?
   WHERE id = ?
  RETURNING *`

// A graceful hand-back (orch shutting down): the interrupted attempt is refunded and no stall is counted.
export const RELEASE = `
  UPDATE tasks SET state = 'queued', attempts = MAX(attempts - 1, 0), run_after = ?1, lease_owner = NULL,
         lease_expires_at = NULL, updated_at = ?1
   WHERE id = ?2 AND state = 'running' AND lease_owner = ?3
  RETURNING *`

export const CANCEL = `
  UPDATE tasks SET state = 'cancelled', fail_reason = 'cancelled', lease_expires_at = NULL, updated_at = ?1, finished_at = ?1
   WHERE id = ?2 AND state IN ('queued', 'running')
  RETURNING *`

// A lost lease counts as a stall; past max_stalled (or with no attempt left) the task fails, else it goes
// back to the queue at once. The attempt it used is not refunded: a task that kills its runner must not
// get unlimited tries. Parameters: max_stalled, now, stalled error JSON, then the selector's own.
const RECOVER = `
  UPDATE tasks
     SET stalled_count = stalled_count + 1,
         state = CASE WHEN stalled_count + 1 > ?1 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         fail_reason = CASE WHEN stalled_count + 1 > ?1 THEN 'stalled'
                            WHEN attempts >= max_attempts THEN 'max_attempts' ELSE NULL END,
         finished_at = CASE WHEN stalled_count + 1 > ?1 OR attempts >= max_attempts THEN ?2 ELSE NULL END,
         error = ?3, lease_owner = NULL, lease_expires_at = NULL, run_after = ?2, updated_at = ?2
   WHERE state = 'running' AND`

export const RECOVER_EXPIRED = `${RECOVER.replace('UPDATE tasks', 'UPDATE tasks INDEXED BY tasks_lease')} lease_expires_at < ?2 RETURNING *`
export const RECOVER_OWNERS = `${RECOVER} lease_owner IN (SELECT value FROM json_each(?4)) RETURNING *`
export const RUNNING_OWNERS = "SELECT DISTINCT lease_owner AS owner FROM tasks WHERE state = 'running' AND lease_owner IS NOT NULL"

// Keyset pagination, newest first: the cursor is the (created_at, id) of the last row of the previous page.
// Tasks are indexed by (state, created_at, id) and (tenant, state, created_at, id), so a page with a state
// is one range read of `limit` rows, and a rare state (running among a million queued) is found without
// reading the others. Without a state, the newest `limit` keys of each state are read (a covering range read
// each) and merged, then only the rows of the page are fetched: at most states × limit index entries, whatever
// the depth. Parameters: tenant (when filtered), state, the cursor (after a page), limit.
export function listSql(what: 'rows' | 'keys', tenant: boolean, after: boolean): string {
  const key = `${what}${Number(tenant)}${Number(after)}`
  let text = LIST.get(key)
  if (text === undefined) {
    const index = tenant ? 'tasks_tenant_state_created' : 'tasks_state_created'
    const where = [tenant ? 'tenant = ?' : '', 'state = ?', after ? '(created_at, id) < (?, ?)' : ''].filter(Boolean).join(' AND ')
    text = `SELECT ${what === 'rows' ? '*' : 'created_at, id'} FROM tasks INDEXED BY ${index} WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT ?`
    LIST.set(key, text)
  }
  return text
}
const LIST = new Map<string, string>()
export const SELECT_PAGE = 'SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(?)) ORDER BY created_at DESC, id DESC'

// The counts the queue keeps with every change (migration 6): reading them costs a row per state or per tenant.
export const COUNTS = 'SELECT state, n FROM task_counts'
export const QUEUED_BY_TENANT = 'SELECT tenant, n FROM task_queued WHERE n > 0'
export const MOVE_STATE_COUNT = 'UPDATE task_counts SET n = n + ?2 WHERE state = ?1'
export const MOVE_QUEUED_COUNT = `
  INSERT INTO task_queued (tenant, n) VALUES (?1, ?2)
  ON CONFLICT (tenant) DO UPDATE SET n = n + excluded.n`
export const DROP_EMPTY_QUEUED = 'DELETE FROM task_queued WHERE tenant = ? AND n <= 0'
export const SELECT_STATE = 'SELECT state FROM tasks WHERE id = ?'
// Counting stops at ?3: the autoscaler needs "at least this many", never a scan of a deep queue.
export const DUE_COUNT = `
  SELECT COUNT(*) AS n FROM (
    SELECT 1 FROM tasks INDEXED BY tasks_claim
     WHERE state = 'queued' AND run_after <= ?1
       AND (?2 IS NULL OR model IN (SELECT value FROM json_each(?2)))
     LIMIT ?3)`
export const NEXT_RUN_AFTER = "SELECT MIN(run_after) AS at FROM tasks INDEXED BY tasks_due WHERE state = 'queued'"
// The oldest finished tasks past retention, at most ?2 of them (tasks_finished, in order). RETURNING gives
// their states, to move the counts by.
export const PRUNE = `
  DELETE FROM tasks WHERE id IN (
    SELECT id FROM tasks INDEXED BY tasks_finished
     WHERE finished_at < ?1 AND state IN ('done', 'failed', 'cancelled')
     ORDER BY finished_at LIMIT ?2)
  RETURNING state`

export function encodeCursor(row: Pick<TaskRow, 'created_at' | 'id'>): string {
  return `${row.created_at.toString(36)}.${row.id}`
}

export function decodeCursor(cursor: string): [number, string] {
  const dot = cursor.indexOf('.')
  const createdAt = Number.parseInt(cursor.slice(0, dot), 36)
  if (dot < 1 || !Number.isFinite(createdAt) || dot === cursor.length - 1) throw cursorError(cursor)
  return [createdAt, cursor.slice(dot + 1)]
}
