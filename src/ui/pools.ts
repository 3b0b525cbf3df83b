/**
 * Backends and pools: every backend the scheduler routes to, and every pool worker with its state in words,
 * pid, port, GPU, restarts, uptime and requests (GET /pools, as `orch pool status` shows them). Restart and
 * Stop, for a worker or a whole pool, ask first. Refreshed every few seconds, and at once when /events
 * reports a worker's change (the row takes the event's state before the refresh answers).
 */
import { ApiError, api } from './api.ts'
import { announce, type Child, confirmDialog, figures, fill, h, keepingFocus, table } from './dom.ts'
import { followEvents, type LiveState, type StreamEvent } from './events.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import type { BackendRow, PoolsAnswer, PoolWorker } from './types.ts'

const POLL_MS = 3000
const EVENT_REFRESH_MS = 300

export const poolsPage: Page = {
  path: '/pools',
  nav: 'Backends and pools',
  title: () => 'Backends and pools',
  render,
}

type Action = 'restart' | 'stop'

/** What a worker's state means, in words beside the state itself. */
const STATE_NOTE: Record<string, string> = {
  starting: 'starting: waiting for its health check',
  healthy: 'healthy: serving',
  unhealthy: 'unhealthy: restarting after a backoff',
  draining: 'draining: finishing its calls before a restart',
  failed: 'failed: crashed too often, not restarted (Restart clears it)',
  stopped: 'stopped: not running until restarted',
}

