/**
 * Pools over HTTP (docs/http-api.md#pools-and-logs): `GET /pools` is every pool, its workers as `orch pool
 * status --json` shows them (read from the supervisor itself, not from state.db) and every backend the
 * scheduler routes to; `POST /pools/{pool}/restart` and `/stop` act on the whole pool or on the workers a
 * `{"workers": [...]}` body names, as `orch pool restart|stop` do, and answer 202 at once: the workers'
 * progress shows in GET /pools and in the `worker` events of GET /events.
 */
import * as v from 'valibot'
import { logger } from '../../core/log.ts'
import { poolStats, rowOfWorker, type WorkerStatus, workerStatus } from '../../pool/status.ts'
import { backendName, type Supervisor } from '../../pool/supervisor.ts'
import type { Worker } from '../../pool/worker.ts'
import { type AppDeps, httpError, json, type Route, type RouteContext, readJsonValue, validate } from '../http.ts'

// Strict: a misspelt key (`worker`) must not fall back to the whole pool.
const ActionBody = v.optional(
  v.strictObject(
    {
      workers: v.optional(
        v.pipe(
          v.array(v.pipe(v.string(), v.minLength(1, 'expected a worker id'))),
          v.minLength(1, 'expected at least one worker id (leave the field out for the whole pool)'),
          v.maxLength(1000),
        ),
      ),
    },
    'expected {"workers": [worker ids]}, or no body for the whole pool',
  ),
)

type Action = 'restart' | 'stop'

export function poolRoutes(): Route[] {
  return [
    { method: 'GET', path: '/pools', handler: async ({ deps }) => json(await poolsOf(deps)) },
    { method: 'POST', path: '/pools/:pool/restart', handler: (ctx) => act(ctx, 'restart') },
    { method: 'POST', path: '/pools/:pool/stop', handler: (ctx) => act(ctx, 'stop') },
  ]
}

/** The supervisor's workers, field for field as `orch pool status --json` prints their recorded rows. */
export function workersOf(supervisor: Supervisor | undefined, now = Date.now()): WorkerStatus[] {
  if (!supervisor) return []
  return workerStatus(
    supervisor.workers.map((w) => rowOfWorker(w, supervisor.runId)),
    now,
    () => true,
  )
}

async function poolsOf(deps: AppDeps) {
  const { pools: supervisor, engine } = deps
  const s = engine.scheduler.stats()
  const counts = await deps.tasks.counts()
  const workers = workersOf(supervisor)
  return {
    pools: deps.config.pools.map((pool) => {
      const figures = supervisor?.poolFigures(pool.name)
      return {
        pool: pool.name,
        profile: pool.profile,
        api: pool.api,
        models: pool.models,
        current: figures?.current ?? 0,
        ready: figures?.ready ?? 0,
        inflight: figures?.inflight ?? 0,
        workers: workers.filter((w) => w.pool === pool.name).map((w) => w.id),
      }
    }),
    workers,
    // The queue figures as GET /stats counts them (orch pool status reads them there).
    stats: poolStats(workers, {
      queued: s.queued + counts.queued,
      errors: s.errors + engine.counters.call_errors,
      queue_timeouts: s.queue_timeouts,
      pool_saturated: s.pool_saturated,
    }),
    backends: backendRows(deps),
  }
}

async function act(ctx: RouteContext, action: Action): Promise<Response> {
  const body = validate(ActionBody, await readJsonValue(ctx))
  const supervisor = ctx.deps.pools
  if (!supervisor) {
    throw httpError(409, `this orch serve runs no pools, so there is nothing to ${action} (add one under pools:)`, 'E_NO_POOLS')
  }
  const name = ctx.params.pool ?? ''
  const inPool = supervisor.pools.get(name)
  if (!inPool) {
    const known = [...supervisor.pools.keys()]
    throw httpError(404, `unknown pool "${name}" (pools: ${known.join(', ') || 'none'})`, 'E_POOL_NOT_FOUND')
  }
  const targets = selectWorkers(name, inPool, body?.workers)
  const work = action === 'restart' ? supervisor.restartWorkers(targets) : supervisor.stopWorkers(targets)
  // The answer does not wait: a restart lasts as long as the model server takes to load.
  void work.catch((error: unknown) => logger('pool').warn(`${action} of ${name}: ${(error as Error).message}`))
  const ids = new Set(targets.map((w) => w.id))
  return json({ pool: name, action, workers: workersOf(supervisor).filter((w) => w.pool === name && ids.has(w.id)) }, 202)
}

/** Every backend the scheduler routes to (pool workers once healthy), with the pool of each pool worker. */
export function backendRows(deps: AppDeps) {
  const poolOf = new Map((deps.pools?.workers ?? []).map((w) => [backendName(w), w.settings.pool.name]))
  return deps.engine.backends().map((b) => ({
    name: b.name,
    url: b.backend.url,
    pool: poolOf.get(b.name) ?? null,
    healthy: b.healthy ?? null,
    breaker: b.breaker.state,
    inflight: b.inflight,
    concurrency: b.concurrency,
    served: b.served,
    draining: b.draining,
    suspended: b.suspended,
  }))
}

function selectWorkers(pool: string, workers: Worker[], ids: string[] | undefined): Worker[] {
  if (ids === undefined) return workers
  const unknown = ids.filter((id) => !workers.some((w) => w.id === id))
  if (unknown.length > 0) {
    throw httpError(
      404,
      `unknown worker${unknown.length > 1 ? 's' : ''} ${unknown.map((id) => `"${id.slice(0, 80)}"`).join(', ')} in pool "${pool}" (workers: ${workers.map((w) => w.id).join(', ') || 'none'})`,
      'E_WORKER_NOT_FOUND',
      { field: 'workers' },
    )
  }
  return workers.filter((w) => ids.includes(w.id))
}
