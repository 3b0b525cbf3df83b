import { describe, expect, test } from 'bun:test'
import { OrchError } from '../../src/core/errors.ts'
import { CircuitBreaker } from '../../src/scheduler/breaker.ts'
import { DRAIN_MARGIN, Scheduler, type SchedulerOptions, type Slot } from '../../src/scheduler/scheduler.ts'
import { statusOf } from '../../src/server/http.ts'
import { type StubBackend, stubBackend } from '../helpers/stub-backend.ts'

function scheduler(
  backends: Array<{ backend: StubBackend; concurrency: number; configuredModels?: string[] }>,
  extra: Partial<SchedulerOptions> = {},
) {
  return new Scheduler({
    backends,
    serialModels: new Set(),
    maxQueue: 1000,
    queueTimeoutMs: 5000,
    agingMs: 10_000,
    breaker: { enabled: true, failureThreshold: 3, resetTimeoutMs: 200, waitForClose: false },
    ...extra,
  })
}

const codeOf = (error: unknown) => (error instanceof OrchError ? error.code : String(error))

describe('limits', () => {
  test('per-backend concurrency is never exceeded, and queued requests run as slots free', async () => {
    const a = stubBackend('a')
    const s = scheduler([{ backend: a, concurrency: 2 }])
    const granted: Slot[] = []
    const pending = Array.from({ length: 5 }, () => s.acquire({ model: 'm' }).then((slot) => granted.push(slot)))
    await Bun.sleep(5)
    expect(granted).toHaveLength(2)
    expect(s.stats().queued).toBe(3)
    granted[0]?.release('success')
    await Bun.sleep(1)
    expect(granted).toHaveLength(3)
    for (const slot of granted.slice(1)) slot.release('success')
    await Bun.sleep(1)
    for (const slot of granted.slice(3)) slot.release('success')
    await Promise.all(pending)
    expect(granted).toHaveLength(5)
    expect(s.stats().inflight).toBe(0)
  })

  test('backends add up: two of the same type with concurrency 4 run 8 calls at once, the 9th waits', async () => {
    const a = stubBackend('a')
    const b = stubBackend('b')
    const s = scheduler([
      { backend: a, concurrency: 4 },
      { backend: b, concurrency: 4 },
    ])
    const slots = await Promise.all(Array.from({ length: 8 }, () => s.acquire({ model: 'm' })))
    expect(slots.filter((slot) => slot.backend.name === 'a')).toHaveLength(4)
    expect(s.stats()).toMatchObject({ inflight: 8, slots: 8, slots_busy: 8, available: 0, busy: 2, workers: 2 })
    let ninth = false
    const waiting = s.acquire({ model: 'm' }).then((slot) => {
      ninth = true
      return slot
    })
    await Bun.sleep(5)
    expect(ninth).toBe(false)
    slots[0]?.release('success')
    ;(await waiting).release('success')
    for (const slot of slots.slice(1)) slot.release('success')
    expect(s.stats()).toMatchObject({ inflight: 0, slots_busy: 0 })
  })

  test('a model with parallel: false runs one call at a time per backend; other models are not held back', async () => {
    const a = stubBackend('a')
    const serial = scheduler([{ backend: a, concurrency: 4 }], { serialModels: new Set(['m:latest']) })
    const first = await serial.acquire({ model: 'm' })
    const other = await serial.acquire({ model: 'other' }) // another model is not held back
    let second = false
    const waiting = serial.acquire({ model: 'm:latest' }).then((slot) => {
      second = true
      return slot
    })
    await Bun.sleep(5)
    expect(second).toBe(false)
    first.release('success')
    ;(await waiting).release('success')
    other.release('success')
  })

  test('a full queue rejects at once with 429 and when to retry', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }], { maxQueue: 2, queueTimeoutMs: 3000 })
    const held = await s.acquire({ model: 'm' })
    const waiting = [s.acquire({ model: 'm' }), s.acquire({ model: 'm' })].map((p) => p.then((slot) => slot.release('success')))
    const started = performance.now()
    const error = await s.acquire({ model: 'm' }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(10)
    expect(codeOf(error)).toBe('E_QUEUE_FULL')
    expect(statusOf(error)).toBe(429)
    expect((error as OrchError).details?.retry_after_s).toBe(3)
    expect((error as OrchError).message).toContain('queue is full')
    expect(s.stats().pool_saturated).toBe(1)
    held.release('success')
    await Promise.all(waiting)
  })

  test('a request that waits longer than the queue timeout fails with queue_timeout', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }], { queueTimeoutMs: 50 })
    const held = await s.acquire({ model: 'm' })
    const started = performance.now()
    const error = await s.acquire({ model: 'm' }).catch((e: unknown) => e)
    const waited = performance.now() - started
    expect(codeOf(error)).toBe('E_QUEUE_TIMEOUT')
    expect((error as OrchError).message).toContain('queue_timeout')
    expect(waited).toBeGreaterThanOrEqual(45)
    expect(waited).toBeLessThan(1000)
    expect(s.stats()).toMatchObject({ queue_timeouts: 1, queued: 0 })
    held.release('success')
  })

  test('an aborted signal removes a waiting request at once', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }])
    const held = await s.acquire({ model: 'm' })
    const controller = new AbortController()
    const waiting = s.acquire({ model: 'm', signal: controller.signal }).catch((e: unknown) => e)
    controller.abort()
    expect(codeOf(await waiting)).toBe('E_CANCELLED')
    expect(s.stats().queued).toBe(0)
    held.release('neutral')
  })
})

