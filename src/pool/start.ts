/**
 * The pools of `orch serve`: the configured pools start in the background (the HTTP API does not wait for
 * model servers to come up), and their workers join the engine's scheduler as they turn healthy.
 */
import type { OrchConfig, PoolConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import type { Scheduler } from '../scheduler/scheduler.ts'
import type { Store } from '../store/db.ts'
import { detectGpus } from './gpu.ts'
import { Supervisor } from './supervisor.ts'
import type { Worker } from './worker.ts'

export interface PoolSources {
  config: OrchConfig
  /** The state directory: worker logs and the control socket live in it (src/core/home.ts). */
  home: string
  /** Worker records. */
  store: Store
  /** Healthy workers become backends here. */
  scheduler: Scheduler
  /** Workers a pool starts with (autoscaling); default pool_size. */
  initialSize?: (pool: PoolConfig) => number
  /** Each change of a worker's state (GET /events). */
  onWorkerState?: (worker: Worker) => void
}

export interface RunningPools {
  supervisor: Supervisor
  /** Stops every worker (they leave the scheduler first) and waits for the background start to end. */
  stop(): Promise<void>
}

/** Starts the configured pools; undefined when there are none. */
export async function startPools(sources: PoolSources): Promise<RunningPools | undefined> {
  const { config, home, store, scheduler, initialSize, onWorkerState } = sources
  if (config.pools.length === 0) return undefined
  const detection = await detectGpus()
  const gpus = detection.available ? detection.gpus : []
  const supervisor = new Supervisor({
    config,
    home,
    store,
    scheduler,
    gpus,
    ...(initialSize ? { initialSize } : {}),
    ...(onWorkerState ? { onWorkerState } : {}),
  })
  const starting = supervisor.start().catch((error: unknown) => logger('pool').error(`pools did not start: ${(error as Error).message}`))
  return {
    supervisor,
    async stop() {
      await supervisor.stop()
      await starting
    },
  }
}
