/**
 * Workflows (docs/dashboard.md): the list with schedules and last runs, one workflow with its
 * steps and runs and a "Run now" button that asks first, and one run with its steps drawn as a graph. Pages
 * follow the `workflow` events of GET /events and reload at once when one concerns them.
 */
import { ApiError, api } from './api.ts'
import { drawDag } from './dag.ts'
import { type Child, confirmDialog, figures, fill, h, keepingFocus, table } from './dom.ts'
import { followEvents, type StreamEvent } from './events.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import type { RunState, StepDefinition, Workflow, WorkflowRun } from './types.ts'

const POLL_MS = 5000
const EVENT_REFRESH_MS = 300
const PAGE = 50
const FINISHED: ReadonlySet<RunState> = new Set(['done', 'failed', 'cancelled'])

export const workflowsPage: Page = { path: '/workflows', nav: 'Workflows', title: () => 'Workflows', render: renderList }
export const workflowPage: Page = { path: '/workflows/:id', title: (p) => `Workflow ${p.id}`, render: renderWorkflow }
export const runPage: Page = { path: '/runs/:id', title: (p) => `Run ${p.id}`, render: renderRun }

const enc = encodeURIComponent

/** An id or name with break opportunities (after `_`, `-`, `.` and every 12 characters), so a heading fits a phone. */
function breakable(text: string): Child[] {
  const parts: Child[] = []
  for (const piece of text.match(/[^_.-]{1,12}[_.-]?|[_.-]/g) ?? [text]) parts.push(piece, h('wbr'))
  return parts
}

/** Reload on the workflow events `concerns` picks (a burst is one reload), and every POLL_MS as a fallback. */
function live(ctx: PageContext, load: () => Promise<void>, concerns: (e: StreamEvent) => boolean, liveText: HTMLElement): void {
  let pending: ReturnType<typeof setTimeout> | undefined
  const timer = setInterval(() => void load(), POLL_MS)
  ctx.signal.addEventListener('abort', () => {
    clearInterval(timer)
    clearTimeout(pending)
  })
  void followEvents({
    types: ['workflow'],
    signal: ctx.signal,
    onEvent: (event) => {
      if (!concerns(event)) return
      pending ??= setTimeout(() => {
        pending = undefined
        void load()
      }, EVENT_REFRESH_MS)
    },
    onState: (state, detail) => {
      liveText.textContent = detail ? `${state} (${detail})` : state
    },
  })
}

function runState(state: string): HTMLElement {
  const kind = state === 'done' ? 'ok' : state === 'failed' ? 'bad' : state === 'running' ? 'warn' : 'unknown'
  return h('span', { class: `status status-${kind}` }, state)
}

const schedule = (w: Workflow) => (w.schedule === null ? 'none (runs on demand)' : `${w.schedule} (${w.timezone ?? 'local time'})`)
const enabled = (w: Workflow) => (w.schedule === null ? (w.enabled ? 'yes (no schedule)' : 'no (no schedule)') : w.enabled ? 'yes' : 'no')

function lastRun(w: Workflow): Child {
  const r = w.last_run
  if (!r) return 'never run'
  return h('span', {}, h('a', { href: `#/runs/${enc(r.id)}` }, r.id), ' ', runState(r.state), ` ${f.time(r.created_at)}`)
}

