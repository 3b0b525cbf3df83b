/**
 * The durable task queue: the values it holds and the one interface the rest of orch uses (serve, the task
 * routes, workflows, metrics, the runner). `SqliteTaskQueue` (./sqlite.ts) keeps it in state.db. Any
 * implementation passes the contract suite in test/contract/task-queue.ts; the rules every implementation
 * shares (validation, queue bounds, retry decisions, ids) are in ./rules.ts.
 *
 * Leases and fencing: `claim(owner)` leases tasks to `owner` for `leaseMs`. The owner is the fencing token
 * (`LeaseOwner`): every write about a running task (renew, complete, fail, release) names it, and is refused,
 * changing nothing, unless the task is running under that owner when the write commits. A lease is lost when
 * it expires and is recovered, when the task is cancelled, or when its owner releases it; from then on the
 * old holder's writes change nothing. An owner is unique to one claimer: `ownerId(runId)` (./owner.ts).
 */
import type { OrchConfig } from '../config/schema.ts'
import type { RetryPolicy } from './retry.ts'

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export const TASK_STATES: readonly TaskState[] = ['queued', 'running', 'done', 'failed', 'cancelled']
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

/** The answer to one submission: its task, and whether this submission made it (false: a known key). */
export interface Submitted {
  task: Task
  created: boolean
}

/** The fencing token of a claim: the owner the task is leased to, named by every write about it. */
export type LeaseOwner = string

/** A failed attempt as the runner reports it: `retryable` says whether another attempt could succeed. */
export type AttemptError = TaskError & { retryable: boolean }

export interface TaskQueueOptions {
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

export interface TaskPage {
  tasks: Task[]
  /** Pass back as `cursor` for the next page; null on the last one. */
  next_cursor: string | null
}

/** Queued tasks over all tenants and by tenant (tenants with none are absent). */
export interface QueuedCounts {
  total: number
  byTenant: Record<string, number>
}

/**
 * A value now or later: the sqlite queue answers most calls synchronously (one statement on a local file),
 * the Redis queue with a promise (a round trip). Callers always await.
 */
export type Awaitable<T> = T | Promise<T>

export interface TaskQueue {
  /**
   * Queue one task; resolves once it is durable. A known idempotency key (per tenant) resolves to its task,
   * `created: false`, whatever its state, even when the queue is full. Invalid input: E_TASK_INVALID; past
   * tasks.max_queued or tasks.max_queued_per_tenant: E_TASK_QUEUE_FULL (status 429, Retry-After).
   */
  submit(input: SubmitInput): Promise<Submitted>
  /** Several tasks, results in input order; all or nothing: one invalid input or one past the bound queues none. */
  submitMany(inputs: SubmitInput[]): Promise<Submitted[]>
  /**
   * Lease up to `limit` due tasks (run_after reached) to `owner`, best effective priority first: priority,
   * plus one level per agingMs waited; ties go to the oldest, then the smallest id. Each claim is an attempt.
   */
  claim(owner: LeaseOwner, limit?: number, filter?: ClaimFilter): Awaitable<Task[]>
  /** Extend the lease; false when it is lost (not running, another owner, cancelled): the runner must stop. */
  renew(id: string, owner: LeaseOwner): Awaitable<boolean>
  /** Finish a running task with its result; false, and nothing changes, unless `owner` holds it. Resolves once durable. */
  completeLater(id: string, owner: LeaseOwner, result: unknown): Promise<boolean>
  /**
   * Record a failed attempt: back to the queue after a backoff (`retrying`), or failed for good
   * (not_retryable, max_attempts). Undefined, and nothing changes, unless `owner` holds it. Resolves once durable.
   */
  failLater(id: string, owner: LeaseOwner, error: AttemptError): Promise<Task | undefined>
  /** Hand a running task back to the queue untouched, its attempt refunded (graceful shutdown); false unless `owner` holds it. */
  release(id: string, owner: LeaseOwner): Awaitable<boolean>
  /** Cancel a queued or running task (its lease is lost); a finished one is returned unchanged; undefined if unknown. */
  cancel(id: string): Awaitable<Task | undefined>
  /** Running tasks whose lease ran out: requeued at once, or failed once they stalled more than maxStalled times. */
  recoverExpired(): Awaitable<Task[]>
  /** At start-up: running tasks whose owner is gone (`isOwnerAlive` false) are handled as if their lease expired now. */
  recoverAbandoned(isOwnerAlive: (owner: LeaseOwner) => boolean): Awaitable<Task[]>
  get(id: string): Awaitable<Task | undefined>
  /**
   * Newest first, `limit` (default 50, at most 1000) at a time, filtered by state and tenant; pass
   * `next_cursor` back for the next page. A cursor not from an earlier page: E_TASK_CURSOR.
   */
  list(query?: ListQuery): Awaitable<TaskPage>
  /** Tasks in every state, zeros included. */
  counts(): Awaitable<Record<TaskState, number>>
  /** Queued tasks as the queue bounds see them (no scan of the queue). */
  queuedCounts(): Awaitable<QueuedCounts>
  /** The earliest run_after among queued tasks, so an idle runner can sleep until then. */
  nextRunAfter(): Awaitable<number | undefined>
  /**
   * Queued tasks due now (run_after reached) for these models (undefined: any model), counted up to `cap`
   * (the count stops there, so asking stays cheap at any depth): the demand an autoscaled pool sees.
   */
  dueCount(models: string[] | undefined, cap: number): Awaitable<number>
  /**
   * Delete tasks that finished more than `olderThanMs` ago (default: retentionMs), oldest first, at most
   * `limit` of them (default: all); returns how many.
   */
  prune(olderThanMs?: number, limit?: number): Awaitable<number>
  /** Every change made through this queue, after it is durable; returns the unsubscribe. A failing listener changes nothing. */
  onEvent(listener: (event: TaskEvent) => void): () => void
  /** Settle the writes under way and stop notifying listeners. */
  close(): Promise<void>
}

/** The `tasks` config section as queue options. */
export function taskQueueOptions(config: OrchConfig): TaskQueueOptions {
  const t = config.tasks
  return {
    retry: { maxAttempts: t.max_attempts, baseMs: t.retry_base_ms, maxMs: t.retry_max_ms },
    maxStalled: t.max_stalled,
    leaseMs: t.lease_ms,
    agingMs: t.priority_aging_ms,
    retentionMs: t.retention_hours * 3_600_000,
    maxQueued: t.max_queued,
    maxQueuedPerTenant: t.max_queued_per_tenant,
  }
}
