/** The autoscaler around the policy (src/scale/autoscaler.ts): modes, the standby it offers, how often demand wakes it. */
import { describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import { configureLogging } from '../../src/core/log.ts'
import { Autoscaler } from '../../src/scale/autoscaler.ts'
import type { Standby } from '../../src/scheduler/scheduler.ts'

configureLogging({ level: 'none' })

function setup(mode: 'auto' | 'manual', enabled = true) {
  const { config } = validateData({
    infrastructure_system: {
      distributed_simulation: { orchestrator_mode: mode },
      resource_management: { auto_scaling_enabled: enabled, scale_interval_seconds: 60 },
    },
    pools: [
      { name: 'gen', profile: 'command', command: ['srv', '{port}'], models: ['m'], min_workers: 0, max_workers: 4, target_per_worker: 1 },
    ],
  })
  const standbys: Standby[] = []
  let evaluations = 0
  const asked: number[] = []
  let current = 1
  const scaler = new Autoscaler({
    config: config ?? defaultConfig(),
    target: {
      poolFigures: () => {
        evaluations++
        return { current, ready: current, inflight: 0 }
      },
      scaleTo: async (_pool, n) => {
        asked.push(n)
        current = n
      },
    },
    scheduler: {
      waitingFor: () => ({ count: 3, oldestMs: 5 }),
      standby: (s) => {
        standbys.push(s)
        return () => standbys.splice(standbys.indexOf(s), 1)
      },
    },
    machine: () => ({}),
  })
  return { scaler, standbys, asked, evaluations: () => evaluations }
}

describe('the autoscaler', () => {
  test('auto: a pool that can grow stands by; requests waiting steadily wake it once per 100 ms, not once each', async () => {
    const { scaler, standbys, asked, evaluations } = setup('auto')
    scaler.start()
    expect(standbys).toHaveLength(1)
    expect(standbys[0]?.serves('m')).toBe(true)
    expect(standbys[0]?.serves('other')).toBe(false)
    const before = evaluations()
    // Requests waiting steadily for 300 ms, one every 5 ms: each wakes the autoscaler only past the gap.
    for (let i = 0; i < 60; i++) {
      standbys[0]?.onDemand('m')
      await Bun.sleep(5)
    }
    await Bun.sleep(120)
    const woken = evaluations() - before
    expect(woken).toBeGreaterThanOrEqual(2)
    expect(woken).toBeLessThanOrEqual(5)
    expect(asked).toEqual([3])
    scaler.stop()
    expect(standbys).toHaveLength(0)
  })

  test('manual: no standby, no decision of its own however loaded; set acts, within 0..max', async () => {
    const { scaler, standbys, asked } = setup('manual')
    scaler.start()
    expect(standbys).toHaveLength(0)
    await scaler.evaluate()
    expect(asked).toEqual([])
    expect(scaler.status().pools[0]?.decisions.every((d) => !d.applied)).toBe(true)
    await scaler.set('gen', 2)
    expect(asked).toEqual([2])
    await expect(scaler.set('gen', 5)).rejects.toThrow('0 to max_workers 4')
    scaler.stop()
  })

  test('off (autoscaling disabled, mode auto): nothing stands by and set is refused saying what to change', async () => {
    const { scaler, standbys } = setup('auto', false)
    scaler.start()
    expect(scaler.mode).toBe('off')
    expect(standbys).toHaveLength(0)
    await expect(scaler.set('gen', 2)).rejects.toThrow('autoscaling is off')
  })
})
