/**
 * The durable task queue on Redis (event_bus_type: redis): the same TaskQueue as the sqlite queue, passing
 * the same contract suite, shared by every orch serve and orch worker of a cluster. Each change is one Lua
 * script (./redis-lua.ts), so Redis applies it whole and alone: two workers never claim one task, a stale
 * owner's write is refused inside the same script that checks its lease, and the task's event enters the
 * cluster's stream with the change.
 *
 * Why scripts of its own rather than BullMQ's jobs: the contract needs things BullMQ's job model does not
 * have, and each would have replaced the BullMQ part it sat on: leases on the queue's clock (BullMQ's locks
 * and delays run on Redis's clock, so recovery cannot be driven or tested), a rank that ages continuously
 * (BullMQ's priorities are fixed integers below 2^21, with no aging), claims filtered by type and model,
 * fencing of renew, release and cancel by the owner's token, idempotency keys kept until the task is pruned
 * (a jobId dedups only while the job exists), lists by state and tenant with keyset pages, and counts per
 * state and tenant kept with every change. docs/scaling.md says more.
 *
 * Time: `now` (Date.now by default) is the clock of the process making the change; leases expire by the
 * clock of the process that recovers them. Keep the machines' clocks in sync (NTP): skew eats into leases.
 */
import type { Redis } from 'ioredis'
import { OrchError } from '../core/errors.ts'
import { pageSize } from '../store/page.ts'
import { redisCall } from '../store/redis.ts'
import type {
  AttemptError,
  ClaimFilter,
  ListQuery,
  QueuedCounts,
  SubmitInput,
  Submitted,
  Task,
  TaskChange,
  TaskError,
  TaskEvent,
  TaskPage,
  TaskQueue,
  TaskQueueOptions,
  TaskState,
} from './queue.ts'
import { TASK_STATES } from './queue.ts'
import * as lua from './redis-lua.ts'
import {
  attemptOutcome,
  claimRank,
  cursorError,
  DEFAULT_RETENTION_MS,
  newTask,
  notifyListeners,
  queueBoundError,
  STALLED_ERROR,
} from './rules.ts'
import { decodeCursor, encodeCursor, toJson } from './sql.ts'

export interface RedisQueueTarget {
  client: Redis
  /** For error messages: where Redis is (no password). */
  url: string
  /** The cluster's key prefix, without its colon. */
  prefix: string
}

/** Most finished tasks one prune script deletes (Redis runs nothing else meanwhile). */
const PRUNE_BATCH = 1000
const STALLED_ERROR_JSON = JSON.stringify(STALLED_ERROR)

type Flat = string[]
type Script = (...args: Array<string | number>) => Promise<unknown>
const SCRIPTS = {
  orchSubmit: lua.SUBMIT,
  orchClaim: lua.CLAIM,
  orchRenew: lua.RENEW,
  orchComplete: lua.COMPLETE,
  orchAttempts: lua.ATTEMPTS,
  orchFail: lua.FAIL,
  orchRelease: lua.RELEASE,
  orchCancel: lua.CANCEL,
  orchRecover: lua.RECOVER,
  orchPrune: lua.PRUNE,
} as const
type ScriptName = keyof typeof SCRIPTS

export class RedisTaskQueue implements TaskQueue {
  private readonly client: Redis
  private readonly url: string
  /** The prefix with its colon: KEYS[1] of every script. */
  private readonly p: string
  private readonly options: TaskQueueOptions
  private readonly now: () => number
  private readonly random: () => number
  private readonly listeners = new Set<(event: TaskEvent) => void>()
  private readonly inFlight = new Set<Promise<unknown>>()
  /**
   * Tasks claimed through this handle and not settled yet, as the claim and the renewals left them: what a
   * completion makes of them without reading them back. Only their owner can change a running task, and
   * its writes come through here.
   */
  private readonly held = new Map<string, Task>()

  constructor(target: RedisQueueTarget, options: TaskQueueOptions) {
    if (!(options.agingMs > 0) || !Number.isFinite(options.agingMs)) {
      throw new OrchError(`tasks.priority_aging_ms must be a positive number, got ${options.agingMs}`, { code: 'E_CONFIG' })
    }
    this.client = target.client
    this.url = target.url
    this.p = `${target.prefix}:`
    this.options = options
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    for (const [name, source] of Object.entries(SCRIPTS)) {
      // Keys are the prefix (and an id); everything else is an argument.
      if (!(name in this.client)) this.client.defineCommand(name, { lua: source })
    }
  }

  submit(input: SubmitInput): Promise<Submitted> {
    return this.submitAll([input], undefined).then((results) => results[0] as Submitted)
  }

