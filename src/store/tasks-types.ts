/** The values of the durable task queue (src/store/tasks.ts), apart so the SQL layer can name them too. */
import type { RetryPolicy } from '../scheduler/retry.ts'

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export type FailReason = 'error' | 'not_retryable' | 'max_attempts' | 'stalled' | 'cancelled'

export interface TaskError {
  code: string
  message: string
  retryable?: boolean
}

export interface Task {
  id: string
  type: string
  model: string | null
  payload: unknown
  priority: number
  tenant: string
  idempotency_key: string | null
  state: TaskState
  attempts: number
  max_attempts: number
  stalled_count: number
  lease_owner: string | null
  lease_expires_at: number | null
  run_after: number
  result: unknown
  error: TaskError | null
  fail_reason: FailReason | null
  /** Milliseconds since the epoch, like every time below. */
  created_at: number
  updated_at: number
  started_at: number | null
  finished_at: number | null
}

export interface SubmitInput {
  type: string
  model?: string
  payload?: unknown
  /** Higher runs first; default 0. */
  priority?: number
  /** Default 'default'. Idempotency keys are unique per tenant. */
  tenant?: string
  idempotency_key?: string
  /** Default: the retry policy's maxAttempts. */
  max_attempts?: number
}

export interface TaskStoreOptions {
  retry: RetryPolicy
  /** Lease losses a task survives; one more fails it as 'stalled'. */
  maxStalled: number
  leaseMs: number
  /** A waiting task gains one priority level per agingMs. Fixed into each task's rank when it is submitted. */
  agingMs: number
  /** Default age for `prune`: tasks.retention_hours; 168 hours when not given. */
  retentionMs?: number
  /** Most queued tasks over all tenants (tasks.max_queued); 0 or absent: no bound. */
  maxQueued?: number
  /** Most queued tasks of one tenant (tasks.max_queued_per_tenant); 0 or absent: no bound. */
  maxQueuedPerTenant?: number
  now?: () => number
  random?: () => number
}

export type TaskChange = 'submitted' | 'claimed' | 'retrying' | 'done' | 'failed' | 'cancelled' | 'requeued'
export type TaskEvent = { type: 'task'; task: Task; change: TaskChange }

export interface ClaimFilter {
  types?: string[]
  models?: string[]
}

export interface ListQuery {
  state?: TaskState
  tenant?: string
  limit?: number
  cursor?: string
}
