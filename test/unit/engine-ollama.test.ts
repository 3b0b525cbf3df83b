/**
 * The engine end to end over real HTTP: ollamaBackend (the official client) against the Ollama test double,
 * which speaks the real wire format (NDJSON streaming, `done: true` last) with injected latency, errors
 * and hangs.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { memoryCache } from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import type { OrchError } from '../../src/core/errors.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { openStore } from '../../src/store/db.ts'
import { TaskRunner } from '../../src/tasks/runner.ts'
import { SqliteTaskQueue as TaskStore } from '../../src/tasks/sqlite.ts'
import { tempDir } from '../helpers/cli.ts'
import { type FakeBehaviour, type FakeServer, fakeEmbedding, startFakeOllama } from '../helpers/fake-ollama.ts'

type Config = ReturnType<typeof defaultConfig>
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function fake(behaviour: Partial<FakeBehaviour> = {}): Promise<FakeServer> {
  const server = await startFakeOllama(behaviour)
  cleanups.push(() => server.stop())
  return server
}

function engineFor(servers: Array<{ name: string; server: FakeServer; concurrency?: number }>, tweak: (c: Config) => void = () => {}) {
  const config = defaultConfig()
  config.backends = servers.map((s) => ({ name: s.name, type: 'ollama' as const, url: s.server.url, concurrency: s.concurrency ?? 4 }))
  config.infrastructure_system.llm_orchestration.batching.batch_interval_seconds = 0.02
  tweak(config)
  const engine = new Engine({ config, cache: memoryCache({ maxEntries: 100, maxBytes: 1e6, ttlSeconds: 60 }), healthIntervalMs: 0 })
  cleanups.push(() => engine.close())
  return engine
}

const ask = (content: string, temperature = 0.7) => ({
  model: 'llama3.2',
  messages: [{ role: 'user' as const, content }],
  options: { temperature },
})
const codeOf = (e: unknown) => (e as OrchError).code

describe('engine over the Ollama wire format', () => {
  test('per-backend concurrency is never exceeded under a burst; every answer is right', async () => {
    const server = await fake({ tokenDelayMs: 3 })
    const engine = engineFor([{ name: 'a', server, concurrency: 3 }])
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => engine.chatOnce(ask(`question number ${i}`))))
    expect(server.stats.maxInFlight).toBe(3)
    answers.forEach((a, i) => {
      expect(a.message.content).toBe(`question number ${i}`)
      expect(a.done).toBe(true)
    })
  })

  test('queue full rejects at once; a request queued past pool_queue_timeout fails with queue_timeout', async () => {
    const server = await fake({ latencyMs: 400 })
    const engine = engineFor([{ name: 'a', server, concurrency: 1 }], (c) => {
      c.pool_max_queue_size = 2
      c.pool_queue_timeout = 100
    })
    const running = engine.chatOnce(ask('first'))
    await server.until(() => server.stats.inFlight === 1)
    const queued = [engine.chatOnce(ask('second')).catch((e) => e), engine.chatOnce(ask('third')).catch((e) => e)]
    const full = await engine.chatOnce(ask('fourth')).catch((e) => e)
    expect(codeOf(full)).toBe('E_QUEUE_FULL')
    for (const error of await Promise.all(queued)) expect(codeOf(error)).toBe('E_QUEUE_TIMEOUT')
    expect((await running).message.content).toBe('first')
    expect(server.stats.total).toBe(1)
  })

  test('the breaker opens on 5xx, fails fast without touching the backend, and recovers through a trial', async () => {
    const server = await fake()
    const engine = engineFor([{ name: 'a', server }], (c) => {
      c.circuit_breaker.failure_threshold = 3
      c.circuit_breaker.reset_timeout_ms = 150
    })
    server.failNext(3, 500, 'llama runner crashed')
    for (let i = 0; i < 3; i++) await engine.chatOnce(ask(`x${i}`)).catch(() => {})
    const before = server.stats.total
    const started = performance.now()
    const fast = await engine.chatOnce(ask('y')).catch((e) => e)
    expect(performance.now() - started).toBeLessThan(10)
    expect(codeOf(fast)).toBe('E_BREAKER_OPEN')
    expect(server.stats.total).toBe(before)
    await Bun.sleep(170)
    expect((await engine.chatOnce(ask('trial'))).message.content).toBe('trial')
    expect(engine.scheduler.states.get('a')?.breaker.state).toBe('closed')
  })

  test('durable tasks retry 5xx with backoff and fail a 404 at once', async () => {
    const server = await fake()
    const engine = engineFor([{ name: 'a', server }])
    const dir = tempDir('orch-engine-')
    const store = openStore(dir.path, { synchronous: 'NORMAL' })
    const tasks = new TaskStore(store, { retry: { maxAttempts: 3, baseMs: 10, maxMs: 40 }, maxStalled: 1, leaseMs: 5000, agingMs: 10_000 })
    const runner = new TaskRunner({ tasks, engine, owner: 'h:1:r', leaseMs: 5000, pollMs: 20 })
    cleanups.push(
      () => dir.cleanup(),
      () => store.close(),
      () => runner.stop(),
    )
    server.failNext(2, 503)
    await runner.start()
    const ok = await tasks.submit({ type: 'chat', model: 'llama3.2', payload: ask('durable') })
    await server.until(() => tasks.counts().done === 1)
    expect(tasks.get(ok.task.id)).toMatchObject({ state: 'done', attempts: 3 })
    const missing = await tasks.submit({ type: 'chat', model: 'mistral', payload: { ...ask('nope'), model: 'mistral' } })
    await server.until(() => tasks.counts().failed === 1)
    expect(tasks.get(missing.task.id)).toMatchObject({ state: 'failed', attempts: 1, fail_reason: 'not_retryable' })
  })

  test('a client that goes away mid-stream cancels the request upstream and frees the slot', async () => {
    const server = await fake({ tokenDelayMs: 50 })
    const engine = engineFor([{ name: 'a', server, concurrency: 1 }])
    const controller = new AbortController()
    const seen: string[] = []
    const reading = (async () => {
      for await (const chunk of engine.chat(ask('one two three four five six seven eight'), { signal: controller.signal })) {
        seen.push(chunk.message.content)
      }
    })().catch((e) => e)
    await server.until(() => seen.length >= 1)
    controller.abort()
    expect(codeOf(await reading)).toBe('E_BACKEND_ABORTED')
    await server.until(() => server.stats.abortedCount === 1)
    expect(engine.scheduler.stats().inflight).toBe(0)
    // The slot is really free: the next request runs at once.
    expect((await engine.chatOnce(ask('next'))).message.content).toBe('next')
  })

  test('a cache hit answers without calling the backend', async () => {
    const server = await fake()
    const engine = engineFor([{ name: 'a', server }])
    const first = await engine.chatOnce(ask('cached?', 0))
    const second = await engine.chatOnce(ask('cached?', 0))
    expect(second).toEqual(first)
    expect(server.stats.total).toBe(1)
  })

  test('embed requests are coalesced into one /api/embed call and split back', async () => {
    const server = await fake({ callCostMs: 20 })
    const engine = engineFor([{ name: 'a', server }])
    const texts = Array.from({ length: 40 }, (_, i) => `text ${i}`)
    const results = await Promise.all(texts.map((t) => engine.embed({ model: 'nomic-embed-text', input: t }, { cache: false })))
    const embedCalls = server.calls.filter((c) => c.path === '/api/embed')
    expect(embedCalls).toHaveLength(1)
    expect(embedCalls[0]?.body.input).toEqual(texts)
    results.forEach((r, i) => {
      expect(r.embeddings).toEqual([fakeEmbedding(texts[i] as string, 8)])
    })
  })

  test('health checks discover models: unknown models are refused without a call; loaded models attract requests', async () => {
    const cold = await fake({ models: ['llama3.2'] })
    const warm = await fake({ models: ['llama3.2'], loaded: ['llama3.2'] })
    const engine = engineFor([
      { name: 'cold', server: cold },
      { name: 'warm', server: warm },
    ])
    await engine.start()
    const missing = await engine.chatOnce({ ...ask('x'), model: 'mistral' }).catch((e) => e)
    expect(codeOf(missing)).toBe('E_MODEL_NOT_FOUND')
    await engine.chatOnce(ask('route me'))
    expect(warm.stats.total).toBe(1)
    expect(cold.stats.total).toBe(0)
  })
})
