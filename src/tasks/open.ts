/**
 * The task queue and event bus a process runs on, from the config: on one machine (event_bus_type:
 * local_memory) the sqlite queue in state.db and the in-process bus, fed by the queue's events; in a
 * cluster (event_bus_type: redis) the Redis queue and the cluster's stream, with the runner registry. Both
 * orch serve and orch worker open it here, so they always agree on where the work is.
 */
import type { Redis } from 'ioredis'
import type { Backend } from '../backends/types.ts'
import { type EventBus, LocalBus } from '../bus/local.ts'
import { RedisBus } from '../bus/redis.ts'
import { createCache, type ResponseCache } from '../cache/index.ts'
import type { OrchConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import { BreakerSync } from '../scheduler/breaker-sync.ts'
import { Engine } from '../scheduler/engine.ts'
import type { Store } from '../store/db.ts'
import { connectRedis, type RedisSettings, redactUrl, redisSettings, usesRedis } from '../store/redis.ts'
import { type TaskQueue, taskQueueOptions } from './queue.ts'
import { RedisTaskQueue } from './redis.ts'
import { SqliteTaskQueue } from './sqlite.ts'
import { RunnerRegistry } from './workers.ts'

export interface TaskBacking {
  tasks: TaskQueue
  bus: EventBus
  /** Set in a cluster: the Redis connection, its settings and the runner registry. */
  cluster?: { client: Redis; settings: RedisSettings; registry: RunnerRegistry }
  /** Stops the bus and closes the queue and the connections (not the store: it is the caller's). */
  close(): Promise<void>
}

export async function openTaskBacking(
  config: OrchConfig,
  store: Store,
  env: Record<string, string | undefined> = process.env,
): Promise<TaskBacking> {
  if (!usesRedis(config)) {
    const tasks = new SqliteTaskQueue(store, taskQueueOptions(config))
    const bus = new LocalBus(10_000, Date.now())
    tasks.onEvent(({ task, change }) => bus.publish('task', taskEventData(task, change)))
    return { tasks, bus, close: () => tasks.close() }
  }
  const settings = redisSettings(config, env)
  const client = connectRedis(settings, { name: 'orch' })
  const reader = connectRedis(settings, { name: 'orch-events', commandTimeoutMs: 0 })
  const tasks = new RedisTaskQueue({ client, url: settings.url, prefix: settings.prefix }, taskQueueOptions(config))
  const bus = new RedisBus({ client, reader, prefix: settings.prefix })
  await whenReachable(client, settings)
  // Redis down at start: the bus reads from the beginning once it is back.
  await bus
    .start()
    .catch((error: unknown) => logger('store').warn(`event stream: ${(error as Error).message}; following it once Redis answers`))
  return {
    tasks,
    bus,
    cluster: { client, settings, registry: new RunnerRegistry(client, settings.prefix) },
    async close() {
      await bus.stop()
      await tasks.close()
      client.disconnect()
    },
  }
}

/** What a task event says on the bus: the task's id, its change and its state, not its payload. */
export function taskEventData(
  task: { id: string; state: string; type: string; model: string | null; tenant: string; attempts: number; idempotency_key: string | null },
  change: string,
) {
  const { id, state, type, model, tenant, attempts, idempotency_key } = task
  return { id, change, state, type, model, tenant, attempts, idempotency_key }
}

/** Wait a little for the first connection, so a start with Redis up begins connected; never fail on it. */
async function whenReachable(client: Redis, settings: RedisSettings): Promise<void> {
  if (client.status === 'ready') return
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 3000)
    client.once('ready', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
  if (!ready) logger('store').warn(`Redis at ${redactUrl(settings.url)} does not answer yet; orch goes on and connects when it does`)
}

/**
 * The engine of a process (serve or worker), started: its configured backends (or `backends`, in tests),
 * health checks every `healthIntervalMs` (5 s), and in a cluster the cache and breakers it shares.
 */
export async function startEngine(
  backing: TaskBacking,
  config: OrchConfig,
  options: { backends?: Backend[] | undefined; healthIntervalMs?: number | undefined } = {},
): Promise<Engine> {
  const engine = new Engine({
    config,
    ...clusterEngineParts(backing, config),
    ...(options.backends ? { backends: options.backends } : {}),
    healthIntervalMs: options.healthIntervalMs ?? 5000,
  })
  await engine.start()
  return engine
}

/**
 * In a cluster, what the engine shares with the other instances: the response cache on Redis (with
 * cache_backend: redis) and the breakers of the configured backends. On one machine: nothing.
 */
function clusterEngineParts(backing: TaskBacking, config: OrchConfig): { cache?: ResponseCache | null; breakerSync?: BreakerSync } {
  const { cluster } = backing
  if (!cluster) return {}
  const caching = config.infrastructure_system.llm_orchestration.caching
  const redis = { client: cluster.client, settings: cluster.settings }
  return {
    ...(caching.cache_backend === 'redis' ? { cache: createCache(caching, process.cwd(), redis) ?? null } : {}),
    breakerSync: new BreakerSync(redis),
  }
}
