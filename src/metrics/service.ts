/**
 * The metrics service of `orch serve`: the Prometheus series behind GET /metrics (fed by HTTP request
 * records and the engine's per-call reports) and the performance_monitoring sampler, on one unref'd timer.
 */
import { logger } from '../core/log.ts'
import type { TaskState } from '../tasks/queue.ts'
import { createOrchMetrics, type MetricsSources, modelCounts, type OrchMetrics, type RequestRecord } from './engine-metrics.ts'
import { type Facts, Monitor, type Reading } from './monitor.ts'

export interface MetricsService {
  metrics: OrchMetrics
  monitor: Monitor
  /** The text exposition of every series, collected now. */
  render(): Promise<string>
  /** Counts one HTTP request. */
  onRequest(record: RequestRecord): void
  /** Ends sampling and the engine's reports; resolves once the samples taken are written. */
  stop(): Promise<void>
}

/** Starts counting the engine's calls and sampling every performance_monitoring.collection_interval_seconds. */
export function startMetrics(sources: MetricsSources): MetricsService {
  const config = sources.config.infrastructure_system.performance_monitoring
  // The closure runs at scrape time, after `monitor` exists.
  const metrics = createOrchMetrics(sources, { errorRate: () => monitor.errorRate })
  const monitor = new Monitor({ config, read: () => readCounts(sources, metrics), facts: () => readFacts(sources, metrics.taskCounts) })
  const unsubscribe = sources.engine.onCall(metrics.onCall)
  const log = logger()
  const timer = setInterval(
    async () => {
      try {
        await metrics.refreshCounts()
        monitor.tick()
      } catch (error) {
        // A sample that cannot be taken (store busy, Redis down) is skipped; the next interval tries again.
        log.debug(`performance_monitoring: sample skipped: ${(error as Error).message}`)
      }
    },
    Math.max(10, config.collection_interval_seconds * 1000),
  )
  timer.unref()
  return {
    metrics,
    monitor,
    render: metrics.render,
    onRequest: metrics.onRequest,
    async stop() {
      clearInterval(timer)
      unsubscribe()
      await monitor.flush()
    },
  }
}

function readCounts({ engine }: MetricsSources, metrics: OrchMetrics): Reading {
  const cpu = process.cpuUsage()
  return {
    at: Date.now(),
    httpRequests: metrics.http.requests,
    httpErrors: metrics.http.errors,
    model: modelCounts(engine),
    cacheHits: engine.counters.cache_hits,
    cacheMisses: engine.counters.cache_misses,
    cpuMicros: cpu.user + cpu.system,
  }
}

function readFacts({ engine, instance }: MetricsSources, counts: Record<TaskState, number>): Facts {
  const stats = engine.scheduler.stats()
  return {
    instance,
    schedulerQueued: stats.queued,
    tasksQueued: counts.queued,
    tasksRunning: counts.running,
    inflight: stats.inflight,
    backends: engine.backends().map((s) => ({
      name: s.name,
      inflight: s.inflight,
      concurrency: s.concurrency,
      healthy: s.healthy,
    })),
    rssBytes: process.memoryUsage.rss(),
    heapUsedBytes: process.memoryUsage().heapUsed,
  }
}
