/**
 * What is particular to the sqlite task queue (src/tasks/sqlite.ts); what every queue must do is the
 * TaskQueue contract (test/contract/task-queue.ts, run against sqlite by task-queue-sqlite.test.ts). Here:
 * group commit (one transaction per event-loop turn) and its stats, rows on disk as another connection or
 * process sees them, the synchronous complete and fail, the maintained queued counts against a real COUNT,
 * and the options the constructor refuses.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { OrchError } from '../../src/core/errors.ts'
import { openStore, type Store } from '../../src/store/db.ts'
import type { SubmitInput, Task, TaskEvent, TaskQueueOptions } from '../../src/tasks/queue.ts'
import { backoffMs } from '../../src/tasks/retry.ts'
import { SqliteTaskQueue } from '../../src/tasks/sqlite.ts'
import { baseOptions, fatal, RETRY, retryable, T0 } from '../contract/task-queue-fixture.ts'
import { tempDir } from '../helpers/cli.ts'
import { prng } from '../helpers/prng.ts'

interface Fixture {
  home: string
  store: Store
  tasks: SqliteTaskQueue
  clock: { t: number }
  events: TaskEvent[]
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

/** A queue on a fresh state.db with a hand-driven clock and a fixed `random`. */
function fixture(options: Partial<TaskQueueOptions> = {}): Fixture {
  const dir = tempDir('orch-tasks-')
  cleanups.push(dir.cleanup)
  const store = openStore(dir.path)
  cleanups.push(() => store.close())
  const clock = { t: T0 }
  const tasks = new SqliteTaskQueue(store, { ...baseOptions(clock), ...options })
  const events: TaskEvent[] = []
  tasks.onEvent((e) => events.push(e))
  return { home: dir.path, store, tasks, clock, events }
}

/** A second connection to the fixture's file. */
function connect(f: Fixture): Store {
  const store = openStore(f.home)
  cleanups.push(() => store.close())
  return store
}

/** A second queue on the same file through its own connection, sharing the first one's clock. */
function sibling(f: Fixture): SqliteTaskQueue {
  return new SqliteTaskQueue(connect(f), baseOptions(f.clock))
}

describe('group commit and durability', () => {
  test('200 concurrent submits share exactly one commit, and every row is on disk after reopening', async () => {
    const f = fixture()
    const before = f.tasks.stats.commits
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => f.tasks.submit({ type: 'chat', payload: { i } })))
    expect(f.tasks.stats.commits).toBe(before + 1)
    expect(f.tasks.stats.submitted).toBe(200)
    expect(results.every((r) => r.created)).toBe(true)
    f.store.close()
    const reopened = openStore(f.home)
    cleanups.push(() => reopened.close())
    expect(reopened.one<{ n: number }>('SELECT COUNT(*) AS n FROM tasks')?.n).toBe(200)
    expect(new Set(results.map((r) => r.task.id)).size).toBe(200)
  })

  test('submissions of separate turns are separate commits; submitMany is one', async () => {
    const f = fixture()
    await f.tasks.submit({ type: 'a' })
    await f.tasks.submit({ type: 'b' })
    await f.tasks.submitMany([{ type: 'c' }, { type: 'd' }, { type: 'e' }])
    expect(f.tasks.stats).toEqual({ commits: 3, submitted: 5, refused: 0 })
  })

  test('a submission resolves only once another connection can read its row', async () => {
    const f = fixture()
    const other = connect(f)
    const pending = f.tasks.submit({ type: 'chat' })
    expect(other.one<{ n: number }>('SELECT COUNT(*) AS n FROM tasks')?.n).toBe(0)
    const { task } = await pending
    expect(other.one<{ id: string }>('SELECT id FROM tasks WHERE id = ?', [task.id])?.id).toBe(task.id)
  })

  test('a failed commit rejects every submission of the batch', async () => {
    const f = fixture()
    const batch = [f.tasks.submit({ type: 'a' }), f.tasks.submit({ type: 'b' })]
    f.store.close()
    const results = await Promise.allSettled(batch)
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(f.tasks.stats.commits).toBe(0)
  })

  test('stats count the tasks created and the submissions refused; a repeated idempotency key is neither', async () => {
    const f = fixture({ maxQueued: 3 })
    await f.tasks.submitMany([
      { type: 'x', idempotency_key: 'k1', payload: 1 },
      { type: 'x', idempotency_key: 'k1', payload: 2 },
      { type: 'x', idempotency_key: 'k1', tenant: 'other' },
    ])
    expect(f.tasks.stats).toEqual({ commits: 1, submitted: 2, refused: 0 })
    // One group commit that reaches the bound: one more created, two refused.
    const burst = await Promise.allSettled([f.tasks.submit({ type: 'x' }), f.tasks.submit({ type: 'x' }), f.tasks.submit({ type: 'x' })])
    expect(burst.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected'])
    expect(f.tasks.stats).toEqual({ commits: 2, submitted: 3, refused: 2 })
    // With the queue full a known key still gets its task, alone or in a bulk, and counts as neither.
    expect((await f.tasks.submit({ type: 'x', idempotency_key: 'k1' })).created).toBe(false)
    const bulk = await f.tasks.submitMany([
      { type: 'x', idempotency_key: 'k1', tenant: 'other' },
      { type: 'x', idempotency_key: 'k1' },
    ])
    expect(bulk.map((r) => r.created)).toEqual([false, false])
    expect(f.tasks.stats).toMatchObject({ submitted: 3, refused: 2 })
    await expect(f.tasks.submit({ type: 'x', idempotency_key: 'k3' })).rejects.toThrow('tasks.max_queued')
    expect(f.tasks.stats).toMatchObject({ submitted: 3, refused: 3 })
  })
})

