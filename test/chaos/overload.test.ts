/**
 * Overload, end to end: a real `orch serve` in process in front of a fake Ollama with 4 slots and 200 ms
 * a call. At 10x and 100x its capacity (40 and 400 concurrent /api/chat requests) a request the queue
 * cannot serve within pool_queue_timeout is refused at once (503, Retry-After, the reason), the requests
 * admitted are all served, and memory stays bounded. Then the durable queue: with the backend down,
 * submissions past tasks.max_queued / tasks.max_queued_per_tenant get 429 with Retry-After naming the key,
 * a bulk past the bound is refused whole, and an idempotent re-submission still gets its task.
 *
 * The figures are printed, so a run on a loaded machine can be judged.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { DRAIN_MARGIN } from '../../src/scheduler/scheduler.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const SLOTS = 4
const LATENCY_MS = 200
/** Short, so the test is; the default 5 s behaves the same (see the figures in the report). */
const QUEUE_TIMEOUT_MS = 1100
/**
 * Rejections must come back within this (p99). The aim is 50 ms, which a quiet machine meets (see the
 * printed figures); a CI runner shared with other jobs stalls for longer now and then, so the default
 * bound only proves what matters most: refused at once, not after pool_queue_timeout.
 * OVERLOAD_P99_MS=50 asks for the aim.
 */
const REJECTION_P99_MS = Number(process.env.OVERLOAD_P99_MS ?? 250)
const T = 60_000

interface Answer {
  status: number
  ms: number
  retryAfter: string | null
  error: string | undefined
}

/**
 * The load comes from a process of its own, as it would in production: a client sharing orch's event loop
 * would charge its own work to orch's latency. It fires `n` /api/chat requests at once and prints, for
 * each, the status, the time to the whole answer, Retry-After and the error.
 */
const CLIENT = `
const [url, n, label] = [process.argv[1], Number(process.argv[2]), process.argv[3]]
const body = (i) => JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: label + ' ' + i }], stream: false })
const answers = await Promise.all(Array.from({ length: n }, async (_, i) => {
  const started = performance.now()
  const res = await fetch(url + '/api/chat', { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(i) })
  const text = await res.text()
  let error
  try { error = JSON.parse(text).error } catch { error = text }
  return { status: res.status, ms: performance.now() - started, retryAfter: res.headers.get('retry-after'), error }
}))
process.stdout.write(JSON.stringify(answers))
`

async function fire(url: string, n: number, label: string): Promise<Answer[]> {
  const child = Bun.spawn([process.execPath, '-e', CLIENT, url, String(n), label], {
    stdout: 'pipe',
    stderr: 'inherit',
    // Bun's fetch holds back requests past 256 to one host: the burst must reach the server whole.
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.max(256, 2 * n)) },
  })
  const out = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error(`the load client failed: ${out.slice(0, 500)}`)
  return JSON.parse(out) as Answer[]
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number
}

const ms = (n: number) => `${n.toFixed(1)} ms`

describe('proxied requests past capacity', () => {
  let s: TestServe
  /** p99 of a bare Bun.serve answering the same burst with a 503 at once: what HTTP alone costs here. */
  const floor: Record<number, number> = {}
  const serviceMs = () => s.server.deps.engine.scheduler.drainEstimate('llama3.2')?.serviceMs ?? Number.NaN

  beforeAll(async () => {
    s = await startTestServe({
      concurrency: SLOTS,
      fakes: [{ latencyMs: LATENCY_MS }],
      tweak: (c) => {
        c.pool_queue_timeout = QUEUE_TIMEOUT_MS
        c.infrastructure_system.llm_orchestration.caching.enabled = false
      },
    })
    const bare = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: async (request) => {
        await request.text()
        return Response.json({ error: 'refused' }, { status: 503, headers: { 'retry-after': '1' } })
      },
    })
    try {
      for (const n of [10 * SLOTS, 100 * SLOTS]) {
        await fire(bare.url.origin, n, 'floor') // the first burst of a process warms its client up
        floor[n] = quantile(
          (await fire(bare.url.origin, n, 'floor')).map((a) => a.ms).sort((a, b) => a - b),
          0.99,
        )
      }
    } finally {
      bare.stop(true)
    }
  })
  afterAll(() => s?.stop())

  async function idle(): Promise<void> {
    const scheduler = s.server.deps.engine.scheduler
    for (let i = 0; i < 500 && (scheduler.stats().inflight > 0 || scheduler.stats().queued > 0); i++) await Bun.sleep(10)
  }

  /** `n` concurrent requests; their answers, and the rejection latencies. */
  async function burst(label: string, n: number) {
    await idle()
    const measured = serviceMs()
    const before = s.server.deps.engine.scheduler.stats()
    const answers = await fire(s.url, n, label)
    const after = s.server.deps.engine.scheduler.stats()
    const refused = answers.filter((a) => a.status !== 200)
    const served = answers.filter((a) => a.status === 200)
    const latencies = refused.map((a) => a.ms).sort((a, b) => a - b)
    const p50 = quantile(latencies, 0.5)
    const p99 = quantile(latencies, 0.99)
    const slowest = Math.max(...served.map((a) => a.ms))
    const bare = floor[n] === undefined ? '' : ` (bare HTTP p99 ${ms(floor[n])})`
    console.log(
      `${label}: ${n} at once, service time ${ms(measured)} → ${served.length} served (slowest ${ms(slowest)}), ${refused.length} refused: p50 ${ms(p50)}, p99 ${ms(p99)}${bare}`,
    )
    return {
      refused,
      served,
      p99,
      measured,
      overloaded: after.overloaded - before.overloaded,
      timeouts: after.queue_timeouts - before.queue_timeouts,
    }
  }

  test(
    'at 10x and 100x capacity rejections come at once, every admitted request is served, memory stays bounded',
    async () => {
      // Cold start: with no call measured yet nothing is refused by estimate; a few calls give the measure.
      const warm = await fire(s.url, 2 * SLOTS, 'warm')
      expect(warm.map((a) => a.status)).toEqual(Array(2 * SLOTS).fill(200))
      Bun.gc(true)
      const rssBefore = process.memoryUsage().rss

      for (const [label, n] of [
        ['10x', 10 * SLOTS],
        ['100x', 100 * SLOTS],
      ] as const) {
        const r = await burst(label, n)
        // Refused: 503 with Retry-After in Ollama's dialect, naming why; none after waiting the timeout out.
        for (const a of r.refused) {
          expect(a.status).toBe(503)
          expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1)
          expect(a.error).toContain('the queue cannot drain within pool_queue_timeout')
        }
        expect(r.timeouts).toBe(0)
        expect(r.overloaded).toBe(r.refused.length)
        expect(r.p99).toBeLessThan(REJECTION_P99_MS)
        // Admitted: what fits in the timeout, with the margin, at the measured service time (the free slots,
        // then a round of 4 per service time after the first), give or take a round (the measure moves).
        const rounds = Math.floor(QUEUE_TIMEOUT_MS / (1 + DRAIN_MARGIN) / r.measured)
        expect(r.served.length).toBeGreaterThanOrEqual(SLOTS * rounds)
        expect(r.served.length).toBeLessThanOrEqual(SLOTS * (rounds + 2))
      }
      Bun.gc(true)
      const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20
      console.log(`rss grew by ${grownMb.toFixed(1)} MiB over both bursts`)
      expect(grownMb).toBeLessThan(150)
    },
    T,
  )

  test(
    'a burst that fits in the timeout (1.5x the slots, and 4x) is served whole: no false refusal',
    async () => {
      for (const [label, n] of [
        ['1.5x', (3 * SLOTS) / 2],
        ['4x', 4 * SLOTS],
      ] as const) {
        const r = await burst(label, n)
        expect(r.refused).toEqual([])
        expect(r.served).toHaveLength(n)
      }
    },
    T,
  )
})

