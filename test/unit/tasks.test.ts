import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { OrchError } from '../../src/core/errors.ts'
import { configureLogging } from '../../src/core/log.ts'
import { openStore, type Store } from '../../src/store/db.ts'
import { isLocalOwnerAlive, ownerId, parseOwner } from '../../src/tasks/owner.ts'
import type { SubmitInput, TaskEvent, TaskQueueOptions as TaskStoreOptions } from '../../src/tasks/queue.ts'
import { backoffMs } from '../../src/tasks/retry.ts'
import { SqliteTaskQueue as TaskStore } from '../../src/tasks/sqlite.ts'
import { tempDir } from '../helpers/cli.ts'
import { prng } from '../helpers/prng.ts'

const T0 = 1_700_000_000_000
const RETRY = { maxAttempts: 3, baseMs: 1000, maxMs: 60_000 }

interface Fixture {
  home: string
  store: Store
  tasks: TaskStore
  clock: { t: number }
  events: TaskEvent[]
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

/** A TaskStore on a fresh state.db with a hand-driven clock and a fixed `random`. */
function fixture(options: Partial<TaskStoreOptions> = {}, home?: string): Fixture {
  if (!home) {
    const dir = tempDir('orch-tasks-')
    cleanups.push(dir.cleanup)
    home = dir.path
  }
  const store = openStore(home)
  cleanups.push(() => store.close())
  const clock = { t: T0 }
  const tasks = new TaskStore(store, {
    retry: RETRY,
    maxStalled: 1,
    leaseMs: 30_000,
    agingMs: 10_000,
    now: () => clock.t,
    random: () => 0.5,
    ...options,
  })
  const events: TaskEvent[] = []
  tasks.onEvent((e) => events.push(e))
  return { home, store, tasks, clock, events }
}

/** A second TaskStore on the same file through its own connection, sharing the first one's clock. */
function sibling(f: Fixture): TaskStore {
  const store = openStore(f.home)
  cleanups.push(() => store.close())
  return new TaskStore(store, { retry: RETRY, maxStalled: 1, leaseMs: 30_000, agingMs: 10_000, now: () => f.clock.t })
}

const retryable = { code: 'E_BACKEND_HTTP', message: 'HTTP 503', retryable: true }
const fatal = { code: 'E_BACKEND_HTTP', message: 'HTTP 400', retryable: false }

describe('submit: group commit and durability', () => {
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
    const other = openStore(f.home)
    cleanups.push(() => other.close())
    const pending = f.tasks.submit({ type: 'chat' })
    expect(other.one<{ n: number }>('SELECT COUNT(*) AS n FROM tasks')?.n).toBe(0)
    const { task } = await pending
    expect(other.one<{ id: string }>('SELECT id FROM tasks WHERE id = ?', [task.id])?.id).toBe(task.id)
  })

  test('a task has its defaults, its fields and a time-sortable id', async () => {
    const f = fixture()
    const { task } = await f.tasks.submit({ type: 'embed', model: 'nomic', payload: { input: ['x'] }, priority: 2 })
    expect(task).toMatchObject({
      type: 'embed',
      model: 'nomic',
      payload: { input: ['x'] },
      priority: 2,
      tenant: 'default',
      idempotency_key: null,
      state: 'queued',
      attempts: 0,
      max_attempts: 3,
      stalled_count: 0,
      run_after: T0,
      created_at: T0,
      result: null,
      error: null,
      fail_reason: null,
    })
    f.clock.t += 1
    const later = await f.tasks.submit({ type: 'embed' })
    expect(later.task.id > task.id).toBe(true)
    expect(later.task.payload).toBeNull()
    expect(f.tasks.get(task.id)).toEqual(task)
    expect(f.events.map((e) => e.change)).toEqual(['submitted', 'submitted'])
  })

