/**
 * The overview: traffic, queue, in-flight work and every backend and pool worker, from GET
 * /ui/api/summary every few seconds and at once when /events reports a change; two charts of the
 * recent past (requests per second, latency).
 */
import { api } from './api.ts'
import { lineChart } from './charts.ts'
import { type Child, figures, fill, h, keepingFocus, table } from './dom.ts'
import { followEvents, type LiveState, type StreamEvent } from './events.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import { type Summary, TASK_STATES } from './types.ts'

const POLL_MS = 5000
/** Events come in bursts (a batch of tasks): one refresh for a burst. */
const EVENT_REFRESH_MS = 500
const EVENTS_SHOWN = 15
/** The charts' time axis: the span the server keeps (history.window_s). */
const CHART_WINDOW_S = 15 * 60

export const overviewPage: Page = {
  path: '/overview',
  nav: 'Overview',
  title: () => 'Overview',
  render,
}

function render(ctx: PageContext): void {
  const { main, signal } = ctx
  const updated = h('span', { 'data-figure': 'updated' }, 'loading…')
  const live = h('span', { 'data-figure': 'live' }, 'connecting')
  const problem = h('div', { class: 'problem' })
  const traffic = h('section', { 'aria-labelledby': 'h-traffic' })
  const queue = h('section', { 'aria-labelledby': 'h-queue' })
  const backends = h('section', { 'aria-labelledby': 'h-backends' })
  const pools = h('section', { 'aria-labelledby': 'h-pools' })
  const tasks = h('section', { 'aria-labelledby': 'h-tasks' })
  const recent = h('ol', { class: 'events' })
  const rate = lineChart(
    'Model requests per second (last 15 minutes)',
    'requests/s',
    CHART_WINDOW_S,
    [{ label: 'requests/s', color: '#1f5fbf' }],
    () => lastRate(latest),
  )
  const latency = lineChart(
    'Backend call latency (last 15 minutes)',
    'ms',
    CHART_WINDOW_S,
    [
      { label: 'p50', color: '#1f5fbf' },
      { label: 'p99', color: '#b3261e', dash: [6, 4] },
    ],
    () => lastLatency(latest),
  )
  let latest: Summary | undefined
  fill(
    main,
    h('h1', { tabindex: '-1' }, 'Overview'),
    h('p', { class: 'meta' }, 'Updated ', updated, ' · live events: ', live),
    problem,
    traffic,
    h('div', { class: 'charts' }, rate.element, latency.element),
    queue,
    backends,
    pools,
    tasks,
    h('section', { 'aria-labelledby': 'h-events' }, h('h2', { id: 'h-events' }, 'Recent events'), recent),
  )

  const refresh = async () => {
    try {
      const s = await api<Summary>('/ui/api/summary')
      if (signal.aborted) return
      latest = s
      fill(problem)
      show(s)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const show = (s: Summary) => {
    updated.textContent = f.time(s.at)
    keepingFocus(main, () => {
      fill(traffic, h('h2', { id: 'h-traffic' }, 'Traffic'), trafficFigures(s))
      fill(queue, h('h2', { id: 'h-queue' }, 'Queue and work in flight'), queueFigures(s))
      fill(backends, h('h2', { id: 'h-backends' }, 'Backends'), backendTable(s))
      fill(pools, ...poolSection(s))
      fill(tasks, h('h2', { id: 'h-tasks' }, 'Durable tasks'), taskCounts(s))
    })
    const points = s.history.points
    const times = points.map((p) => p.t)
    rate.update(times, [points.map((p) => p.requests_per_s)])
    latency.update(times, [points.map((p) => ms(p.latency_p50_s)), points.map((p) => ms(p.latency_p99_s))])
  }

  let pending: ReturnType<typeof setTimeout> | undefined
  const onEvent = (event: StreamEvent) => {
    recent.prepend(h('li', {}, describeEvent(event)))
    while (recent.children.length > EVENTS_SHOWN) recent.lastElementChild?.remove()
    pending ??= setTimeout(() => {
      pending = undefined
      void refresh()
    }, EVENT_REFRESH_MS)
  }
  const onState = (state: LiveState, detail?: string) => {
    live.textContent = detail ? `${state} (${detail})` : state
  }
  const timer = setInterval(() => void refresh(), POLL_MS)
  signal.addEventListener('abort', () => {
    clearInterval(timer)
    clearTimeout(pending)
    rate.destroy()
    latency.destroy()
  })
  void refresh()
  void followEvents({ types: ['task', 'backend', 'worker', 'scaling'], signal, onEvent, onState })
}

const ms = (s: number | null) => (s === null ? null : s * 1000)

function lastRate(s: Summary | undefined): string {
  const p = s?.history.points.at(-1)
  return p ? `Latest interval: ${f.perSecond(p.requests_per_s)}.` : 'Points appear as the page refreshes.'
}

function lastLatency(s: Summary | undefined): string {
  const p = s?.history.points.at(-1)
  return p
    ? `Latest interval: p50 ${f.seconds(p.latency_p50_s)}, p99 ${f.seconds(p.latency_p99_s)}.`
    : 'Points appear as the page refreshes.'
}

function trafficFigures(s: Summary): HTMLElement {
  return figures([
    ['Model requests', 'requests.total', f.count(s.requests.total)],
    ['Requests per second (last minute)', 'requests.per_s', f.perSecond(s.requests.per_s)],
    ['Failed requests', 'requests.errors', f.count(s.requests.errors)],
    ['Latency p50 since start', 'latency.p50', f.seconds(s.latency_s.p50)],
    ['Latency p99 since start', 'latency.p99', f.seconds(s.latency_s.p99)],
    ['Time to first token p50 since start', 'ttft.p50', f.seconds(s.ttft_s.p50)],
    ['Time to first token p99 since start', 'ttft.p99', f.seconds(s.ttft_s.p99)],
    ['Tokens per second, mean since start', 'tokens.mean', s.tokens_per_s.mean === null ? f.NONE : f.perSecond(s.tokens_per_s.mean)],
    ['Cache hit rate', 'cache.hit_rate', f.percent(s.cache.hit_rate)],
    ['Cache hits / misses', 'cache.hits_misses', `${f.count(s.cache.hits)} / ${f.count(s.cache.misses)}`],
  ])
}

function queueFigures(s: Summary): HTMLElement {
  return figures([
    ['Queue depth', 'queue.depth', f.count(s.queue.depth)],
    ['Requests waiting for a slot', 'queue.scheduler_queued', f.count(s.queue.scheduler_queued)],
    ['Durable tasks queued', 'queue.tasks_queued', f.count(s.queue.tasks_queued)],
    ['Longest wait for a slot', 'queue.oldest_wait', f.waited(s.queue.oldest_wait_ms)],
    ['Longest wait of a due task', 'queue.oldest_task_wait', f.waited(s.queue.oldest_task_wait_ms)],
    ['Backend calls in flight', 'inflight.calls', f.count(s.inflight.calls)],
    ['Slots in use', 'inflight.slots', f.ofLimit(s.inflight.slots_busy, s.inflight.slots)],
    ['Durable tasks running', 'inflight.tasks', f.ofLimit(s.inflight.tasks_running, s.inflight.task_runner_limit)],
  ])
}

function status(text: string, kind: 'ok' | 'bad' | 'warn' | 'unknown'): HTMLElement {
  return h('span', { class: `status status-${kind}` }, text)
}

function backendTable(s: Summary): HTMLElement {
  if (s.backends.length === 0) return h('p', {}, 'No backend is configured (add one under backends: in orch.yaml).')
  const rows: Child[][] = s.backends.map((b) => {
    const state = b.draining ? 'draining' : b.suspended ? 'suspended' : f.health(b.healthy)
    const kind = b.healthy === false ? 'bad' : b.healthy === null || b.draining || b.suspended ? 'unknown' : 'ok'
    const breakerKind = b.breaker === 'closed' ? 'ok' : b.breaker === 'open' ? 'bad' : 'warn'
    return [
      b.name,
      b.pool ?? '—',
      status(state, kind),
      status(f.breaker(b.breaker), breakerKind),
      f.ofLimit(b.inflight, b.concurrency),
      f.count(b.served),
      h('code', {}, b.url),
    ]
  })
  return table(
    'Backends and pool workers the scheduler routes to',
    ['Name', 'Pool', 'Health', 'Breaker', 'In flight', 'Served', 'URL'],
    rows,
    {
      'data-table': 'backends',
    },
  )
}

function poolSection(s: Summary): Child[] {
  if (s.pools.length === 0 && s.workers.length === 0) return []
  return [
    h('h2', { id: 'h-pools' }, 'Pools'),
    table(
      'Pool sizes',
      ['Pool', 'Current', 'Ready', 'Desired', 'Min', 'Max'],
      s.pools.map((p) => [p.pool, f.count(p.current), f.count(p.ready), f.count(p.desired), f.count(p.min), f.count(p.max)]),
    ),
    table(
      'Pool workers',
      ['Worker', 'State', 'PID', 'Port', 'Restarts', 'In flight', 'Served'],
      s.workers.map((w) => [
        w.backend,
        status(w.state, w.state === 'healthy' ? 'ok' : w.state === 'failed' || w.state === 'unhealthy' ? 'bad' : 'unknown'),
        w.pid ?? '—',
        w.port ?? '—',
        f.count(w.restarts),
        f.count(w.inflight),
        f.count(w.served),
      ]),
      { 'data-table': 'workers' },
    ),
  ]
}

function taskCounts(s: Summary): HTMLElement {
  return h(
    'ul',
    { class: 'task-counts' },
    ...TASK_STATES.map((state) =>
      h(
        'li',
        {},
        h('a', { href: `#/tasks?state=${state}` }, state),
        ': ',
        h('span', { 'data-figure': `tasks.${state}` }, f.count(s.tasks[state])),
      ),
    ),
  )
}

function describeEvent(event: StreamEvent): string {
  const d = event.data
  const at = typeof d.at === 'number' ? f.time(d.at).slice(11, 19) : ''
  const subject = d.id ?? d.name ?? d.pool ?? d.backend
  const state = d.state ?? d.status
  const change = d.change === undefined || d.change === state ? state : state === undefined ? d.change : `${d.change} (${state})`
  const what = [subject, change].filter((x) => x !== undefined && x !== null).map(String)
  return `${at} ${event.type}${what.length > 0 ? ` ${what.join(': ')}` : ''}`
}
