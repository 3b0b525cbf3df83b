import { afterEach, describe, expect, test } from 'bun:test'
import type { Backend } from '../../src/backends/types.ts'
import { BackendError } from '../../src/backends/types.ts'
import { memoryCache } from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { validateData } from '../../src/config/validate.ts'
import type { OrchError } from '../../src/core/errors.ts'
import { schedulerRegistrar } from '../../src/pool/supervisor.ts'
import type { Worker } from '../../src/pool/worker.ts'
import { Engine, schedulerOptions } from '../../src/scheduler/engine.ts'
import { backendConcurrency, DEFAULT_BACKEND_CONCURRENCY, taskRunnerLimit } from '../../src/scheduler/limits.ts'
import { serverError, stubBackend } from '../helpers/stub-backend.ts'

type Config = ReturnType<typeof defaultConfig>

const engines: Engine[] = []
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close()
})

function makeEngine(backends: Backend[], tweak: (c: Config) => void = () => {}, cache = true): Engine {
  const config = defaultConfig()
  config.backends = backends.map((b) => ({ name: b.name, type: 'ollama' as const, url: b.url, concurrency: 4 }))
  config.infrastructure_system.llm_orchestration.batching.batch_interval_seconds = 0.02
  tweak(config)
  const engine = new Engine({
    config,
    backends,
    cache: cache ? memoryCache({ maxEntries: 100, maxBytes: 1e6, ttlSeconds: 60 }) : null,
    healthIntervalMs: 0,
  })
  engines.push(engine)
  return engine
}

const chat = (content: string, temperature?: number) => ({
  model: 'm',
  messages: [{ role: 'user' as const, content }],
  ...(temperature === undefined ? {} : { options: { temperature } }),
})

describe('engine: cache', () => {
  test('a deterministic request is answered from the cache the second time, without the backend', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend])
    const first = await engine.chatOnce(chat('hi', 0))
    const second = await engine.chatOnce(chat('hi', 0))
    expect(second.message.content).toBe(first.message.content)
    expect(backend.calls).toHaveLength(1)
    expect(engine.counters).toMatchObject({ cache_hits: 1, cache_misses: 1 })
  })

  test('a sampled request (temperature > 0) is not cached unless mode is always', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend])
    await engine.chatOnce(chat('hi'))
    await engine.chatOnce(chat('hi'))
    expect(backend.calls).toHaveLength(2)
    const always = stubBackend('b', { autoMs: 1 })
    const engine2 = makeEngine([always], (c) => {
      c.infrastructure_system.llm_orchestration.caching.mode = 'always'
    })
    await engine2.chatOnce(chat('hi'))
    await engine2.chatOnce(chat('hi'))
    expect(always.calls).toHaveLength(1)
  })

  test('a failed call is not cached', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    backend.failWith = () => serverError('a')
    const engine = makeEngine([backend])
    await expect(engine.chatOnce(chat('x', 0))).rejects.toThrow('500')
    backend.failWith = undefined
    await engine.chatOnce(chat('x', 0))
    expect(backend.calls).toHaveLength(2)
  })
})