function renderList(ctx: PageContext): void {
  const { main, signal } = ctx
  const problem = h('div', { class: 'problem' })
  const list = h('div', {})
  const more = h('div', { class: 'actions' })
  const liveText = h('span', { 'data-figure': 'live' }, 'connecting')
  fill(main, h('h1', { tabindex: '-1' }, 'Workflows'), h('p', { class: 'meta' }, 'Live events: ', liveText), problem, list, more)
  let shown = PAGE
  const load = async () => {
    try {
      const page = await api<{ workflows: Workflow[]; next_cursor: string | null }>(`/workflows?limit=${shown}`)
      if (signal.aborted) return
      fill(problem)
      keepingFocus(main, () => {
        fill(list, workflowTable(page.workflows))
        fill(
          more,
          page.next_cursor &&
            h(
              'button',
              {
                type: 'button',
                onclick: () => {
                  shown += PAGE
                  void load()
                },
              },
              `Load ${PAGE} more`,
            ),
        )
      })
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  live(ctx, load, () => true, liveText)
  void load()
}

function workflowTable(workflows: Workflow[]): HTMLElement {
  if (workflows.length === 0) {
    return h('p', {}, 'No workflow yet: create one with POST /workflows or orch workflows create (docs/http-api.md#workflows).')
  }
  return table(
    'Workflows by name',
    ['Name', 'Steps', 'Schedule', 'Enabled', 'Next run', 'Last run'],
    workflows.map((w) => [
      h('a', { href: `#/workflows/${enc(w.id)}` }, w.name),
      f.count(w.steps),
      schedule(w),
      enabled(w),
      w.next_run_at === null ? '—' : f.time(w.next_run_at),
      lastRun(w),
    ]),
    { 'data-table': 'workflows' },
  )
}

function renderWorkflow(ctx: PageContext): void {
  const { main, signal } = ctx
  const id = ctx.params.id ?? ''
  const problem = h('div', { class: 'problem' })
  const notice = h('div', { class: 'notice', role: 'status' })
  const about = h('div', {})
  const runs = h('section', { 'aria-labelledby': 'h-runs' })
  const liveText = h('span', { 'data-figure': 'live' }, 'connecting')
  const dialog = confirmDialog({ id: 'run', keep: 'Not now' })
  const runNow = h(
    'button',
    {
      type: 'button',
      onclick: () =>
        dialog.ask({
          title: 'Start a run now?',
          text: `A new run of workflow ${id} starts at once: each of its steps becomes a durable task.`,
          confirm: 'Start the run',
          onConfirm: () => void start(),
        }),
    },
    'Run now…',
  )
  const heading = h('h1', { tabindex: '-1' }, 'Workflow ', ...breakable(id))
  fill(
    main,
    h('p', {}, h('a', { href: '#/workflows' }, '← All workflows')),
    heading,
    h('p', { class: 'meta' }, 'Live events: ', liveText),
    problem,
    notice,
    h('div', { class: 'actions' }, runNow),
    about,
    runs,
    dialog.element,
  )
  let workflowId = id
  const load = async () => {
    try {
      const w = await api<Workflow>(`/workflows/${enc(id)}`)
      const page = await api<{ runs: WorkflowRun[] }>(`/workflows/${enc(w.id)}/runs?limit=${PAGE}`)
      if (signal.aborted) return
      workflowId = w.id
      fill(heading, 'Workflow ', ...breakable(w.name))
      fill(problem)
      keepingFocus(main, () => {
        fill(about, ...workflowDetail(w))
        fill(runs, h('h2', { id: 'h-runs' }, 'Runs'), runTable(page.runs))
      })
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const start = async () => {
    fill(notice)
    try {
      const started = await api<{ run_id: string }>(`/workflows/${enc(workflowId)}/runs`, { method: 'POST' })
      ctx.navigate(`#/runs/${enc(started.run_id)}`)
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error)
      fill(problem, h('p', { role: 'alert' }, `No run started: ${reason}`))
      if (error instanceof ApiError && error.unauthorized) ctx.failed(error, problem)
    }
  }
  live(ctx, load, (e) => e.data.workflow_id === workflowId || e.data.id === workflowId, liveText)
  void load()
}

function workflowDetail(w: Workflow): Child[] {
  const steps = w.definition.steps
  return [
    figures([
      ['Name', 'workflow.name', w.name],
      ['Id', 'workflow.id', w.id],
      ['Description', 'workflow.description', w.description ?? '—'],
      ['Schedule', 'workflow.schedule', schedule(w)],
      ['Enabled', 'workflow.enabled', enabled(w)],
      ['Next run', 'workflow.next_run', w.next_run_at === null ? '—' : f.time(w.next_run_at)],
      ['Created', 'workflow.created', f.time(w.created_at)],
    ]),
    h('h2', {}, 'Steps'),
    drawDag(
      steps.map((s) => ({ id: s.id, depends_on: s.depends_on ?? [] })),
      `Steps of workflow ${w.name}`,
    ),
    table(
      'Steps and what they depend on',
      ['Step', 'Type', 'Model', 'Depends on'],
      steps.map((s: StepDefinition) => [s.id, s.type, s.model, (s.depends_on ?? []).join(', ') || '—']),
      { 'data-table': 'definition' },
    ),
  ]
}

function runTable(runs: WorkflowRun[]): HTMLElement {
  if (runs.length === 0) return h('p', {}, 'No run yet.')
  return table(
    'Runs, newest first',
    ['Run', 'State', 'Trigger', 'Created', 'Finished', 'Error'],
    runs.map((r) => [
      h('a', { href: `#/runs/${enc(r.id)}` }, r.id),
      runState(r.state),
      r.trigger,
      f.time(r.created_at),
      r.finished_at === null ? '—' : f.time(r.finished_at),
      r.error ?? '—',
    ]),
    { 'data-table': 'runs' },
  )
}

function renderRun(ctx: PageContext): void {
  const { main, signal } = ctx
  const id = ctx.params.id ?? ''
  const problem = h('div', { class: 'problem' })
  const body = h('div', {})
  const liveText = h('span', { 'data-figure': 'live' }, 'connecting')
  fill(main, h('h1', { tabindex: '-1' }, 'Run ', ...breakable(id)), h('p', { class: 'meta' }, 'Live events: ', liveText), problem, body)
  // The dependencies come from the workflow's definition, read once.
  let definition: StepDefinition[] | null | undefined
  const load = async () => {
    try {
      const run = await api<WorkflowRun>(`/runs/${enc(id)}`)
      if (definition === undefined) {
        definition = await api<Workflow>(`/workflows/${enc(run.workflow_id)}`)
          .then((w) => w.definition.steps)
          .catch((error: unknown) => {
            if (error instanceof ApiError && error.status === 404) return null
            throw error
          })
      }
      if (signal.aborted) return
      fill(problem)
      keepingFocus(main, () => fill(body, ...runDetail(run, definition ?? null)))
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  live(ctx, load, (e) => e.data.run_id === id, liveText)
  void load()
}

function runDetail(run: WorkflowRun, definition: StepDefinition[] | null): Child[] {
  const steps = run.steps ?? []
  const deps = new Map((definition ?? []).map((s) => [s.id, s.depends_on ?? []]))
  return [
    figures([
      ['Workflow', 'run.workflow', h('a', { href: `#/workflows/${enc(run.workflow_id)}` }, run.workflow_id)],
      ['State', 'run.state', runState(run.state)],
      ['Trigger', 'run.trigger', run.trigger],
      ['Scheduled for', 'run.scheduled_for', run.scheduled_for === null ? '—' : f.time(run.scheduled_for)],
      ['Created', 'run.created', f.time(run.created_at)],
      ['Started', 'run.started', run.started_at === null ? '—' : f.time(run.started_at)],
      ['Finished', 'run.finished', run.finished_at === null ? '—' : f.time(run.finished_at)],
      ['Error', 'run.error', run.error ?? '—'],
    ]),
    h('h2', {}, 'Steps'),
    definition === null ? h('p', {}, 'The workflow is deleted: the steps are shown without their dependencies.') : null,
    drawDag(
      steps.map((s) => ({ id: s.id, state: s.state, depends_on: deps.get(s.id) ?? [] })),
      `Steps of run ${run.id}`,
    ),
    table(
      'Each step’s state and task',
      ['Step', 'Type', 'State', 'Task', 'Submitted', 'Finished'],
      steps.map((s) => [
        s.id,
        s.type,
        h('span', { 'data-figure': `step.${s.id}.state` }, runState(s.state)),
        s.task_id === null ? '—' : h('a', { href: `#/tasks/${enc(s.task_id)}` }, s.task_id),
        s.submitted_at === null ? '—' : f.time(s.submitted_at),
        s.finished_at === null ? '—' : f.time(s.finished_at),
      ]),
      { 'data-table': 'steps' },
    ),
    h('h2', {}, 'Outputs and errors'),
    ...steps.map((s) =>
      h(
        'section',
        { 'aria-label': `Step ${s.id}` },
        h('h3', {}, `Step ${s.id}`),
        s.output === null
          ? h('p', {}, FINISHED.has(s.state as RunState) || s.state === 'skipped' ? 'No output.' : 'No output yet.')
          : h('pre', { class: 'json', tabindex: '0', 'aria-label': `output of ${s.id}`, 'data-figure': `step.${s.id}.output` }, s.output),
        s.error === null ? null : h('p', { 'data-figure': `step.${s.id}.error` }, 'Error: ', s.error),
      ),
    ),
  ]
}
