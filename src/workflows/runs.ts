/**
 * Drives workflow runs forward. One pass over a run reads its steps' tasks, records what finished, fails
 * the run on a failed step (pending steps skipped, running ones cancelled), finishes it when every step is
 * done, and submits the steps whose dependencies are all done as durable tasks. Passes over one run are
 * serialized; a pass is idempotent, so task events, the start-up reconcile and the periodic poll can all
 * ask for one. A step's task has the idempotency key `wf:<run>:<step>`: a crash between submitting it
 * and recording it resubmits nothing, the next pass finds the same task.
 */
import * as v from 'valibot'
import { logger } from '../core/log.ts'
import type { SubmitInput, Task, TaskQueue } from '../tasks/queue.ts'
import { type Definition, DefinitionSchema, type Step } from './schema.ts'
import { outputText, stepRequest } from './step-request.ts'
import type { RunRow, StepRow, WorkflowStore } from './store.ts'

export type Publish = (change: string, data: Record<string, unknown>) => void

const FINISHED_TASK = new Set(['done', 'failed', 'cancelled'])
const IN_FLIGHT = new Set(['queued', 'running'])

/** `wf:<run_id>:<step_id>`: ids contain no colon (both are checked on the way in). */
export const stepKey = (runId: string, stepId: string) => `wf:${runId}:${stepId}`

export function runOfKey(key: string | null): string | undefined {
  if (!key?.startsWith('wf:')) return undefined
  return key.split(':')[1]
}

export class RunDriver {
  private readonly chains = new Map<string, Promise<void>>()
  private stopped = false
  private readonly log = logger('scheduler')

  constructor(
    private readonly store: WorkflowStore,
    private readonly tasks: TaskQueue,
    private readonly publish: Publish,
    private readonly now: () => number,
  ) {}

  /** Ask for a pass over the run; resolves when it (and every pass queued before it) is over. */
  advance(runId: string): Promise<void> {
    return this.serialize(runId, () => this.pass(runId))
  }

  /** Cancel an active run: its tasks are cancelled, its open steps marked cancelled. False if it was finished. */
  async cancel(runId: string, reason: string): Promise<boolean> {
    let cancelled = false
    await this.serialize(runId, async () => {
      const run = this.store.run(runId)
      if (!run || !this.store.finishRun(runId, 'cancelled', reason, this.now())) return
      cancelled = true
      await this.closeSteps(run, this.store.steps(runId), 'cancelled')
      this.publish('run_finished', { workflow_id: run.workflow_id, run_id: runId, state: 'cancelled', error: reason })
    })
    return cancelled
  }

  /** Refuse new passes and wait for those under way (serve shutdown). */
  async stop(): Promise<void> {
    this.stopped = true
    while (this.chains.size > 0) await Promise.all([...this.chains.values()])
  }

  private serialize(runId: string, work: () => Promise<void>): Promise<void> {
    if (this.stopped) return Promise.resolve()
    const next = (this.chains.get(runId) ?? Promise.resolve()).then(work).catch((error: unknown) => {
      this.log.warn(`workflow run ${runId}: ${(error as Error).message}`)
    })
    this.chains.set(runId, next)
    void next.then(() => {
      if (this.chains.get(runId) === next) this.chains.delete(runId)
    })
    return next
  }

  private async pass(runId: string): Promise<void> {
    const run = this.store.run(runId)
    if (!run || !IN_FLIGHT.has(run.state)) return
    for (const step of this.store.steps(runId)) {
      if (step.task_id && IN_FLIGHT.has(step.state)) await this.observe(run, step)
    }
    const steps = this.store.steps(runId)
    const broken = steps.find((s) => s.state === 'failed' || s.state === 'cancelled')
    if (broken) return await this.failRun(run, steps, broken)
    if (steps.every((s) => s.state === 'done')) {
      if (this.store.finishRun(runId, 'done', null, this.now())) {
        this.publish('run_finished', { workflow_id: run.workflow_id, run_id: runId, state: 'done' })
      }
      return
    }
    await this.submitReady(run, steps)
  }

  /** Record the outcome of a step's task, if it has one. */
  private async observe(run: RunRow, step: StepRow): Promise<void> {
    const task = await this.tasks.get(step.task_id as string)
    const now = this.now()
    const base = { workflow_id: run.workflow_id, run_id: run.id, step_id: step.step_id, task_id: step.task_id }
    if (!task) {
      const error = `task ${step.task_id} no longer exists (pruned past tasks.retention_hours?)`
      if (this.store.finishStep(run.id, step.step_id, 'failed', { error }, now)) this.publish('step_failed', { ...base, error })
      return
    }
    if (task.state === 'running' && step.state === 'queued') this.store.stepRunning(task.id)
    if (!FINISHED_TASK.has(task.state)) return
    if (task.state === 'done') {
      const output = outputText(step.type, task.result)
      if (this.store.finishStep(run.id, step.step_id, 'done', { output }, now)) this.publish('step_done', base)
      return
    }
    const error = task.error?.message ?? `task ${task.state}`
    const state = task.state === 'cancelled' ? 'cancelled' : 'failed'
    if (this.store.finishStep(run.id, step.step_id, state, { error }, now)) this.publish(`step_${state}`, { ...base, error })
  }

