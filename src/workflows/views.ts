/**
 * What the API shows of workflows, runs and steps: rows as JSON, times in ms since the epoch. A workflow
 * and a run each have one shape, whether it comes alone (GET by id) or as an item of a list: a client can
 * take a list item for the whole object.
 */
import type { Definition } from './schema.ts'
import type { RunRow, StepRow, WorkflowRow } from './store.ts'

/**
 * A workflow: its row, its definition, and its newest run as a summary (`runView`, no steps: a list of
 * workflows would otherwise carry every last run's outputs; GET /runs/{id} has them).
 */
export function workflowView(row: WorkflowRow, lastRun: RunRow | undefined) {
  const def = JSON.parse(row.definition) as Definition
  return {
    id: row.id,
    name: row.name,
    ...(def.description !== undefined ? { description: def.description } : {}),
    steps: def.steps.length,
    schedule: row.schedule,
    timezone: row.schedule === null ? null : row.timezone,
    enabled: row.enabled === 1,
    next_run_at: row.next_run_at,
    created_at: row.created_at,
    updated_at: row.updated_at,
    definition: def,
    last_run: lastRun ? runView(lastRun) : null,
  }
}

export function runView(run: RunRow) {
  return {
    id: run.id,
    workflow_id: run.workflow_id,
    state: run.state,
    trigger: run.trigger,
    scheduled_for: run.scheduled_for,
    error: run.error,
    created_at: run.created_at,
    started_at: run.started_at,
    finished_at: run.finished_at,
  }
}

/** A run with its steps: states, task ids, outputs and errors. */
export function runDetail(run: RunRow, steps: StepRow[]) {
  return { ...runView(run), steps: steps.map(stepView) }
}

function stepView(step: StepRow) {
  return {
    id: step.step_id,
    type: step.type,
    state: step.state,
    task_id: step.task_id,
    output: step.output,
    error: step.error,
    submitted_at: step.submitted_at,
    finished_at: step.finished_at,
  }
}