  submitMany(inputs: SubmitInput[]): Promise<Submitted[]> {
    if (inputs.length === 0) return Promise.resolve([])
    return this.submitAll(inputs, inputs.length)
  }

  async claim(owner: string, limit = 1, filter: ClaimFilter = {}): Promise<Task[]> {
    if (!(limit >= 1)) return []
    const args = [
      this.now(),
      owner,
      this.options.leaseMs,
      Math.trunc(limit),
      filter.types ? JSON.stringify(filter.types) : '',
      filter.models ? JSON.stringify(filter.models) : '',
    ]
    const rows = (await this.run('orchClaim', 1, this.p, ...args)) as Flat[]
    return rows.map((flat) => {
      const task = toTask(flat)
      this.held.set(task.id, task)
      return this.emit(task, 'claimed')
    })
  }

  async renew(id: string, owner: string): Promise<boolean> {
    const now = this.now()
    const renewed = (await this.run('orchRenew', 2, this.p, id, now, owner, this.options.leaseMs)) === 1
    const held = this.held.get(id)
    if (renewed && held) this.held.set(id, { ...held, lease_expires_at: now + this.options.leaseMs, updated_at: now })
    if (!renewed) this.held.delete(id)
    return renewed
  }

  async completeLater(id: string, owner: string, result: unknown): Promise<boolean> {
    const now = this.now()
    const held = this.held.get(id)
    this.held.delete(id)
    const json = toJson(result) ?? ''
    const mine = held?.lease_owner === owner
    const reply = (await this.run('orchComplete', 2, this.p, id, now, owner, json, mine ? 'short' : 'full')) as Flat | 1 | null
    if (!reply) return false
    // Claimed through this handle: the task is what the claim (and its renewals) left, now done.
    const done: Task =
      reply === 1 && held
        ? {
            ...held,
            state: 'done',
            result: json === '' ? null : JSON.parse(json),
            lease_expires_at: null,
            updated_at: now,
            finished_at: now,
          }
        : toTask(reply as Flat)
    this.emit(done, 'done')
    return true
  }

  async failLater(id: string, owner: string, error: AttemptError): Promise<Task | undefined> {
    this.held.delete(id)
    const held = (await this.run('orchAttempts', 2, this.p, id, owner)) as [string, string] | null
    if (!held) return undefined
    const [attempts, maxAttempts] = held
    const decision = attemptOutcome(Number(attempts), Number(maxAttempts), error, this.options.retry, this.random)
    const errorJson = JSON.stringify({ code: error.code, message: error.message, retryable: error.retryable })
    const outcome = decision.retry ? 'retry' : decision.reason
    const delay = decision.retry ? decision.delayMs : 0
    const flat = (await this.run('orchFail', 2, this.p, id, this.now(), owner, attempts, outcome, delay, errorJson)) as Flat | null
    if (!flat) return undefined
    return this.emit(toTask(flat), decision.retry ? 'retrying' : 'failed')
  }

  async release(id: string, owner: string): Promise<boolean> {
    this.held.delete(id)
    const flat = (await this.run('orchRelease', 2, this.p, id, this.now(), owner)) as Flat | null
    if (!flat) return false
    this.emit(toTask(flat), 'requeued')
    return true
  }

  async cancel(id: string): Promise<Task | undefined> {
    const reply = (await this.run('orchCancel', 2, this.p, id, this.now())) as [number, Flat] | []
    if (reply.length === 0) return undefined
    const [changed, flat] = reply
    const task = toTask(flat)
    return changed === 1 ? this.emit(task, 'cancelled') : task
  }

  async recoverExpired(): Promise<Task[]> {
    const args = [this.now(), this.options.maxStalled, STALLED_ERROR_JSON, 'expired']
    return this.emitRecovered((await this.run('orchRecover', 1, this.p, ...args)) as Flat[])
  }

  async recoverAbandoned(isOwnerAlive: (owner: string) => boolean): Promise<Task[]> {
    const ids = await this.call(() => this.client.zrange(`${this.p}running`, 0, -1))
    if (ids.length === 0) return []
    const pipeline = this.client.pipeline()
    for (const id of ids) pipeline.hget(this.taskKey(id), 'lease_owner')
    const owners = new Set<string>()
    for (const [error, owner] of (await this.call(() => pipeline.exec())) ?? []) if (!error && typeof owner === 'string') owners.add(owner)
    const dead = [...owners].filter((owner) => !isOwnerAlive(owner))
    if (dead.length === 0) return []
    const args = [this.now(), this.options.maxStalled, STALLED_ERROR_JSON, 'owners', ...dead]
    return this.emitRecovered((await this.run('orchRecover', 1, this.p, ...args)) as Flat[])
  }

