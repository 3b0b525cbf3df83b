import { describe, expect, test } from 'bun:test'
import { erlangB, erlangC, queueStats } from '../../src/capacity/erlang.ts'
import { type CapacityFlags, parseCapacityFlags } from '../../src/capacity/parse.ts'
import { type CapacityInput, MAX_SERVERS, planCapacity, recommendHardware } from '../../src/capacity/plan.ts'
import { parseDurationSeconds } from '../../src/core/duration.ts'
import { UsageError } from '../../src/core/errors.ts'

const example: CapacityInput = { tasksPerHour: 100, durationHours: 0.1, concurrency: 2, efficiency: 0.8, headroom: 0.3, peak: 2 }
/** A stand-in for the config's runtime.ollama.concurrency. */
function fromConfig(value: unknown = 2) {
  return () => ({ value, source: 'runtime.ollama.concurrency' })
}

/**
 * Erlang C in exact rational arithmetic, independent of the recursion under test. With A = p/q, every term
 * A^k/k! is scaled by q^c·c! into the integer p^k·q^(c−k)·c!/k!, and the queue term's c/(c−A) by (cq − p).
 */
function exactErlangC(c: number, p: bigint, q: bigint): number {
  const terms: bigint[] = []
  let falling = 1n // c!/k!
  for (let k = c; k >= 0; k--) {
    terms[k] = p ** BigInt(k) * q ** BigInt(c - k) * falling
    falling *= BigInt(k)
  }
  const last = (terms[c] as bigint) * BigInt(c) * q
  const below = terms.slice(0, c).reduce((sum, t) => sum + t, 0n)
  const scale = 10n ** 30n
  return Number((last * scale) / ((BigInt(c) * q - p) * below + last)) / 1e30
}

