/**
 * Durable tasks: a list filtered by state and tenant (the API's own filters) and by model (applied to the
 * tasks loaded), and one task in full — payload, result, error, attempts, timeline — with a Cancel button
 * that asks first.
 */
import { ApiError, api } from './api.ts'
import { announce, type Child, confirmDialog, figures, fill, h, keepingFocus, table } from './dom.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import { TASK_STATES, type Task, type TaskPage } from './types.ts'

const PAGE_SIZE = 100
const FINISHED = new Set(['done', 'failed', 'cancelled'])
const DETAIL_POLL_MS = 3000

export const tasksPage: Page = {
  path: '/tasks',
  nav: 'Tasks',
  title: () => 'Tasks',
  render: renderList,
}

export const taskPage: Page = {
  path: '/tasks/:id',
  title: (params) => `Task ${params.id ?? ''}`,
  render: renderDetail,
}

function renderList(ctx: PageContext): void {
  const { main, query, signal } = ctx
  const state = query.get('state') ?? ''
  const tenant = query.get('tenant') ?? ''
  const model = query.get('model') ?? ''
  const problem = h('div', { class: 'problem' })
  const results = h('div', { 'aria-live': 'polite' })
  const more = h('div')
  const stateSelect = h(
    'select',
    { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any'),
    ...TASK_STATES.map((s) => h('option', { value: s, selected: s === state }, s)),
  )
  const tenantInput = h('input', { id: 'f-tenant', name: 'tenant', type: 'text', value: tenant, autocomplete: 'off' })
  const modelInput = h('input', { id: 'f-model', name: 'model', type: 'text', value: model, autocomplete: 'off' })
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter tasks',
      onsubmit: (event: Event) => {
        event.preventDefault()
        const q = new URLSearchParams()
        if (stateSelect.value) q.set('state', stateSelect.value)
        if (modelInput.value.trim()) q.set('model', modelInput.value.trim())
        if (tenantInput.value.trim()) q.set('tenant', tenantInput.value.trim())
        const text = q.toString()
        ctx.navigate(`#/tasks${text ? `?${text}` : ''}`)
      },
    },
    h('div', {}, h('label', { for: 'f-state' }, 'State'), stateSelect),
    h('div', {}, h('label', { for: 'f-model' }, 'Model'), modelInput),
    h('div', {}, h('label', { for: 'f-tenant' }, 'Tenant'), tenantInput),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit' }, 'Show tasks'),
      h('a', { href: '#/tasks', class: 'button-link' }, 'Clear'),
    ),
  )
  fill(main, h('h1', { tabindex: '-1' }, 'Tasks'), form, problem, results, more)

  const shown: Task[] = []
  const load = async (cursor: string | null) => {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) })
    if (state) q.set('state', state)
    if (tenant) q.set('tenant', tenant)
    if (cursor) q.set('cursor', cursor)
    try {
      const page = await api<TaskPage>(`/tasks?${q}`)
      if (signal.aborted) return
      fill(problem)
      shown.push(...page.tasks.filter((t) => !model || t.model === model || t.model?.startsWith(`${model}:`)))
      fill(results, taskTable(shown, Boolean(model)))
      fill(
        more,
        page.next_cursor
          ? h('button', { type: 'button', onclick: () => void load(page.next_cursor) }, `Load ${PAGE_SIZE} more`)
          : h('p', { class: 'meta' }, 'No more tasks.'),
      )
      announce(`${shown.length} tasks shown`)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  void load(null)
}

