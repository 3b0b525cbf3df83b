/**
 * The durable task API: submit one task or many (answered only once committed), read, list in
 * keyset pages, cancel, and long-poll until a task finishes. Submission is the hot path: the body is read
 * in one piece when its length is declared, validated once, and handed to the store's group commit.
 */
import type { EventBus, OrchEvent } from '../../bus/local.ts'
import { parseDurationMs } from '../../core/duration.ts'
import { parseSubmit } from '../../tasks/input.ts'
import { type SubmitInput, TASK_STATES, type Task, type TaskState } from '../../tasks/queue.ts'
import { type AppDeps, httpError, json, pageLimit, type Route, type RouteContext, readJsonValue } from '../http.ts'

const FINISHED = new Set<unknown>(['done', 'failed', 'cancelled'])
/** Longest a single `wait` holds the connection; clients loop for longer waits. */
export const MAX_WAIT_MS = 300_000
const DEFAULT_WAIT_MS = 30_000

export function taskRoutes(deps: AppDeps): Route[] {
  const waiters = new TaskWaiters(deps.bus)
  return [
    { method: 'POST', path: '/queue/submit', handler: submit },
    { method: 'GET', path: '/tasks', handler: list },
    { method: 'GET', path: '/tasks/:id', handler: async (ctx) => json(await found(ctx)) },
    { method: 'DELETE', path: '/tasks/:id', handler: cancel },
    { method: 'GET', path: '/tasks/:id/wait', long: true, handler: (ctx) => wait(ctx, waiters) },
  ]
}

async function submit(ctx: RouteContext): Promise<Response> {
  const body = await readBodyJson(ctx)
  const header = ctx.request.headers.get('idempotency-key')
  if (header !== null && (header === '' || header.length > 256)) {
    throw httpError(400, 'Idempotency-Key: expected 1 to 256 characters', 'E_VALIDATION', { field: 'Idempotency-Key' })
  }
  const { bulk, inputs } = parseSubmit(body, header)
  const { tasks } = ctx.deps
  if (!bulk) {
    const { task, created } = await tasks.submit(inputs[0] as SubmitInput)
    return json({ id: task.id, state: task.state, created }, created ? 202 : 200, { location: `/tasks/${task.id}` })
  }
  const results = await tasks.submitMany(inputs)
  return json({ tasks: results.map(({ task, created }) => ({ id: task.id, state: task.state, created })) }, 202)
}

async function readBodyJson(ctx: RouteContext): Promise<unknown> {
  const body = await readJsonValue(ctx)
  if (body === undefined)
    throw httpError(400, 'the body is empty: expected a task object or an array of tasks', 'E_VALIDATION', { field: '' })
  return body
}

async function list(ctx: RouteContext): Promise<Response> {
  const q = ctx.url.searchParams
  const state = q.get('state') ?? undefined
  if (state !== undefined && !TASK_STATES.includes(state as TaskState)) {
    throw badQuery('state', `expected one of ${TASK_STATES.join(', ')}, got "${state}"`)
  }
  const limit = pageLimit(ctx.url)
  const cursor = q.get('cursor') || undefined
  const tenant = q.get('tenant') || undefined
  try {
    return json(await ctx.deps.tasks.list({ state: state as TaskState | undefined, tenant, limit, cursor }))
  } catch (error) {
    if ((error as { code?: unknown }).code === 'E_TASK_CURSOR') throw badQuery('cursor', 'not a cursor from an earlier page (next_cursor)')
    throw error
  }
}

async function found(ctx: RouteContext): Promise<Task> {
  const id = ctx.params.id ?? ''
  const task = await ctx.deps.tasks.get(id)
  if (!task) throw httpError(404, `no task with id "${id}" (finished tasks are pruned after tasks.retention_hours)`, 'E_TASK_NOT_FOUND')
  return task
}

/** Cancels a queued or running task and returns it; a finished one stays as it is: 409 naming its state. */
async function cancel(ctx: RouteContext): Promise<Response> {
  const before = await found(ctx)
  const after = FINISHED.has(before.state) ? before : ((await ctx.deps.tasks.cancel(before.id)) ?? before)
  if (!FINISHED.has(before.state) && after.state === 'cancelled') return json(after)
  // Finished before the call, or in the meantime (the runner completed it first).
  const message = `task ${after.id} is already ${after.state}; only queued or running tasks can be cancelled`
  return json({ error: { code: 'E_TASK_FINISHED', message, state: after.state } }, 409)
}