describe('order', () => {
  test('tenants take turns: one busy tenant cannot monopolise the slot', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }])
    const held = await s.acquire({ model: 'm' })
    const order: string[] = []
    const requests = [...Array.from({ length: 4 }, (_, i) => ['big', i] as const), ['small', 0] as const, ['other', 0] as const].map(
      ([tenant, i]) =>
        s.acquire({ model: 'm', tenant }).then((slot) => {
          order.push(`${tenant}${i}`)
          setTimeout(() => slot.release('success'), 1)
        }),
    )
    held.release('success')
    await Promise.all(requests)
    expect(order.slice(0, 3).sort()).toEqual(['big0', 'other0', 'small0'])
    expect(order.slice(3)).toEqual(['big1', 'big2', 'big3'])
  })

  test('higher priority first; a long wait ages a low priority past newer high ones', async () => {
    let now = 0
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }], { agingMs: 1000, now: () => now, queueTimeoutMs: 1e9 })
    const held = await s.acquire({ model: 'm' })
    const order: string[] = []
    const take = (name: string, priority: number) =>
      s.acquire({ model: 'm', priority }).then((slot) => {
        order.push(name)
        setTimeout(() => slot.release('success'), 1)
      })
    const old = take('old-low', 0)
    now = 5000 // old-low has waited 5 s: effective priority 5
    const fresh = [take('new-p3', 3), take('new-p9', 9)]
    held.release('success')
    await Promise.all([old, ...fresh])
    expect(order).toEqual(['new-p9', 'old-low', 'new-p3'])
  })
})

