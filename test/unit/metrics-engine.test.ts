import { afterEach, describe, expect, test } from 'bun:test'
import type { Backend, ChatChunk } from '../../src/backends/types.ts'
import { memoryCache } from '../../src/cache/index.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { createOrchMetrics, MAX_MODELS, tokensPerSecondOf } from '../../src/metrics/engine-metrics.ts'
import { type CallEvent, Engine } from '../../src/scheduler/engine.ts'
import type { TaskQueue as TaskStore } from '../../src/tasks/queue.ts'
import { serverError, stubBackend } from '../helpers/stub-backend.ts'

const engines: Engine[] = []
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close()
})

function makeEngine(backends: Backend[], concurrency = 4): Engine {
  const config = defaultConfig()
  config.backends = backends.map((b) => ({ name: b.name, type: 'ollama' as const, url: b.url, concurrency }))
  config.runtime = { ollama: { concurrency: 100 } }
  config.infrastructure_system.llm_orchestration.batching.enabled = false
  const engine = new Engine({
    config,
    backends,
    cache: memoryCache({ maxEntries: 100, maxBytes: 1e6, ttlSeconds: 60 }),
    healthIntervalMs: 0,
  })
  engines.push(engine)
  return engine
}

/** Streams three chunks 20 ms apart; the last carries Ollama's eval stats. */
function streamingBackend(name: string): Backend {
  const stub = stubBackend(name)
  return {
    ...stub,
    async *chat(request) {
      for (let i = 0; i < 3; i++) {
        await Bun.sleep(20)
        const last = i === 2
        const chunk: ChatChunk = { model: request.model, created_at: '', message: { role: 'assistant', content: `t${i} ` }, done: last }
        yield last ? { ...chunk, eval_count: 10, eval_duration: 500_000_000 } : chunk
      }
    },
  }
}

const chat = (content: string) => ({ model: 'm', messages: [{ role: 'user' as const, content }], options: { temperature: 0 } })

describe('engine.onCall: one report per backend call', () => {
  test('a streamed chat reports backend, model, kind, wait, duration, first token and eval stats', async () => {
    const engine = makeEngine([streamingBackend('b1')])
    const events: CallEvent[] = []
    engine.onCall((e) => events.push(e))
    await engine.chatOnce(chat('hi'))
    expect(events).toHaveLength(1)
    const e = events[0] as CallEvent
    expect(e).toMatchObject({ backend: 'b1', model: 'm', kind: 'chat', outcome: 'success', evalCount: 10, evalDurationNs: 500_000_000 })
    expect(e.ttftMs).toBeGreaterThanOrEqual(10)
    expect(e.durationMs).toBeGreaterThan(e.ttftMs as number)
    expect(e.waitedMs).toBeGreaterThanOrEqual(0)
    // The second ask is a cache hit: no backend call, no report.
    await engine.chatOnce(chat('hi'))
    expect(events).toHaveLength(1)
  })

  test('embeddings, failures and early stops are reported with their outcome', async () => {
    const stub = stubBackend('b1', { autoMs: 1 })
    const engine = makeEngine([stub])
    const events: CallEvent[] = []
    engine.onCall((e) => events.push(e))
    await engine.embed({ model: 'm', input: ['a', 'b'] }, { cache: false })
    stub.failWith = () => serverError('b1')
    await expect(engine.chatOnce(chat('x'), { cache: false })).rejects.toThrow('500')
    stub.failWith = undefined
    for await (const _ of engine.chat(chat('y'), { cache: false })) break
    expect(events.map((e) => [e.kind, e.outcome])).toEqual([
      ['embed', 'success'],
      ['chat', 'error'],
      ['chat', 'cancelled'],
    ])
    expect(events[0]?.ttftMs).toBeUndefined()
  })

  test('the wait for a slot is measured; unsubscribing and a throwing observer change nothing', async () => {
    const stub = stubBackend('b1', { autoMs: 30 })
    const engine = makeEngine([stub], 1)
    const events: CallEvent[] = []
    engine.onCall(() => {
      throw new Error('observer bug')
    })
    const off = engine.onCall((e) => events.push(e))
    await Promise.all([engine.chatOnce(chat('1'), { cache: false }), engine.chatOnce(chat('2'), { cache: false })])
    expect(events.map((e) => e.waitedMs >= 20)).toEqual([false, true])
    off()
    await engine.chatOnce(chat('3'), { cache: false })
    expect(events).toHaveLength(2)
  })
})