async function wait(ctx: RouteContext, waiters: TaskWaiters): Promise<Response> {
  const timeoutMs = parseDuration(ctx.url.searchParams.get('timeout'))
  // Subscribed before the read, so a task finishing while it is read is not missed.
  const settled = new AbortController()
  const waiting = waiters.until(ctx.params.id ?? '', timeoutMs, AbortSignal.any([ctx.request.signal, settled.signal]))
  const task = await found(ctx).catch((error: unknown) => {
    settled.abort()
    throw error
  })
  if (FINISHED.has(task.state)) {
    settled.abort()
    return json({ finished: true, task })
  }
  await waiting
  const now = await found(ctx)
  const waitingFor = waitingReason(ctx.deps, now, Date.now())
  return json({ finished: FINISHED.has(now.state), task: now, ...(waitingFor ? { waiting_for: waitingFor } : {}) })
}

/** Why a queued task has not started yet, in words (`waiting_for`): what this server's runner waits for. */
export function waitingReason(deps: Pick<AppDeps, 'engine'>, task: Task, now: number): string | undefined {
  if (task.state !== 'queued') return undefined
  if (task.run_after > now) {
    return `waiting for a retry at ${new Date(task.run_after).toISOString()} (attempt ${task.attempts + 1} of ${task.max_attempts})`
  }
  const model = task.model ?? 'its model'
  const states = deps.engine.backends()
  if (states.length === 0) return `no backend serves ${model}: none is configured (add one under backends:)`
  const usable = states.filter((s) => s.usable)
  if (usable.length === 0) {
    const down = states.map((s) => `${s.name} at ${s.backend.url}`).join(', ')
    return `no backend serves ${model} yet: none answers (${down}); it runs when one does`
  }
  const serving = usable.filter((s) => s.serves(model))
  if (serving.length === 0) return `no backend serves ${model} yet (up: ${usable.map((s) => s.name).join(', ')})`
  return `waiting for a free slot on ${serving.map((s) => s.name).join(', ')}`
}

/** `30s`, `500ms`, `2m`, `1m30s`, or a bare number of seconds (src/core/duration.ts); capped at MAX_WAIT_MS. */
export function parseDuration(text: string | null): number {
  if (text === null || text === '') return DEFAULT_WAIT_MS
  const ms = parseDurationMs(text)
  if (ms === undefined || !(ms >= 0)) throw badQuery('timeout', `expected a duration like 30s, 500ms or 2m, got "${text}"`)
  return Math.min(MAX_WAIT_MS, ms)
}

function badQuery(field: string, message: string) {
  return httpError(400, `${field}: ${message}`, 'E_VALIDATION', { field })
}

/** Long-polls share one bus subscription, held only while someone waits, and find their task by id. */
class TaskWaiters {
  private readonly byId = new Map<string, Set<() => void>>()
  private unsubscribe: (() => void) | undefined

  constructor(private readonly bus: EventBus) {}

  /** Resolves when `id` finishes, after `ms`, or when the client goes away. */
  until(id: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.remove(id, done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      if (signal.aborted) return done()
      signal.addEventListener('abort', done, { once: true })
      this.add(id, done)
    })
  }

  private add(id: string, fn: () => void): void {
    const set = this.byId.get(id) ?? new Set()
    if (set.size === 0) this.byId.set(id, set)
    set.add(fn)
    this.unsubscribe ??= this.bus.subscribe((event) => this.onEvent(event))
  }

  private remove(id: string, fn: () => void): void {
    const set = this.byId.get(id)
    if (!set?.delete(fn)) return
    if (set.size === 0) this.byId.delete(id)
    if (this.byId.size === 0) {
      this.unsubscribe?.()
      this.unsubscribe = undefined
    }
  }

  private onEvent(event: OrchEvent): void {
    if (event.type !== 'task' || !FINISHED.has(event.data.state)) return
    const set = this.byId.get(event.data.id as string)
    if (set) for (const fn of [...set]) fn()
  }
}
