/**
 * The web dashboard (docs/dashboard.md): the page at /ui, bundled from src/ui/ by Bun (an HTML import, so
 * its scripts, CSS and uPlot travel inside dist/orch), and GET /ui/api/summary, the figures it shows.
 * The page and its assets hold no data and are served by Bun.serve's `routes`, before the app's gates; the
 * summary, like every other data endpoint, is an app route behind them (Host, Origin, token).
 */

import { backendName } from '../../pool/supervisor.ts'
import { effectiveLimits } from '../../scheduler/limits.ts'
import dashboard from '../../ui/index.html'
import { type AppDeps, json, type Route } from '../http.ts'
import { backendRows } from './pools.ts'
import {
  difference,
  distribution,
  type Histogram,
  histogramOf,
  type ModelReading,
  modelCalls,
  modelFiguresOf,
  modelHistoryOf,
  parseExposition,
  parseSamples,
  ratePerModel,
  round,
} from './ui-figures.ts'

/** For Bun.serve's `routes`: the page, with and without the trailing slash. */
export const UI_PAGES = { '/ui': dashboard, '/ui/': dashboard } as const

/** The window of `requests.per_s`. */
export const RATE_WINDOW_MS = 60_000
/** How far back the charts go. */
export const HISTORY_MS = 15 * 60_000
/** Two readings closer than this are one point (several dashboards polling at once). */
export const MIN_SAMPLE_GAP_MS = 1000

const LATENCY = 'orch_backend_request_duration_seconds'
const TTFT = 'orch_time_to_first_token_seconds'
const TOKENS = 'orch_tokens_per_second'

/** One reading of the counters the charts are drawn from. */
export interface Reading {
  at: number
  requests: number
  latency: Histogram
}

export interface HistoryPoint {
  /** Unix seconds, the end of the interval. */
  t: number
  requests_per_s: number
  latency_p50_s: number | null
  latency_p99_s: number | null
}

export function uiRoutes(): Route[] {
  // Readings are taken when a dashboard asks: no timer runs while nobody looks.
  const readings: Reading[] = []
  const modelReadings: ModelReading[] = []
  return [{ method: 'GET', path: '/ui/api/summary', handler: async ({ deps }) => json(await summary(deps, readings, modelReadings)) }]
}

async function summary(deps: AppDeps, readings: Reading[], modelReadings: ModelReading[]) {
  // Rendering reads the task counts first: the counts below are the ones /metrics shows.
  const exposition = await deps.metrics.render()
  const histograms = parseExposition(exposition)
  const counts = deps.metrics.metrics.taskCounts
  const nextDue = counts.queued > 0 ? await deps.tasks.nextRunAfter() : undefined
  // Taken after the last await, so that readings of concurrent requests stay in time order.
  const now = Date.now()
  const { engine } = deps
  const s = engine.scheduler.stats()
  const latency = histogramOf(histograms, LATENCY)
  const reading: Reading = { at: now, requests: s.requests, latency }
  record(readings, reading)
  const hits = engine.counters.cache_hits
  const misses = engine.counters.cache_misses
  const waiting = engine.scheduler.waitingFor(() => true)
  const limits = effectiveLimits(engine.backends(), deps.config)
  return {
    at: now,
    version: deps.version,
    instance: deps.instance,
    uptime_s: Math.round((now - deps.startedAt) / 1000),
    backends: backendRows(deps),
    pools: deps.scale?.status().pools.map(({ decisions: _, ...figures }) => figures) ?? [],
    workers: workersOf(deps),
    queue: {
      depth: s.queued + counts.queued,
      scheduler_queued: s.queued,
      tasks_queued: counts.queued,
      oldest_wait_ms: waiting.count > 0 ? waiting.oldestMs : null,
      oldest_task_wait_ms: nextDue === undefined ? null : Math.max(0, now - nextDue),
    },
    inflight: {
      calls: s.inflight,
      slots: s.slots,
      slots_busy: s.slots_busy,
      tasks_running: counts.running,
      task_runner_limit: limits.task_runner.concurrency,
    },
    limits,
    requests: {
      total: s.requests,
      errors: s.errors + engine.counters.call_errors,
      per_s: ratePerSecond(readings, reading),
    },
    latency_s: distribution(latency),
    ttft_s: distribution(histogramOf(histograms, TTFT)),
    tokens_per_s: distribution(histogramOf(histograms, TOKENS)),
    cache: { hits, misses, hit_rate: hits + misses > 0 ? round(hits / (hits + misses)) : null },
    tasks: counts,
    history: { window_s: HISTORY_MS / 1000, points: historyOf(readings) },
    models: modelsSection(exposition, modelReadings, now),
  }
}

/** Per model (and per model and backend): the /metrics series that carry a `model` label, and their rates. */
function modelsSection(exposition: string, readings: ModelReading[], now: number) {
  const samples = parseSamples(exposition)
  const reading: ModelReading = { at: now, calls: modelCalls(samples) }
  const last = readings.at(-1)
  if (!last || reading.at - last.at >= MIN_SAMPLE_GAP_MS) readings.push(reading)
  while (readings.length > 0 && (readings[0] as ModelReading).at < now - HISTORY_MS) readings.shift()
  const figures = modelFiguresOf(samples, (key) => ratePerModel(readings, reading, key, RATE_WINDOW_MS))
  return { ...figures, history: { window_s: HISTORY_MS / 1000, points: modelHistoryOf(readings) } }
}

/** Keep `reading` unless the last one is too recent; forget those older than the window. */
function record(readings: Reading[], reading: Reading): void {
  const last = readings.at(-1)
  if (!last || reading.at - last.at >= MIN_SAMPLE_GAP_MS) readings.push(reading)
  while (readings.length > 0 && (readings[0] as Reading).at < reading.at - HISTORY_MS) readings.shift()
}

/** Model requests per second over the last RATE_WINDOW_MS; null until two readings span some time. */
export function ratePerSecond(readings: readonly Reading[], now: Reading): number | null {
  const from = readings.find((r) => r.at >= now.at - RATE_WINDOW_MS && r.at < now.at)
  if (!from) return null
  return round((now.requests - from.requests) / ((now.at - from.at) / 1000))
}

/** One point per interval between two readings: its request rate and its latency quantiles. */
export function historyOf(readings: readonly Reading[]): HistoryPoint[] {
  const points: HistoryPoint[] = []
  for (let i = 1; i < readings.length; i++) {
    const a = readings[i - 1] as Reading
    const b = readings[i] as Reading
    const d = distribution(difference(b.latency, a.latency))
    points.push({
      t: Math.round(b.at / 1000),
      requests_per_s: round((b.requests - a.requests) / ((b.at - a.at) / 1000)) ?? 0,
      latency_p50_s: d.p50,
      latency_p99_s: d.p99,
    })
  }
  return points
}

function workersOf(deps: AppDeps) {
  return (deps.pools?.workers ?? []).map((w) => ({
    pool: w.settings.pool.name,
    id: w.id,
    backend: backendName(w),
    state: w.state,
    pid: w.pid ?? null,
    port: w.port ?? null,
    restarts: w.restarts,
    inflight: w.inflight,
    served: w.served,
  }))
}
