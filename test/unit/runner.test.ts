import { afterEach, describe, expect, test } from 'bun:test'
import { BackendError } from '../../src/backends/types.ts'
import { defaultConfig } from '../../src/config/schema.ts'
import { Engine } from '../../src/scheduler/engine.ts'
import { openStore, type Store } from '../../src/store/db.ts'
import type { TaskState } from '../../src/tasks/queue.ts'
import { type RunnerOptions, TaskRunner } from '../../src/tasks/runner.ts'
import { SqliteTaskQueue as TaskStore } from '../../src/tasks/sqlite.ts'
import { tempDir } from '../helpers/cli.ts'
import { type StubBackend, serverError, stubBackend } from '../helpers/stub-backend.ts'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function setup(backend: StubBackend | StubBackend[], leaseMs = 2000, retentionMs?: number) {
  const backends = Array.isArray(backend) ? backend : [backend]
  const dir = tempDir('orch-runner-')
  const store: Store = openStore(dir.path, { synchronous: 'NORMAL' })
  const tasks = new TaskStore(store, {
    retry: { maxAttempts: 3, baseMs: 5, maxMs: 20 },
    maxStalled: 1,
    leaseMs,
    agingMs: 10_000,
    ...(retentionMs === undefined ? {} : { retentionMs }),
  })
  const config = defaultConfig()
  config.backends = backends.map((b) => ({ name: b.name, type: 'ollama' as const, url: b.url, concurrency: 4 }))
  const engine = new Engine({ config, backends, cache: null, healthIntervalMs: 0 })
  const runners: TaskRunner[] = []
  const runner = (owner = 'host:1:run', extra: Partial<RunnerOptions> = {}) => {
    const r = new TaskRunner({ tasks, engine, owner, leaseMs, pollMs: 20, ...extra })
    runners.push(r)
    void r.start()
    return r
  }
  cleanups.push(() => dir.cleanup())
  cleanups.push(() => store.close())
  cleanups.push(() => engine.close())
  cleanups.push(async () => {
    for (const r of runners) await r.stop()
  })
  return { tasks, engine, runner }
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

const chatTask = (i: number) => ({ type: 'chat', model: 'm', payload: { model: 'm', messages: [{ role: 'user', content: `q${i}` }] } })

describe('TaskRunner', () => {
  test('runs every submitted task to done, within the backend limits, with its result stored', async () => {
    const backend = stubBackend('a', { autoMs: 2 })
    const { tasks, runner } = setup(backend)
    runner()
    const submitted = await tasks.submitMany(Array.from({ length: 40 }, (_, i) => chatTask(i)))
    await until(() => tasks.counts().done === 40)
    expect(backend.maxInflight).toBeLessThanOrEqual(4) // the backend's concurrency
    const task = tasks.get(submitted[0]?.task.id as string)
    expect((task?.result as { message: { content: string } } | undefined)?.message.content).toBe('hello from a')
  })

  test('limit (agent_runner_concurrency) caps the tasks held at once; without it the runner fills every slot', async () => {
    const [a, b] = [stubBackend('a'), stubBackend('b')] // calls never finish by themselves
    const { tasks, runner } = setup([a, b])
    await tasks.submitMany(Array.from({ length: 20 }, (_, i) => chatTask(i)))
    const capped = runner('host:1:capped', { limit: 5 })
    await until(() => a.calls.length + b.calls.length === 5)
    await Bun.sleep(60) // a few poll rounds: no sixth claim
    expect(capped.activeCount).toBe(5)
    expect(tasks.counts().running).toBe(5)
    await capped.stop(0)
    for (const stub of [a, b]) stub.calls.splice(0)
    // Uncapped: both backends' 8 slots run, plus the prefetch (2) claimed and waiting for a slot.
    const open = runner('host:1:open', { limit: null })
    await until(() => open.activeCount === 10)
    await until(() => a.inflight + b.inflight === 8)
    expect([a.inflight, b.inflight]).toEqual([4, 4])
  })

  test('retries a retryable failure with backoff, fails a non-retryable one at once', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    let failures = 0
    backend.failWith = (call) => {
      if (call.model === 'flaky' && failures < 2) {
        failures++
        return serverError('a')
      }
      if (call.model === 'bad') return new BackendError('model "bad" not found', { kind: 'http', status: 404, backend: 'a' })
      return undefined
    }
    const { tasks, runner } = setup(backend)
    runner()
    const [flaky, bad] = await tasks.submitMany([
      { type: 'generate', model: 'flaky', payload: { model: 'flaky', prompt: 'p' } },
      { type: 'generate', model: 'bad', payload: { model: 'bad', prompt: 'p' } },
    ])
    await until(() => tasks.counts().done === 1 && tasks.counts().failed === 1)
    expect(tasks.get(flaky?.task.id as string)).toMatchObject({ state: 'done', attempts: 3 })
    expect(tasks.get(bad?.task.id as string)).toMatchObject({ state: 'failed', attempts: 1, fail_reason: 'not_retryable' })
  })

  test('cancelling a running task aborts its backend call and frees the slot', async () => {
    const backend = stubBackend('a') // calls never finish by themselves
    const { tasks, engine, runner } = setup(backend)
    runner()
    const { task } = await tasks.submit(chatTask(1))
    await until(() => backend.calls.length === 1)
    tasks.cancel(task.id)
    await until(() => engine.scheduler.stats().inflight === 0)
    expect(backend.calls[0]?.signal?.aborted).toBe(true)
    expect(tasks.get(task.id)?.state).toBe('cancelled')
  })

  test('with no healthy backend nothing is claimed; work waits and runs as soon as one answers, not at the next poll', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const { tasks, engine, runner } = setup(backend)
    engine.scheduler.update('a', { healthy: false })
    runner('host:1:run', { pollMs: 60_000 })
    await tasks.submitMany([chatTask(1), chatTask(2)])
    await Bun.sleep(100)
    expect(tasks.counts().queued).toBe(2)
    expect(backend.calls).toHaveLength(0)
    engine.scheduler.update('a', { healthy: true })
    await until(() => tasks.counts().done === 2, 1000)
  })

  test('tasks due that cannot start (no usable backend, or every slot taken) are not polled for until a poke or the poll interval', async () => {
    const backend = stubBackend('a') // calls never finish by themselves
    const { tasks, engine, runner } = setup(backend)
    const reads = { claim: 0, nextRunAfter: 0 }
    const claim = tasks.claim.bind(tasks)
    const nextRunAfter = tasks.nextRunAfter.bind(tasks)
    tasks.claim = (...args: Parameters<typeof claim>) => {
      reads.claim++
      return claim(...args)
    }
    tasks.nextRunAfter = () => {
      reads.nextRunAfter++
      return nextRunAfter()
    }
    engine.scheduler.update('a', { healthy: false })
    await tasks.submitMany(Array.from({ length: 20 }, (_, i) => chatTask(i)))
    runner('host:1:idle', { pollMs: 100 })
    await Bun.sleep(450)
    // No backend: about one look per poll interval (5 in 450 ms), not one per millisecond.
    expect(reads.claim + reads.nextRunAfter).toBeLessThanOrEqual(12)
    expect(tasks.counts().queued).toBe(20)
    // Every slot taken (4 running + 2 prefetched), 14 due behind them: again no spinning.
    engine.scheduler.update('a', { healthy: true })
    await until(() => tasks.counts().running === 6)
    reads.claim = 0
    reads.nextRunAfter = 0
    await Bun.sleep(450)
    expect(reads.claim + reads.nextRunAfter).toBeLessThanOrEqual(12)
    // A settled task pokes the runner at once: the next one starts without waiting for the poll.
    backend.calls[0]?.finish()
    await until(() => tasks.counts().done === 1, 80)
    await until(() => tasks.counts().running === 6, 80)
  })

  test('a graceful stop hands running tasks back untouched; the next runner finishes them', async () => {
    const backend = stubBackend('a')
    const { tasks, runner } = setup(backend)
    const first = runner('host:1:first')
    await tasks.submitMany([chatTask(1), chatTask(2)])
    await until(() => backend.calls.length === 2)
    await first.stop(0)
    const states = tasks.list({}).tasks.map((t) => [t.state, t.attempts, t.stalled_count])
    expect(states).toEqual([
      ['queued', 0, 0],
      ['queued', 0, 0],
    ])
    backend.autoMs = 1
    runner('host:1:second')
    await until(() => tasks.counts().done === 2)
  })

  test("a dead runner's task returns to the queue when its lease expires and another runner finishes it", async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const { tasks, runner } = setup(backend, 150)
    await tasks.submit(chatTask(1))
    const [claimed] = tasks.claim('ghost:999999:dead', 1) // claimed by a runner that then dies silently
    expect(claimed?.state).toBe('running' as TaskState)
    runner('host:1:alive')
    await until(() => tasks.counts().done === 1)
    const task = tasks.get(claimed?.id as string)
    expect(task).toMatchObject({ state: 'done', stalled_count: 1, attempts: 2 })
  })

  test('a large prune goes in steps, with the event loop turning between them', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const { tasks, runner } = setup(backend, 2000, 30)
    await tasks.submitMany(Array.from({ length: 3500 }, (_, i) => chatTask(i)))
    for (const task of tasks.claim('host:1:old', 3500)) tasks.cancel(task.id)
    await Bun.sleep(40)
    let seenBetween = -1
    setTimeout(() => {
      seenBetween = tasks.counts().cancelled
    }, 0)
    await runner('host:1:pruner').start()
    // The first step ran at start; a timer due at once ran before the last step.
    expect(tasks.counts().cancelled).toBe(2500)
    await until(() => tasks.counts().cancelled === 0)
    expect(seenBetween).toBeGreaterThan(0)
    expect(seenBetween).toBeLessThan(3500)
  })

  test('finished tasks past retention are pruned when a runner starts', async () => {
    const backend = stubBackend('a', { autoMs: 1 })
    const { tasks, runner } = setup(backend, 2000, 30)
    const first = runner('host:1:one')
    await tasks.submit(chatTask(1))
    await until(() => tasks.counts().done === 1)
    await first.stop()
    await tasks.submit(chatTask(2)) // still queued: never pruned
    await Bun.sleep(40)
    runner('host:1:two')
    await until(() => tasks.counts().done === 1 && tasks.list({}).tasks.length === 1)
  })
})