describe('complete and fail, the synchronous forms of completeLater and failLater', () => {
  test('they are on disk when they return, and only the lease owner may finish a task, once', async () => {
    const f = fixture()
    const other = connect(f)
    const onDisk = (id: string) => other.one<{ state: string }>('SELECT state FROM tasks WHERE id = ?', [id])?.state
    await f.tasks.submitMany([{ type: 'x' }, { type: 'x' }, { type: 'x' }])
    const [a, b, c] = f.tasks.claim('w', 3) as [Task, Task, Task]
    f.clock.t += 7
    expect(f.tasks.complete(a.id, 'other', 'theirs')).toBe(false)
    expect(f.tasks.complete(a.id, 'w', { answer: 42 })).toBe(true)
    expect(onDisk(a.id)).toBe('done')
    expect(f.tasks.get(a.id)).toMatchObject({ state: 'done', result: { answer: 42 }, finished_at: T0 + 7, lease_expires_at: null })
    expect(f.tasks.complete(a.id, 'w', 'again')).toBe(false)
    expect(f.tasks.get(a.id)?.result).toEqual({ answer: 42 })
    expect(f.tasks.fail(b.id, 'other', fatal)).toBeUndefined()
    expect(f.tasks.fail(b.id, 'w', fatal)).toMatchObject({ state: 'failed', fail_reason: 'not_retryable', error: fatal, attempts: 1 })
    expect(onDisk(b.id)).toBe('failed')
    expect(f.tasks.fail(b.id, 'w', fatal)).toBeUndefined()
    const retried = f.tasks.fail(c.id, 'w', retryable)
    expect(retried).toMatchObject({ state: 'queued', attempts: 1, lease_owner: null, error: retryable })
    expect(retried?.run_after).toBe(T0 + 7 + backoffMs(1, RETRY, () => 0.5))
    expect(onDisk(c.id)).toBe('queued')
    expect(f.tasks.queuedCounts()).toEqual({ total: 1, byTenant: { default: 1 } })
    expect(f.events.slice(6).map((e) => `${e.change}:${e.task.id}`)).toEqual([`done:${a.id}`, `failed:${b.id}`, `retrying:${c.id}`])
  })
})

describe('claim across processes', () => {
  test('two processes claiming at once from one file never take the same task', async () => {
    const f = fixture()
    await f.tasks.submitMany(Array.from({ length: 1000 }, () => ({ type: 'x' })))
    // Both start claiming at the same moment, so their transactions really interleave.
    const startAt = Date.now() + 300
    const script = `
      const { openStore } = await import(${JSON.stringify(join(import.meta.dir, '../../src/store/db.ts'))})
      const { SqliteTaskQueue } = await import(${JSON.stringify(join(import.meta.dir, '../../src/tasks/sqlite.ts'))})
      const store = openStore(process.argv[1])
      const tasks = new SqliteTaskQueue(store, { retry: { maxAttempts: 3, baseMs: 1, maxMs: 1 }, maxStalled: 1, leaseMs: 60000, agingMs: 1000 })
      const ids = []
      await Bun.sleep(Number(process.argv[3]) - Date.now())
      for (;;) {
        const got = tasks.claim(process.argv[2], 3)
        if (got.length === 0) break
        for (const t of got) ids.push(t.id)
        await Bun.sleep(1) // a runner works between claims; without a pause one process would hog the lock
      }
      store.close()
      console.log(JSON.stringify(ids))`
    const run = (owner: string) =>
      Bun.spawn([process.execPath, '-e', script, f.home, owner, String(startAt)], { stdout: 'pipe', stderr: 'inherit' }).stdout.text()
    const outputs = await Promise.all([run('p1'), run('p2')])
    const [a, b] = outputs.map((text) => JSON.parse(text) as string[]) as [string[], string[]]
    expect(a.length).toBeGreaterThan(0)
    expect(b.length).toBeGreaterThan(0)
    expect(a.length + b.length).toBe(1000)
    expect(new Set([...a, ...b]).size).toBe(1000)
    expect(f.tasks.counts().running).toBe(1000)
  })
})

describe('options', () => {
  test('an aging interval that is not a positive, finite number is refused, naming its key', () => {
    const f = fixture()
    for (const agingMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new SqliteTaskQueue(f.store, { ...baseOptions(f.clock), agingMs })).toThrow(OrchError)
    }
    expect(() => new SqliteTaskQueue(f.store, { ...baseOptions(f.clock), agingMs: 0 })).toThrow('tasks.priority_aging_ms')
  })
})

