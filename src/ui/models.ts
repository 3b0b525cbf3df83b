/**
 * Models (docs/dashboard.md): backend calls, errors, calls per second, latency, time to first token
 * and tokens per second of each model, and of each model on each backend, from the `models` section of GET
 * /ui/api/summary (the /metrics series that carry a `model` label); a chart of each model's calls per second.
 */
import { api } from './api.ts'
import { type Chart, lineChart, type SeriesSpec } from './charts.ts'
import { type Child, fill, h, keepingFocus, table } from './dom.ts'
import * as f from './format.ts'
import type { Page, PageContext } from './router.ts'
import type { ModelRow, ModelsSection, SummaryWithModels } from './types.ts'

const POLL_MS = 5000
const CHART_WINDOW_S = 15 * 60
const COLORS = ['#1f5fbf', '#b3261e', '#1e7d34', '#8a4b08', '#6a1b9a', '#00695c']
const DASHES: Array<number[] | undefined> = [undefined, [6, 4], [2, 3], [10, 3, 2, 3]]

export const modelsPage: Page = { path: '/models', nav: 'Models', title: () => 'Models', render }

function render(ctx: PageContext): void {
  const { main, signal } = ctx
  const updated = h('span', { 'data-figure': 'updated' }, 'loading…')
  const problem = h('div', { class: 'problem' })
  const perModel = h('section', { 'aria-labelledby': 'h-models' })
  const perBackend = h('section', { 'aria-labelledby': 'h-by-backend' })
  const chartBox = h('div', { class: 'charts' })
  fill(
    main,
    h('h1', { tabindex: '-1' }, 'Models'),
    h('p', { class: 'meta' }, 'Updated ', updated, ' · since the server started, from the /metrics series labelled by model'),
    problem,
    perModel,
    chartBox,
    perBackend,
  )
  let chart: { names: string; chart: Chart } | undefined
  let latest: ModelsSection | undefined
  const drawChart = (m: ModelsSection) => {
    const names = m.models.map((r) => r.model)
    if (chart?.names !== names.join('\n')) {
      chart?.chart.destroy()
      const specs: SeriesSpec[] = names.map((label, i) => {
        const dash = DASHES[i % DASHES.length]
        return { label, color: COLORS[i % COLORS.length] as string, ...(dash ? { dash } : {}) }
      })
      chart = {
        names: names.join('\n'),
        chart: lineChart('Backend calls per second by model (last 15 minutes)', 'calls/s', CHART_WINDOW_S, specs, () => describe(latest)),
      }
      fill(chartBox, chart.chart.element)
    }
    const points = m.history.points
    chart.chart.update(
      points.map((p) => p.t),
      names.map((name) => points.map((p) => p.per_model[name] ?? 0)),
    )
  }
  const refresh = async () => {
    try {
      const s = await api<SummaryWithModels>('/ui/api/summary')
      if (signal.aborted) return
      latest = s.models
      fill(problem)
      updated.textContent = f.time(s.at)
      keepingFocus(main, () => {
        fill(perModel, h('h2', { id: 'h-models' }, 'By model'), modelTable(s.models.models, false))
        fill(perBackend, h('h2', { id: 'h-by-backend' }, 'By model and backend'), modelTable(s.models.by_backend, true))
      })
      drawChart(s.models)
    } catch (error) {
      if (!signal.aborted) ctx.failed(error, problem)
    }
  }
  const timer = setInterval(() => void refresh(), POLL_MS)
  signal.addEventListener('abort', () => {
    clearInterval(timer)
    chart?.chart.destroy()
  })
  void refresh()
}

function describe(m: ModelsSection | undefined): string {
  const p = m?.history.points.at(-1)
  if (!p) return 'Points appear as the page refreshes.'
  const parts = Object.entries(p.per_model).map(([model, rate]) => `${model} ${f.perSecond(rate)}`)
  return `Latest interval: ${parts.join(', ') || 'no calls'}.`
}

/** A row's figures; `data-figure` names are `model.<model>.<figure>`, with `@<backend>` after the model on a backend's row. */
function modelTable(rows: ModelRow[], byBackend: boolean): HTMLElement {
  if (rows.length === 0) return h('p', {}, 'No backend call yet: the figures appear after the first model request.')
  const head = [
    'Model',
    byBackend ? 'Backend' : 'Backends',
    'Calls',
    'Errors',
    'Calls/s (last minute)',
    'Latency p50',
    'Latency p99',
    'TTFT p50',
    'Tokens/s (mean)',
  ]
  const cells = (r: ModelRow): Child[] => {
    const key = byBackend ? `model.${r.model}@${r.backend}` : `model.${r.model}`
    const cell = (name: string, text: string) => h('span', { 'data-figure': `${key}.${name}` }, text)
    return [
      r.model,
      byBackend ? (r.backend ?? '—') : (r.backends ?? []).join(', '),
      cell('calls', f.count(r.calls)),
      cell('errors', r.errors === null ? 'not per model' : f.count(r.errors)),
      cell('per_s', f.perSecond(r.per_s)),
      cell('latency.p50', f.seconds(r.latency_s.p50)),
      cell('latency.p99', f.seconds(r.latency_s.p99)),
      cell('ttft.p50', f.seconds(r.ttft_s.p50)),
      cell('tokens.mean', r.tokens_per_s.mean === null ? f.NONE : f.perSecond(r.tokens_per_s.mean)),
    ]
  }
  return table(byBackend ? 'Each model on each backend serving it' : 'Each model, over every backend', head, rows.map(cells), {
    'data-table': byBackend ? 'model-backends' : 'models',
  })
}
