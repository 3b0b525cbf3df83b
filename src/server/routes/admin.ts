/** Liveness, readiness, and the scheduler's figures with the effective concurrency limits. */
import { effectiveLimits } from '../../scheduler/limits.ts'
import { type AppDeps, json, type Route } from '../http.ts'

export function adminRoutes(): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      public: true,
      handler: ({ deps }) => json({ status: 'ok', version: deps.version, uptime_s: uptime(deps) }),
    },
    {
      method: 'GET',
      path: '/ready',
      public: true,
      handler: ({ deps }) => {
        const backends = deps.engine.backends().map((s) => ({
          name: s.name,
          url: s.backend.url,
          healthy: s.healthy ?? null,
        }))
        const ready = backends.some((b) => b.healthy === true)
        return json(
          {
            ready,
            backends,
            ...(ready
              ? {}
              : { reason: 'no backend answers; work is queued until one does (start `ollama serve`, or add one under backends:)' }),
          },
          ready ? 200 : 503,
        )
      },
    },
    {
      method: 'GET',
      path: '/stats',
      handler: async ({ deps }) => {
        const s = deps.engine.scheduler.stats()
        const counts = await deps.tasks.counts()
        return json({
          requests: s.requests,
          queued: s.queued + counts.queued,
          errors: s.errors + deps.engine.counters.call_errors,
          queue_timeouts: s.queue_timeouts,
          pool_saturated: s.pool_saturated,
          // Backends (the names predate pools): known, usable with a free slot, usable with a call in flight.
          workers: s.workers,
          available: s.available,
          busy: s.busy,
          inflight: s.inflight,
          slots: s.slots,
          slots_busy: s.slots_busy,
          limits: effectiveLimits(deps.engine.backends(), deps.config),
          tasks: counts,
          cache: { hits: deps.engine.counters.cache_hits, misses: deps.engine.counters.cache_misses },
          ...(deps.runners ? { cluster: { bus: 'redis', instance: deps.instance, runners: await deps.runners.list() } } : {}),
        })
      },
    },
  ]
}

function uptime(deps: AppDeps): number {
  return Math.round((Date.now() - deps.startedAt) / 1000)
}