describe('router', () => {
  test('prefers the backend where the model is loaded, then the least busy', async () => {
    const cold = stubBackend('cold')
    const warm = stubBackend('warm')
    const s = scheduler([
      { backend: cold, concurrency: 4 },
      { backend: warm, concurrency: 4 },
    ])
    s.update('warm', { loaded: ['m'] })
    const first = await s.acquire({ model: 'm' })
    expect(first.backend.name).toBe('warm')
    s.update('warm', { loaded: [] })
    const second = await s.acquire({ model: 'm' })
    expect(second.backend.name).toBe('cold') // warm is busier now
    first.release('success')
    second.release('success')
  })

  test('routes only to healthy backends serving the model; unknown model → 404; none healthy → 503', async () => {
    const a = stubBackend('a')
    const b = stubBackend('b')
    const s = scheduler([
      { backend: a, concurrency: 1, configuredModels: ['llama3.2'] },
      { backend: b, concurrency: 1, configuredModels: ['qwen'] },
    ])
    const slot = await s.acquire({ model: 'qwen:latest' })
    expect(slot.backend.name).toBe('b')
    slot.release('success')
    const missing = await s.acquire({ model: 'mistral' }).catch((e: unknown) => e)
    expect(codeOf(missing)).toBe('E_MODEL_NOT_FOUND')
    expect(statusOf(missing)).toBe(404)
    s.update('a', { healthy: false })
    s.update('b', { healthy: false })
    const down = await s.acquire({ model: 'qwen' }).catch((e: unknown) => e)
    expect(codeOf(down)).toBe('E_NO_BACKEND')
    expect(statusOf(down)).toBe(503)
    expect((down as OrchError).hint).toContain('backends:')
    // The advice is in the message: the Ollama and OpenAI dialects answer with the message alone.
    expect((down as OrchError).message).toContain('add a backend serving it under backends: in orch.yaml, or a pool under pools:')
  })

  test('a suspended backend (worker restarting) holds requests until it is back, on its new address', async () => {
    const s = scheduler([{ backend: stubBackend('pool/w1'), concurrency: 1 }], { queueTimeoutMs: 5000 })
    s.suspend('pool/w1')
    let granted: string | undefined
    const waiting = s.acquire({ model: 'm' }).then((slot) => {
      granted = slot.backend.url
      slot.release('success')
    })
    await Bun.sleep(20)
    expect(granted).toBeUndefined()
    expect(s.stats().queued).toBe(1)
    const restarted = stubBackend('pool/w1')
    ;(restarted as { url: string }).url = 'stub://pool/w1-new-port'
    s.addBackend({ backend: restarted, concurrency: 1 })
    await waiting
    expect(granted).toBe('stub://pool/w1-new-port')
  })

  test('requests held for a suspended backend fail when it is removed for good, or at their timeout', async () => {
    const s = scheduler([{ backend: stubBackend('pool/w1'), concurrency: 1 }], { queueTimeoutMs: 60 })
    s.suspend('pool/w1')
    expect(codeOf(await s.acquire({ model: 'm' }).catch((e: unknown) => e))).toBe('E_QUEUE_TIMEOUT')
    const held = s.acquire({ model: 'm', queueTimeoutMs: 60_000 }).catch((e: unknown) => e)
    s.removeBackend('pool/w1')
    expect(codeOf(await held)).toBe('E_NO_BACKEND')
  })

  test('requests waiting for a backend that goes down fail then, not at their timeout', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }], { queueTimeoutMs: 60_000 })
    const held = await s.acquire({ model: 'm' })
    const waiting = s.acquire({ model: 'm' }).catch((e: unknown) => e)
    s.update('a', { healthy: false })
    expect(codeOf(await waiting)).toBe('E_NO_BACKEND')
    held.release('failure')
  })
})

describe('circuit breaker', () => {
  test('opens after the threshold, fails fast (< 10 ms), half-opens for one trial, closes on success', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 4 }])
    for (let i = 0; i < 3; i++) (await s.acquire({ model: 'm' })).release('failure')
    const started = performance.now()
    const error = await s.acquire({ model: 'm' }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(10)
    expect(codeOf(error)).toBe('E_BREAKER_OPEN')
    expect(statusOf(error)).toBe(503)
    await Bun.sleep(220)
    const trial = await s.acquire({ model: 'm' })
    // Only one trial at a time while half-open.
    const second = await s.acquire({ model: 'm' }).catch((e: unknown) => e)
    expect(codeOf(second)).toBe('E_BREAKER_OPEN')
    trial.release('success')
    const after = await s.acquire({ model: 'm' })
    after.release('success')
  })

  test('a failed trial opens the circuit again; neutral outcomes do not count', () => {
    let now = 0
    const breaker = new CircuitBreaker({ enabled: true, failureThreshold: 2, resetTimeoutMs: 100 }, () => now)
    breaker.onFailure()
    breaker.onNeutral(false)
    expect(breaker.state).toBe('closed')
    breaker.onFailure()
    expect(breaker.state).toBe('open')
    now = 100
    expect(breaker.state).toBe('half_open')
    expect(breaker.onStart()).toBe(true)
    expect(breaker.canPass()).toBe(false)
    breaker.onFailure()
    expect(breaker.state).toBe('open')
    expect(breaker.retryAfterMs()).toBe(100)
  })

  test('with wait_for_close a request waits for the circuit to half-open instead of failing', async () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 4 }], {
      breaker: { enabled: true, failureThreshold: 1, resetTimeoutMs: 80, waitForClose: true },
    })
    ;(await s.acquire({ model: 'm' })).release('failure')
    const started = performance.now()
    const slot = await s.acquire({ model: 'm' })
    expect(performance.now() - started).toBeGreaterThanOrEqual(70)
    slot.release('success')
  })
})

