/**
 * What `orch serve` exposes on /metrics: the scheduler, environment and GPU names (orchestrator_*, env_*, gpu_wait_seconds) and
 * orch_* series for HTTP, backend calls, cache, breakers and tasks. Every series carries `instance`.
 * Counts kept elsewhere (scheduler, engine, task store) are copied at scrape time; per-request and per-call
 * values are recorded into series looked up without building label strings.
 */

import type { OrchConfig } from '../config/schema.ts'
import type { CallEvent, Engine } from '../scheduler/engine.ts'
import { taskRunnerLimit } from '../scheduler/limits.ts'
import type { TaskQueue, TaskState } from '../tasks/queue.ts'
import type { RunnerRegistry } from '../tasks/workers.ts'
import { CALL_BUCKETS, type CounterChild, type HistogramChild, HTTP_BUCKETS, RATE_BUCKETS, Registry, WAIT_BUCKETS } from './prometheus.ts'

/** Distinct model label values kept; later ones are recorded as `other` (models are named by clients). */
export const MAX_MODELS = 50

const BREAKER_VALUE = { closed: 0, half_open: 1, open: 2 } as const
/** Methods a client can make up are recorded as `other`: the label must stay bounded. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

/** One HTTP request answered, as the server reports it after making the response. */
export interface RequestRecord {
  method: string
  /** The route pattern (`/tasks/:id`), or `unmatched`: bounded label cardinality for metrics. */
  route: string
  status: number
  ms: number
}

/** What the series are read from, as plain values. */
export interface MetricsSources {
  config: OrchConfig
  engine: Engine
  /** The task counts, and the earliest run_after among queued tasks (orch_queue_oldest_wait_seconds{kind="task"}). */
  tasks: Pick<TaskQueue, 'counts' | 'nextRunAfter'>
  /** The `instance` label of every series. */
  instance: string
  /** orch_build_info's `version`. */
  version: string
  /** In a cluster: the task runners of every machine (orch_cluster_task_runners). */
  runners?: Pick<RunnerRegistry, 'list'>
  /** The pools' sizes and the autoscaler's decisions (orch_pool_workers, orch_scale_decisions_total). */
  scaling?: () => ScalingFigures | undefined
  /** The pool workers now (orch_pool_worker_restarts_total); src/pool/worker.ts. */
  workers?: () => readonly PoolWorkerFigures[]
}

/** A pool worker as the metrics read it: its restart counts since it was made (src/pool/worker.ts). */
export interface PoolWorkerFigures {
  readonly id: string
  readonly settings: { readonly pool: { readonly name: string } }
  /** After a failure: crash, failed start, missed heartbeats. */
  readonly restarts: number
  /** Without one: recycles and asked restarts. */
  readonly recycles: number
}

/** What the autoscaler says for the metrics (src/scale/autoscaler.ts status). */
export interface ScalingFigures {
  pools: Array<{ pool: string; current: number; ready: number; desired: number; min: number; max: number }>
  counts: { up: number; down: number }
}

/** Model requests (slots asked of the scheduler) and how many failed, by reason. */
export interface ModelCounts {
  requests: number
  backend: number
  queue_timeout: number
  refused: number
  dropped: number
}

export function modelCounts(engine: Engine): ModelCounts {
  const s = engine.scheduler.stats()
  return {
    requests: s.requests,
    backend: engine.counters.call_errors,
    queue_timeout: s.queue_timeouts,
    refused: s.rejected,
    dropped: Math.max(0, s.errors - s.queue_timeouts),
  }
}

export function errorsOf(c: ModelCounts): number {
  return c.backend + c.queue_timeout + c.refused + c.dropped
}

interface CallSeries {
  duration: HistogramChild
  wait: HistogramChild
  /** Made on the first observation: embeddings have neither. */
  ttft: HistogramChild | undefined
  rate: HistogramChild | undefined
}

