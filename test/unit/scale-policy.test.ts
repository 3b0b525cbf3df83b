/** The autoscaling policy on recorded traces (src/scale/policy.ts): pure, so each trace replays exactly. */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { decide, emptyMemory, type PoolSample, type ScalePolicy } from '../../src/scale/policy.ts'

const POLICY: ScalePolicy = {
  min: 1,
  max: 8,
  targetPerWorker: 2,
  tolerance: 0.1,
  downWindowMs: 300_000,
  idleMs: 600_000,
  activation: 0,
  cpuThreshold: 80,
  memoryThreshold: 75,
}

interface Step {
  at: number
  queued: number
  inflight?: number
  cpu?: number
}

/**
 * Replays a trace: each step samples the pool as the previous decisions left it (every worker asked for is
 * ready by the next step, unless `startingLag`), and returns the decisions.
 */
function replay(trace: Step[], policy: ScalePolicy = POLICY, start = 1): number[] {
  let memory = emptyMemory()
  let current = start
  const out: number[] = []
  for (const step of trace) {
    const sample: PoolSample = { queued: step.queued, inflight: step.inflight ?? 0, ready: current, current, cpuPercent: step.cpu }
    const decision = decide(sample, policy, memory, step.at)
    memory = decision.memory
    current = decision.desired
    out.push(current)
  }
  return out
}

const every = (seconds: number, loads: number[]) => loads.map((queued, i) => ({ at: i * seconds * 1000, queued }))

describe('autoscaling policy on traces', () => {
  test('a rising queue scales up within one evaluation, to ceil(load / target)', () => {
    expect(replay(every(5, [0, 2, 9, 16]))).toEqual([1, 1, 5, 8])
    const d = decide({ queued: 9, inflight: 1, ready: 1, current: 1 }, POLICY, emptyMemory(), 0)
    expect(d.desired).toBe(5)
    expect(d.reason).toContain('ceil(10 / 2)')
  })

  test('a spike then silence scales down only after the window, to the highest recommendation in it', () => {
    // 16 waiting at t=0, then 2 every 5 s: held at 8 for 300 s, then down to ceil(2/2) = 1.
    const loads = [16, ...Array.from({ length: 70 }, () => 2)]
    const out = replay(every(5, loads))
    const at = (s: number) => out[s / 5] as number
    expect(at(0)).toBe(8)
    expect(at(295)).toBe(8)
    expect(at(300)).toBe(1)
    expect(out.slice(61)).toEqual(Array.from({ length: out.length - 61 }, () => 1))
  })

  test('noise around the target never flaps: within the tolerance nothing changes', () => {
    // 4 workers × 2 = 8; loads within ±10% of it.
    const noisy = [8, 8.5, 7.4, 8.7, 7.3, 8, 8.6, 7.5, 8.1]
    expect(replay(every(5, noisy), POLICY, 4)).toEqual(noisy.map(() => 4))
  })

  test('noise beyond the tolerance may scale up, but never down and up again inside the window', () => {
    const loads = Array.from({ length: 60 }, (_, i) => (i % 2 ? 6 : 11))
    const out = [4, ...replay(every(5, loads), POLICY, 4)]
    let changes = 0
    for (let i = 1; i < out.length; i++) if (out[i] !== out[i - 1]) changes++
    expect(changes).toBe(1)
    expect(out.at(-1)).toBe(6)
  })

  test('never above max nor below min, whatever the trace', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ queued: fc.nat(200), inflight: fc.nat(50), cpu: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }) }),
          {
            minLength: 1,
            maxLength: 80,
          },
        ),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 3, max: 12 }),
        (steps, min, max) => {
          const policy = { ...POLICY, min, max, idleMs: 20_000, downWindowMs: 15_000 }
          const out = replay(
            steps.map((s, i) => ({ ...s, at: i * 5000 })),
            policy,
            min,
          )
          return out.every((n) => n >= min && n <= max)
        },
      ),
      { numRuns: 300 },
    )
  })

  test('from zero: any load wakes the pool; idle past scale_down_idle goes back to min 0', () => {
    const policy = { ...POLICY, min: 0, idleMs: 60_000 }
    const trace = [
      { at: 0, queued: 0 },
      { at: 5000, queued: 1 },
      { at: 10_000, queued: 0, inflight: 1 },
      { at: 15_000, queued: 0 },
      { at: 70_000, queued: 0 },
      { at: 75_000, queued: 0 },
    ]
    expect(replay(trace, policy, 0)).toEqual([0, 1, 1, 1, 0, 0])
    const idle = decide({ queued: 0, inflight: 0, ready: 1, current: 1 }, policy, { recent: [], lastBusyAt: 10_000 }, 70_000)
    expect(idle.reason).toContain('no load for 60 s')
  })

  test('a pool that just started is not idle: its scale_down_idle counts from its start', () => {
    const policy = { ...POLICY, min: 0, idleMs: 60_000 }
    const started = emptyMemory(1000)
    expect(decide({ queued: 0, inflight: 0, ready: 1, current: 1 }, policy, started, 5000).desired).toBe(1)
    expect(decide({ queued: 0, inflight: 0, ready: 1, current: 1 }, policy, started, 61_000).desired).toBe(0)
  })

  test('machine CPU above its threshold recommends more workers; below it, the queue decides', () => {
    const hot = decide({ queued: 4, inflight: 0, ready: 2, current: 2, cpuPercent: 96 }, POLICY, emptyMemory(), 0)
    expect(hot.desired).toBe(3)
    expect(hot.reason).toContain('cpu 96% over 80%')
    const cool = decide({ queued: 4, inflight: 0, ready: 2, current: 2, cpuPercent: 50 }, POLICY, emptyMemory(), 0)
    expect(cool.desired).toBe(2)
  })

  test('workers still starting carry nothing: the load is measured against ready workers only', () => {
    // 3 asked for, 1 ready, load 6: ×3 of target on the ready one → ceil(6 / 2) = 3, not "within tolerance of 3 × 2".
    const d = decide({ queued: 5, inflight: 1, ready: 1, current: 3 }, POLICY, emptyMemory(), 0)
    expect(d.desired).toBe(3)
    expect(d.reason).toContain('1 ready of 3')
  })
})