  test('an invalid input rejects alone; the rest of its batch commits', async () => {
    const f = fixture()
    const results = await Promise.allSettled([
      f.tasks.submit({ type: 'ok' }),
      f.tasks.submit({ type: '' }),
      f.tasks.submit({ type: 'x', max_attempts: 0 }),
      f.tasks.submit({ type: 'x', payload: { n: 1n } }),
      f.tasks.submit({ type: 'ok2' }),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled'])
    expect(((results[1] as PromiseRejectedResult).reason as OrchError).code).toBe('E_TASK_INVALID')
    expect(f.tasks.counts().queued).toBe(2)
  })

  test('submitMany with one invalid input queues none of them', async () => {
    const f = fixture()
    await expect(f.tasks.submitMany([{ type: 'ok' }, { type: 'x', priority: Number.NaN }])).rejects.toThrow(/priority/)
    await Bun.sleep(1)
    expect(f.tasks.counts().queued).toBe(0)
    expect(f.tasks.stats.commits).toBe(0)
  })

  test('a failed commit rejects every submission of the batch', async () => {
    const f = fixture()
    const batch = [f.tasks.submit({ type: 'a' }), f.tasks.submit({ type: 'b' })]
    f.store.close()
    const results = await Promise.allSettled(batch)
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(f.tasks.stats.commits).toBe(0)
  })
})

describe('submit: idempotency', () => {
  test('a key repeated in the same batch yields one row', async () => {
    const f = fixture()
    const [a, b, c] = await f.tasks.submitMany([
      { type: 'chat', idempotency_key: 'k1', payload: 1 },
      { type: 'chat', idempotency_key: 'k1', payload: 2 },
      { type: 'chat', idempotency_key: 'k1', tenant: 'other' },
    ])
    expect(a?.created).toBe(true)
    expect(b?.created).toBe(false)
    expect(b?.task.id).toBe(a?.task.id as string)
    expect(b?.task.payload).toBe(1)
    expect(c?.created).toBe(true) // keys are per tenant
    expect(f.tasks.stats.submitted).toBe(2)
    expect(f.events.filter((e) => e.change === 'submitted')).toHaveLength(2)
  })

  test('a key from an earlier batch returns the existing task, also once it finished', async () => {
    const f = fixture()
    const first = await f.tasks.submit({ type: 'chat', idempotency_key: 'k' })
    const again = await f.tasks.submit({ type: 'chat', idempotency_key: 'k' })
    expect(again).toEqual({ task: first.task, created: false })
    f.tasks.claim('w')
    f.tasks.complete(first.task.id, 'w', { ok: true })
    const late = await f.tasks.submit({ type: 'chat', idempotency_key: 'k' })
    expect(late.created).toBe(false)
    expect(late.task.state).toBe('done')
    expect(late.task.result).toEqual({ ok: true })
    expect(f.tasks.counts().done).toBe(1)
    expect(f.tasks.counts().queued).toBe(0)
  })

  test('tasks without a key are never merged', async () => {
    const f = fixture()
    const results = await f.tasks.submitMany([{ type: 'chat' }, { type: 'chat' }])
    expect(results.every((r) => r.created)).toBe(true)
  })
})

describe('claim', () => {
  test('leases the task: running, attempts + 1, owner, expiry, started_at; then it is gone from the queue', async () => {
    const f = fixture()
    const { task } = await f.tasks.submit({ type: 'chat' })
    f.clock.t += 5
    const [claimed] = f.tasks.claim('w1')
    expect(claimed).toMatchObject({
      id: task.id,
      state: 'running',
      attempts: 1,
      lease_owner: 'w1',
      lease_expires_at: T0 + 5 + 30_000,
      started_at: T0 + 5,
    })
    expect(f.tasks.claim('w2')).toEqual([])
    expect(f.events.at(-1)?.change).toBe('claimed')
  })

  test('higher priority first; equal ones oldest first, then by id', async () => {
    const f = fixture()
    const low = await f.tasks.submit({ type: 'x', priority: 0 })
    f.clock.t += 1
    const [high1, high2] = await f.tasks.submitMany([
      { type: 'x', priority: 5 },
      { type: 'x', priority: 5 },
    ])
    f.clock.t += 1
    const high0 = await f.tasks.submit({ type: 'x', priority: 5 })
    const order = f.tasks.claim('w', 10).map((t) => t.id)
    const ties = [high1?.task.id, high2?.task.id].sort()
    expect(order).toEqual([...ties, high0.task.id, low.task.id] as string[])
  })

  test('aging: an old low-priority task beats new high-priority ones once 5 × agingMs older', async () => {
    // effective = priority + age/agingMs, so low (0, created T0) ties a 5 created at T0 + 5·agingMs, and the
    // tie goes to the older task. With one new priority-5 task per tick of agingMs/2, claimed one per tick,
    // the low task wins at tick 10, when the competing task is exactly 5 × agingMs younger.
    const f = fixture({ agingMs: 1000 })
    const low = await f.tasks.submit({ type: 'x', priority: 0 })
    let wonAt = -1
    for (let tick = 1; tick <= 20 && wonAt < 0; tick++) {
      f.clock.t = T0 + tick * 500
      await f.tasks.submit({ type: 'x', priority: 5 })
      if (f.tasks.claim('w')[0]?.id === low.task.id) wonAt = tick
    }
    expect(wonAt).toBe(10)
  })

  test('skips tasks whose run_after is in the future, and nextRunAfter says when to look again', async () => {
    const f = fixture()
    const { task } = await f.tasks.submit({ type: 'x' })
    f.tasks.claim('w')
    f.tasks.fail(task.id, 'w', retryable)
    const delay = backoffMs(1, RETRY, () => 0.5)
    expect(f.tasks.nextRunAfter()).toBe(T0 + delay)
    f.clock.t = T0 + delay - 1
    expect(f.tasks.claim('w')).toEqual([])
    f.clock.t = T0 + delay
    expect(f.tasks.claim('w').map((t) => t.id)).toEqual([task.id])
    expect(f.tasks.nextRunAfter()).toBeUndefined()
  })

  test('filters by type and model; limit caps the batch', async () => {
    const f = fixture()
    await f.tasks.submitMany([
      { type: 'chat', model: 'a' },
      { type: 'embed', model: 'a' },
      { type: 'chat', model: 'b' },
      { type: 'chat', model: 'a' },
    ])
    expect(f.tasks.claim('w', 10, { types: ['embed'] }).map((t) => t.type)).toEqual(['embed'])
    expect(f.tasks.claim('w', 10, { models: ['b'] }).map((t) => t.model)).toEqual(['b'])
    expect(f.tasks.claim('w', 1, { types: ['chat'], models: ['a'] })).toHaveLength(1)
    expect(f.tasks.claim('w', 10, { types: [] })).toEqual([])
    expect(f.tasks.claim('w', 10)).toHaveLength(1)
  })

  test('two connections to one file never claim the same task', async () => {
    const f = fixture()
    const other = sibling(f)
    await f.tasks.submitMany(Array.from({ length: 300 }, (_, i) => ({ type: 'x', priority: i % 7 })))
    const seen = new Map<string, string>()
    for (let round = 0; round < 200; round++) {
      const [store, owner] = round % 2 ? [other, 'b'] : [f.tasks, 'a']
      for (const task of store.claim(owner, 1 + (round % 4))) {
        expect(seen.has(task.id)).toBe(false)
        seen.set(task.id, owner)
      }
    }
    expect(seen.size).toBe(300)
    expect(f.tasks.counts().running).toBe(300)
  })

  test('two processes claiming at once from one file never take the same task', async () => {
    const f = fixture()
    await f.tasks.submitMany(Array.from({ length: 1000 }, () => ({ type: 'x' })))
    // Both start claiming at the same moment, so their transactions really interleave.
    const startAt = Date.now() + 300
    const script = `
      const { openStore } = await import(${JSON.stringify(join(import.meta.dir, '../../src/store/db.ts'))})
      const { SqliteTaskQueue: TaskStore } = await import(${JSON.stringify(join(import.meta.dir, '../../src/tasks/sqlite.ts'))})
      const store = openStore(process.argv[1])
      const tasks = new TaskStore(store, { retry: { maxAttempts: 3, baseMs: 1, maxMs: 1 }, maxStalled: 1, leaseMs: 60000, agingMs: 1000 })
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

describe('renew, complete, fail', () => {
  async function running(f: Fixture, owner = 'w', input = {}) {
    await f.tasks.submit({ type: 'x', ...input })
    const [task] = f.tasks.claim(owner)
    if (!task) throw new Error('nothing claimed')
    return task
  }

  test('renew extends the lease of its owner only', async () => {
    const f = fixture()
    const task = await running(f)
    f.clock.t += 10_000
    expect(f.tasks.renew(task.id, 'w')).toBe(true)
    expect(f.tasks.get(task.id)?.lease_expires_at).toBe(T0 + 40_000)
    expect(f.tasks.renew(task.id, 'other')).toBe(false)
    expect(f.tasks.renew('t_missing', 'w')).toBe(false)
    f.tasks.complete(task.id, 'w', null)
    expect(f.tasks.renew(task.id, 'w')).toBe(false)
  })

  test('complete records the result once; a second complete or another owner changes nothing', async () => {
    const f = fixture()
    const task = await running(f)
    expect(f.tasks.complete(task.id, 'other', 'theirs')).toBe(false)
    f.clock.t += 7
    expect(f.tasks.complete(task.id, 'w', { answer: 42 })).toBe(true)
    expect(f.tasks.get(task.id)).toMatchObject({ state: 'done', result: { answer: 42 }, finished_at: T0 + 7, lease_expires_at: null })
    expect(f.tasks.complete(task.id, 'w', 'again')).toBe(false)
    expect(f.tasks.get(task.id)?.result).toEqual({ answer: 42 })
    expect(f.tasks.claim('w')).toEqual([])
    expect(f.events.filter((e) => e.change === 'done')).toHaveLength(1)
  })

  test('a stale owner (lease expired, task requeued and claimed elsewhere) can neither complete, fail nor renew', async () => {
    const f = fixture()
    const task = await running(f, 'old')
    f.clock.t += 30_001
    expect(f.tasks.recoverExpired().map((t) => t.state)).toEqual(['queued'])
    expect(f.tasks.claim('new').map((t) => t.id)).toEqual([task.id])
    expect(f.tasks.complete(task.id, 'old', 'stale')).toBe(false)
    expect(f.tasks.fail(task.id, 'old', fatal)).toBeUndefined()
    expect(f.tasks.renew(task.id, 'old')).toBe(false)
    expect(f.tasks.get(task.id)).toMatchObject({ state: 'running', lease_owner: 'new', attempts: 2 })
    expect(f.tasks.complete(task.id, 'new', 'fresh')).toBe(true)
    expect(f.tasks.get(task.id)?.result).toBe('fresh')
  })

  test('a non-retryable error fails at once', async () => {
    const f = fixture()
    const task = await running(f)
    const failed = f.tasks.fail(task.id, 'w', fatal)
    expect(failed).toMatchObject({ state: 'failed', fail_reason: 'not_retryable', error: fatal, attempts: 1, finished_at: T0 })
    expect(f.events.at(-1)?.change).toBe('failed')
  })

  test('a retryable error requeues with backoff until max_attempts, then fails', async () => {
    const f = fixture()
    const task = await running(f, 'w', { max_attempts: 3 })
    const random = () => 0.5
    for (let attempt = 1; attempt <= 2; attempt++) {
      const retried = f.tasks.fail(task.id, 'w', retryable)
      expect(retried).toMatchObject({ state: 'queued', attempts: attempt, lease_owner: null, error: retryable })
      expect(retried?.run_after).toBe(f.clock.t + backoffMs(attempt, RETRY, random))
      expect(f.events.at(-1)?.change).toBe('retrying')
      f.clock.t = retried?.run_after as number
      expect(f.tasks.claim('w')[0]?.attempts).toBe(attempt + 1)
    }
    expect(f.tasks.fail(task.id, 'w', retryable)).toMatchObject({ state: 'failed', fail_reason: 'max_attempts', attempts: 3 })
    expect(f.tasks.fail(task.id, 'w', retryable)).toBeUndefined()
  })

  test('a task submitted with max_attempts 1 never retries', async () => {
    const f = fixture()
    const task = await running(f, 'w', { max_attempts: 1 })
    expect(f.tasks.fail(task.id, 'w', retryable)?.fail_reason).toBe('max_attempts')
  })
})

describe('cancel', () => {
  test('a queued task is cancelled and never claimed', async () => {
    const f = fixture()
    const { task } = await f.tasks.submit({ type: 'x' })
    expect(f.tasks.cancel(task.id)).toMatchObject({ state: 'cancelled', fail_reason: 'cancelled', finished_at: T0 })
    expect(f.tasks.claim('w')).toEqual([])
    expect(f.events.at(-1)?.change).toBe('cancelled')
  })

  test('a running task is cancelled; its runner loses the lease and cannot finish it', async () => {
    const f = fixture()
    await f.tasks.submit({ type: 'x' })
    const [task] = f.tasks.claim('w')
    const id = task?.id as string
    expect(f.tasks.cancel(id)?.state).toBe('cancelled')
    expect(f.tasks.renew(id, 'w')).toBe(false)
    expect(f.tasks.complete(id, 'w', 'late')).toBe(false)
    expect(f.tasks.fail(id, 'w', retryable)).toBeUndefined()
    f.clock.t += 60_000
    expect(f.tasks.recoverExpired()).toEqual([])
    expect(f.tasks.get(id)?.state).toBe('cancelled')
  })

  test('a finished task is returned unchanged; an unknown id is undefined', async () => {
    const f = fixture()
    await f.tasks.submit({ type: 'x' })
    const [task] = f.tasks.claim('w')
    f.tasks.complete(task?.id as string, 'w', 1)
    const before = f.events.length
    expect(f.tasks.cancel(task?.id as string)?.state).toBe('done')
    expect(f.events.length).toBe(before)
    expect(f.tasks.cancel('t_unknown')).toBeUndefined()
  })
})

describe('recovery', () => {
  test('an expired lease requeues the task once, keeping the attempt; the next expiry fails it as stalled', async () => {
    const f = fixture({ maxStalled: 1, leaseMs: 1000 })
    const { task } = await f.tasks.submit({ type: 'x' })
    f.tasks.claim('w')
    f.clock.t = T0 + 1000
    expect(f.tasks.recoverExpired()).toEqual([]) // expires strictly after lease_expires_at
    f.clock.t = T0 + 1001
    const [requeued] = f.tasks.recoverExpired()
    expect(requeued).toMatchObject({ id: task.id, state: 'queued', stalled_count: 1, attempts: 1, lease_owner: null, run_after: T0 + 1001 })
    expect(requeued?.error?.code).toBe('E_STALLED')
    expect(f.events.at(-1)?.change).toBe('requeued')
    f.tasks.claim('w2')
    f.clock.t += 1001
    expect(f.tasks.recoverExpired()[0]).toMatchObject({ state: 'failed', fail_reason: 'stalled', stalled_count: 2, attempts: 2 })
    expect(f.events.at(-1)?.change).toBe('failed')
  })

  test('max_stalled 0 fails at the first lost lease', async () => {
    const f = fixture({ maxStalled: 0, leaseMs: 10 })
    await f.tasks.submit({ type: 'x' })
    f.tasks.claim('w')
    f.clock.t += 11
    expect(f.tasks.recoverExpired()[0]?.fail_reason).toBe('stalled')
  })

  test('a stall on the last attempt fails the task as max_attempts, so attempts never exceed max_attempts', async () => {
    const f = fixture({ maxStalled: 5, leaseMs: 10 })
    await f.tasks.submit({ type: 'x', max_attempts: 1 })
    f.tasks.claim('w')
    f.clock.t += 11
    expect(f.tasks.recoverExpired()[0]).toMatchObject({ state: 'failed', fail_reason: 'max_attempts', attempts: 1, stalled_count: 1 })
  })

  test('recoverAbandoned requeues the tasks of a dead local process now, and leaves live owners alone', async () => {
    const f = fixture()
    const child = Bun.spawn([process.execPath, '-e', ''], { stdout: 'ignore' })
    await child.exited
    const dead = `${parseOwner(ownerId('r'))?.host}:${child.pid}:old-run`
    const live = ownerId('current')
    await f.tasks.submitMany([{ type: 'x' }, { type: 'x' }])
    const [a] = f.tasks.claim(dead)
    const [b] = f.tasks.claim(live)
    const recovered = f.tasks.recoverAbandoned(isLocalOwnerAlive)
    expect(recovered.map((t) => [t.id, t.state, t.stalled_count])).toEqual([[a?.id as string, 'queued', 1]])
    expect(f.tasks.get(b?.id as string)?.state).toBe('running')
    expect(f.tasks.recoverAbandoned(isLocalOwnerAlive)).toEqual([])
  })
})

describe('owners', () => {
  test('ownerId is host:pid:run and parses back, run ids may hold colons', () => {
    expect(parseOwner(ownerId('a:b'))).toEqual({ host: parseOwner(ownerId('x'))?.host as string, pid: process.pid, runId: 'a:b' })
    expect(parseOwner('nonsense')).toBeUndefined()
  })

  test('isLocalOwnerAlive: this process alive, a gone pid dead, other hosts and strangers presumed alive', async () => {
    const host = parseOwner(ownerId('x'))?.host as string
    const child = Bun.spawn([process.execPath, '-e', ''], { stdout: 'ignore' })
    await child.exited
    expect(isLocalOwnerAlive(ownerId('me'))).toBe(true)
    expect(isLocalOwnerAlive(`${host}:${child.pid}:r`)).toBe(false)
    expect(isLocalOwnerAlive(`${host}:1:r`)).toBe(true) // init exists; EPERM still means alive
    expect(isLocalOwnerAlive(`not-${host}:${child.pid}:r`)).toBe(true)
    expect(isLocalOwnerAlive('worker-7')).toBe(true)
  })
})

describe('queries and housekeeping', () => {
  test('list pages newest first with a cursor, filtered by state and tenant', async () => {
    const f = fixture()
    const ids: string[] = []
    for (let i = 0; i < 7; i++) {
      f.clock.t = T0 + Math.floor(i / 2) // pairs share a millisecond, so the id breaks the tie
      const { task } = await f.tasks.submit({ type: 'x', tenant: i % 3 === 0 ? 'acme' : 'default' })
      ids.push(task.id)
    }
    const pages: string[][] = []
    let cursor: string | undefined
    do {
      const page = f.tasks.list({ limit: 3, ...(cursor ? { cursor } : {}) })
      pages.push(page.tasks.map((t) => t.id))
      cursor = page.next_cursor ?? undefined
    } while (cursor)
    expect(pages.flat()).toEqual([...ids].reverse())
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1])
    expect(f.tasks.list({ tenant: 'acme' }).tasks.map((t) => t.id)).toEqual([ids[6], ids[3], ids[0]] as string[])
    f.tasks.cancel(ids[2] as string)
    expect(f.tasks.list({ state: 'cancelled' }).tasks.map((t) => t.id)).toEqual([ids[2] as string])
    expect(f.tasks.list({ state: 'queued', limit: 100 }).next_cursor).toBeNull()
    expect(() => f.tasks.list({ cursor: 'garbage' })).toThrow(/not a task list cursor/)
  })

  test('counts every state, zeros included', async () => {
    const f = fixture()
    await f.tasks.submitMany(Array.from({ length: 5 }, () => ({ type: 'x' })))
    const [a, b, c] = f.tasks.claim('w', 3)
    f.tasks.complete(a?.id as string, 'w', 1)
    f.tasks.fail(b?.id as string, 'w', fatal)
    f.tasks.cancel(c?.id as string)
    expect(f.tasks.counts()).toEqual({ queued: 2, running: 0, done: 1, failed: 1, cancelled: 1 })
  })

  test('prune deletes finished tasks past retention, and only those', async () => {
    const hour = 3_600_000
    const f = fixture({ retentionMs: 24 * hour })
    await f.tasks.submitMany(Array.from({ length: 4 }, () => ({ type: 'x' })))
    const [a, b, c] = f.tasks.claim('w', 3)
    f.tasks.complete(a?.id as string, 'w', 1) // finished at T0
    f.clock.t = T0 + 10 * hour
    f.tasks.fail(b?.id as string, 'w', fatal) // finished at T0 + 10 h
    f.clock.t = T0 + 24 * hour + 1
    expect(f.tasks.prune()).toBe(1)
    expect(f.tasks.get(a?.id as string)).toBeUndefined()
    expect(f.tasks.prune(0)).toBe(1)
    expect(f.tasks.counts()).toEqual({ queued: 1, running: 1, done: 0, failed: 0, cancelled: 0 })
    expect(f.tasks.get(c?.id as string)?.state).toBe('running')
  })

  test('listeners hear every change after its commit, can unsubscribe, and cannot break the store', async () => {
    configureLogging({ level: 'info', categories: { store: 'none' } })
    cleanups.push(() => configureLogging({ level: 'info' }))
    const f = fixture()
    const other = openStore(f.home)
    cleanups.push(() => other.close())
    const seenCommitted: boolean[] = []
    f.tasks.onEvent((e) => {
      seenCommitted.push(other.one<{ state: string }>('SELECT state FROM tasks WHERE id = ?', [e.task.id])?.state === e.task.state)
      throw new Error('listener bug')
    })
    const { task } = await f.tasks.submit({ type: 'x' })
    f.tasks.claim('w')
    f.tasks.complete(task.id, 'w', 'r')
    expect(seenCommitted).toEqual([true, true, true])
    expect(f.events.map((e) => `${e.change}:${e.task.state}`)).toEqual(['submitted:queued', 'claimed:running', 'done:done'])
    const quiet = fixture()
    const heard: string[] = []
    const off = quiet.tasks.onEvent((e) => heard.push(e.change))
    off()
    await quiet.tasks.submit({ type: 'x' })
    expect(heard).toEqual([])
  })

  test('an aging interval that is not positive is refused', () => {
    const f = fixture()
    expect(() => new TaskStore(f.store, { retry: RETRY, maxStalled: 1, leaseMs: 1, agingMs: 0 })).toThrow(OrchError)
  })
})

describe('queue bound (tasks.max_queued, tasks.max_queued_per_tenant)', () => {
  const refusal = (result: PromiseSettledResult<unknown>) => (result as PromiseRejectedResult).reason as OrchError

  test('past the total bound a submission is refused with 429, Retry-After and the key; a claim makes room again', async () => {
    const f = fixture({ maxQueued: 5 })
    // One group commit: the bound holds inside a batch too.
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => f.tasks.submit({ type: 'x', payload: { i } })))
    expect(results.map((r) => r.status)).toEqual([...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')])
    const error = refusal(results[5] as PromiseSettledResult<unknown>)
    expect(error.code).toBe('E_TASK_QUEUE_FULL')
    expect(error.details).toMatchObject({ status: 429, retryable: true, retry_after_s: 5, key: 'tasks.max_queued', limit: 5 })
    expect(error.message).toBe('the task queue is full: 5 queued, tasks.max_queued is 5')
    expect(error.hint).toContain('raise tasks.max_queued (0: no bound)')
    expect(f.tasks.counts().queued).toBe(5)
    expect(f.tasks.stats).toMatchObject({ submitted: 5, refused: 3 })
    f.tasks.claim('w', 2)
    await f.tasks.submit({ type: 'x' })
    await f.tasks.submit({ type: 'x' })
    await expect(f.tasks.submit({ type: 'x' })).rejects.toThrow('tasks.max_queued')
    expect(f.tasks.queuedCounts()).toEqual({ total: 5, byTenant: { default: 5 } })
  })

  test('past its own bound one tenant is refused; another tenant is still accepted', async () => {
    const f = fixture({ maxQueued: 100, maxQueuedPerTenant: 3 })
    for (let i = 0; i < 3; i++) await f.tasks.submit({ type: 'x', tenant: 'noisy' })
    const error = (await f.tasks.submit({ type: 'x', tenant: 'noisy' }).catch((e: unknown) => e)) as OrchError
    expect(error.code).toBe('E_TASK_QUEUE_FULL')
    expect(error.message).toBe('tenant "noisy" has as many tasks queued as it may: 3 queued, tasks.max_queued_per_tenant is 3')
    expect(error.details).toMatchObject({ status: 429, key: 'tasks.max_queued_per_tenant', retry_after_s: 5 })
    expect((await f.tasks.submit({ type: 'x', tenant: 'quiet' })).created).toBe(true)
    expect(f.tasks.queuedCounts()).toEqual({ total: 4, byTenant: { noisy: 3, quiet: 1 } })
  })

  test('a bulk submission that would pass the bound is refused whole: nothing committed, no event', async () => {
    const f = fixture({ maxQueued: 5 })
    await f.tasks.submitMany([{ type: 'x' }, { type: 'x' }, { type: 'x' }])
    const events = f.events.length
    const error = (await f.tasks.submitMany([{ type: 'a' }, { type: 'b' }, { type: 'c' }]).catch((e: unknown) => e)) as OrchError
    expect(error.code).toBe('E_TASK_QUEUE_FULL')
    expect(error.message).toContain('none of the 3 tasks of this submission was queued')
    expect(f.tasks.counts().queued).toBe(3)
    expect(f.tasks.list({}).tasks.map((t) => t.type)).toEqual(['x', 'x', 'x'])
    expect(f.events.length).toBe(events)
    expect(f.tasks.queuedCounts().total).toBe(3)
    // Submissions of the same turn beside the refused bulk are judged on their own.
    const [single, bulk] = await Promise.allSettled([f.tasks.submit({ type: 'd' }), f.tasks.submitMany([{ type: 'e' }, { type: 'f' }])])
    expect([single.status, bulk.status]).toEqual(['fulfilled', 'rejected'])
    expect((await f.tasks.submitMany([{ type: 'g' }])).map((r) => r.created)).toEqual([true])
    expect(f.tasks.queuedCounts().total).toBe(5)
  })

  test('a repeated idempotency key gets its task even when the queue is full, alone or in a bulk', async () => {
    const f = fixture({ maxQueued: 2, maxQueuedPerTenant: 2 })
    const first = await f.tasks.submit({ type: 'x', idempotency_key: 'k1' })
    await f.tasks.submit({ type: 'x', idempotency_key: 'k2' })
    const again = await f.tasks.submit({ type: 'x', idempotency_key: 'k1' })
    expect(again).toMatchObject({ created: false, task: { id: first.task.id } })
    const bulk = await f.tasks.submitMany([
      { type: 'x', idempotency_key: 'k2' },
      { type: 'x', idempotency_key: 'k1' },
    ])
    expect(bulk.map((r) => r.created)).toEqual([false, false])
    await expect(f.tasks.submit({ type: 'x', idempotency_key: 'k3' })).rejects.toThrow('tasks.max_queued')
    expect(f.tasks.stats).toMatchObject({ submitted: 2, refused: 1 })
  })

  test('0 means no bound', async () => {
    const f = fixture({ maxQueued: 0, maxQueuedPerTenant: 0 })
    await f.tasks.submitMany(Array.from({ length: 50 }, () => ({ type: 'x' })))
    expect(f.tasks.queuedCounts().total).toBe(50)
  })

  test('the counts are read once at open, undone with a failed commit, and counted again at prune', async () => {
    const f = fixture()
    await f.tasks.submitMany([
      { type: 'x', tenant: 'a' },
      { type: 'x', tenant: 'a' },
      { type: 'x', tenant: 'b' },
    ])
    const reopened = new TaskStore(f.store, { retry: RETRY, maxStalled: 1, leaseMs: 30_000, agingMs: 10_000 })
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

  test('random operations never make the maintained counts drift from a real COUNT', async () => {
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
        expect(f.tasks.queuedCounts()).toEqual(realQueued(f.store))
      }
      f.clock.t += 10 * 3_600_000 * 24 * 8
      f.tasks.prune()
      expect(f.tasks.queuedCounts()).toEqual(realQueued(f.store))
    }
  })
})

/** What a COUNT over the file says, in the shape of queuedCounts. */
function realQueued(store: Store): { total: number; byTenant: Record<string, number> } {
  const rows = store.all<{ tenant: string; n: number }>("SELECT tenant, COUNT(*) AS n FROM tasks WHERE state = 'queued' GROUP BY tenant")
  return { total: rows.reduce((sum, r) => sum + r.n, 0), byTenant: Object.fromEntries(rows.map((r) => [r.tenant, r.n])) }
}
