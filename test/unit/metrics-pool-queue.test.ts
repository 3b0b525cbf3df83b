/**
 * orch_pool_worker_restarts_total and orch_queue_oldest_wait_seconds from their source values: the pool
 * workers' restart counts, the scheduler's waiting requests and the durable queue's earliest run_after.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { defaultConfig } from '../../src/config/schema.ts'
import { createOrchMetrics, type MetricsSources, type PoolWorkerFigures } from '../../src/metrics/engine-metrics.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import type { TaskState } from '../../src/tasks/queue.ts'
import { type StubBackend, stubBackend } from '../helpers/stub-backend.ts'

const engines: Engine[] = []
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close()
})

function makeEngine(stub: StubBackend, concurrency: number): Engine {
  const config = defaultConfig()
  config.backends = [{ name: stub.name, type: 'ollama' as const, url: stub.url, concurrency }]
  config.infrastructure_system.llm_orchestration.batching.enabled = false
  const engine = new Engine({ config, backends: [stub], cache: null, healthIntervalMs: 0 })
  engines.push(engine)
  return engine
}

const NO_TASKS: Record<TaskState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }

interface Tasks {
  queued: number
  nextRunAfter: number | undefined
  asked: number
}

function metricsFor(engine: Engine, extra: Partial<MetricsSources> = {}, tasks: Tasks = { queued: 0, nextRunAfter: undefined, asked: 0 }) {
  const queue: MetricsSources['tasks'] = {
    counts: () => ({ ...NO_TASKS, queued: tasks.queued }),
    nextRunAfter: () => {
      tasks.asked++
      return tasks.nextRunAfter
    },
  }
  return createOrchMetrics({ engine, tasks: queue, config: defaultConfig(), instance: 'h', version: '0', ...extra }, { errorRate: () => 0 })
}

/** The value of one sample, by its exact label text; undefined when absent. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

const worker = (pool: string, id: string): { -readonly [K in keyof PoolWorkerFigures]: PoolWorkerFigures[K] } => ({
  id,
  settings: { pool: { name: pool } },
  restarts: 0,
  recycles: 0,
})

describe('orch_pool_worker_restarts_total', () => {
  test('each worker has its series from its first scrape; failures, recycles and asked restarts each count one', async () => {
    const a = worker('gen', 'gen-1')
    const b = worker('gen', 'gen-2')
    const workers = [a, b]
    const metrics = metricsFor(makeEngine(stubBackend('b1'), 1), { workers: () => workers })
    const restarts = (text: string, id: string) => sample(text, 'orch_pool_worker_restarts_total', `instance="h",pool="gen",worker="${id}"`)
    let text = await metrics.render()
    expect(text).toContain('# TYPE orch_pool_worker_restarts_total counter\n')
    expect([restarts(text, 'gen-1'), restarts(text, 'gen-2')]).toEqual([0, 0])
    a.restarts = 2
    b.recycles = 1
    text = await metrics.render()
    expect([restarts(text, 'gen-1'), restarts(text, 'gen-2')]).toEqual([2, 1])
    a.recycles = 1
    expect(restarts(await metrics.render(), 'gen-1')).toBe(3)
  })

  test('a worker made again under the same id (scale down, then up) adds to its series instead of starting it over', async () => {
    const first = worker('gen', 'gen-1')
    first.restarts = 3
    let workers = [first]
    const metrics = metricsFor(makeEngine(stubBackend('b1'), 1), { workers: () => workers })
    const restarts = (text: string) => sample(text, 'orch_pool_worker_restarts_total', 'instance="h",pool="gen",worker="gen-1"')
    expect(restarts(await metrics.render())).toBe(3)
    // Scaled down: the series stays, at its count.
    workers = []
    expect(restarts(await metrics.render())).toBe(3)
    const again = worker('gen', 'gen-1')
    workers = [again]
    expect(restarts(await metrics.render())).toBe(3)
    again.restarts = 1
    expect(restarts(await metrics.render())).toBe(4)
  })

  test('without pools the family is there, with no samples', async () => {
    const text = await metricsFor(makeEngine(stubBackend('b1'), 1)).render()
    expect(text).toContain('# HELP orch_pool_worker_restarts_total ')
    expect(text).not.toMatch(/^orch_pool_worker_restarts_total\{/m)
  })
})

describe('orch_queue_oldest_wait_seconds', () => {
  const wait = (text: string, kind: string) => sample(text, 'orch_queue_oldest_wait_seconds', `instance="h",kind="${kind}"`)

  test('slot: the oldest request waiting for a backend slot, 0 once none waits', async () => {
    const stub = stubBackend('b1')
    const engine = makeEngine(stub, 1)
    const metrics = metricsFor(engine)
    const ask = (content: string) => engine.chatOnce({ model: 'm', messages: [{ role: 'user', content }] }, { cache: false })
    let text = await metrics.render()
    expect([wait(text, 'slot'), wait(text, 'task')]).toEqual([0, 0])
    const first = ask('1')
    while (stub.calls.length < 1) await Bun.sleep(5)
    // The only slot is taken: the second request waits.
    const second = ask('2')
    await Bun.sleep(120)
    text = await metrics.render()
    expect(wait(text, 'slot')).toBeGreaterThanOrEqual(0.1)
    expect(wait(text, 'slot')).toBeLessThan(5)
    stub.calls[0]?.finish()
    await first
    while (stub.calls.length < 2) await Bun.sleep(5)
    expect(wait(await metrics.render(), 'slot')).toBe(0)
    stub.calls[1]?.finish()
    await second
    expect(wait(await metrics.render(), 'slot')).toBe(0)
  })

  test('task: how long the task due first has been due; 0 when it is not due yet or none is queued', async () => {
    const tasks: Tasks = { queued: 3, nextRunAfter: Date.now() - 5000, asked: 0 }
    const metrics = metricsFor(makeEngine(stubBackend('b1'), 1), {}, tasks)
    const due = wait(await metrics.render(), 'task') as number
    expect(due).toBeGreaterThanOrEqual(5)
    expect(due).toBeLessThan(10)
    // Queued, but waiting out a retry backoff: nothing is due.
    tasks.nextRunAfter = Date.now() + 60_000
    expect(wait(await metrics.render(), 'task')).toBe(0)
    // Nothing queued: the queue is not asked at all.
    tasks.queued = 0
    tasks.nextRunAfter = Date.now() - 5000
    const asked = tasks.asked
    expect(wait(await metrics.render(), 'task')).toBe(0)
    expect(tasks.asked).toBe(asked)
  })
})