describe('overload: refused at once when the queue cannot drain within the timeout', () => {
  /** A scheduler on a hand-driven clock: hold times are exact, the queue timeout (real ms) never fires. */
  function clocked(concurrency: number, extra: Partial<SchedulerOptions> = {}) {
    const clock = { t: 0 }
    const s = scheduler([{ backend: stubBackend('a'), concurrency }], { queueTimeoutMs: 1000, now: () => clock.t, ...extra })
    return { s, clock }
  }

  /** Measures a service time of `ms` for `model` with one call per slot. */
  async function measure(s: Scheduler, clock: { t: number }, slots: number, ms: number, model = 'm') {
    const held = await Promise.all(Array.from({ length: slots }, () => s.acquire({ model })))
    clock.t += ms
    for (const slot of held) slot.release('success')
  }

  test('with no measurement yet (cold start) nothing is refused by estimate: requests wait as before', async () => {
    const { s } = clocked(2)
    const held = await Promise.all([s.acquire({ model: 'm' }), s.acquire({ model: 'm' })])
    const waiting = Array.from({ length: 100 }, () => s.acquire({ model: 'm' }).catch((e: unknown) => e))
    await Bun.sleep(1)
    expect(s.drainEstimate('m')).toBeUndefined()
    expect(s.stats()).toMatchObject({ queued: 100, overloaded: 0, rejected: 0 })
    s.drain(new Error('end'))
    await Promise.all(waiting)
    for (const slot of held) slot.release('neutral')
  })

  test('the first request that cannot get a slot in time is refused at once: 503, Retry-After, the figures, counted', async () => {
    const { s, clock } = clocked(2)
    await measure(s, clock, 2, 100)
    const held = await Promise.all([s.acquire({ model: 'm' }), s.acquire({ model: 'm' })])
    // Both slots were just taken, so they free at 100 ms, then every 100 ms: the request with k waiting
    // ahead gets a slot at 100 + ⌊k / 2⌋ × 100 ms. With the margin (a tenth) to spare, that fits in
    // 1000 ms for k ≤ 17 (900 ms); k = 18 would get its slot at 1000 ms, too near to count on.
    const admitted = Array.from({ length: 18 }, () => s.acquire({ model: 'm' }))
    expect(DRAIN_MARGIN).toBe(0.1)
    expect(s.drainEstimate('m')).toEqual({ ahead: 18, serviceMs: 100, slots: 2, waitMs: 1000 })
    const started = performance.now()
    const error = await s.acquire({ model: 'm' }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(10)
    expect(codeOf(error)).toBe('E_OVERLOADED')
    expect(statusOf(error)).toBe(503)
    expect((error as OrchError).details).toMatchObject({ retryable: true, retry_after_s: 1, reason: 'queue_cannot_drain' })
    expect((error as OrchError).message).toBe(
      'the queue cannot drain within pool_queue_timeout (1000 ms): 18 waiting for "m", ~100 ms each, 2 slots',
    )
    expect((error as OrchError).hint).toContain('pool_queue_timeout')
    expect(s.stats()).toMatchObject({ queued: 18, overloaded: 1, pool_saturated: 1, rejected: 1 })
    // A request with a longer timeout of its own still fits.
    const patient = s.acquire({ model: 'm', queueTimeoutMs: 2000 })
    expect(s.stats().queued).toBe(19)

    // Every admitted request is served within its timeout, as the estimate said.
    const granted: Slot[] = [...held]
    const waits: number[] = []
    for (const p of [...admitted, patient]) {
      p.then((slot) => {
        granted.push(slot)
        waits.push(slot.waitedMs)
      })
    }
    while (granted.length > 0) {
      clock.t += 100
      for (const slot of granted.splice(0)) slot.release('success')
      await Bun.sleep(0)
    }
    expect(waits).toHaveLength(19)
    expect(Math.max(...waits.slice(0, 18))).toBeLessThanOrEqual(900)
    expect(s.stats()).toMatchObject({ queued: 0, inflight: 0, overloaded: 1, queue_timeouts: 0 })
  })

  test('a burst that fits in the timeout is never refused (1.5x the slots, and up to the last request that fits)', async () => {
    const { s, clock } = clocked(4)
    await measure(s, clock, 4, 200)
    for (const burst of [6, 4 + 4 * 4]) {
      const requests = Array.from({ length: burst }, () => s.acquire({ model: 'm' }))
      const outcomes: Array<Slot | unknown> = []
      for (const p of requests)
        p.then(
          (slot) => outcomes.push(slot),
          (e: unknown) => outcomes.push(e),
        )
      await Bun.sleep(0)
      expect(s.stats().overloaded).toBe(0)
      let served = 0
      while (served < burst) {
        clock.t += 200
        const slots = outcomes.splice(0) as Slot[]
        for (const slot of slots) slot.release('success')
        served += slots.length
        await Bun.sleep(0)
      }
      expect(s.stats()).toMatchObject({ overloaded: 0, rejected: 0, queued: 0, inflight: 0 })
    }
  })

  test('steady state: calls in flight at different ages free their slots sooner, and count so', async () => {
    const { s, clock } = clocked(2)
    await measure(s, clock, 2, 100)
    const first = await s.acquire({ model: 'm' })
    clock.t += 60
    const second = await s.acquire({ model: 'm' })
    const queued = Array.from({ length: 3 }, () => s.acquire({ model: 'm' }).catch(() => undefined))
    // Residuals 40 and 100 ms: 3 ahead → the second slot's second turn, 100 + 100.
    expect(s.drainEstimate('m')).toMatchObject({ ahead: 3, slots: 2, waitMs: 200 })
    s.drain(new Error('end'))
    await Promise.all(queued)
    first.release('neutral')
    second.release('neutral')
  })

  test('another tenant is counted only as far as round-robin serves it first; priority jumps the own queue', async () => {
    const { s, clock } = clocked(1)
    await measure(s, clock, 1, 100)
    const held = await s.acquire({ model: 'm', tenant: 'flood' })
    // One slot, 100 ms a call: 9 fit in the 1000 ms timeout with a tenth to spare, the 10th does not.
    const flood = Array.from({ length: 9 }, () => s.acquire({ model: 'm', tenant: 'flood' }).catch((e: unknown) => e))
    const refused = await s.acquire({ model: 'm', tenant: 'flood' }).catch((e: unknown) => e)
    expect(codeOf(refused)).toBe('E_OVERLOADED')
    // The quiet tenant is next in turn after one of the flood's: 100 + 100 ms, well within 1000.
    expect(s.drainEstimate('m', 'quiet')).toMatchObject({ ahead: 1, waitMs: 200 })
    const quiet = s.acquire({ model: 'm', tenant: 'quiet' }).catch((e: unknown) => e)
    expect(s.drainEstimate('m', 'flood', 5)).toMatchObject({ ahead: 1 })
    const urgent = s.acquire({ model: 'm', tenant: 'flood', priority: 5 }).catch((e: unknown) => e)
    // Requests for another model are not counted against this one.
    expect(s.drainEstimate('other')).toBeUndefined()
    expect(s.stats()).toMatchObject({ queued: 11, overloaded: 1 })
    s.drain(new Error('end'))
    await Promise.all([...flood, quiet, urgent])
    held.release('neutral')
  })

  test('time spent loading the model stays out of the service time; the average follows new hold times', async () => {
    const { s, clock } = clocked(1)
    const slot = await s.acquire({ model: 'm' })
    clock.t += 30_100
    slot.release('success', { loadMs: 30_000 })
    const held = await s.acquire({ model: 'm' })
    const queued = s.acquire({ model: 'm' }).catch(() => undefined)
    expect(s.drainEstimate('m')?.serviceMs).toBe(100)
    clock.t += 200
    held.release('success')
    const next = (await queued) as Slot
    expect(s.drainEstimate('m')?.serviceMs).toBeCloseTo(120, 6)
    next.release('success')
  })

  test('no slot can serve the model now (circuit open, backend down): no estimate, the other refusals apply', async () => {
    const { s, clock } = clocked(1, { breaker: { enabled: true, failureThreshold: 1, resetTimeoutMs: 10_000, waitForClose: true } })
    await measure(s, clock, 1, 100)
    const held = await s.acquire({ model: 'm' })
    const queued = s.acquire({ model: 'm' }).catch(() => undefined)
    held.release('failure')
    expect(s.drainEstimate('m')).toBeUndefined()
    s.drain(new Error('end'))
    await queued
  })
})

describe('change listeners', () => {
  test('are told of every change of the backends: added, health or models, suspended, removed; until they unsubscribe', () => {
    const s = scheduler([{ backend: stubBackend('a'), concurrency: 1 }])
    let told = 0
    const stop = s.onChange(() => told++)
    s.addBackend({ backend: stubBackend('b'), concurrency: 1 })
    expect(told).toBe(1)
    s.update('b', { healthy: false })
    s.update('b', { models: ['m'] })
    expect(told).toBe(3)
    s.suspend('a')
    expect(told).toBe(4)
    s.removeBackend('b')
    expect(told).toBe(5)
    stop()
    s.addBackend({ backend: stubBackend('c'), concurrency: 1 })
    expect(told).toBe(5)
  })
})

describe('standby: a pool that can still grow', () => {
  const standby = (canGrow: () => boolean, demands: string[]) => ({
    serves: (model: string) => model === 'm',
    canGrow,
    startupMs: 10_000,
    onDemand: (model: string) => demands.push(model),
  })

  test('with no backend for the model a request waits for the pool instead of a 503, and is served once a worker joins', async () => {
    const s = scheduler([])
    const demands: string[] = []
    s.standby(standby(() => true, demands))
    let slot: Slot | undefined
    const waiting = s.acquire({ model: 'm' }).then((x) => (slot = x))
    await Bun.sleep(5)
    expect(slot).toBeUndefined()
    expect(demands).toEqual(['m'])
    expect(s.waitingFor((m) => m === 'm').count).toBe(1)
    // A backend change re-checks the waiting requests: still waiting, not refused.
    const other = stubBackend('other')
    s.addBackend({ backend: other, concurrency: 1, configuredModels: ['x'] })
    s.removeBackend('other')
    await Bun.sleep(5)
    expect(slot).toBeUndefined()
    const worker = stubBackend('pool/w1')
    s.addBackend({ backend: worker, concurrency: 1, configuredModels: ['m'] })
    await waiting
    expect(slot?.backend.name).toBe('pool/w1')
    slot?.release('success')
    // Another model is none of the pool's business: refused at once, as before.
    expect(codeOf(await s.acquire({ model: 'z' }).catch((e) => e))).toBe('E_MODEL_NOT_FOUND')
  })

  test('a pool that cannot grow (at max, none starting) does not hold requests: they are refused at once', async () => {
    const s = scheduler([])
    const demands: string[] = []
    s.standby(standby(() => false, demands))
    expect(codeOf(await s.acquire({ model: 'm' }).catch((e) => e))).toBe('E_NO_BACKEND')
    expect(demands).toEqual([])
  })
})
