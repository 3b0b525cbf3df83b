/**
 * Workflows, their runs and the runs' steps in state.db (migration 3). Every change is one statement or
 * one IMMEDIATE transaction, and state changes are conditional (`WHERE state IN (...)`), so two processes
 * sharing the file, or two passes over one run, never move a run or a step backwards or finish it twice.
 */
import type { Store } from '../store/db.ts'
import type { Definition } from './schema.ts'

export type RunState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'
export type RunTrigger = 'manual' | 'schedule'
export type StepState = 'pending' | 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'skipped'

export interface WorkflowRow {
  id: string
  name: string
  definition: string
  schedule: string | null
  timezone: string | null
  enabled: number
  next_run_at: number | null
  created_at: number
  updated_at: number
}

export interface RunRow {
  id: string
  workflow_id: string
  state: RunState
  trigger: RunTrigger
  scheduled_for: number | null
  definition: string
  error: string | null
  created_at: number
  started_at: number | null
  finished_at: number | null
}

export interface StepRow {
  run_id: string
  step_id: string
  position: number
  type: string
  task_id: string | null
  state: StepState
  output: string | null
  error: string | null
  submitted_at: number | null
  finished_at: number | null
}

/** Where a page of runs ends: the next page starts after it. */
export interface RunKey {
  created_at: number
  id: string
}

/** `<created_at base 36>.<run id>`, the same shape as the task list's cursor. */
export function encodeRunCursor(run: RunKey): string {
  return `${run.created_at.toString(36)}.${run.id}`
}

/** The key a cursor stands for; undefined when the text is not one of ours. */
export function decodeRunCursor(cursor: string): RunKey | undefined {
  const match = /^([0-9a-z]{1,11})\.(run_[0-9a-z]{1,40})$/.exec(cursor)
  if (!match) return undefined
  const createdAt = Number.parseInt(match[1] as string, 36)
  return Number.isSafeInteger(createdAt) ? { created_at: createdAt, id: match[2] as string } : undefined
}

const ACTIVE = `state IN ('queued', 'running')`
const OPEN_STEP = `state IN ('pending', 'queued', 'running')`

export function newId(prefix: string, now: number): string {
  const random = crypto.getRandomValues(new Uint32Array(2))
  const tail = Array.from(random, (n) => (n % 36 ** 5).toString(36).padStart(5, '0')).join('')
  return `${prefix}_${Math.max(0, Math.trunc(now)).toString(36).padStart(9, '0')}${tail}`
}

export class WorkflowStore {
  constructor(readonly store: Store) {}

  /** A new workflow; undefined when the name is taken. */
  insert(def: Definition, timezone: string, nextRunAt: number | null, now: number): WorkflowRow | undefined {
    const row: WorkflowRow = {
      id: newId('wf', now),
      name: def.name,
      definition: JSON.stringify(def),
      schedule: def.schedule ?? null,
      timezone,
      enabled: def.enabled === false ? 0 : 1,
      next_run_at: nextRunAt,
      created_at: now,
      updated_at: now,
    }
    const { changes } = this.store.run(
      `INSERT INTO workflows (id, name, definition, schedule, timezone, enabled, next_run_at, created_at, updated_at)
       VALUES ($id, $name, $definition, $schedule, $timezone, $enabled, $next_run_at, $created_at, $updated_at)
       ON CONFLICT (name) DO NOTHING`,
      { ...row },
    )
    return changes > 0 ? row : undefined
  }

  /** Replace the definition (and schedule) of an existing workflow; its runs stay. */
  replace(id: string, def: Definition, timezone: string, nextRunAt: number | null, now: number): WorkflowRow | undefined {
    return this.store.one<WorkflowRow>(
      `UPDATE workflows SET definition = ?, schedule = ?, timezone = ?, enabled = ?, next_run_at = ?, updated_at = ?
       WHERE id = ? RETURNING *`,
      [JSON.stringify(def), def.schedule ?? null, timezone, def.enabled === false ? 0 : 1, nextRunAt, now, id],
    )
  }