/** Mulberry32: a seeded generator, so the simulation is the same on every run. */
function random(seedValue: number): () => number {
  let a = seedValue >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** FIFO M/M/c by direct simulation: each arrival takes the server that frees up first. */
function simulateWaits(servers: number, load: number, arrivals: number): number[] {
  const next = random(42)
  const exp = (mean: number) => -Math.log(1 - next()) * mean
  const free = new Array<number>(servers).fill(0)
  const waits: number[] = []
  let now = 0
  for (let n = 0; n < arrivals; n++) {
    now += exp(1 / load) // service mean 1, so the arrival rate is `load`
    let k = 0
    for (let j = 1; j < servers; j++) if ((free[j] as number) < (free[k] as number)) k = j
    const start = Math.max(now, free[k] as number)
    waits.push(start - now)
    free[k] = start + exp(1)
  }
  return waits
}

describe('sizing formula', () => {
  test('100 tasks/h × 0.1 h ÷ (2 × 0.8) = 6.25 → 7; headroom 8.125 → 9; peak 16.25 → 17', () => {
    const { requiredRaw, requiredInstances, withHeadroomRaw, withHeadroom, atPeakRaw, atPeak } = planCapacity(example)
    expect([requiredRaw, requiredInstances, withHeadroomRaw, withHeadroom, atPeakRaw, atPeak]).toEqual([6.25, 7, 8.125, 9, 16.25, 17])
  })

  test('floating-point noise does not buy an extra instance', () => {
    // 49 × 0.1 ÷ 0.7 is 7.000000000000001 in doubles: a bare ceil says 8.
    expect(Math.ceil((49 * 0.1) / (1 * 0.7))).toBe(8)
    const plan = planCapacity({ ...example, tasksPerHour: 49, concurrency: 1, efficiency: 0.7, headroom: 0 })
    expect(plan.requiredRaw).toBe(7)
    expect(plan.requiredInstances).toBe(7)
    expect(plan.withHeadroom).toBe(7)
    // 100 × 1.1 is 110.00000000000001: headroom rounds once, after the noise is gone.
    expect(Math.ceil(100 * 1.1)).toBe(111)
    const headroom = planCapacity({
      ...example,
      tasksPerHour: 100,
      durationHours: 1,
      concurrency: 1,
      efficiency: 1,
      headroom: 0.1,
      peak: 1,
    })
    expect(headroom.withHeadroom).toBe(110)
    expect(headroom.atPeak).toBe(110)
  })

  test('a raw value just above an integer still rounds up', () => {
    const plan = planCapacity({ ...example, tasksPerHour: 70.01, durationHours: 0.1, concurrency: 1, efficiency: 1 })
    expect(plan.requiredRaw).toBe(7.001)
    expect(plan.requiredInstances).toBe(8)
  })

  test('zero headroom and a flat peak give the formula count', () => {
    const plan = planCapacity({ ...example, headroom: 0, peak: 1 })
    expect([plan.requiredInstances, plan.withHeadroom, plan.atPeak]).toEqual([7, 7, 7])
  })
})

describe('hardware per instance', () => {
  test('the hardware table: 1-2, 3-4 and 5-8 concurrent tasks', () => {
    expect([1, 2, 3, 4, 5, 8].map((c) => recommendHardware(c).tier?.concurrency)).toEqual(['1-2', '1-2', '3-4', '3-4', '5-8', '5-8'])
    expect(recommendHardware(2).tier).toEqual({ concurrency: '1-2', cpuCores: '4-8', ramGb: 16, vramGb: 8 })
    expect(recommendHardware(8).split).toBeNull()
    expect(recommendHardware(4).tier).toEqual({ concurrency: '3-4', cpuCores: '8-16', ramGb: 32, vramGb: 12 })
    expect(recommendHardware(5).tier).toEqual({ concurrency: '5-8', cpuCores: '16-32', ramGb: 64, vramGb: 24 })
  })

  test('beyond the table: no tier, and a split into the fewest parts that fit', () => {
    const twelve = recommendHardware(12)
    expect(twelve.tier).toBeNull()
    expect(twelve.split).toEqual({ parts: 2, concurrency: 6, tier: { concurrency: '5-8', cpuCores: '16-32', ramGb: 64, vramGb: 24 } })
    expect(recommendHardware(9).split?.concurrency).toBe(5)
    expect(recommendHardware(17).split).toMatchObject({ parts: 3, concurrency: 6 })
  })
})

describe('Erlang C', () => {
  test('textbook values: c = 2, A = 1 gives 1/3; c = 1 gives ρ; Erlang B(1) = A/(1+A)', () => {
    expect(erlangC(2, 1)).toBeCloseTo(1 / 3, 14)
    for (const rho of [0.1, 0.5, 0.9, 0.999]) expect(erlangC(1, rho)).toBeCloseTo(rho, 14)
    expect(erlangB(1, 3)).toBeCloseTo(0.75, 14)
  })

  test('M/M/2 closed form C = 2ρ²/(1 + ρ)', () => {
    for (const rho of [0.25, 0.75, 0.95]) expect(erlangC(2, 2 * rho)).toBeCloseTo((2 * rho * rho) / (1 + rho), 14)
  })

  // c servers : offered load A as a fraction p/q.
  test.each(['5:3/1', '10:8/1', '14:25/2', '50:45/1', '100:191/2', '1000:990/1'])('matches exact rational arithmetic at %s', (text) => {
    const [c, p, q] = text.split(/[:/]/).map(Number) as [number, number, number]
    const exact = exactErlangC(c, BigInt(p), BigInt(q))
    expect(exact).toBeGreaterThan(0)
    expect(Math.abs(erlangC(c, p / q) - exact) / exact).toBeLessThan(1e-12)
  })

  test('thousands of servers and a load next to c stay finite', () => {
    const loads: Record<number, number> = { 5000: 4990, 20000: 19999.999, 3000: 1, 1000: 999.999999 }
    for (const [c, load] of Object.entries(loads)) {
      const stats = queueStats(Number(c), load, 60)
      expect(stats.stable).toBe(true)
      expect(Number.isFinite(stats.pWait) && stats.pWait >= 0 && stats.pWait <= 1).toBe(true)
      expect(Number.isFinite(stats.meanWaitSeconds)).toBe(true)
      expect(Number.isFinite(stats.percentileWaitSeconds)).toBe(true)
    }
    expect(queueStats(1000, 999.999999, 60).pWait).toBeGreaterThan(0.999)
  })

  test('M/M/1: mean wait ρ/(μ−λ) and P(W > t95) = ρ·e^{−(μ−λ)·t95} = 5%', () => {
    const stats = queueStats(1, 0.5, 1) // μ = 1/s, λ = 0.5/s
    expect(stats.meanWaitSeconds).toBeCloseTo(1, 12)
    expect(stats.percentileWaitSeconds).toBeCloseTo(2 * Math.log(10), 12)
    expect(0.5 * Math.exp(-0.5 * stats.percentileWaitSeconds)).toBeCloseTo(0.05, 12)
    // When at most 5% of tasks wait at all, the 95th percentile wait is zero.
    expect(queueStats(1, 0.04, 1).percentileWaitSeconds).toBe(0)
  })

  test('the formulas agree with a simulated M/M/4 queue at 75% utilisation', () => {
    const waits = simulateWaits(4, 3, 400_000).sort((a, b) => a - b)
    const stats = queueStats(4, 3, 1)
    const mean = waits.reduce((s, w) => s + w, 0) / waits.length
    const waited = waits.filter((w) => w > 0).length / waits.length
    expect(Math.abs(waited - stats.pWait)).toBeLessThan(0.02)
    expect(Math.abs(mean - stats.meanWaitSeconds) / stats.meanWaitSeconds).toBeLessThan(0.08)
    const p95 = waits[Math.floor(0.95 * waits.length)] as number
    expect(Math.abs(p95 - stats.percentileWaitSeconds) / stats.percentileWaitSeconds).toBeLessThan(0.08)
  })

  test('an unstable queue reports unbounded waits, never NaN', () => {
    for (const load of [4, 5, 1e6]) {
      const stats = queueStats(4, load, 60)
      expect(stats).toMatchObject({ stable: false, pWait: 1, meanWaitSeconds: Number.POSITIVE_INFINITY })
      expect(stats.percentileWaitSeconds).toBe(Number.POSITIVE_INFINITY)
      expect(stats.utilisation).toBe(load / 4)
    }
  })
})

describe('queueing plan', () => {
  test('utilisation at n instances is required_raw ÷ n (service time is duration ÷ efficiency)', () => {
    const q = planCapacity(example).queueing
    expect(q.serviceSeconds).toBe(450)
    expect(q.loadErlangs).toBe(12.5)
    expect(q.candidates.map((r) => r.instances)).toEqual([7, 8, 9, 10, 11])
    for (const row of q.candidates) expect(row.utilisation).toBeCloseTo(6.25 / row.instances, 12)
    expect(q.atPeak).toMatchObject({ instances: 17, servers: 34 })
    expect(q.atPeak?.utilisation).toBeCloseTo(25 / 34, 12)
  })

  test('an integral formula count is shown, and is unstable (100% busy)', () => {
    const q = planCapacity({ ...example, tasksPerHour: 140, efficiency: 1 }).queueing // raw = 7 exactly
    const [first, second] = q.candidates
    expect(first).toMatchObject({ instances: 7, stable: false, utilisation: 1 })
    expect(second).toMatchObject({ instances: 8, stable: true })
  })

  test.each([
    [example, 30, 10],
    [{ ...example, tasksPerHour: 1000, durationHours: 2 / 60, concurrency: 4, efficiency: 0.9 }, 5, undefined],
    [{ ...example, tasksPerHour: 50, durationHours: 0.5, concurrency: 1 }, 600, undefined],
  ])('--target-wait picks the smallest count whose p95 wait meets it', (input, target, expected) => {
    const q = planCapacity({ ...input, targetWaitSeconds: target }).queueing
    const n = q.recommendedInstances as number
    if (expected !== undefined) expect(n).toBe(expected)
    const p95 = (instances: number) => queueStats(instances * input.concurrency, q.loadErlangs, q.serviceSeconds).percentileWaitSeconds
    expect(p95(n)).toBeLessThanOrEqual(target)
    expect(p95(n - 1)).toBeGreaterThan(target)
    const rows = new Map(q.candidates.map((r) => [r.instances, r]))
    expect(rows.get(n)?.meetsTarget).toBe(true)
    expect(rows.get(n - 1)?.meetsTarget).toBe(false)
  })

  test('a loose target is met by the first stable count; no target leaves the pick empty', () => {
    expect(planCapacity({ ...example, targetWaitSeconds: 86_400 }).queueing.recommendedInstances).toBe(7)
    const none = planCapacity(example).queueing
    expect(none.recommendedInstances).toBeNull()
    expect(none.candidates.every((r) => r.meetsTarget === null)).toBe(true)
  })

  test('a long table keeps its first rows and those around with_headroom, ascending', () => {
    const q = planCapacity({ ...example, headroom: 100 }).queueing
    expect(q.candidates.length).toBeLessThanOrEqual(30)
    const counts = q.candidates.map((r) => r.instances)
    expect(counts.slice(0, 10)).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
    expect(counts.slice(10)).toEqual([630, 631, 632, 633, 634]) // around with_headroom = ⌈6.25 × 101⌉ = 632
  })

  test('loads beyond the analysed range are skipped, with the reason', () => {
    const q = planCapacity({ ...example, tasksPerHour: 2 * MAX_SERVERS, durationHours: 1 }).queueing
    expect(q.candidates).toEqual([])
    expect(q.skipped).toContain('erlangs')
  })
})

describe('flags', () => {
  const durations: Record<string, number> = { '0.1': 0.1, '6m': 0.1, '90s': 0.025, '1.5h': 1.5, '2h30m': 2.5, '1h1m1s': 3661 / 3600 }
  test.each(Object.entries(durations))('--duration %s is %d hours', (text, hours) => {
    const input = parseCapacityFlags({ tasks: '100', duration: text, concurrency: '2' }, fromConfig())
    expect(input.durationHours).toBeCloseTo(hours, 12)
  })

  const waits: Record<string, number> = { '30s': 30, '2m': 120, '500ms': 0.5, '45': 45, '1m30s': 90, '0.5': 0.5 }
  test.each(Object.entries(waits))('--target-wait %s is %d seconds', (text, seconds) => {
    expect(parseDurationSeconds(text, 1)).toBeCloseTo(seconds, 12)
    const input = parseCapacityFlags({ tasks: '1', duration: '1', concurrency: '1', 'target-wait': text }, fromConfig())
    expect(input.targetWaitSeconds).toBeCloseTo(seconds, 12)
  })

  test('defaults are the example: efficiency 0.8, headroom 0.3, peak 2, concurrency from the config', () => {
    const input = parseCapacityFlags({ tasks: '100', duration: '6m' }, fromConfig(4))
    expect(input).toMatchObject({ concurrency: 4, efficiency: 0.8, headroom: 0.3, peak: 2, targetWaitSeconds: undefined })
  })

  test('the config is not read when --concurrency is given', () => {
    const input = parseCapacityFlags({ tasks: '100', duration: '6m', concurrency: '3' }, () => {
      throw new Error('config read')
    })
    expect(input.concurrency).toBe(3)
  })

  const base = { tasks: '100', duration: '0.1', concurrency: '2' }
  const rejection = (flags: CapacityFlags): UsageError => {
    try {
      parseCapacityFlags({ ...base, ...flags }, fromConfig())
    } catch (error) {
      if (error instanceof UsageError) return error
      throw error
    }
    throw new Error(`accepted ${JSON.stringify(flags)}`)
  }
  const bad: Record<keyof CapacityFlags, string[]> = {
    tasks: ['0', '-5', 'lots', '', 'Infinity', '0x10'],
    duration: ['0', '0m', '-6m', '6x', '30m2h', '1m1m', 'm'],
    concurrency: ['0', '2.5', '-1', 'two', '10001'],
    efficiency: ['1.5', '0', '-0.2', 'high'],
    headroom: ['-0.1', 'x'],
    peak: ['0.5', '0'],
    'target-wait': ['0s', 'soon', '-1'],
  }
  test.each(Object.entries(bad).flatMap(([flag, values]) => values.map((value) => [flag, value])))(
    '--%s %p exits 2, naming the flag and the value',
    (flag, value) => {
      const error = rejection({ [flag]: value })
      expect(error.exitCode).toBe(2)
      expect(error.message).toStartWith(`--${flag}: expected `)
      expect(error.message).toEndWith(`got "${value}"`)
    },
  )

  test.each([
    [{ efficiency: '1.5' }, '--efficiency: expected a number in (0, 1], got "1.5"'],
    [{ concurrency: '0' }, '--concurrency: expected a whole number from 1 to 10000, got "0"'],
    [{ headroom: '-0.1' }, '--headroom: expected a number ≥ 0'],
    [{ peak: '0.5' }, '--peak: expected a number ≥ 1'],
    [{ tasks: undefined }, '--tasks: required'],
    [{ duration: undefined }, '--duration: required'],
    [{ tasks: '1e12', duration: '1000' }, '--tasks × --duration: the workload would need'],
  ])('%o → %s', (flags, message) => {
    expect(rejection(flags).message).toStartWith(message)
  })

  test('a bad concurrency in the config names the key', () => {
    expect(() => parseCapacityFlags({ tasks: '100', duration: '6m' }, fromConfig(0))).toThrow(
      'runtime.ollama.concurrency (the default for --concurrency): expected a whole number',
    )
  })
})
