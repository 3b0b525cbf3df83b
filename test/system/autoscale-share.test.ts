/**
 * Autoscaling across machines: two machines' autoscalers facing one backlog in the cluster's Redis queue
 * each take their share (the due tasks ÷ the live runners with the pool), so together they ask for what
 * the backlog needs, not twice that. Real Redis, real queue and heartbeats; the pools are recorded, not run.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { configureLogging } from '../../src/core/log.ts'
import { Autoscaler } from '../../src/scale/autoscaler.ts'
import { connectRedis, waitReady } from '../../src/store/redis.ts'
import { taskQueueOptions } from '../../src/tasks/queue.ts'
import { RedisTaskQueue } from '../../src/tasks/redis.ts'
import { RunnerRegistry } from '../../src/tasks/workers.ts'
import { type RedisServer, startRedis } from '../helpers/redis-server.ts'

let redis: RedisServer
beforeAll(async () => {
  configureLogging({ level: 'error' })
  redis = await startRedis()
})
afterAll(() => redis.stop())

/** A pool that only records what it is asked: `current` workers, all ready. */
function recordedPool(start: number) {
  const asked: number[] = []
  let current = start
  return {
    asked,
    target: {
      poolFigures: () => ({ current, ready: current, inflight: 0 }),
      scaleTo: async (_: string, n: number) => {
        asked.push(n)
        current = n
      },
    },
  }
}

describe('autoscaling across machines', () => {
  test('two machines with the same pool split a backlog of 12 due tasks: 6 workers each, 12 in all', async () => {
    const { config: parsed, issues } = validateData({
      infrastructure_system: {
        resource_management: { auto_scaling_enabled: true },
        distributed_simulation: { enabled: true, event_bus_type: 'redis', redis_url: redis.url, redis_prefix: 'share' },
      },
      pools: [
        {
          name: 'gen',
          profile: 'command',
          command: ['model-server', '{port}'],
          models: ['m'],
          min_workers: 0,
          max_workers: 20,
          target_per_worker: 1,
        },
      ],
    })
    expect(issues).toEqual([])
    const config = parsed ?? defaultConfig()
    const settings = { url: redis.url, password: undefined, prefix: 'share' }
    const client = connectRedis(settings)
    await waitReady(client, settings)
    const queue = new RedisTaskQueue({ client, url: redis.url, prefix: 'share' }, taskQueueOptions(config))
    await queue.submitMany(Array.from({ length: 12 }, () => ({ type: 'chat', model: 'm' })))
    // Tasks for another model are not this pool's backlog.
    await queue.submitMany(Array.from({ length: 5 }, () => ({ type: 'chat', model: 'other' })))
    const registry = new RunnerRegistry(client, 'share')
    const base = { role: 'worker' as const, host: 'h', running: 0, concurrency: 8, started_at: Date.now(), pools: ['gen'] }
    await registry.beat({ ...base, id: 'h:1:a', pid: 1 })
    await registry.beat({ ...base, id: 'h:2:b', pid: 2 })
    const scheduler = { waitingFor: () => ({ count: 0, oldestMs: 0 }), standby: () => () => undefined }
    const machines = [recordedPool(1), recordedPool(1)]
    const scalers = machines.map((m) => new Autoscaler({ config, target: m.target, scheduler, tasks: queue, runners: registry }))
    for (const scaler of scalers) await scaler.evaluate()
    expect(machines.map((m) => m.asked)).toEqual([[6], [6]])
    // Alone, one machine would take the whole backlog.
    const alone = recordedPool(1)
    await new Autoscaler({ config, target: alone.target, scheduler, tasks: queue }).evaluate()
    expect(alone.asked).toEqual([12])
    // A machine whose heartbeat stopped no longer counts: the other takes all of it.
    await client.hdel('share:workers', 'h:2:b')
    await scalers[0]?.evaluate()
    expect(machines[0]?.asked).toEqual([6, 12])
    client.disconnect()
  })
})
