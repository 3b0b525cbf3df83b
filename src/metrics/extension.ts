/**
 * The metrics service of `orch serve`: the Prometheus series behind GET /metrics (fed by HTTP request
 * records and the engine's per-call reports) and the performance_monitoring sampler, on one unref'd timer.
 * Routes find it as `deps.services.metrics`.
 */
import { logger } from '../log.ts'
import type { Extension } from '../server/extensions.ts'
import type { AppDeps } from '../server/http.ts'
import { createOrchMetrics, modelCounts, type OrchMetrics } from './engine-metrics.ts'
import { type Facts, Monitor, type Reading } from './monitor.ts'

export interface MetricsService {
  metrics: OrchMetrics
  monitor: Monitor
  /** The text exposition of every series, collected now. */
  render(): string
}

export function metricsService(deps: AppDeps): MetricsService | undefined {
  return deps.services.metrics as MetricsService | undefined
}

export const metricsExtension: Extension = {
  name: 'metrics',
  start(deps) {
    const config = deps.config.infrastructure_system.performance_monitoring
    // The closure runs at scrape time, after `monitor` exists.
    const metrics = createOrchMetrics(deps, { errorRate: () => monitor.errorRate })
    const monitor = new Monitor({ config, read: () => readCounts(deps, metrics), facts: () => readFacts(deps) })
    const unsubscribe = deps.engine.onCall(metrics.onCall)
    const service: MetricsService = { metrics, monitor, render: metrics.render }
    deps.services.metrics = service
    const log = logger()
    const timer = setInterval(
      () => {
        try {
          monitor.tick()
        } catch (error) {
          // A sample that cannot be taken (store busy) is skipped; the next interval tries again.
          log.debug(`performance_monitoring: sample skipped: ${(error as Error).message}`)
        }
      },
      Math.max(10, config.collection_interval_seconds * 1000),
    )
    timer.unref()
    return {
      onRequest: metrics.onRequest,
      async stop() {
        clearInterval(timer)
        unsubscribe()
        await monitor.flush()
      },
    }
  },
}

function readCounts(deps: AppDeps, metrics: OrchMetrics): Reading {
  const cpu = process.cpuUsage()
  return {
    at: Date.now(),
    httpRequests: metrics.http.requests,
    httpErrors: metrics.http.errors,
    model: modelCounts(deps),
    cacheHits: deps.engine.counters.cache_hits,
    cacheMisses: deps.engine.counters.cache_misses,
    cpuMicros: cpu.user + cpu.system,
  }
}

function readFacts(deps: AppDeps): Facts {
  const stats = deps.engine.scheduler.stats()
  const counts = deps.tasks.counts()
  return {
    instance: deps.instance,
    schedulerQueued: stats.queued,
    tasksQueued: counts.queued,
    tasksRunning: counts.running,
    inflight: stats.inflight,
    backends: [...deps.engine.scheduler.states.values()].map((s) => ({
      name: s.name,
      inflight: s.inflight,
      concurrency: s.concurrency,
      healthy: s.healthy,
    })),
    rssBytes: process.memoryUsage.rss(),
    heapUsedBytes: process.memoryUsage().heapUsed,
  }
}