  private async failRun(run: RunRow, steps: StepRow[], broken: StepRow): Promise<void> {
    const state = broken.state === 'cancelled' ? 'cancelled' : 'failed'
    const error = `step "${broken.step_id}" ${broken.state}${broken.error ? `: ${broken.error}` : ''}`
    await this.closeSteps(run, steps, 'skipped')
    if (this.store.finishRun(run.id, state, error, this.now())) {
      this.publish('run_finished', { workflow_id: run.workflow_id, run_id: run.id, state, error })
    }
  }

  /** Steps not started are marked `notStarted`; steps in flight are cancelled, with their task. */
  private async closeSteps(run: RunRow, steps: StepRow[], notStarted: 'skipped' | 'cancelled'): Promise<void> {
    const now = this.now()
    for (const step of steps) {
      const base = { workflow_id: run.workflow_id, run_id: run.id, step_id: step.step_id }
      if (step.state === 'pending') {
        if (this.store.finishStep(run.id, step.step_id, notStarted, {}, now)) this.publish(`step_${notStarted}`, base)
      } else if (IN_FLIGHT.has(step.state)) {
        if (step.task_id) await this.tasks.cancel(step.task_id)
        const error = 'the run ended before this step finished'
        if (this.store.finishStep(run.id, step.step_id, 'cancelled', { error }, now)) this.publish('step_cancelled', { ...base, error })
      }
    }
  }

  private async submitReady(run: RunRow, steps: StepRow[]): Promise<void> {
    const def = JSON.parse(run.definition) as Definition
    const unsound = storedDefinitionProblem(def)
    if (unsound) return await this.refuseDefinition(run, steps, unsound)
    const state = new Map(steps.map((s) => [s.step_id, s.state]))
    const outputs = new Map(steps.filter((s) => s.state === 'done').map((s) => [s.step_id, s.output ?? '']))
    const ready = def.steps.filter((s) => state.get(s.id) === 'pending' && (s.depends_on ?? []).every((d) => state.get(d) === 'done'))
    if (ready.length === 0) return
    const inputs: Array<{ step: Step; input: SubmitInput }> = []
    for (const step of ready) {
      try {
        inputs.push({
          step,
          input: {
            type: step.type,
            model: step.model,
            payload: stepRequest(step, outputs),
            priority: def.priority ?? 0,
            ...(def.tenant ? { tenant: def.tenant } : {}),
            idempotency_key: stepKey(run.id, step.id),
          },
        })
      } catch (error) {
        this.store.finishStep(run.id, step.id, 'failed', { error: (error as Error).message }, this.now())
      }
    }
    const results = await this.tasks.submitMany(inputs.map((i) => i.input))
    const now = this.now()
    if (this.store.startRun(run.id, now)) this.publish('run_running', { workflow_id: run.workflow_id, run_id: run.id })
    let again = inputs.length < ready.length
    for (const [i, { task }] of results.entries()) {
      again = (await this.record(run, inputs[i]?.step.id ?? '', task, now)) || again
    }
    // A task found by its key may be finished already (recovery after a crash): look again at once.
    if (again) void this.advance(run.id)
  }

  /** Fail a run whose definition may not become tasks: nothing of it is submitted. */
  private async refuseDefinition(run: RunRow, steps: StepRow[], problem: string): Promise<void> {
    const error = `the run's definition is refused (${problem}); replace the workflow with a sound one`
    await this.closeSteps(run, steps, 'skipped')
    if (this.store.finishRun(run.id, 'failed', error, this.now())) {
      this.publish('run_finished', { workflow_id: run.workflow_id, run_id: run.id, state: 'failed', error })
    }
  }

  /** Note the step's task; true when another pass is needed now. */
  private async record(run: RunRow, stepId: string, task: Task, now: number): Promise<boolean> {
    if (this.store.submitted(run.id, stepId, task.id, now)) {
      this.publish('step_submitted', { workflow_id: run.workflow_id, run_id: run.id, step_id: stepId, task_id: task.id })
      return FINISHED_TASK.has(task.state)
    }
    // Not pending any more: another process recorded the same task, or the run ended meanwhile (cancel
    // from elsewhere): then the task must not run for nothing.
    const step = this.store.steps(run.id).find((s) => s.step_id === stepId)
    if (step?.task_id !== task.id) await this.tasks.cancel(task.id)
    return false
  }
}

/**
 * A run's copy of its definition, checked again before any of it becomes a task: one stored by an older
 * orch (before tenant and model were held to the task API's rule) may carry what POST /queue/submit refuses.
 */
export function storedDefinitionProblem(def: unknown): string | undefined {
  const result = v.safeParse(DefinitionSchema, def, { abortEarly: true })
  if (result.success) return undefined
  const issue = result.issues[0] as v.BaseIssue<unknown>
  return `${v.getDotPath(issue) ?? 'definition'}: ${issue.message}`
}
