/**
 * The durable task queue in state.db (TaskQueue, ./queue.ts). Submissions are group-committed: every
 * `submit` of one event-loop turn shares one IMMEDIATE transaction (one fsync under synchronous=FULL) and
 * resolves only after it commits. A claim is a lease: the runner renews it, and only the owner of a running
 * task can finish it, so a runner that lost its lease (expired, cancelled, requeued and claimed elsewhere)
 * changes nothing. Every change happens in one statement or one IMMEDIATE transaction, so several processes
 * can share the file and never claim the same task twice.
 *
 * Counts never scan the table: the number of tasks per state (task_counts) and of queued tasks per tenant
 * (task_queued) are moved by every write, in its own transaction, once per transaction rather than per row
 * (a group commit of 64 submissions moves `queued` once). So `counts()` reads one row per state whatever
 * the depth of the queue, and every process sharing the file sees the same figures.
 *
 * The queue is bounded (tasks.max_queued, tasks.max_queued_per_tenant). Checking the bound must not cost a
 * query per submission, so the queue also keeps the number of queued tasks per tenant in memory: read from
 * task_queued when it opens, then moved exactly where a task enters or leaves `queued` (submit, claim,
 * retry, release, recovery, cancel), and undone with the transaction when one rolls back. Other processes
 * sharing the file move the real figure without this one noticing: `prune` (every 10 minutes in serve)
 * reads it again.
 *
 * Besides the TaskQueue methods it has synchronous `complete` and `fail` (one transaction each, no group
 * commit) and `stats` of its commits.
 */
import { OrchError } from '../core/errors.ts'
import type { Store } from '../store/db.ts'
import { pageSize } from '../store/page.ts'
import type {
  AttemptError,
  ClaimFilter,
  ListQuery,
  QueuedCounts,
  SubmitInput,
  Submitted,
  Task,
  TaskChange,
  TaskEvent,
  TaskPage,
  TaskQueue,
  TaskQueueOptions,
  TaskState,
} from './queue.ts'
import { TASK_STATES } from './queue.ts'
import { attemptOutcome, claimRank, DEFAULT_RETENTION_MS, newTask, notifyListeners, queueBoundError, STALLED_ERROR } from './rules.ts'
import * as sql from './sql.ts'
import { decodeCursor, encodeCursor, rowToTask, type TaskRow, toJson } from './sql.ts'

/** A write waiting for this turn's group commit: `run` inside the transaction, `settle` after it commits. */
interface Pending {
  run: () => unknown
  settle: (result: unknown) => void
  reject: (error: unknown) => void
}

type FailOutcome = { row: TaskRow | undefined; retry: boolean } | undefined
type Key = { created_at: number; id: string }
const newestFirst = (a: Key, b: Key) => b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)
interface Journal {
  queued: Array<[tenant: string, delta: number]>
  states: Array<[state: TaskState, delta: number]>
}
type Inserted = { row: TaskRow; created: boolean }

const STALLED_ERROR_JSON = JSON.stringify(STALLED_ERROR)
/** Most tasks one prune transaction deletes. */
const PRUNE_BATCH = 5000
const nothing = () => undefined

export class SqliteTaskQueue implements TaskQueue {
  readonly stats = { commits: 0, submitted: 0, refused: 0 }
  private readonly store: Store
  private readonly options: TaskQueueOptions
  private readonly now: () => number
  private readonly random: () => number
  private readonly listeners = new Set<(event: TaskEvent) => void>()
  private pending: Pending[] = []
  /** Queued tasks by tenant (tenants with none are absent), and their sum. */
  private readonly queued = new Map<string, number>()
  private queuedTotal = 0
  /** Count changes made inside the transaction under way: written with it, or undone in memory if it rolls back. */
  private journal: Journal | undefined

  constructor(store: Store, options: TaskQueueOptions) {
    if (!(options.agingMs > 0) || !Number.isFinite(options.agingMs)) {
      throw new OrchError(`tasks.priority_aging_ms must be a positive number, got ${options.agingMs}`, { code: 'E_CONFIG' })
    }
    this.store = store
    this.options = options
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    this.recount()
  }

  /** Queued tasks now, over all tenants and by tenant, as this queue keeps them (no query). */
  queuedCounts(): QueuedCounts {
    return { total: this.queuedTotal, byTenant: Object.fromEntries(this.queued) }
  }