  /** Turn the schedule on or off (the definition's `enabled` follows); manual runs work either way. */
  setEnabled(id: string, def: Definition, nextRunAt: number | null, now: number): WorkflowRow | undefined {
    return this.store.one<WorkflowRow>(
      'UPDATE workflows SET definition = ?, enabled = ?, next_run_at = ?, updated_at = ? WHERE id = ? RETURNING *',
      [JSON.stringify(def), def.enabled === false ? 0 : 1, nextRunAt, now, id],
    )
  }

  /** By id, or else by name. */
  find(idOrName: string): WorkflowRow | undefined {
    return (
      this.store.one<WorkflowRow>('SELECT * FROM workflows WHERE id = ?', [idOrName]) ??
      this.store.one<WorkflowRow>('SELECT * FROM workflows WHERE name = ?', [idOrName])
    )
  }

  /** By name, `limit` at a time, after the name `after` (keyset: one range read of the unique name index). */
  list(limit: number, after?: string): WorkflowRow[] {
    return after === undefined
      ? this.store.all<WorkflowRow>('SELECT * FROM workflows ORDER BY name LIMIT ?', [limit])
      : this.store.all<WorkflowRow>('SELECT * FROM workflows WHERE name > ? ORDER BY name LIMIT ?', [after, limit])
  }

  /** Deletes the workflow with its runs and steps (their tasks stay, until task retention prunes them). */
  delete(id: string): boolean {
    return this.store.run('DELETE FROM workflows WHERE id = ?', [id]).changes > 0
  }

  /** Enabled schedules whose next run has come. */
  due(now: number): WorkflowRow[] {
    return this.store.all<WorkflowRow>(
      'SELECT * FROM workflows WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? ORDER BY next_run_at LIMIT 100',
      [now],
    )
  }

  earliestNextRun(): number | undefined {
    return this.store.one<{ at: number | null }>('SELECT MIN(next_run_at) AS at FROM workflows WHERE enabled = 1')?.at ?? undefined
  }

  /**
   * Fire one schedule occurrence: in one transaction, and only if next_run_at is still what the caller
   * read (no other process fired it meanwhile), create the run for `scheduledFor` (once: the occurrence
   * is unique) and move next_run_at on. Returns the run, or undefined when someone else got there first.
   */
  fire(workflow: WorkflowRow, scheduledFor: number, next: number | null, now: number): { run: RunRow; created: boolean } | undefined {
    return this.store.write(() => {
      const current = this.store.one<WorkflowRow>('SELECT * FROM workflows WHERE id = ?', [workflow.id])
      if (current?.enabled !== 1 || current.next_run_at !== workflow.next_run_at) return undefined
      const result = this.createRunTx(current, 'schedule', scheduledFor, now)
      this.store.run('UPDATE workflows SET next_run_at = ?, updated_at = ? WHERE id = ?', [next, now, current.id])
      return result
    })
  }

  /** A run with its steps, all pending, from the workflow's definition as it is now. */
  createRun(workflow: WorkflowRow, trigger: RunTrigger, now: number): RunRow {
    return this.store.write(() => this.createRunTx(workflow, trigger, null, now)).run
  }

  private createRunTx(
    workflow: WorkflowRow,
    trigger: RunTrigger,
    scheduledFor: number | null,
    now: number,
  ): { run: RunRow; created: boolean } {
    const run: RunRow = {
      id: newId('run', now),
      workflow_id: workflow.id,
      state: 'queued',
      trigger,
      scheduled_for: scheduledFor,
      definition: workflow.definition,
      error: null,
      created_at: now,
      started_at: null,
      finished_at: null,
    }
    const { changes } = this.store.run(
      `INSERT INTO workflow_runs (id, workflow_id, state, trigger, scheduled_for, definition, error, created_at, started_at, finished_at)
       VALUES ($id, $workflow_id, $state, $trigger, $scheduled_for, $definition, $error, $created_at, $started_at, $finished_at)
       ON CONFLICT DO NOTHING`,
      { ...run },
    )
    if (changes === 0) {
      const existing = this.store.one<RunRow>('SELECT * FROM workflow_runs WHERE workflow_id = ? AND scheduled_for = ?', [
        workflow.id,
        scheduledFor,
      ])
      if (!existing) throw new Error(`run ${run.id} was not inserted`)
      return { run: existing, created: false }
    }
    const def = JSON.parse(workflow.definition) as Definition
    def.steps.forEach((step, position) => {
      this.store.run(`INSERT INTO workflow_steps (run_id, step_id, position, type, state) VALUES (?, ?, ?, ?, 'pending')`, [
        run.id,
        step.id,
        position,
        step.type,
      ])
    })
    return { run, created: true }
  }