describe('maintained queued counts (tasks.max_queued, tasks.max_queued_per_tenant)', () => {
  test('the counts are read once at open, undone with a failed commit, and counted again at prune', async () => {
    const f = fixture()
    await f.tasks.submitMany([
      { type: 'x', tenant: 'a' },
      { type: 'x', tenant: 'a' },
      { type: 'x', tenant: 'b' },
    ])
    const reopened = new SqliteTaskQueue(f.store, baseOptions(f.clock))
    expect(reopened.queuedCounts()).toEqual({ total: 3, byTenant: { a: 2, b: 1 } })
    // Another connection changes the file; this store learns it at its next prune.
    const other = sibling(f)
    await other.submit({ type: 'x', tenant: 'c' })
    other.claim('elsewhere', 2)
    expect(f.tasks.queuedCounts().total).toBe(3)
    f.tasks.prune()
    expect(f.tasks.queuedCounts()).toEqual(realQueued(f.store))
    // A commit that fails leaves the counts as they were.
    const lost = [f.tasks.submit({ type: 'y' }), f.tasks.submit({ type: 'y', tenant: 'z' })]
    f.store.close()
    expect((await Promise.allSettled(lost)).map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(f.tasks.queuedCounts()).toEqual({ total: 2, byTenant: { b: 1, c: 1 } })
  })

  test('random operations never make the maintained counts (in memory and in task_counts, task_queued) drift from a real COUNT', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = prng(seed)
      const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)] as T
      const f = fixture({ maxQueued: 40, maxQueuedPerTenant: 15, maxStalled: 2, random })
      const tenants = ['a', 'b', 'c', 'default']
      const owners = ['w1', 'w2', 'dead:1:x']
      const input = (): SubmitInput => ({
        type: 'x',
        tenant: pick(tenants),
        ...(random() < 0.3 ? { idempotency_key: `k${Math.floor(random() * 30)}` } : {}),
      })
      const running = () => f.tasks.list({ state: 'running', limit: 1000 }).tasks
      const ops: Array<() => Promise<unknown> | unknown> = [
        () => Promise.allSettled(Array.from({ length: 1 + Math.floor(random() * 6) }, () => f.tasks.submit(input()))),
        () => f.tasks.submitMany(Array.from({ length: 1 + Math.floor(random() * 8) }, input)).catch(() => undefined),
        () => f.tasks.claim(pick(owners), 1 + Math.floor(random() * 5)),
        () => {
          const task = pick(running())
          if (task) f.tasks.complete(task.id, task.lease_owner as string, { ok: true })
        },
        () => {
          const task = pick(running())
          if (task) f.tasks.fail(task.id, task.lease_owner as string, random() < 0.7 ? retryable : fatal)
        },
        async () => {
          // Deferred outcomes share a group commit with submissions of the same turn.
          const task = pick(running())
          const later = task ? f.tasks.failLater(task.id, task.lease_owner as string, retryable) : undefined
          await Promise.allSettled([later, f.tasks.submit(input())])
        },
        () => {
          const task = pick(running())
          if (task) f.tasks.release(task.id, task.lease_owner as string)
        },
        () => {
          const task = pick(f.tasks.list({ limit: 1000 }).tasks)
          if (task) f.tasks.cancel(task.id)
        },
        () => {
          f.clock.t += Math.floor(random() * 40_000)
          f.tasks.recoverExpired()
        },
        () => f.tasks.recoverAbandoned((owner) => !owner.startsWith('dead')),
      ]
      for (let step = 0; step < 300; step++) {
        await pick(ops)()
        expectCountsTrue(f)
      }
      f.clock.t += 10 * 3_600_000 * 24 * 8
      f.tasks.prune()
      expectCountsTrue(f)
    }
  })
})

/** The queue's counts in memory, the count tables it keeps and counts() all agree with a real COUNT. */
function expectCountsTrue(f: Fixture): void {
  const real = realQueued(f.store)
  expect(f.tasks.queuedCounts()).toEqual(real)
  const kept = f.store.all<{ tenant: string; n: number }>('SELECT tenant, n FROM task_queued')
  expect(Object.fromEntries(kept.map((r) => [r.tenant, r.n]))).toEqual(real.byTenant)
  const byState = f.store.all<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM tasks GROUP BY state')
  expect(f.tasks.counts()).toEqual({
    queued: 0,
    running: 0,
    done: 0,
    failed: 0,
    cancelled: 0,
    ...Object.fromEntries(byState.map((r) => [r.state, r.n])),
  })
}

/** What a COUNT over the file says, in the shape of queuedCounts. */
function realQueued(store: Store): { total: number; byTenant: Record<string, number> } {
  const rows = store.all<{ tenant: string; n: number }>("SELECT tenant, COUNT(*) AS n FROM tasks WHERE state = 'queued' GROUP BY tenant")
  return { total: rows.reduce((sum, r) => sum + r.n, 0), byTenant: Object.fromEntries(rows.map((r) => [r.tenant, r.n])) }
}