  /** Read the queued counts again from the file (a row per tenant), at open and at prune. */
  recount(): void {
    this.queued.clear()
    this.queuedTotal = 0
    for (const { tenant, n } of this.store.all<{ tenant: string; n: number }>(sql.QUEUED_BY_TENANT)) this.bump(tenant, n)
  }

  /** Queue one task; resolves after the transaction holding it commits. A known idempotency key returns its task. */
  submit(input: SubmitInput): Promise<Submitted> {
    let row: TaskRow
    try {
      row = this.newRow(input)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.defer(
      () => this.insert(row),
      (result) => this.submitted(result as Inserted, input.payload),
    )
  }

  /**
   * Several tasks in the same group commit, results in input order. All or nothing: one invalid input, or
   * one task past the queue bound, queues none of them (they share a savepoint).
   */
  submitMany(inputs: SubmitInput[]): Promise<Submitted[]> {
    let rows: TaskRow[]
    try {
      rows = inputs.map((input) => this.newRow(input))
    } catch (error) {
      return Promise.reject(error)
    }
    return this.defer(
      () => this.counted(() => rows.map((row) => this.insert(row, rows.length))),
      (results) => (results as Inserted[]).map((result, i) => this.submitted(result, inputs[i]?.payload)),
    )
  }

  /** Lease up to `limit` due tasks, best effective priority first. */
  claim(owner: string, limit = 1, filter: ClaimFilter = {}): Task[] {
    if (!(limit >= 1)) return []
    const now = this.now()
    const params = [
      owner,
      now + this.options.leaseMs,
      now,
      filter.types ? JSON.stringify(filter.types) : null,
      filter.models ? JSON.stringify(filter.models) : null,
      Math.trunc(limit),
    ]
    const rows = this.counted(() => {
      const claimed = this.store.all<TaskRow>(sql.CLAIM, params)
      for (const row of claimed) this.moved(row.tenant, 'queued', 'running')
      return claimed
    })
    // RETURNING gives no order; restore the claim order so the caller starts the best task first.
    rows.sort((a, b) => b.claim_rank - a.claim_rank || a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    return this.emitAll(rows, 'claimed')
  }

  /** Extend the lease; false when it is lost (not running, another owner, cancelled): the runner must stop. */
  renew(id: string, owner: string): boolean {
    const now = this.now()
    return this.store.run(sql.RENEW, [now + this.options.leaseMs, now, id, owner]).changes > 0
  }

  /** Finish a running task with its result; false, and nothing changes, unless `owner` holds it. */
  complete(id: string, owner: string, result: unknown): boolean {
    return this.settleComplete(this.counted(() => this.completeRow(id, owner, result)))
  }

  /** `complete`, committed with everything else of this event-loop turn (one fsync for many). */
  completeLater(id: string, owner: string, result: unknown): Promise<boolean> {
    return this.defer(
      () => this.completeRow(id, owner, result),
      (row) => this.settleComplete(row as TaskRow | undefined),
    )
  }

  /** Inside a write transaction. */
  private completeRow(id: string, owner: string, result: unknown): TaskRow | undefined {
    const now = this.now()
    const row = this.store.one<TaskRow>(sql.COMPLETE, [toJson(result), now, now, id, owner])
    if (row) this.moved(row.tenant, 'running', 'done')
    return row
  }

  private settleComplete(row: TaskRow | undefined): boolean {
    if (row) this.emit(row, 'done')
    return row !== undefined
  }

  /** Record a failed attempt: back to the queue after a backoff, or failed for good. Undefined unless `owner` holds it. */
  fail(id: string, owner: string, error: AttemptError): Task | undefined {
    return this.settleFail(this.counted(() => this.failRow(id, owner, error)))
  }

  /** `fail`, committed with everything else of this event-loop turn. */
  failLater(id: string, owner: string, error: AttemptError): Promise<Task | undefined> {
    return this.defer(
      () => this.failRow(id, owner, error),
      (outcome) => this.settleFail(outcome as FailOutcome),
    )
  }

  /** Inside a write transaction: retry after a backoff, or fail for good. */
  private failRow(id: string, owner: string, error: AttemptError): FailOutcome {
    const now = this.now()
    const errorJson = JSON.stringify({ code: error.code, message: error.message, retryable: error.retryable })
    const task = this.store.one<TaskRow>(sql.SELECT_OWNED, [id, owner])
    if (!task) return undefined
    const decision = attemptOutcome(task.attempts, task.max_attempts, error, this.options.retry, this.random)
    // SELECT_OWNED found it running, in this same transaction.
    if (decision.retry) {
      const row = this.store.one<TaskRow>(sql.RETRY, [now + decision.delayMs, errorJson, now, id])
      if (row) this.moved(row.tenant, 'running', 'queued')
      return { row, retry: true }
    }
    const row = this.store.one<TaskRow>(sql.FAIL, [decision.reason, errorJson, now, now, id])
    if (row) this.moved(row.tenant, 'running', 'failed')
    return { row, retry: false }
  }

  private settleFail(outcome: FailOutcome): Task | undefined {
    if (!outcome?.row) return undefined
    return this.emit(outcome.row, outcome.retry ? 'retrying' : 'failed')
  }

  /** Hand a running task back to the queue untouched (graceful shutdown); false unless `owner` holds it. */
  release(id: string, owner: string): boolean {
    const row = this.counted(() => {
      const released = this.store.one<TaskRow>(sql.RELEASE, [this.now(), id, owner])
      if (released) this.moved(released.tenant, 'running', 'queued')
      return released
    })
    if (row) this.emit(row, 'requeued')
    return row !== undefined
  }

  /** Cancel a queued or running task; a finished one is returned unchanged; undefined if unknown. */
  cancel(id: string): Task | undefined {
    // RETURNING shows the row after the change: whether it left `queued` is read first, in the same transaction.
    const row = this.counted(() => {
      const before = this.store.one<{ state: TaskState }>(sql.SELECT_STATE, [id])
      const cancelled = this.store.one<TaskRow>(sql.CANCEL, [this.now(), id])
      if (cancelled && before) this.moved(cancelled.tenant, before.state, 'cancelled')
      return cancelled
    })
    if (row) return this.emit(row, 'cancelled')
    return this.get(id)
  }

  /** Running tasks whose lease ran out: requeued, or failed once they stalled more than maxStalled times. */
  recoverExpired(): Task[] {
    const params = [this.options.maxStalled, this.now(), STALLED_ERROR_JSON]
    return this.emitRecovered(this.counted(() => this.requeued(this.store.all<TaskRow>(sql.RECOVER_EXPIRED, params))))
  }

  /** At start-up: running tasks whose owner process is gone are handled as if their lease expired now. */
  recoverAbandoned(isOwnerAlive: (owner: string) => boolean): Task[] {
    const owners = this.store.all<{ owner: string }>(sql.RUNNING_OWNERS).map((r) => r.owner)
    const dead = owners.filter((owner) => !isOwnerAlive(owner))
    if (dead.length === 0) return []
    const params = [this.options.maxStalled, this.now(), STALLED_ERROR_JSON, JSON.stringify(dead)]
    return this.emitRecovered(this.counted(() => this.requeued(this.store.all<TaskRow>(sql.RECOVER_OWNERS, params))))
  }

  get(id: string): Task | undefined {
    const row = this.store.one<TaskRow>(sql.SELECT_BY_ID, [id])
    return row ? rowToTask(row) : undefined
  }

  /** Newest first, `limit` (default 50, at most 1000) at a time; pass `next_cursor` back for the next page. */
  list(q: ListQuery = {}): TaskPage {
    const limit = pageSize(q.limit)
    const { state, tenant, cursor } = q
    const after = cursor ? decodeCursor(cursor) : []
    const params = (s: TaskState) => [...(tenant ? [tenant] : []), s, ...after, limit]
    let rows: TaskRow[]
    if (state) rows = this.store.all<TaskRow>(sql.listSql('rows', Boolean(tenant), Boolean(cursor)), params(state))
    else {
      const keysSql = sql.listSql('keys', Boolean(tenant), Boolean(cursor))
      const page = TASK_STATES.flatMap((s) => this.store.all<Key>(keysSql, params(s)))
        .sort(newestFirst)
        .slice(0, limit)
      rows = page.length === 0 ? [] : this.store.all<TaskRow>(sql.SELECT_PAGE, [JSON.stringify(page.map((k) => k.id))])
    }
    const last = rows.at(-1)
    const next_cursor = rows.length === limit && last ? encodeCursor(last) : null
    return { tasks: rows.map((row) => rowToTask(row)), next_cursor }
  }

  counts(): Record<TaskState, number> {
    const counts: Record<TaskState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
    for (const { state, n } of this.store.all<{ state: TaskState; n: number }>(sql.COUNTS)) counts[state] = n
    return counts
  }

  /** The earliest run_after among queued tasks, so an idle runner can sleep until then. */
  nextRunAfter(): number | undefined {
    return this.store.one<{ at: number | null }>(sql.NEXT_RUN_AFTER)?.at ?? undefined
  }

  dueCount(models: string[] | undefined, cap: number): number {
    const params = [this.now(), models ? JSON.stringify(models) : null, Math.max(0, Math.trunc(cap))]
    return this.store.one<{ n: number }>(sql.DUE_COUNT, params)?.n ?? 0
  }

  /**
   * Delete finished tasks that finished more than `olderThanMs` ago, oldest first, at most `limit`; returns
   * how many. Each PRUNE_BATCH is its own transaction, so a large prune never holds the write lock for long.
   */
  prune(olderThanMs = this.options.retentionMs ?? DEFAULT_RETENTION_MS, limit = Number.POSITIVE_INFINITY): number {
    // Only finished tasks go, so the queued counts stay; reading them again picks up other processes' changes.
    const before = this.now() - olderThanMs
    let removed = 0
    while (removed < limit) {
      const batch = Math.min(PRUNE_BATCH, limit - removed)
      const gone = this.counted(() => {
        const states = this.store.all<{ state: TaskState }>(sql.PRUNE, [before, batch])
        for (const { state } of states) this.journalOf().states.push([state, -1])
        return states.length
      })
      removed += gone
      if (gone < batch) break
    }
    this.recount()
    return removed
  }

  onEvent(listener: (event: TaskEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Waits for the group commit under way, if any, then drops the listeners. The Store stays open: it is the caller's. */
  async close(): Promise<void> {
    // A write that does nothing joins the pending batch, so it settles once that batch committed (or failed).
    if (this.pending.length > 0) await this.defer(nothing, nothing).catch(nothing)
    this.listeners.clear()
  }

  /** After the commit: the answer to one submission, and its event when it made a task. */
  private submitted({ row, created }: Inserted, payload: unknown): Submitted {
    const task = rowToTask(row, created ? (payload ?? null) : undefined)
    if (created) {
      this.stats.submitted++
      this.notify({ type: 'task', task, change: 'submitted' })
    }
    return { task, created }
  }

  /**
   * Group commit: a write joins this turn's batch; the first of the turn schedules the one flush that
   * commits them all, so many submissions and completions cost one fsync.
   */
  private defer<T>(run: () => unknown, settle: (result: unknown) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, settle: (result) => resolve(settle(result)), reject })
      if (this.pending.length === 1) setImmediate(() => this.flush())
    })
  }