export interface OrchMetrics {
  registry: Registry
  /** HTTP requests answered and those answered with a 5xx, since start. */
  readonly http: { requests: number; errors: number }
  onRequest(record: RequestRecord): void
  onCall(event: CallEvent): void
  /** Reads the task counts (a round trip on Redis), then renders every series. */
  render(): Promise<string>
  /** The task counts as last read (by `render` or `refreshCounts`). */
  readonly taskCounts: Record<TaskState, number>
  refreshCounts(): Promise<void>
}

export interface OrchMetricsOptions {
  /** env_error_rate: errors / requests over the last sampling interval (the monitor keeps it). */
  errorRate: () => number
}

export function createOrchMetrics(sources: MetricsSources, options: OrchMetricsOptions): OrchMetrics {
  const { engine } = sources
  const r = new Registry({ constLabels: { instance: sources.instance } })
  let taskCounts: Record<TaskState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
  let runnerCounts = { alive: 0, gone: 0 }
  /** The earliest run_after among queued tasks, as last read; undefined when none is queued. */
  let nextDue: number | undefined
  const refreshCounts = async () => {
    taskCounts = await sources.tasks.counts()
    nextDue = taskCounts.queued > 0 ? await sources.tasks.nextRunAfter() : undefined
    if (sources.runners) {
      const listed = await sources.runners.list()
      const alive = listed.filter((x) => x.alive).length
      runnerCounts = { alive, gone: listed.length - alive }
    }
  }
  const concurrency = r.gauge(
    'orchestrator_concurrency_limit',
    'Calls a backend may run at once: its effective concurrency (own key, else runtime.<type>.concurrency, else 4)',
    ['backend'],
  )
  const inflight = r.gauge('orchestrator_inflight_tasks', 'Backend calls in flight', ['backend'])
  const taskErrors = r.counter(
    'orchestrator_task_errors_total',
    'Model requests that failed: backend (the call failed), queue_timeout, refused (queue full, no backend, breaker open, unknown model), dropped (cancelled or unservable while queued)',
    ['reason'],
  )
  const queueDepth = r.gauge('env_queue_depth', 'Requests waiting for a slot plus durable tasks queued')
  const gpuWait = r.histogram('gpu_wait_seconds', 'Time a backend call waited for a slot', ['backend', 'model'], WAIT_BUCKETS)
  const errorRate = r.gauge('env_error_rate', 'Failed model requests / model requests over the last sampling interval')
  const httpDuration = r.histogram(
    'orch_http_request_duration_seconds',
    'Time to answer an HTTP request (to the response headers for streams)',
    ['method', 'route', 'status'],
    HTTP_BUCKETS,
  )
  const callDuration = r.histogram(
    'orch_backend_request_duration_seconds',
    'Duration of a backend call, from its slot to its last byte',
    ['backend', 'model', 'kind'],
    CALL_BUCKETS,
  )
  const calls = r.counter('orch_backend_calls_total', 'Backend calls by outcome (success, error, cancelled)', [
    'backend',
    'model',
    'kind',
    'outcome',
  ])
  const ttft = r.histogram(
    'orch_time_to_first_token_seconds',
    'From a call getting its slot to its first chunk',
    ['backend', 'model'],
    CALL_BUCKETS,
  )
  const tokensPerSecond = r.histogram(
    'orch_tokens_per_second',
    'Generation speed of a call (eval tokens / eval time)',
    ['backend', 'model'],
    RATE_BUCKETS,
  )
  const cacheHits = r.counter('orch_cache_hits_total', 'Response cache hits').labels()
  const cacheMisses = r.counter('orch_cache_misses_total', 'Response cache misses').labels()
  const breaker = r.gauge('orch_breaker_state', 'Circuit breaker of a backend: 0 closed, 1 half-open, 2 open', ['backend'])
  const up = r.gauge('orch_backend_up', 'Whether the backend passed its last health check (1) or not (0)', ['backend'])
  const requests = r.counter('orch_scheduler_requests_total', 'Model requests asked of the scheduler (slots), cache hits excluded').labels()
  const tasks = r.gauge('orch_tasks', 'Durable tasks by state (in a cluster: of the whole cluster, from Redis)', ['state'])
  const poolWorkers = r.gauge('orch_pool_workers', 'Workers of a pool: current (asked for), ready, desired (the autoscaler), min and max', [
    'pool',
    'kind',
  ])
  const scaleDecisions = r.counter('orch_scale_decisions_total', 'Autoscaling decisions that changed a pool, since start', ['direction'])
  const workerRestarts = r.counter(
    'orch_pool_worker_restarts_total',
    'Restarts of a pool worker since start, each counting one: after a crash or a failed start, after missed heartbeats, a recycle (worker_ttl, worker_max_requests), or an asked restart (orch pool restart, orch pool reset)',
    ['pool', 'worker'],
  )
  const oldestWait = r.gauge(
    'orch_queue_oldest_wait_seconds',
    'How long the oldest waiter has waited: slot (the oldest request waiting for a backend slot), task (the durable task due first, since it became due); 0 when none',
    ['kind'],
  )
  const slotWait = oldestWait.labels('slot')
  const taskWait = oldestWait.labels('task')
  // A worker's counts start at 0 with each Worker object (a pool that scales down and up again makes new
  // ones under the same ids): the series add what each object counted since the last scrape.
  const restartsSeen = new WeakMap<PoolWorkerFigures, number>()
  const runners = sources.runners
    ? r.gauge('orch_cluster_task_runners', 'Task runners of the cluster (orch worker, orch serve) by heartbeat: alive, or gone', ['state'])
    : undefined
  r.gauge('orch_build_info', 'The running orch version', ['version']).labels(sources.version).set(1)
  const runnerLimit = taskRunnerLimit(sources.config).concurrency
  // No series when the runner has no cap of its own (infrastructure_system.enabled: false).
  if (runnerLimit !== null) {
    r.gauge('orch_task_runner_limit', 'Durable tasks this orch process runs at once (agent_runner_concurrency)').labels().set(runnerLimit)
  }
  const rss = r.gauge('process_resident_memory_bytes', 'Resident memory of the orch process').labels()
  const cpu = r.counter('process_cpu_seconds_total', 'User and system CPU time of the orch process').labels()
  r.gauge('process_start_time_seconds', 'Start of the orch process, Unix seconds')
    .labels()
    .set(Math.round(performance.timeOrigin / 1000))

  r.onCollect(() => {
    const s = engine.scheduler
    for (const family of [concurrency, inflight, breaker, up]) family.reset()
    for (const state of engine.backends()) {
      concurrency.labels(state.name).set(state.concurrency)
      inflight.labels(state.name).set(state.inflight)
      breaker.labels(state.name).set(BREAKER_VALUE[state.breaker.state])
      up.labels(state.name).set(state.healthy === true ? 1 : 0)
    }
    const counts = taskCounts
    for (const [state, n] of Object.entries(counts)) tasks.labels(state).set(n)
    if (runners) for (const [state, n] of Object.entries(runnerCounts)) runners.labels(state).set(n)
    const scaling = sources.scaling?.()
    if (scaling) {
      poolWorkers.reset()
      for (const p of scaling.pools) {
        for (const kind of ['current', 'ready', 'desired', 'min', 'max'] as const) poolWorkers.labels(p.pool, kind).set(p[kind])
      }
      scaleDecisions.labels('up').set(scaling.counts.up)
      scaleDecisions.labels('down').set(scaling.counts.down)
    }
    for (const w of sources.workers?.() ?? []) {
      const count = w.restarts + w.recycles
      workerRestarts.labels(w.settings.pool.name, w.id).inc(Math.max(0, count - (restartsSeen.get(w) ?? 0)))
      restartsSeen.set(w, count)
    }
    const now = Date.now()
    const waiting = s.waitingFor(() => true)
    slotWait.set(waiting.count > 0 ? waiting.oldestMs / 1000 : 0)
    taskWait.set(nextDue === undefined ? 0 : Math.max(0, now - nextDue) / 1000)
    queueDepth.labels().set(s.stats().queued + counts.queued)
    const m = modelCounts(engine)
    requests.set(m.requests)
    for (const reason of ['backend', 'queue_timeout', 'refused', 'dropped'] as const) taskErrors.labels(reason).set(m[reason])
    errorRate.labels().set(options.errorRate())
    cacheHits.set(engine.counters.cache_hits)
    cacheMisses.set(engine.counters.cache_misses)
    rss.set(process.memoryUsage.rss())
    const usage = process.cpuUsage()
    cpu.set((usage.user + usage.system) / 1e6)
  })

  // route → method → status → series: a request records without formatting any label text.
  const httpSeries = new Map<string, Map<string, Map<number, HistogramChild>>>()
  const http = { requests: 0, errors: 0 }
  const models = new Set<string>()
  // backend → model → kind, and backend → model → kind → outcome: a call records without building a key.
  const callSeries = new Map<string, Map<string, Map<string, CallSeries>>>()
  const outcomes = new Map<string, Map<string, Map<string, Map<string, CounterChild>>>>()

  function modelLabel(model: string): string {
    if (models.has(model)) return model
    if (models.size >= MAX_MODELS) return 'other'
    models.add(model)
    return model
  }

  return {
    registry: r,
    http,
    onRequest(record) {
      http.requests++
      if (record.status >= 500) http.errors++
      let byMethod = httpSeries.get(record.route)
      if (!byMethod) {
        byMethod = new Map()
        httpSeries.set(record.route, byMethod)
      }
      const method = METHODS.has(record.method) ? record.method : 'other'
      let byStatus = byMethod.get(method)
      if (!byStatus) {
        byStatus = new Map()
        byMethod.set(method, byStatus)
      }
      let series = byStatus.get(record.status)
      if (!series) {
        series = httpDuration.labels(method, record.route, String(record.status))
        byStatus.set(record.status, series)
      }
      series.observe(record.ms / 1000)
    },
    onCall(event) {
      const model = modelLabel(event.model)
      const byKind = nested(nested(callSeries, event.backend), model)
      let series = byKind.get(event.kind)
      if (!series) {
        series = {
          duration: callDuration.labels(event.backend, model, event.kind),
          wait: gpuWait.labels(event.backend, model),
          ttft: undefined,
          rate: undefined,
        }
        byKind.set(event.kind, series)
      }
      series.duration.observe(event.durationMs / 1000)
      series.wait.observe(event.waitedMs / 1000)
      if (event.ttftMs !== undefined && event.outcome === 'success') {
        series.ttft ??= ttft.labels(event.backend, model)
        series.ttft.observe(event.ttftMs / 1000)
      }
      const speed = tokensPerSecondOf(event)
      if (speed !== undefined) {
        series.rate ??= tokensPerSecond.labels(event.backend, model)
        series.rate.observe(speed)
      }
      const byOutcome = nested(nested(nested(outcomes, event.backend), model), event.kind)
      let counter = byOutcome.get(event.outcome)
      if (!counter) {
        counter = calls.labels(event.backend, model, event.kind, event.outcome)
        byOutcome.set(event.outcome, counter)
      }
      counter.inc()
    },
    render: async () => {
      await refreshCounts()
      return r.render()
    },
    get taskCounts() {
      return taskCounts
    },
    refreshCounts,
  }
}

/** The map under `key`, made on first use. */
function nested<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let inner = map.get(key)
  if (!inner) {
    inner = new Map()
    map.set(key, inner)
  }
  return inner
}

/** Tokens per second from the backend's own timing, else over the streaming time after the first token. */
export function tokensPerSecondOf(event: CallEvent): number | undefined {
  const tokens = event.evalCount
  if (event.outcome !== 'success' || !tokens || tokens <= 0) return undefined
  if (event.evalDurationNs && event.evalDurationNs > 0) return tokens / (event.evalDurationNs / 1e9)
  const ms = event.durationMs - (event.ttftMs ?? 0)
  return ms > 0 && tokens > 1 ? (tokens - 1) / (ms / 1000) : undefined
}