  run(id: string): RunRow | undefined {
    return this.store.one<RunRow>('SELECT * FROM workflow_runs WHERE id = ?', [id])
  }

  /**
   * Newest first, `limit` at a time; `before` is the (created_at, id) of the last run of the previous page
   * (keyset: one range read of workflow_runs_recent, however far back the page is).
   */
  runs(workflowId: string, limit: number, before?: RunKey): RunRow[] {
    if (before === undefined) {
      return this.store.all<RunRow>('SELECT * FROM workflow_runs WHERE workflow_id = ? ORDER BY created_at DESC, id DESC LIMIT ?', [
        workflowId,
        limit,
      ])
    }
    return this.store.all<RunRow>(
      `SELECT * FROM workflow_runs WHERE workflow_id = ? AND (created_at, id) < (?, ?)
       ORDER BY created_at DESC, id DESC LIMIT ?`,
      [workflowId, before.created_at, before.id, limit],
    )
  }

  hasActiveRuns(): boolean {
    return this.store.one(`SELECT 1 AS one FROM workflow_runs WHERE ${ACTIVE} LIMIT 1`) !== undefined
  }

  activeRuns(limit = 1000): RunRow[] {
    return this.store.all<RunRow>(`SELECT * FROM workflow_runs WHERE ${ACTIVE} ORDER BY created_at LIMIT ?`, [limit])
  }

  activeRunsOf(workflowId: string): RunRow[] {
    return this.store.all<RunRow>(`SELECT * FROM workflow_runs WHERE workflow_id = ? AND ${ACTIVE}`, [workflowId])
  }

  steps(runId: string): StepRow[] {
    return this.store.all<StepRow>('SELECT * FROM workflow_steps WHERE run_id = ? ORDER BY position', [runId])
  }

  /** The steps of many runs in one read (a page of runs), by run id. */
  stepsOf(runIds: readonly string[]): Map<string, StepRow[]> {
    const byRun = new Map<string, StepRow[]>(runIds.map((id) => [id, []]))
    if (runIds.length === 0) return byRun
    const rows = this.store.all<StepRow>(
      'SELECT * FROM workflow_steps WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, position',
      [JSON.stringify(runIds)],
    )
    for (const row of rows) byRun.get(row.run_id)?.push(row)
    return byRun
  }

  /** queued → running when the run's first step is submitted; true if this call moved it. */
  startRun(runId: string, now: number): boolean {
    return (
      this.store.run(`UPDATE workflow_runs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'`, [now, runId]).changes >
      0
    )
  }

  /** Finish an active run; false when it was already finished (by another pass or process). */
  finishRun(runId: string, state: 'done' | 'failed' | 'cancelled', error: string | null, now: number): boolean {
    return (
      this.store.run(`UPDATE workflow_runs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND ${ACTIVE}`, [
        state,
        error,
        now,
        runId,
      ]).changes > 0
    )
  }

  submitted(runId: string, stepId: string, taskId: string, now: number): boolean {
    return (
      this.store.run(
        `UPDATE workflow_steps SET state = 'queued', task_id = ?, submitted_at = ? WHERE run_id = ? AND step_id = ? AND state = 'pending'`,
        [taskId, now, runId, stepId],
      ).changes > 0
    )
  }

  stepRunning(taskId: string): void {
    this.store.run(`UPDATE workflow_steps SET state = 'running' WHERE task_id = ? AND state = 'queued'`, [taskId])
  }

  finishStep(
    runId: string,
    stepId: string,
    state: 'done' | 'failed' | 'cancelled' | 'skipped',
    fields: { output?: string; error?: string },
    now: number,
  ): boolean {
    return (
      this.store.run(
        `UPDATE workflow_steps SET state = ?, output = ?, error = ?, finished_at = ? WHERE run_id = ? AND step_id = ? AND ${OPEN_STEP}`,
        [state, fields.output ?? null, fields.error ?? null, now, runId, stepId],
      ).changes > 0
    )
  }
}