  private newRow(input: SubmitInput): TaskRow {
    const now = this.now()
    const task = newTask(input, this.options.retry.maxAttempts, now)
    return {
      ...task,
      payload: toJson(input.payload),
      result: null,
      error: null,
      claim_rank: claimRank(task.priority, this.options.agingMs, now),
    }
  }

  /**
   * One transaction for the whole batch; every promise settles after it commits (events fire then too).
   * A write that fails on its own (a constraint) rejects alone; a failed commit rejects them all.
   */
  private flush(): void {
    const batch = this.pending
    this.pending = []
    let outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>
    try {
      outcomes = this.counted(() =>
        batch.map((item) => {
          try {
            return { ok: true as const, value: item.run() }
          } catch (error) {
            return { ok: false as const, error }
          }
        }),
      )
    } catch (error) {
      for (const item of batch) item.reject(error)
      return
    }
    this.stats.commits++
    outcomes.forEach((outcome, i) => {
      const item = batch[i] as Pending
      if (outcome.ok) item.settle(outcome.value)
      else item.reject(outcome.error)
    })
  }

  /** Inside a write transaction; `bulk`: the size of the submission it belongs to, for the refusal's message. */
  private insert(row: TaskRow, bulk?: number): Inserted {
    const refusal = this.boundRefusal(row.tenant, bulk)
    if (refusal) {
      // A repeated idempotency key adds nothing to the queue: it gets its task even when the queue is full.
      const existing =
        row.idempotency_key === null ? undefined : this.store.one<TaskRow>(sql.SELECT_BY_KEY, [row.tenant, row.idempotency_key])
      if (existing) return { row: existing, created: false }
      this.stats.refused++
      throw refusal
    }
    const { changes } = this.store.run(sql.INSERT_TASK, sql.insertParams(row))
    if (changes > 0) {
      this.moved(row.tenant, undefined, 'queued')
      return { row, created: true }
    }
    // The key is taken, by an earlier commit or earlier in this same batch: that task is the answer.
    const existing = this.store.one<TaskRow>(sql.SELECT_BY_KEY, [row.tenant, row.idempotency_key])
    if (!existing) throw new OrchError(`task ${row.id} was not inserted`, { code: 'E_TASK_INSERT' })
    return { row: existing, created: false }
  }

