/**
 * Pools with their autoscaler, as orch serve and orch worker start them: the bounds checked first (a
 * min_workers above max_workers stops the start with the key named), each pool started at pool_size within
 * its bounds, then the autoscaler (docs/scaling.md#autoscaling).
 */
import type { OrchConfig } from '../config/schema.ts'
import { type RunningPools, startPools } from '../pool/start.ts'
import { workerEventData } from '../pool/status.ts'
import type { Scheduler } from '../scheduler/scheduler.ts'
import type { Store } from '../store/db.ts'
import type { TaskBacking } from '../tasks/open.ts'
import { Autoscaler, poolScale, scaleMode } from './autoscaler.ts'

export interface ScaledPools {
  pools: RunningPools
  autoscaler: Autoscaler
  stop(): Promise<void>
}

/** Refuses (ConfigError, naming the key) pools whose autoscaling bounds cannot be met; call before starting anything. */
export function checkScaleBounds(config: OrchConfig): void {
  for (const pool of config.pools) poolScale(config, pool)
}

export async function startScaledPools(sources: {
  config: OrchConfig
  home: string
  store: Store
  scheduler: Scheduler
  /** The queue (durable tasks are part of a pool's load), the bus, and in a cluster the runners' heartbeats. */
  backing: Pick<TaskBacking, 'tasks' | 'bus' | 'cluster'>
}): Promise<ScaledPools | undefined> {
  const { config, backing } = sources
  const scaled = scaleMode(config) !== 'off'
  checkScaleBounds(config)
  const pools = await startPools({
    config,
    home: sources.home,
    store: sources.store,
    scheduler: sources.scheduler,
    ...(scaled ? { initialSize: (pool) => poolScale(config, pool).initial } : {}),
    onWorkerState: (worker) => backing.bus.publish('worker', workerEventData(worker)),
  })
  if (!pools) return undefined
  const runners = backing.cluster?.registry
  const autoscaler = new Autoscaler({
    config,
    target: pools.supervisor,
    scheduler: sources.scheduler,
    tasks: backing.tasks,
    bus: backing.bus,
    ...(runners ? { runners } : {}),
  })
  autoscaler.start()
  return {
    pools,
    autoscaler,
    async stop() {
      autoscaler.stop()
      await pools.stop()
    },
  }
}
