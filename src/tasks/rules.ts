/**
 * The rules of the durable queue that do not depend on where it is kept, so every TaskQueue implementation
 * refuses the same inputs with the same errors, retries on the same schedule and makes ids of one shape.
 */
import { ExitCode, OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import type { AttemptError, SubmitInput, Task, TaskError, TaskEvent } from './queue.ts'
import { decideRetry, type RetryPolicy } from './retry.ts'

/** `prune`'s default age when tasks.retention_hours is not given. */
export const DEFAULT_RETENTION_MS = 168 * 3_600_000
/** Retry-After of a refusal by the queue bound: the queue drains only as runners take tasks, at no known rate. */
export const QUEUE_FULL_RETRY_AFTER_S = 5
/** The error a task carries once it lost its lease (a stall). */
export const STALLED_ERROR: TaskError = { code: 'E_STALLED', message: 'the runner lost its lease (it died or stopped renewing)' }

/** The priority and attempt budget of a submission, checked; throws E_TASK_INVALID. */
export function checkSubmit(input: SubmitInput, defaultMaxAttempts: number): { priority: number; maxAttempts: number } {
  const priority = input.priority ?? 0
  const maxAttempts = input.max_attempts ?? defaultMaxAttempts
  if (typeof input.type !== 'string' || input.type === '') throw invalidTask('type must be a non-empty string')
  if (!Number.isFinite(priority)) throw invalidTask(`priority must be a finite number, got ${priority}`)
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw invalidTask(`max_attempts must be a positive integer, got ${maxAttempts}`)
  return { priority, maxAttempts }
}

/**
 * What a failed attempt leads to, after `attempts` attempts of at most `maxAttempts`: another one after a
 * backoff, or a final failure with its reason.
 */
export function attemptOutcome(
  attempts: number,
  maxAttempts: number,
  error: AttemptError,
  retry: RetryPolicy,
  random: () => number,
): ReturnType<typeof decideRetry> {
  return decideRetry(attempts, asRetryable(error), { ...retry, maxAttempts }, random)
}

/** decideRetry judges errors by class; a plain TaskError carries its verdict in `retryable`. */
function asRetryable(error: AttemptError): OrchError {
  return new OrchError(error.message, { code: error.code, retryable: error.retryable })
}

/** 429: the durable queue holds as many tasks as its bound (over all tenants, or of one tenant) allows. */
export function queueBoundError(
  key: string,
  limit: number,
  queued: number,
  tenant: string | undefined,
  bulk: number | undefined,
): OrchError {
  const whose = tenant === undefined ? 'the task queue is full' : `tenant "${tenant}" has as many tasks queued as it may`
  const whole = bulk === undefined ? '' : `; none of the ${bulk} tasks of this submission was queued`
  return new OrchError(`${whose}: ${queued} queued, ${key} is ${limit}${whole}`, {
    code: 'E_TASK_QUEUE_FULL',
    hint: `retry in ${QUEUE_FULL_RETRY_AFTER_S} s, as runners take tasks off the queue; or raise ${key} (0: no bound)`,
    status: 429,
    retryable: true,
    retryAfterS: QUEUE_FULL_RETRY_AFTER_S,
    details: { key, limit },
  })
}

export function invalidTask(message: string): OrchError {
  return new OrchError(`invalid task: ${message}`, { code: 'E_TASK_INVALID', exitCode: ExitCode.usage })
}

/** A list cursor that no earlier page handed out. */
export function cursorError(cursor: string): OrchError {
  return new OrchError(`not a task list cursor: ${cursor}`, {
    code: 'E_TASK_CURSOR',
    exitCode: ExitCode.usage,
    hint: 'pass next_cursor from the previous page',
  })
}

/** A task as submitted now: its defaults and checks (E_TASK_INVALID), the same in every queue. */
export function newTask(input: SubmitInput, defaultMaxAttempts: number, now: number): Task {
  const { priority, maxAttempts } = checkSubmit(input, defaultMaxAttempts)
  return {
    id: newTaskId(now),
    type: input.type,
    model: input.model ?? null,
    payload: input.payload ?? null,
    priority,
    tenant: input.tenant ?? 'default',
    idempotency_key: input.idempotency_key ?? null,
    state: 'queued',
    attempts: 0,
    max_attempts: maxAttempts,
    stalled_count: 0,
    lease_owner: null,
    lease_expires_at: null,
    run_after: now,
    result: null,
    error: null,
    fail_reason: null,
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
  }
}

/**
 * The claim rank, fixed at submission: higher is claimed first. A waiting task gains one priority level per
 * `agingMs`, so ordering by `priority × agingMs − created_at` is ordering by effective priority now.
 */
export function claimRank(priority: number, agingMs: number, createdAt: number): number {
  return priority * agingMs - createdAt
}

/**
 * Hand a change to every listener of a queue. The change is already made: a listener that throws is
 * logged and changes nothing, for the caller or for the other listeners.
 */
export function notifyListeners(listeners: Iterable<(event: TaskEvent) => void>, event: TaskEvent): void {
  for (const listener of listeners) {
    try {
      listener(event)
    } catch (error) {
      logger('store').warn(`task event listener failed: ${(error as Error).message}`)
    }
  }
}

let sequence = 0

/**
 * `t_` + 9 base36 digits of ms + 4 of a per-process sequence + 8 random ones. Fixed width, so ids sort
 * as their creation time and, within one process and millisecond, in submission order; the random tail
 * keeps ids from different processes apart.
 */
export function newTaskId(now: number): string {
  sequence = (sequence + 1) % 36 ** 4
  const random = crypto.getRandomValues(new Uint32Array(2))
  const tail = ((random[0] ?? 0) % 36 ** 4).toString(36).padStart(4, '0') + ((random[1] ?? 0) % 36 ** 4).toString(36).padStart(4, '0')
  return `t_${Math.max(0, Math.trunc(now)).toString(36).padStart(9, '0')}${sequence.toString(36).padStart(4, '0')}${tail}`
}