  /** The queue bound a new task of `tenant` would pass, as the error to refuse it with; undefined when it fits. */
  private boundRefusal(tenant: string, bulk: number | undefined): OrchError | undefined {
    const max = this.options.maxQueued ?? 0
    if (max > 0 && this.queuedTotal >= max) return queueBoundError('tasks.max_queued', max, this.queuedTotal, undefined, bulk)
    const perTenant = this.options.maxQueuedPerTenant ?? 0
    const own = this.queued.get(tenant) ?? 0
    if (perTenant > 0 && own >= perTenant) return queueBoundError('tasks.max_queued_per_tenant', perTenant, own, tenant, bulk)
    return undefined
  }

  /**
   * A write transaction (a savepoint inside one) with its count changes: the outermost writes them to
   * task_counts and task_queued before it commits; a rollback undoes the in-memory queued counts.
   */
  private counted<T>(fn: () => T): T {
    const outer = this.journal
    const journal: Journal = { queued: [], states: [] }
    this.journal = journal
    try {
      const result = this.store.write(() => {
        const value = fn()
        if (!outer) this.persist(journal)
        return value
      })
      outer?.queued.push(...journal.queued)
      outer?.states.push(...journal.states)
      return result
    } catch (error) {
      for (const [tenant, delta] of journal.queued.reverse()) this.bump(tenant, -delta)
      throw error
    } finally {
      this.journal = outer
    }
  }

