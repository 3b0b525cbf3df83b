/**
 * The workflows service of `orch serve`: create, list, trigger and cancel workflows and runs, fire cron
 * schedules, and keep runs moving. Progress comes from task events (this process's runner), a reconcile
 * at start (runs in flight when orch stopped continue) and a periodic poll (tasks finished by another
 * process). Schedules fire from the persisted `next_run_at`: one timer wakes at the earliest one, or after
 * `pollMs` while runs are in flight, `idlePollMs` while none is (schedules another process wrote); each
 * occurrence becomes one run, whoever fires it; after downtime only the latest missed occurrence runs.
 */
import type { EventBus } from '../bus/local.ts'
import { httpError, type OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import { pageSize } from '../store/page.ts'
import type { TaskQueue } from '../tasks/queue.ts'
import { localTimezone, nextRunAfter, planFire } from './cron.ts'
import { RunDriver, runOfKey } from './runs.ts'
import { checkDefinition, type Definition, WORKFLOW_NAME } from './schema.ts'
import { decodeRunCursor, encodeRunCursor, type RunRow, type WorkflowRow, type WorkflowStore } from './store.ts'
import { runDetail, workflowView } from './views.ts'

/** A page of a list: at most `limit` items (1 to 1000, default 50), after `cursor` (a `next_cursor`). */
export interface PageQuery {
  limit?: number
  cursor?: string
}

const badCursor = () =>
  workflowError(400, 'cursor: not a cursor from an earlier page (pass next_cursor back as it came)', 'E_VALIDATION', 'cursor')

export interface WorkflowServiceOptions {
  store: WorkflowStore
  tasks: TaskQueue
  bus?: EventBus
  now?: () => number
  /** Longest sleep of the schedule timer while runs are in flight, so their tasks finished by another process are seen (ms). */
  pollMs?: number
  /** Longest sleep with no run in flight, so schedules written by another process are seen (ms). */
  idlePollMs?: number
  /** How often runs in flight are re-read from the store (ms). */
  reconcileMs?: number
}

/** A refused workflow request: the HTTP status it maps to, and the field at fault when there is one. */
export function workflowError(status: number, message: string, code: string, field?: string): OrchError {
  return httpError(status, message, code, field ? { field } : {})
}

export class WorkflowService {
  readonly store: WorkflowStore
  private readonly tasks: TaskQueue
  private readonly driver: RunDriver
  private readonly now: () => number
  private readonly log = logger('scheduler')
  private timer: ReturnType<typeof setTimeout> | undefined
  private unsubscribe: (() => void) | undefined
  private lastReconcile = 0
  private running = false

  constructor(private readonly options: WorkflowServiceOptions) {
    this.store = options.store
    this.tasks = options.tasks
    this.now = options.now ?? Date.now
    this.driver = new RunDriver(this.store, this.tasks, (change, data) => this.publish(change, data), this.now)
  }

  start(): void {
    if (this.running) return
    this.running = true
    const heard = (taskId: string, key: string | null, change: string) => {
      const runId = runOfKey(key)
      if (runId === undefined) return
      // Off the caller's stack: the task store emits right after its own commit.
      if (change === 'claimed') queueMicrotask(() => this.running && this.store.stepRunning(taskId))
      if (change === 'done' || change === 'failed' || change === 'cancelled') void this.driver.advance(runId)
    }
    // The bus carries every task change, also those made by other processes (a cluster's workers); without
    // one, the queue's own changes.
    const { bus } = this.options
    this.unsubscribe = bus
      ? bus.subscribe((event) => {
          if (event.type !== 'task') return
          const { id, idempotency_key: key, change } = event.data
          heard(String(id), typeof key === 'string' ? key : null, String(change))
        })
      : this.tasks.onEvent(({ task, change }) => heard(task.id, task.idempotency_key, change))
    this.tick()
  }

  async stop(): Promise<void> {
    this.running = false
    clearTimeout(this.timer)
    this.unsubscribe?.()
    await this.driver.stop()
  }

  /** A new workflow (or, with `replace`, a new definition for the one of that name). */
  create(def: Definition, options: { replace?: boolean } = {}): { workflow: WorkflowRow; created: boolean } {
    const now = this.now()
    const issue = checkDefinition(def, now)[0]
    if (issue) throw workflowError(400, `${issue.field}: ${issue.message}`, 'E_VALIDATION', issue.field)
    const timezone = def.timezone ?? localTimezone()
    const next = def.schedule !== undefined && def.enabled !== false ? (nextRunAfter(def.schedule, timezone, now) ?? null) : null
    const inserted = this.store.insert(def, timezone, next, now)
    if (inserted) {
      this.publish('workflow_created', { workflow_id: inserted.id, name: def.name, next_run_at: next })
      this.rearm()
      return { workflow: inserted, created: true }
    }
    const existing = this.store.find(def.name)
    if (!existing || !options.replace) {
      throw workflowError(409, `a workflow named "${def.name}" exists (${existing?.id ?? '?'})`, 'E_WORKFLOW_EXISTS', 'name')
    }
    const replaced = this.store.replace(existing.id, def, timezone, next, now)
    if (!replaced) throw workflowError(404, `workflow ${existing.id} was deleted meanwhile`, 'E_NOT_FOUND')
    this.rearm()
    return { workflow: replaced, created: false }
  }

  /** Switch the schedule on (next run computed from now) or off; the workflow and its runs stay. */
  setEnabled(idOrName: string, enabled: boolean) {
    const workflow = this.find(idOrName)
    const now = this.now()
    const def = { ...(JSON.parse(workflow.definition) as Definition), enabled }
    const next = enabled && workflow.schedule !== null ? (nextRunAfter(workflow.schedule, workflow.timezone ?? 'UTC', now) ?? null) : null
    const updated = this.store.setEnabled(workflow.id, def, next, now)
    if (!updated) throw workflowError(404, `workflow ${workflow.id} was deleted meanwhile`, 'E_NOT_FOUND')
    this.publish(enabled ? 'workflow_enabled' : 'workflow_disabled', { workflow_id: workflow.id, name: workflow.name, next_run_at: next })
    this.rearm()
    return this.view(updated)
  }

  /** Workflows by name, a page at a time; each item is what `get` answers for it. */
  list(query: PageQuery = {}) {
    const limit = pageSize(query.limit)
    // The cursor is the last name of the previous page: names are unique, and the list is ordered by them.
    if (query.cursor !== undefined && !WORKFLOW_NAME.test(query.cursor)) throw badCursor()
    const rows = this.store.list(limit, query.cursor)
    const last = rows.at(-1)
    return { workflows: rows.map((w) => this.view(w)), next_cursor: rows.length === limit && last ? last.name : null }
  }

  get(idOrName: string) {
    return this.view(this.find(idOrName))
  }

  /** A workflow's runs, newest first, a page at a time; each item is what `run` answers for it. */
  runs(idOrName: string, query: PageQuery = {}) {
    const workflow = this.find(idOrName)
    const limit = pageSize(query.limit)
    const before = query.cursor === undefined ? undefined : decodeRunCursor(query.cursor)
    if (query.cursor !== undefined && !before) throw badCursor()
    const rows = this.store.runs(workflow.id, limit, before)
    const steps = this.store.stepsOf(rows.map((r) => r.id))
    const last = rows.at(-1)
    return {
      runs: rows.map((r) => runDetail(r, steps.get(r.id) ?? [])),
      next_cursor: rows.length === limit && last ? encodeRunCursor(last) : null,
    }
  }

  run(runId: string) {
    const run = this.store.run(runId)
    if (!run) throw workflowError(404, `no workflow run ${runId}`, 'E_NOT_FOUND')
    return runDetail(run, this.store.steps(runId))
  }

  /** Start a run now (manual trigger; a disabled workflow's schedule is off, manual runs still work). */
  async trigger(idOrName: string): Promise<RunRow> {
    const workflow = this.find(idOrName)
    const run = this.store.createRun(workflow, 'manual', this.now())
    this.started(workflow, run)
    await this.driver.advance(run.id)
    return run
  }

  async cancelRun(runId: string): Promise<boolean> {
    if (!this.store.run(runId)) throw workflowError(404, `no workflow run ${runId}`, 'E_NOT_FOUND')
    return this.driver.cancel(runId, 'cancelled by request')
  }

  /** Delete a workflow: its schedule stops, runs in flight are cancelled, its run history goes with it. */
  async remove(idOrName: string): Promise<{ id: string; cancelled_runs: number }> {
    const workflow = this.find(idOrName)
    let cancelled = 0
    for (const run of this.store.activeRunsOf(workflow.id)) if (await this.driver.cancel(run.id, 'workflow deleted')) cancelled++
    this.store.delete(workflow.id)
    this.publish('workflow_deleted', { workflow_id: workflow.id, name: workflow.name })
    return { id: workflow.id, cancelled_runs: cancelled }
  }

  /** Fire the schedules that are due and, now and then, re-read runs in flight. */
  async tick(): Promise<void> {
    if (!this.running) return
    try {
      const now = this.now()
      for (const workflow of this.store.due(now)) this.fire(workflow, now)
      if (now - this.lastReconcile >= (this.options.reconcileMs ?? 2000)) {
        this.lastReconcile = now
        await Promise.all(this.store.activeRuns().map((r) => this.driver.advance(r.id)))
      }
    } catch (error) {
      this.log.warn(`workflows: ${(error as Error).message}`)
    } finally {
      this.rearm()
    }
  }

  private fire(workflow: WorkflowRow, now: number): void {
    const { schedule, timezone, next_run_at: due } = workflow
    if (schedule === null || due === null) return
    let plan: ReturnType<typeof planFire>
    try {
      plan = planFire(schedule, timezone ?? 'UTC', due, now)
    } catch (error) {
      this.log.warn(`workflow ${workflow.name}: schedule "${schedule}" cannot be evaluated (${(error as Error).message}); schedule stopped`)
      this.store.fire(workflow, due, null, now)
      return
    }
    if (!plan) return
    const fired = this.store.fire(workflow, plan.scheduledFor, plan.next ?? null, now)
    if (!fired?.created) return
    if (plan.missed) {
      this.log.info(
        `workflow ${workflow.name}: occurrences from ${iso(due)} passed while orch was down; running the latest (${iso(plan.scheduledFor)}) only`,
      )
    }
    this.started(workflow, fired.run)
    void this.driver.advance(fired.run.id)
  }

  private rearm(): void {
    if (!this.running) return
    clearTimeout(this.timer)
    // Runs in flight are re-read often; with none, only another process's new schedules need finding.
    const poll = this.store.hasActiveRuns() ? (this.options.pollMs ?? 1000) : (this.options.idlePollMs ?? 10_000)
    const earliest = this.store.earliestNextRun()
    const wait = earliest === undefined ? poll : Math.min(poll, Math.max(20, earliest - this.now()))
    this.timer = setTimeout(() => void this.tick(), wait)
    this.timer.unref?.()
  }

  private view(workflow: WorkflowRow) {
    return workflowView(workflow, this.store.runs(workflow.id, 1)[0])
  }

  private find(idOrName: string): WorkflowRow {
    const workflow = this.store.find(idOrName)
    if (!workflow) throw workflowError(404, `no workflow "${idOrName}" (by id or name)`, 'E_NOT_FOUND')
    return workflow
  }

  private started(workflow: WorkflowRow, run: RunRow): void {
    this.publish('run_started', {
      workflow_id: workflow.id,
      name: workflow.name,
      run_id: run.id,
      trigger: run.trigger,
      scheduled_for: run.scheduled_for,
    })
  }

  private publish(change: string, data: Record<string, unknown>): void {
    this.options.bus?.publish('workflow', { change, ...data })
  }
}

const iso = (ms: number) => new Date(ms).toISOString()