describe('engine: embedding batches', () => {
  test('concurrent embed requests are coalesced into one backend call and split back in order', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend], () => {}, false)
    const texts = Array.from({ length: 20 }, (_, i) => 'x'.repeat(i + 1))
    const results = await Promise.all(texts.map((t) => engine.embed({ model: 'm', input: t })))
    expect(backend.calls).toHaveLength(1)
    expect(backend.calls[0]?.input).toEqual(texts)
    results.forEach((r, i) => {
      expect(r.embeddings).toEqual([[i + 1, 1]])
    })
  })

  test('batch_size splits batches and max_concurrent_batches bounds calls in flight', async () => {
    const backend = stubBackend('a', { autoMs: 10 })
    const engine = makeEngine(
      [backend],
      (c) => {
        c.infrastructure_system.llm_orchestration.batching.batch_size = 5
        c.infrastructure_system.llm_orchestration.batching.max_concurrent_batches = 1
      },
      false,
    )
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => engine.embed({ model: 'm', input: [`a${i}`, `bb${i}`] })))
    expect(backend.calls.length).toBe(7) // 40 inputs, sealed at >= 5: three 2-input requests (6 inputs) per call
    expect(backend.calls.every((c) => (c.input as string[]).length <= 6)).toBe(true)
    expect(backend.maxInflight).toBe(1)
    expect(results[3]?.embeddings).toEqual([
      [2, 1],
      [3, 1],
    ])
  })

  test('infrastructure_system.enabled: false sends every request on its own', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine(
      [backend],
      (c) => {
        c.infrastructure_system.enabled = false
      },
      false,
    )
    await Promise.all(Array.from({ length: 6 }, (_, i) => engine.embed({ model: 'm', input: `t${i}` })))
    expect(backend.calls).toHaveLength(6)
  })
})

describe('engine: cancellation and failures', () => {
  test('aborting a running call reaches the backend and frees the slot at once', async () => {
    const backend = stubBackend('a')
    const engine = makeEngine([backend])
    const controller = new AbortController()
    const call = engine.chatOnce(chat('slow'), { signal: controller.signal }).catch((e: unknown) => e)
    await Bun.sleep(5)
    expect(engine.scheduler.stats().inflight).toBe(1)
    controller.abort()
    const error = await call
    expect(error).toBeInstanceOf(BackendError)
    expect(backend.calls[0]?.signal?.aborted).toBe(true)
    expect(engine.scheduler.stats().inflight).toBe(0)
    // A cancelled call says nothing against the backend.
    expect(engine.scheduler.states.get('a')?.breaker.state).toBe('closed')
  })

  test('a consumer that stops reading a stream early releases the slot and aborts the call', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend])
    for await (const chunk of engine.chat(chat('stream'))) {
      expect(chunk.message.content).toContain('hello')
      break
    }
    expect(engine.scheduler.stats().inflight).toBe(0)
  })

  test('5xx failures open the breaker; 4xx answers do not', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend], (c) => {
      c.circuit_breaker.failure_threshold = 2
    })
    backend.failWith = () => new BackendError('model not found', { kind: 'http', status: 404, backend: 'a' })
    for (let i = 0; i < 3; i++) await engine.chatOnce(chat(`q${i}`)).catch(() => {})
    expect(engine.scheduler.states.get('a')?.breaker.state).toBe('closed')
    backend.failWith = () => serverError('a')
    for (let i = 0; i < 2; i++) await engine.chatOnce(chat(`r${i}`)).catch(() => {})
    const error = await engine.chatOnce(chat('next')).catch((e: unknown) => e)
    expect((error as OrchError).code).toBe('E_BREAKER_OPEN')
  })

  test('durable task types run through the same path', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const engine = makeEngine([backend])
    const result = (await engine.run('generate', { model: 'm', prompt: 'p' })) as { response: string }
    expect(result.response).toBe('gen from a')
    await expect(engine.run('dance', {})).rejects.toThrow('unknown task type')
  })
})