function taskTable(tasks: Task[], modelFiltered: boolean): HTMLElement {
  const caption = `${tasks.length} task${tasks.length === 1 ? '' : 's'}, newest first${modelFiltered ? ' (model filter applied to the tasks loaded)' : ''}`
  if (tasks.length === 0) return h('p', {}, 'No task matches.')
  return table(
    caption,
    ['ID', 'State', 'Type', 'Model', 'Tenant', 'Attempts', 'Created'],
    tasks.map((t) => [
      h('a', { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.id),
      stateBadge(t.state),
      t.type,
      t.model ?? '—',
      t.tenant,
      `${t.attempts} of ${t.max_attempts}`,
      f.time(t.created_at),
    ]),
    { 'data-table': 'tasks' },
  )
}

function stateBadge(state: string): HTMLElement {
  const kind = state === 'done' ? 'ok' : state === 'failed' ? 'bad' : state === 'cancelled' ? 'unknown' : 'warn'
  return h('span', { class: `status status-${kind}`, 'data-state': state }, state)
}

function renderDetail(ctx: PageContext): void {
  const { main, signal } = ctx
  const id = ctx.params.id ?? ''
  const problem = h('div', { class: 'problem' })
  const notice = h('div', { role: 'status', class: 'notice' })
  const body = h('div')
  const actions = h('div', { class: 'actions' })
  const dialog = confirmDialog({ id: 'cancel', keep: 'Keep the task', danger: true })
  fill(
    main,
    h('p', {}, h('a', { href: '#/tasks' }, '← All tasks')),
    h('h1', { tabindex: '-1' }, 'Task ', h('code', {}, id)),
    problem,
    notice,
    actions,
    body,
    dialog.element,
  )
  let current: Task | undefined
  const cancelButton = h(
    'button',
    {
      type: 'button',
      id: 'cancel-task',
      class: 'danger',
      onclick: () =>
        dialog.ask({
          title: 'Cancel this task?',
          text: `Task ${id} will not run again: a queued task never starts, a running one is stopped. This cannot be undone.`,
          confirm: 'Cancel the task',
          onConfirm: () => void cancel(),
        }),
    },
    'Cancel task…',
  )

  const show = (task: Task) => {
    current = task
    keepingFocus(main, () => {
      fill(actions, FINISHED.has(task.state) ? null : cancelButton)
      fill(body, ...detail(task))
    })
  }
  const load = async () => {
    try {
      const task = await api<Task>(`/tasks/${encodeURIComponent(id)}`)
      if (signal.aborted) return
      fill(problem)
      show(task)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const cancel = async () => {
    fill(notice)
    try {
      const task = await api<Task>(`/tasks/${encodeURIComponent(id)}`, { method: 'DELETE' })
      fill(notice, `Task ${task.id} is cancelled.`)
      show(task)
      h1Focus(main)
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error)
      fill(problem, h('p', { role: 'alert' }, `Not cancelled: ${reason}`))
      if (error instanceof ApiError && error.unauthorized) ctx.failed(error, problem)
      else void load()
    }
  }
  const timer = setInterval(() => {
    if (current && !FINISHED.has(current.state) && !dialog.isOpen()) void load()
  }, DETAIL_POLL_MS)
  signal.addEventListener('abort', () => clearInterval(timer))
  void load()
}

function h1Focus(main: HTMLElement): void {
  main.querySelector('h1')?.focus()
}

function detail(t: Task): Child[] {
  return [
    figures([
      ['State', 'task.state', stateBadge(t.state)],
      ['Type', 'task.type', t.type],
      ['Model', 'task.model', t.model ?? '—'],
      ['Tenant', 'task.tenant', t.tenant],
      ['Priority', 'task.priority', String(t.priority)],
      ['Attempts', 'task.attempts', `${t.attempts} of ${t.max_attempts}`],
      ['Lease losses', 'task.stalled', String(t.stalled_count)],
      ['Why it failed', 'task.fail_reason', t.fail_reason ?? '—'],
      ['Idempotency key', 'task.idempotency_key', t.idempotency_key ?? '—'],
    ]),
    h('h2', {}, 'Timeline'),
    timeline(t),
    h('h2', {}, 'Payload'),
    json(t.payload, 'payload'),
    h('h2', {}, 'Result'),
    t.result === null || t.result === undefined
      ? h('p', {}, FINISHED.has(t.state) ? 'No result.' : 'No result yet.')
      : json(t.result, 'result'),
    h('h2', {}, 'Error'),
    t.error ? h('p', { 'data-figure': 'task.error' }, h('code', {}, t.error.code), ': ', t.error.message) : h('p', {}, 'No error.'),
  ]
}

function timeline(t: Task): HTMLElement {
  const steps: Array<[number, string]> = [[t.created_at, 'submitted (queued)']]
  if (t.run_after > t.created_at) steps.push([t.run_after, t.attempts > 0 ? 'due again (retry after a backoff)' : 'due'])
  if (t.started_at !== null) steps.push([t.started_at, `attempt ${t.attempts} started`])
  if (t.finished_at !== null) steps.push([t.finished_at, `finished: ${t.state}`])
  else if (t.updated_at > t.created_at) steps.push([t.updated_at, `last change (now ${t.state})`])
  steps.sort((a, b) => a[0] - b[0])
  return h(
    'ol',
    { class: 'timeline', 'data-figure': 'task.timeline' },
    ...steps.map(([at, what]) => h('li', {}, h('time', { datetime: new Date(at).toISOString() }, f.time(at)), ' — ', what)),
  )
}

function json(value: unknown, name: string): HTMLElement {
  return h('pre', { class: 'json', tabindex: '0', 'aria-label': name, 'data-figure': `task.${name}` }, JSON.stringify(value, null, 2))
}