  async get(id: string): Promise<Task | undefined> {
    const fields = await this.call(() => this.client.hgetall(this.taskKey(id)))
    return fields.id === undefined ? undefined : fromHash(fields)
  }

  async list(q: ListQuery = {}): Promise<TaskPage> {
    const limit = pageSize(q.limit)
    const after = q.cursor === undefined ? undefined : this.cursorId(q.cursor)
    const max = after === undefined ? '+' : `(${after}`
    const keys = (q.state ? [q.state] : TASK_STATES).map((s) => `${this.p}l:${s}${q.tenant === undefined ? '' : `:${q.tenant}`}`)
    const ranges = this.client.pipeline()
    for (const key of keys) ranges.zrevrangebylex(key, max, '-', 'LIMIT', 0, limit)
    const ids = (await this.call(() => ranges.exec()))
      ?.flatMap(([error, found]) => (error ? [] : (found as string[])))
      .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))
      .slice(0, limit)
    if (!ids || ids.length === 0) return { tasks: [], next_cursor: null }
    const reads = this.client.pipeline()
    for (const id of ids) reads.hgetall(this.taskKey(id))
    const tasks: Task[] = []
    for (const [error, fields] of (await this.call(() => reads.exec())) ?? []) {
      // A task pruned between the two reads is left out.
      if (!error && (fields as Record<string, string>).id !== undefined) tasks.push(fromHash(fields as Record<string, string>))
    }
    const last = tasks.at(-1)
    return { tasks, next_cursor: ids.length === limit && last ? encodeCursor(last) : null }
  }

  async counts(): Promise<Record<TaskState, number>> {
    const stored = await this.call(() => this.client.hgetall(`${this.p}counts`))
    const counts: Record<TaskState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
    for (const state of TASK_STATES) counts[state] = Number(stored[state] ?? 0)
    return counts
  }

  async queuedCounts(): Promise<QueuedCounts> {
    const stored = await this.call(() => this.client.hgetall(`${this.p}queued`))
    const byTenant: Record<string, number> = {}
    let total = 0
    for (const [tenant, n] of Object.entries(stored)) {
      const count = Number(n)
      if (count <= 0) continue
      byTenant[tenant] = count
      total += count
    }
    return { total, byTenant }
  }

  async nextRunAfter(): Promise<number | undefined> {
    const [ready, delayed] = await this.call(() =>
      Promise.all([
        this.client.zrange(`${this.p}ready_at`, 0, 0, 'WITHSCORES'),
        this.client.zrange(`${this.p}delayed`, 0, 0, 'WITHSCORES'),
      ]),
    )
    const times = [ready[1], delayed[1]].filter((t): t is string => t !== undefined).map(Number)
    return times.length === 0 ? undefined : Math.min(...times)
  }

  /**
   * Due tasks are in the ready sets once a claim moved them there; retries that came due since the last
   * claim are counted from the delayed set. Each model has its own ready set, so this is a few ZCARDs.
   */
  async dueCount(models: string[] | undefined, cap: number): Promise<number> {
    const limit = Math.max(0, Math.trunc(cap))
    const keys = models === undefined ? [`${this.p}ready`] : models.map((m) => `${this.p}ready:m:${m}`)
    const [ready, due] = await this.call(() =>
      Promise.all([
        Promise.all(keys.map((k) => this.client.zcard(k))),
        this.client.zrangebyscore(`${this.p}delayed`, '-inf', this.now(), 'LIMIT', 0, limit),
      ]),
    )
    let count = ready.reduce((a, b) => a + b, 0)
    if (due.length > 0 && count < limit) {
      const wanted = models === undefined ? undefined : new Set(models)
      const read = this.client.pipeline()
      for (const id of due) read.hget(this.taskKey(id), 'model')
      for (const [error, model] of (await this.call(() => read.exec())) ?? []) {
        if (!error && (wanted === undefined || wanted.has(model as string))) count++
      }
    }
    return Math.min(limit, count)
  }

  async prune(olderThanMs = this.options.retentionMs ?? DEFAULT_RETENTION_MS, limit = Number.POSITIVE_INFINITY): Promise<number> {
    const before = this.now() - olderThanMs
    let removed = 0
    while (removed < limit) {
      const batch = Math.min(PRUNE_BATCH, limit - removed)
      const gone = (await this.run('orchPrune', 1, this.p, before, batch)) as number
      removed += gone
      if (gone < batch) break
    }
    return removed
  }

  onEvent(listener: (event: TaskEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Waits for the writes under way, then drops the listeners. The connection is the caller's. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight])
    this.listeners.clear()
  }

  private async submitAll(inputs: SubmitInput[], bulk: number | undefined): Promise<Submitted[]> {
    const now = this.now()
    const args: Array<string | number> = [
      now,
      this.options.maxQueued ?? 0,
      this.options.maxQueuedPerTenant ?? 0,
      bulk === undefined ? 0 : 1,
    ]
    const made: Task[] = []
    for (const input of inputs) {
      const task = newTask(input, this.options.retry.maxAttempts, now)
      made.push(task)
      const score = -claimRank(task.priority, this.options.agingMs, now)
      const payload = input.payload === undefined ? '' : (toJson(input.payload) ?? '')
      args.push(task.id, task.type, task.model ?? '', payload, String(task.priority), task.tenant, task.idempotency_key ?? '')
      args.push(task.max_attempts, String(score))
    }
    let reply: Array<[number, string | Flat]>
    try {
      reply = (await this.run('orchSubmit', 1, this.p, ...args)) as Array<[number, string | Flat]>
    } catch (error) {
      throw this.boundError(error, bulk) ?? error
    }
    return reply.map(([created, value], i) => {
      if (created !== 1) return { task: toTask(value as Flat), created: false }
      const task = made[i] as Task
      this.notify({ type: 'task', task, change: 'submitted' })
      return { task, created: true }
    })
  }

  /** The script's refusal of a submission past a bound, as the queue's 429. */
  private boundError(error: unknown, bulk: number | undefined): OrchError | undefined {
    const cause = (error as { cause?: unknown }).cause ?? error
    const match = /QUEUE_FULL (\S+) (\d+) (\d+) ([\s\S]*)$/.exec((cause as Error).message ?? '')
    if (!match) return undefined
    const [, key, limit, queued, tenant] = match
    return queueBoundError(key as string, Number(limit), Number(queued), tenant === '-' ? undefined : tenant, bulk)
  }

  private cursorId(cursor: string): string {
    const [createdAt, id] = decodeCursor(cursor)
    // The id carries its creation time: a cursor whose two halves disagree was not handed out by a page.
    if (!/^t_[0-9a-z]{21}$/.test(id) || Number.parseInt(id.slice(2, 11), 36) !== createdAt) throw cursorError(cursor)
    return id
  }

  private taskKey(id: string): string {
    return `${this.p}t:${id}`
  }

  /** Run a script; its keys first (`keys` of them), then its arguments. */
  private run(name: ScriptName, keys: number, ...args: Array<string | number>): Promise<unknown> {
    const script = (this.client as unknown as Record<ScriptName, Script>)[name]
    return this.call(() => script.call(this.client, keys, ...args))
  }

  private call<T>(work: () => Promise<T>): Promise<T> {
    const promise = redisCall({ url: this.url }, work)
    this.inFlight.add(promise)
    void promise.then(
      () => this.inFlight.delete(promise),
      () => this.inFlight.delete(promise),
    )
    return promise
  }

  private emitRecovered(rows: Flat[]): Task[] {
    return rows.map((flat) => {
      const task = toTask(flat)
      return this.emit(task, task.state === 'queued' ? 'requeued' : 'failed')
    })
  }

  private emit(task: Task, change: TaskChange): Task {
    this.notify({ type: 'task', task, change })
    return task
  }

  private notify(event: TaskEvent): void {
    notifyListeners(this.listeners, event)
  }
}

function toTask(flat: Flat): Task {
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string
  return fromHash(fields)
}

function fromHash(h: Record<string, string>): Task {
  return {
    id: h.id as string,
    type: h.type as string,
    model: h.model ?? null,
    payload: parse(h.payload),
    priority: Number(h.priority),
    tenant: h.tenant as string,
    idempotency_key: h.idempotency_key ?? null,
    state: h.state as TaskState,
    attempts: Number(h.attempts),
    max_attempts: Number(h.max_attempts),
    stalled_count: Number(h.stalled_count),
    lease_owner: h.lease_owner ?? null,
    lease_expires_at: numberOrNull(h.lease_expires_at),
    run_after: Number(h.run_after),
    result: parse(h.result),
    error: parse(h.error) as TaskError | null,
    fail_reason: (h.fail_reason ?? null) as Task['fail_reason'],
    created_at: Number(h.created_at),
    updated_at: Number(h.updated_at),
    started_at: numberOrNull(h.started_at),
    finished_at: numberOrNull(h.finished_at),
  }
}

function parse(text: string | undefined): unknown {
  return text === undefined ? null : JSON.parse(text)
}

function numberOrNull(text: string | undefined): number | null {
  return text === undefined ? null : Number(text)
}