describe('engine: effective limits', () => {
  const entries = (config: Config, backends: Backend[]) =>
    schedulerOptions(config, backends).backends.map((b) => [b.backend.name, b.concurrency, b.concurrencySource])

  test('a backend without concurrency gets runtime.<type>.concurrency; its own key wins; a type without runtime gets 4', () => {
    const config = defaultConfig()
    config.runtime = { ollama: { concurrency: 3 }, openai: { concurrency: 7 } }
    config.backends = [
      { name: 'own', type: 'ollama', url: 'http://a', concurrency: 9 },
      { name: 'defaulted', type: 'ollama', url: 'http://b' },
      { name: 'vllm', type: 'openai', url: 'http://c' },
    ]
    const backends = [stubBackend('own'), stubBackend('defaulted'), stubBackend('vllm', { type: 'openai' })]
    expect(entries(config, backends)).toEqual([
      ['own', 9, 'backends[].concurrency'],
      ['defaulted', 3, 'runtime.ollama.concurrency'],
      ['vllm', 7, 'runtime.openai.concurrency'],
    ])
    // The parsed default config has runtime.ollama only: an openai backend falls back to 4.
    const plain = defaultConfig()
    plain.backends = [
      { name: 'ollama', type: 'ollama', url: 'http://a' },
      { name: 'vllm', type: 'openai', url: 'http://c' },
    ]
    expect(entries(plain, [stubBackend('ollama'), stubBackend('vllm', { type: 'openai' })])).toEqual([
      ['ollama', 2, 'runtime.ollama.concurrency'],
      ['vllm', 4, 'default'],
    ])
    expect(backendConcurrency(plain, 'llamacpp')).toEqual({ concurrency: DEFAULT_BACKEND_CONCURRENCY, source: 'default' })
  })

  test('the implicit local Ollama (no backends configured) takes runtime.ollama.concurrency', () => {
    const { config } = validateData({ runtime: { ollama: { concurrency: 5 } } })
    if (!config) throw new Error('config did not parse')
    expect(config.backends[0]?.concurrency).toBeUndefined()
    expect(entries(config, [stubBackend('ollama')])).toEqual([['ollama', 5, 'runtime.ollama.concurrency']])
  })

  test('runtime.<type>.concurrency is per backend, not a cap over them; agent_runner_concurrency caps no call', async () => {
    // Defaults everywhere: runtime.ollama.concurrency 2, agent_runner_concurrency 5.
    const backends = ['a', 'b', 'c'].map((name) => stubBackend(name))
    const config = defaultConfig()
    config.backends = backends.map((b) => ({ name: b.name, type: 'ollama' as const, url: b.url }))
    const engine = new Engine({ config, backends, cache: null, healthIntervalMs: 0 })
    engines.push(engine)
    const calls = Array.from({ length: 7 }, (_, i) => engine.chatOnce(chat(`q${i}`)))
    await Bun.sleep(10)
    expect(backends.map((b) => b.inflight)).toEqual([2, 2, 2])
    expect(engine.scheduler.stats()).toMatchObject({ inflight: 6, queued: 1, slots: 6, slots_busy: 6 })
    for (let round = 0; round < 2; round++) {
      for (const b of backends) for (const call of b.calls.splice(0)) call.finish()
      await Bun.sleep(5)
    }
    await Promise.all(calls)
  })

  test('a pool worker takes runtime.<api>.concurrency (pools have no key of their own), else 4', () => {
    const config = defaultConfig()
    config.runtime = { ollama: { concurrency: 3 } }
    const engine = new Engine({ config, backends: [], cache: null, healthIntervalMs: 0 })
    engines.push(engine)
    const register = schedulerRegistrar(engine.scheduler, config)
    const worker = (pool: string, api: 'ollama' | 'openai') =>
      ({ id: 'w0', settings: { pool: { name: pool, api, models: [] } } }) as unknown as Worker
    const launch = (port: number) => ({ argv: [], env: {}, url: `http://127.0.0.1:${port}`, healthUrl: '' })
    register(worker('gpu', 'ollama'), launch(1))
    register(worker('llamacpp', 'openai'), launch(2))
    const states = [...engine.scheduler.states.values()].map((s) => [s.name, s.concurrency, s.concurrencySource])
    expect(states).toEqual([
      ['gpu/w0', 3, 'runtime.ollama.concurrency'],
      ['llamacpp/w0', 4, 'default'],
    ])
  })

  test('the task runner cap: agent_runner_concurrency, none when infrastructure_system is off', () => {
    const config = defaultConfig()
    expect(taskRunnerLimit(config)).toEqual({
      concurrency: 5,
      source: 'infrastructure_system.distributed_simulation.agent_runner_concurrency',
    })
    config.infrastructure_system.enabled = false
    expect(taskRunnerLimit(config)).toEqual({ concurrency: null, source: 'infrastructure_system.enabled: false' })
  })
})