  private journalOf(): Journal {
    if (!this.journal) throw new OrchError('a task changed state outside a counted transaction', { code: 'E_INTERNAL' })
    return this.journal
  }

  /** A task of `tenant` went from `from` (undefined: it is new) to `to`. */
  private moved(tenant: string, from: TaskState | undefined, to: TaskState): void {
    if (from === to) return
    const journal = this.journalOf()
    if (from !== undefined) journal.states.push([from, -1])
    journal.states.push([to, 1])
    if (from === 'queued') this.adjust(tenant, -1)
    if (to === 'queued') this.adjust(tenant, 1)
  }

  /** A task of `tenant` entered (+1) or left (-1) the queue. */
  private adjust(tenant: string, delta: number): void {
    this.bump(tenant, delta)
    this.journalOf().queued.push([tenant, delta])
  }

  /** Write a transaction's count changes, summed: a statement per state and per tenant that moved. */
  private persist(journal: Journal): void {
    for (const [state, delta] of sum(journal.states)) this.store.run(sql.MOVE_STATE_COUNT, [state, delta])
    for (const [tenant, delta] of sum(journal.queued)) {
      this.store.run(sql.MOVE_QUEUED_COUNT, [tenant, delta])
      if (delta < 0) this.store.run(sql.DROP_EMPTY_QUEUED, [tenant])
    }
  }

  private bump(tenant: string, delta: number): void {
    const n = (this.queued.get(tenant) ?? 0) + delta
    if (n > 0) this.queued.set(tenant, n)
    else this.queued.delete(tenant)
    this.queuedTotal += delta
  }

  /** Recovered rows went from running back to the queue, or failed. */
  private requeued(rows: TaskRow[]): TaskRow[] {
    for (const row of rows) this.moved(row.tenant, 'running', row.state)
    return rows
  }

  private emitRecovered(rows: TaskRow[]): Task[] {
    return rows.map((row) => this.emit(row, row.state === 'queued' ? 'requeued' : 'failed'))
  }

  private emitAll(rows: TaskRow[], change: TaskChange): Task[] {
    return rows.map((row) => this.emit(row, change))
  }

  private emit(row: TaskRow, change: TaskChange): Task {
    const task = rowToTask(row)
    this.notify({ type: 'task', task, change })
    return task
  }

  private notify(event: TaskEvent): void {
    notifyListeners(this.listeners, event)
  }
}

/** Deltas summed by key, zero sums left out. */
function sum<K>(deltas: Array<[K, number]>): Map<K, number> {
  const sums = new Map<K, number>()
  for (const [key, delta] of deltas) sums.set(key, (sums.get(key) ?? 0) + delta)
  for (const [key, total] of sums) if (total === 0) sums.delete(key)
  return sums
}
