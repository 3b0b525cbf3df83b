/**
 * `orch worker`: a task runner for a cluster (event_bus_type: redis), with no HTTP server. It claims tasks
 * from the cluster's queue and runs them on this machine's backends and pools,
 * distributed_simulation.agent_runner_concurrency at a time, renewing each lease while the call runs. A
 * task cancelled anywhere in the cluster is aborted here at once (the cluster's event stream). It reports
 * itself every 2 s (orch status lists the workers). On stop it finishes what it runs within
 * graceful_shutdown_timeout_ms and hands the rest back to the queue untouched.
 */
import { hostname } from 'node:os'
import type { Backend } from '../backends/types.ts'
import type { OrchConfig } from '../config/schema.ts'
import { ConfigError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import { checkScaleBounds, startScaledPools } from '../scale/start.ts'
import { effectiveLimits, formatLimits, taskRunnerLimit } from '../scheduler/limits.ts'
import { openStore } from '../store/db.ts'
import { redactUrl, usesRedis } from '../store/redis.ts'
import { openTaskBacking, startEngine } from '../tasks/open.ts'
import { ownerId } from '../tasks/owner.ts'
import { TaskRunner } from '../tasks/runner.ts'
import { startHeartbeat } from '../tasks/workers.ts'

export interface WorkerOptions {
  config: OrchConfig
  home: string
  /** Instead of the configured backends (tests). */
  backends?: Backend[]
  healthIntervalMs?: number
}

export interface RunningWorker {
  /** Its lease owner, as orch status lists it. */
  id: string
  runner: TaskRunner
  /** Finish or hand back the tasks it runs (within `graceMs`), then close everything. */
  stop(graceMs?: number): Promise<void>
}

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { config } = options
  if (!usesRedis(config)) {
    throw new ConfigError(
      [
        {
          path: 'infrastructure_system.distributed_simulation.event_bus_type',
          message: 'orch worker takes tasks from a shared queue: set it to redis (with enabled: true and redis_url)',
        },
      ],
      { hint: 'on one machine, orch serve runs the tasks itself; see docs/scaling.md' },
    )
  }
  checkScaleBounds(config)
  const log = logger('scheduler')
  // This machine's own state (pool workers, their records) stays in its state directory.
  const store = openStore(options.home, { synchronous: config.tasks.synchronous })
  const backing = await openTaskBacking(config, store)
  const cluster = backing.cluster as NonNullable<typeof backing.cluster>
  const engine = await startEngine(backing, config, options)
  const scaled = await startScaledPools({
    config,
    home: options.home,
    store,
    scheduler: engine.scheduler,
    backing,
  })
  const id = ownerId(crypto.randomUUID().slice(0, 8))
  const limit = taskRunnerLimit(config).concurrency
  const runner = new TaskRunner({
    tasks: backing.tasks,
    engine,
    owner: id,
    leaseMs: config.tasks.lease_ms,
    limit,
    bus: backing.bus,
    claimServedModels: true,
  })
  await runner.start()
  const startedAt = Date.now()
  const heartbeat = startHeartbeat(cluster.registry, () => ({
    id,
    role: 'worker',
    host: hostname(),
    pid: process.pid,
    running: runner.activeCount,
    concurrency: limit,
    started_at: startedAt,
    pools: config.pools.map((p) => p.name),
  }))
  log.info(`orch worker ${id} taking tasks from ${redactUrl(cluster.settings.url)} (prefix ${cluster.settings.prefix})`)
  log.info(formatLimits(effectiveLimits(engine.backends(), config)))
  let stopped = false
  return {
    id,
    runner,
    async stop(graceMs = config.graceful_shutdown_timeout_ms) {
      if (stopped) return
      stopped = true
      await runner.stop(graceMs)
      await heartbeat.stop()
      await scaled?.stop()
      await engine.close()
      await backing.close()
      store.close()
    },
  }
}