function render(ctx: PageContext): void {
  const { main, signal } = ctx
  const updated = h('span', { 'data-figure': 'updated' }, 'loading…')
  const live = h('span', { 'data-figure': 'live' }, 'connecting')
  const problem = h('div', { class: 'problem' })
  const notice = h('div', { role: 'status', class: 'notice' })
  const backends = h('section', { 'aria-labelledby': 'h-backends' })
  const pools = h('div')
  const dialog = confirmDialog({ id: 'confirm', keep: 'Keep it running', danger: true })
  fill(
    main,
    h('h1', { tabindex: '-1' }, 'Backends and pools'),
    h('p', { class: 'meta' }, 'Updated ', updated, ' · live events: ', live),
    problem,
    notice,
    backends,
    pools,
    dialog.element,
  )
  let latest: PoolsAnswer | undefined

  const show = (answer: PoolsAnswer) => {
    latest = answer
    keepingFocus(main, () => {
      fill(backends, h('h2', { id: 'h-backends' }, 'Backends'), backendTable(answer.backends))
      fill(pools, ...poolSections(answer, ask))
    })
  }
  const refresh = async () => {
    try {
      const answer = await api<PoolsAnswer>('/pools')
      if (signal.aborted) return
      fill(problem)
      updated.textContent = f.time(Date.now())
      show(answer)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const ask = (action: Action, pool: string, worker?: string) => {
    const what = worker ? `worker ${worker}` : `every worker of pool ${pool}`
    dialog.ask({
      title: action === 'restart' ? `Restart ${what}?` : `Stop ${what}?`,
      text:
        action === 'restart'
          ? 'A healthy worker stops taking new requests, finishes those it has, and starts again; a stopped or failed one starts. Workers restart one at a time.'
          : 'The model server gets SIGTERM (SIGKILL after the grace period) and stays stopped until restarted: requests only it serves wait or fail.',
      confirm: action === 'restart' ? `Restart ${worker ?? `pool ${pool}`}` : `Stop ${worker ?? `pool ${pool}`}`,
      onConfirm: () => void perform(action, pool, worker),
    })
  }
  const perform = async (action: Action, pool: string, worker?: string) => {
    fill(notice)
    const what = worker ? `worker ${worker}` : `every worker of pool ${pool}`
    try {
      await api(`/pools/${encodeURIComponent(pool)}/${action}`, {
        method: 'POST',
        body: JSON.stringify(worker ? { workers: [worker] } : {}),
      })
      fill(notice, action === 'restart' ? `Restarting ${what}.` : `Stopping ${what}.`)
      announce(notice.textContent ?? '')
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error)
      fill(problem, h('p', { role: 'alert' }, `Not ${action === 'restart' ? 'restarted' : 'stopped'}: ${reason}`))
      if (error instanceof ApiError && error.unauthorized) ctx.failed(error, problem)
    }
    void refresh()
  }

  let pending: ReturnType<typeof setTimeout> | undefined
  const onEvent = (event: StreamEvent) => {
    const d = event.data
    // The worker's row takes the event's state at once; the refresh brings the rest.
    if (event.type === 'worker' && latest && typeof d.id === 'string' && typeof d.state === 'string') {
      const row = latest.workers.find((w) => w.id === d.id && w.pool === d.pool)
      if (row) {
        row.state = d.state
        if (typeof d.restarts === 'number') row.restarts = d.restarts
        if (typeof d.pid === 'number' || d.pid === null) row.pid = d.pid
        show(latest)
      }
    }
    pending ??= setTimeout(() => {
      pending = undefined
      void refresh()
    }, EVENT_REFRESH_MS)
  }
  const onState = (state: LiveState, detail?: string) => {
    live.textContent = detail ? `${state} (${detail})` : state
  }
  const timer = setInterval(() => {
    if (!dialog.isOpen()) void refresh()
  }, POLL_MS)
  signal.addEventListener('abort', () => {
    clearInterval(timer)
    clearTimeout(pending)
  })
  void refresh()
  void followEvents({ types: ['worker', 'backend', 'scaling'], signal, onEvent, onState })
}

function status(text: string, kind: 'ok' | 'bad' | 'warn' | 'unknown', attrs: Record<string, string> = {}): HTMLElement {
  return h('span', { class: `status status-${kind}`, ...attrs }, text)
}

function stateKind(state: string): 'ok' | 'bad' | 'warn' | 'unknown' {
  if (state === 'healthy') return 'ok'
  if (state === 'failed' || state === 'unhealthy') return 'bad'
  if (state === 'starting' || state === 'draining') return 'warn'
  return 'unknown'
}

function backendTable(rows: BackendRow[]): HTMLElement {
  if (rows.length === 0) return h('p', {}, 'No backend yet: none is configured and no pool worker is healthy.')
  return table(
    'Every backend the scheduler routes to (pool workers once healthy)',
    ['Name', 'Pool', 'Health', 'Breaker', 'In flight', 'Served', 'URL'],
    rows.map((b) => {
      const state = b.draining ? 'draining' : b.suspended ? 'suspended' : f.health(b.healthy)
      const kind = b.healthy === false ? 'bad' : b.healthy === null || b.draining || b.suspended ? 'unknown' : 'ok'
      return [
        b.name,
        b.pool ?? '—',
        status(state, kind),
        status(f.breaker(b.breaker), b.breaker === 'closed' ? 'ok' : b.breaker === 'open' ? 'bad' : 'warn'),
        f.ofLimit(b.inflight, b.concurrency),
        f.count(b.served),
        h('code', {}, b.url),
      ]
    }),
    { 'data-table': 'backends' },
  )
}

/** Seconds as `45 s`, `12 min 05 s`, `3 h 04 min`. */
export function uptime(s: number | null): string {
  if (s === null) return '—'
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`
}

function poolSections(answer: PoolsAnswer, ask: (action: Action, pool: string, worker?: string) => void): Child[] {
  if (answer.pools.length === 0) return [h('h2', {}, 'Pools'), h('p', {}, 'No pool is configured (add one under pools: in orch.yaml).')]
  return answer.pools.map((pool) => {
    const id = `h-pool-${pool.pool}`
    const workers = answer.workers.filter((w) => w.pool === pool.pool)
    return h(
      'section',
      { 'aria-labelledby': id, 'data-pool': pool.pool },
      h('h2', { id }, `Pool ${pool.pool}`),
      figures([
        ['Workers running', `pool.${pool.pool}.current`, f.count(pool.current)],
        ['Ready (healthy)', `pool.${pool.pool}.ready`, f.count(pool.ready)],
        ['Calls in flight', `pool.${pool.pool}.inflight`, f.count(pool.inflight)],
        ['Profile, API', `pool.${pool.pool}.kind`, `${pool.profile}, ${pool.api}`],
      ]),
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', id: `restart-pool-${pool.pool}`, onclick: () => ask('restart', pool.pool) },
          `Restart pool ${pool.pool}…`,
        ),
        h(
          'button',
          { type: 'button', id: `stop-pool-${pool.pool}`, class: 'danger', onclick: () => ask('stop', pool.pool) },
          `Stop pool ${pool.pool}…`,
        ),
      ),
      workers.length === 0 ? h('p', {}, 'No worker in this pool now.') : workerTable(pool.pool, workers, ask),
    )
  })
}

function workerTable(pool: string, workers: PoolWorker[], ask: (action: Action, pool: string, worker?: string) => void): HTMLElement {
  const element = table(
    `Workers of pool ${pool}`,
    ['Worker', 'State', 'PID', 'Port', 'GPU', 'Restarts', 'Uptime', 'Served', 'In flight', 'Last heartbeat', 'Actions'],
    workers.map((w) => {
      const key = `worker.${w.id}`
      return [
        h('span', { 'data-figure': `${key}.id` }, w.id),
        status(w.state, stateKind(w.state), { 'data-figure': `${key}.state`, title: STATE_NOTE[w.state] ?? w.state }),
        h('span', { 'data-figure': `${key}.pid` }, w.pid === null ? '—' : String(w.pid)),
        h('span', { 'data-figure': `${key}.port` }, w.port === null ? '—' : String(w.port)),
        h('span', { 'data-figure': `${key}.gpu` }, w.gpu ?? 'none'),
        h('span', { 'data-figure': `${key}.restarts` }, f.count(w.restarts)),
        h('span', { 'data-figure': `${key}.uptime` }, uptime(w.uptime_s)),
        h('span', { 'data-figure': `${key}.served` }, f.count(w.served)),
        h('span', { 'data-figure': `${key}.inflight` }, f.count(w.inflight)),
        h('span', { 'data-figure': `${key}.heartbeat` }, w.last_heartbeat ? f.time(Date.parse(w.last_heartbeat)) : '—'),
        h(
          'span',
          { class: 'actions' },
          h(
            'button',
            { type: 'button', id: `restart-${w.id}`, 'aria-label': `Restart ${w.id}…`, onclick: () => ask('restart', pool, w.id) },
            'Restart…',
          ),
          h(
            'button',
            { type: 'button', id: `stop-${w.id}`, class: 'danger', 'aria-label': `Stop ${w.id}…`, onclick: () => ask('stop', pool, w.id) },
            'Stop…',
          ),
        ),
      ]
    }),
    { 'data-table': `workers-${pool}` },
  )
  // The state's meaning, for those who cannot hover: one line per state shown.
  const states = [...new Set(workers.map((w) => w.state))]
  return h('div', {}, element, h('p', { class: 'meta' }, states.map((s) => STATE_NOTE[s] ?? s).join(' · ')))
}