describe('the durable queue is bounded', () => {
  let s: TestServe

  beforeAll(async () => {
    s = await startTestServe({
      tweak: (c) => {
        // Nothing listens there: the runner claims nothing, every task stays queued.
        c.backends = [{ name: 'down', type: 'ollama', url: 'http://127.0.0.1:9', concurrency: 4 }]
        c.tasks.max_queued = 50
        c.tasks.max_queued_per_tenant = 30
      },
    })
  })
  afterAll(() => s?.stop())

  const submit = (body: unknown, headers: Record<string, string> = {}) =>
    s.fetch('/queue/submit', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
  const task = (tenant: string, extra: Record<string, unknown> = {}) => ({
    type: 'chat',
    tenant,
    payload: { model: 'llama3.2', messages: [{ role: 'user', content: 'hello' }] },
    ...extra,
  })
  type Refusal = { error: { code: string; message: string; hint: string } }

  test(
    'per tenant, then in total: 429 with Retry-After naming the key; bulks refused whole; idempotent resubmits still 200',
    async () => {
      const first = await submit(task('noisy'), { 'idempotency-key': 'first' })
      expect(first.status).toBe(202)
      const { id } = (await first.json()) as { id: string }
      const bulk = await submit(Array.from({ length: 29 }, () => task('noisy')))
      expect(bulk.status).toBe(202)

      // The tenant is at its bound: refused, and the message names the key.
      const refused = await submit(task('noisy'))
      expect(refused.status).toBe(429)
      expect(refused.headers.get('retry-after')).toBe('5')
      const body = (await refused.json()) as Refusal
      expect(body.error.code).toBe('E_TASK_QUEUE_FULL')
      expect(body.error.message).toContain('tasks.max_queued_per_tenant')
      expect(body.error.hint).toContain('tasks.max_queued_per_tenant')
      // The same key again is its task, not a new one.
      const again = await submit(task('noisy'), { 'idempotency-key': 'first' })
      expect(again.status).toBe(200)
      expect(await again.json()).toMatchObject({ id, created: false })

      // Another tenant is still accepted, up to the total bound (50).
      const other = await submit(Array.from({ length: 20 }, () => task('quiet')))
      expect(other.status).toBe(202)
      const full = await submit(task('third'))
      expect(full.status).toBe(429)
      expect(full.headers.get('retry-after')).toBe('5')
      expect(((await full.json()) as Refusal).error.message).toContain('tasks.max_queued is 50')

      // A bulk past the bound is refused whole, even with a task in it that already exists.
      const before = (await s.server.deps.tasks.counts()).queued
      const mixed = await submit([task('noisy', { idempotency_key: 'first' }), task('third'), task('third')])
      expect(mixed.status).toBe(429)
      expect(((await mixed.json()) as Refusal).error.message).toContain('none of the 3 tasks of this submission was queued')
      expect((await s.server.deps.tasks.counts()).queued).toBe(before)
      expect(before).toBe(50)
      // A bulk of existing keys only is answered from what is there.
      const known = await submit([task('noisy', { idempotency_key: 'first' })])
      expect(known.status).toBe(202)
      expect(await known.json()).toEqual({ tasks: [{ id, state: 'queued', created: false }] })

      // Cancelling makes room again.
      expect((await s.fetch(`/tasks/${id}`, { method: 'DELETE' })).status).toBe(200)
      expect((await submit(task('third'))).status).toBe(202)
      expect((await submit(task('third'))).status).toBe(429)
      expect((await s.server.deps.tasks.queuedCounts()).total).toBe(50)
    },
    T,
  )
})