describe('orch metrics from calls and requests', () => {
  function metricsFor(engine: Engine) {
    const tasks = {
      counts: () => ({ queued: 2, running: 1, done: 5, failed: 0, cancelled: 0 }),
      nextRunAfter: () => Date.now() + 60_000,
    } as unknown as TaskStore
    return createOrchMetrics({ engine, tasks, config: defaultConfig(), instance: 'test-host', version: '9.9.9' }, { errorRate: () => 0.25 })
  }

  test('HTTP records, calls and scrape-time values land in their series', async () => {
    const engine = makeEngine([streamingBackend('b1')])
    const metrics = metricsFor(engine)
    engine.onCall(metrics.onCall)
    await engine.chatOnce(chat('hi'))
    metrics.onRequest({ method: 'GET', route: '/tasks/:id', status: 200, ms: 3 })
    metrics.onRequest({ method: 'GET', route: '/tasks/:id', status: 200, ms: 7 })
    metrics.onRequest({ method: 'POST', route: '/queue/submit', status: 503, ms: 1 })
    metrics.onRequest({ method: 'MADE-UP', route: 'unmatched', status: 401, ms: 1 })
    expect(metrics.http).toEqual({ requests: 4, errors: 1 })
    const text = await metrics.render()
    const has = (line: string) => expect(text).toContain(`${line}\n`)
    has('orch_http_request_duration_seconds_count{instance="test-host",method="GET",route="/tasks/:id",status="200"} 2')
    has('orch_http_request_duration_seconds_sum{instance="test-host",method="GET",route="/tasks/:id",status="200"} 0.01')
    has('orch_http_request_duration_seconds_count{instance="test-host",method="other",route="unmatched",status="401"} 1')
    has('orch_backend_request_duration_seconds_count{instance="test-host",backend="b1",model="m",kind="chat"} 1')
    has('orch_time_to_first_token_seconds_count{instance="test-host",backend="b1",model="m"} 1')
    has('orch_tokens_per_second_sum{instance="test-host",backend="b1",model="m"} 20')
    has('gpu_wait_seconds_count{instance="test-host",backend="b1",model="m"} 1')
    has('orch_backend_calls_total{instance="test-host",backend="b1",model="m",kind="chat",outcome="success"} 1')
    has('orchestrator_concurrency_limit{instance="test-host",backend="b1"} 4')
    has('orchestrator_inflight_tasks{instance="test-host",backend="b1"} 0')
    has('orch_breaker_state{instance="test-host",backend="b1"} 0')
    has('env_queue_depth{instance="test-host"} 2')
    has('env_error_rate{instance="test-host"} 0.25')
    has('orch_tasks{instance="test-host",state="done"} 5')
    has('orch_cache_misses_total{instance="test-host"} 1')
    has('orch_scheduler_requests_total{instance="test-host"} 1')
    has('orch_build_info{instance="test-host",version="9.9.9"} 1')
    has('orch_task_runner_limit{instance="test-host"} 5')
  })

  test('the model label is capped: models past the limit are recorded as other', async () => {
    const metrics = metricsFor(makeEngine([stubBackend('b1')]))
    const event = (model: string): CallEvent => ({ backend: 'b1', model, kind: 'embed', waitedMs: 0, durationMs: 1, outcome: 'success' })
    for (let i = 0; i < MAX_MODELS + 5; i++) metrics.onCall(event(`model-${i}`))
    const text = await metrics.render()
    expect(text).toContain(`model="model-${MAX_MODELS - 1}"`)
    expect(text).not.toContain(`model="model-${MAX_MODELS}"`)
    expect(text).toContain('orch_backend_request_duration_seconds_count{instance="test-host",backend="b1",model="other",kind="embed"} 5')
  })

  test('tokens per second: the backend timing first, else the streaming time after the first token', () => {
    const base: CallEvent = { backend: 'b', model: 'm', kind: 'chat', waitedMs: 0, durationMs: 1100, ttftMs: 100, outcome: 'success' }
    expect(tokensPerSecondOf({ ...base, evalCount: 50, evalDurationNs: 1e9 })).toBe(50)
    expect(tokensPerSecondOf({ ...base, evalCount: 11 })).toBe(10)
    expect(tokensPerSecondOf({ ...base, evalCount: 1 })).toBeUndefined()
    expect(tokensPerSecondOf(base)).toBeUndefined()
    expect(tokensPerSecondOf({ ...base, evalCount: 50, evalDurationNs: 1e9, outcome: 'error' })).toBeUndefined()
  })
})
