/** The autoscaling keys in the config: a pool's bounds, with their defaults from resource_management, must be satisfiable. */
import { describe, expect, test } from 'bun:test'
import { validateData } from '../../src/config/validate.ts'
import { poolScale } from '../../src/scale/autoscaler.ts'

const pool = (extra: Record<string, unknown> = {}) => ({ name: 'gen', profile: 'command', command: ['srv', '{port}'], ...extra })
const issuesOf = (data: unknown) => validateData(data).issues.map((i) => `${i.segments.join('.')}: ${i.message}`)

describe('autoscaling bounds', () => {
  test('min_workers above max_workers is refused naming the pool key, with where each value came from', () => {
    expect(issuesOf({ pools: [pool({ min_workers: 3, max_workers: 2 })] })).toEqual([
      'pools.0.min_workers: must allow min_workers <= max_workers; min_workers is 3, max_workers is 2',
    ])
    expect(
      issuesOf({ infrastructure_system: { resource_management: { max_agent_runners: 2 } }, pools: [pool({ min_workers: 3 })] }),
    ).toEqual([
      'pools.0.min_workers: must allow min_workers <= max_workers; min_workers is 3, max_workers is 2 from resource_management.max_agent_runners',
    ])
    expect(
      issuesOf({ infrastructure_system: { resource_management: { min_agent_runners: 4 } }, pools: [pool({ max_workers: 3 })] }),
    ).toEqual([
      'pools.0.max_workers: must allow min_workers <= max_workers; max_workers is 3, min_workers is 4 from resource_management.min_agent_runners',
    ])
    expect(issuesOf({ pools: [pool({ min_workers: 2, max_workers: 2 })] })).toEqual([])
  })

  test('each key changes the bounds: min, max, target, idle, and pool_size as the start within them', () => {
    const { config } = validateData({
      infrastructure_system: { resource_management: { min_agent_runners: 0, max_agent_runners: 6 } },
      runtime: { ollama: { concurrency: 3 } },
      pools: [
        pool({ api: 'ollama', pool_size: 9 }),
        pool({ name: 'b', min_workers: 2, max_workers: 4, target_per_worker: 1.5, scale_down_idle: '90s', pool_size: 1 }),
      ],
    })
    if (!config) throw new Error('the config did not validate')
    expect(poolScale(config, config.pools[0] as (typeof config.pools)[number])).toEqual({
      min: 0,
      max: 6,
      targetPerWorker: 3,
      idleMs: 300_000,
      initial: 6,
    })
    expect(poolScale(config, config.pools[1] as (typeof config.pools)[number])).toEqual({
      min: 2,
      max: 4,
      targetPerWorker: 1.5,
      idleMs: 90_000,
      initial: 2,
    })
  })
})
