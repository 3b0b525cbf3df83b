/** The TaskQueue contract: get and list, counts, queue bounds, prune, events and close. */
import { describe, expect, test } from 'bun:test'
import { configureLogging } from '../../src/core/log.ts'
import type { Task, TaskChange, TaskEvent, TaskState } from '../../src/tasks/queue.ts'
import { type Contract, changes, failure, fatal, HOUR, rejection, retryable, T0 } from './task-queue-fixture.ts'

const STATES: TaskState[] = ['queued', 'running', 'done', 'failed', 'cancelled']

export function queryCases({ open, running }: Contract): void {
  describe('queries', () => {
    test('list pages newest first with a cursor, filtered by state and tenant', async () => {
      const f = await open()
      const ids: string[] = []
      for (let i = 0; i < 7; i++) {
        f.clock.t = T0 + Math.floor(i / 2) // pairs share a millisecond, so the id breaks the tie
        const { task } = await f.queue.submit({ type: 'x', tenant: i % 3 === 0 ? 'acme' : 'default' })
        ids.push(task.id)
      }
      const pages: string[][] = []
      let cursor: string | undefined
      do {
        const page = await f.queue.list({ limit: 3, ...(cursor ? { cursor } : {}) })
        pages.push(page.tasks.map((t) => t.id))
        cursor = page.next_cursor ?? undefined
      } while (cursor)
      expect(pages.flat()).toEqual([...ids].reverse())
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1])
      expect((await f.queue.list({ tenant: 'acme' })).tasks.map((t) => t.id)).toEqual([ids[6], ids[3], ids[0]] as string[])
      await f.queue.cancel(ids[2] as string)
      expect((await f.queue.list({ state: 'cancelled' })).tasks.map((t) => t.id)).toEqual([ids[2] as string])
      expect((await f.queue.list({ state: 'cancelled', tenant: 'acme' })).tasks).toEqual([])
      expect((await f.queue.list({ state: 'queued', limit: 100 })).next_cursor).toBeNull()
      const error = await failure(Promise.resolve().then(() => f.queue.list({ cursor: 'garbage' })))
      expect(error.code).toBe('E_TASK_CURSOR')
      expect(error.message).toContain('not a task list cursor')
    })

    test('a filtered list pages through exactly the matching tasks', async () => {
      const f = await open()
      await f.queue.submitMany(Array.from({ length: 25 }, (_, i) => ({ type: 'x', tenant: i % 2 ? 'odd' : 'even' })))
      const seen: Task[] = []
      let cursor: string | undefined
      do {
        const page = await f.queue.list({ tenant: 'odd', limit: 4, ...(cursor ? { cursor } : {}) })
        seen.push(...page.tasks)
        cursor = page.next_cursor ?? undefined
      } while (cursor)
      expect(seen).toHaveLength(12)
      expect(seen.every((t) => t.tenant === 'odd')).toBe(true)
      expect(new Set(seen.map((t) => t.id)).size).toBe(12)
    })

    test('list pages hold 50 tasks by default, 1 to 1000 whatever the limit asked', async () => {
      const f = await open()
      await f.queue.submitMany(Array.from({ length: 1001 }, () => ({ type: 'x' })))
      expect((await f.queue.list()).tasks).toHaveLength(50)
      expect((await f.queue.list({ limit: 0 })).tasks).toHaveLength(1)
      const most = await f.queue.list({ limit: 5000 })
      expect(most.tasks).toHaveLength(1000)
      const rest = await f.queue.list({ limit: 5000, cursor: most.next_cursor as string })
      expect(rest.tasks).toHaveLength(1)
      expect(rest.next_cursor).toBeNull()
    })

    test('a task in the list is the task get returns, field for field, in every state', async () => {
      const f = await open()
      await f.queue.submitMany(Array.from({ length: 5 }, (_, i) => ({ type: 'x', payload: { i }, model: `m${i}` })))
      const [a, b, c, d] = await f.queue.claim('w', 4)
      await f.queue.completeLater(a?.id as string, 'w', { out: [1, 'two'] })
      await f.queue.failLater(b?.id as string, 'w', fatal)
      await f.queue.failLater(c?.id as string, 'w', retryable)
      await f.queue.cancel(d?.id as string)
      const listed = (await f.queue.list({ limit: 10 })).tasks
      expect(listed).toHaveLength(5)
      for (const task of listed) expect(await f.queue.get(task.id)).toEqual(task)
      expect(new Set(listed.map((t) => t.state))).toEqual(new Set(['queued', 'done', 'failed', 'cancelled']))
    })

    test('counts every state, zeros included; queuedCounts agrees by tenant', async () => {
      const f = await open()
      expect(await f.queue.counts()).toEqual({ queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 })
      expect(await f.queue.queuedCounts()).toEqual({ total: 0, byTenant: {} })
      await f.queue.submitMany(Array.from({ length: 6 }, (_, i) => ({ type: 'x', tenant: i < 4 ? 'a' : 'b' })))
      const [a, b, c] = await f.queue.claim('w', 3)
      await f.queue.completeLater(a?.id as string, 'w', 1)
      await f.queue.failLater(b?.id as string, 'w', fatal)
      await f.queue.cancel(c?.id as string)
      expect(await f.queue.counts()).toEqual({ queued: 3, running: 0, done: 1, failed: 1, cancelled: 1 })
      expect(await f.queue.queuedCounts()).toEqual({ total: 3, byTenant: { a: 1, b: 2 } })
      expect(Object.keys(await f.queue.counts()).sort()).toEqual([...STATES].sort())
    })
  })

  describe('queue bounds (tasks.max_queued, tasks.max_queued_per_tenant)', () => {
    test('past the total bound a submission is refused with 429, Retry-After and the key; a claim makes room again', async () => {
      const f = await open({ maxQueued: 5 })
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => f.queue.submit({ type: 'x', payload: { i } })))
      expect(results.map((r) => r.status)).toEqual([...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')])
      const error = rejection(results[5] as PromiseSettledResult<unknown>)
      expect(error.code).toBe('E_TASK_QUEUE_FULL')
      expect(error.details).toMatchObject({ status: 429, retryable: true, retry_after_s: 5, key: 'tasks.max_queued', limit: 5 })
      expect(error.message).toBe('the task queue is full: 5 queued, tasks.max_queued is 5')
      expect(error.hint).toContain('raise tasks.max_queued (0: no bound)')
      expect((await f.queue.counts()).queued).toBe(5)
      expect(changes(f)).toEqual(Array(5).fill('submitted'))
      await f.queue.claim('w', 2)
      await f.queue.submit({ type: 'x' })
      await f.queue.submit({ type: 'x' })
      await expect(f.queue.submit({ type: 'x' })).rejects.toThrow('tasks.max_queued')
      expect(await f.queue.queuedCounts()).toEqual({ total: 5, byTenant: { default: 5 } })
    })

    test('running and finished tasks do not count against the bound', async () => {
      const f = await open({ maxQueued: 2 })
      await f.queue.submitMany([{ type: 'x' }, { type: 'x' }])
      const [a, b] = await f.queue.claim('w', 2)
      await f.queue.completeLater(a?.id as string, 'w', 1)
      await f.queue.failLater(b?.id as string, 'w', fatal)
      expect((await f.queue.submitMany([{ type: 'x' }, { type: 'x' }])).map((r) => r.created)).toEqual([true, true])
      const [c] = await f.queue.claim('w')
      await f.queue.failLater(c?.id as string, 'w', retryable) // back in the queue: counted again
      await expect(f.queue.submit({ type: 'x' })).rejects.toThrow('tasks.max_queued')
    })

    test('past its own bound one tenant is refused; another tenant is still accepted', async () => {
      const f = await open({ maxQueued: 100, maxQueuedPerTenant: 3 })
      for (let i = 0; i < 3; i++) await f.queue.submit({ type: 'x', tenant: 'noisy' })
      const error = await failure(f.queue.submit({ type: 'x', tenant: 'noisy' }))
      expect(error.code).toBe('E_TASK_QUEUE_FULL')
      expect(error.message).toBe('tenant "noisy" has as many tasks queued as it may: 3 queued, tasks.max_queued_per_tenant is 3')
      expect(error.details).toMatchObject({
        status: 429,
        retryable: true,
        key: 'tasks.max_queued_per_tenant',
        limit: 3,
        retry_after_s: 5,
      })
      expect((await f.queue.submit({ type: 'x', tenant: 'quiet' })).created).toBe(true)
      expect(await f.queue.queuedCounts()).toEqual({ total: 4, byTenant: { noisy: 3, quiet: 1 } })
    })

    test('a bulk submission that would pass the bound is refused whole: nothing committed, no event', async () => {
      const f = await open({ maxQueued: 5 })
      await f.queue.submitMany([{ type: 'x' }, { type: 'x' }, { type: 'x' }])
      const heard = f.events.length
      const error = await failure(f.queue.submitMany([{ type: 'a' }, { type: 'b' }, { type: 'c' }]))
      expect(error.code).toBe('E_TASK_QUEUE_FULL')
      expect(error.message).toBe(
        'the task queue is full: 5 queued, tasks.max_queued is 5; none of the 3 tasks of this submission was queued',
      )
      expect((await f.queue.counts()).queued).toBe(3)
      expect((await f.queue.list({})).tasks.map((t) => t.type)).toEqual(['x', 'x', 'x'])
      expect(f.events.length).toBe(heard)
      expect((await f.queue.queuedCounts()).total).toBe(3)
      // Submissions beside the refused bulk are judged on their own.
      const [single, bulk] = await Promise.allSettled([f.queue.submit({ type: 'd' }), f.queue.submitMany([{ type: 'e' }, { type: 'f' }])])
      expect([single.status, bulk.status]).toEqual(['fulfilled', 'rejected'])
      expect((await f.queue.submitMany([{ type: 'g' }])).map((r) => r.created)).toEqual([true])
      expect((await f.queue.queuedCounts()).total).toBe(5)
    })

    test('a repeated idempotency key gets its task even when the queue is full, alone or in a bulk', async () => {
      const f = await open({ maxQueued: 2, maxQueuedPerTenant: 2 })
      const first = await f.queue.submit({ type: 'x', idempotency_key: 'k1' })
      await f.queue.submit({ type: 'x', idempotency_key: 'k2' })
      const again = await f.queue.submit({ type: 'x', idempotency_key: 'k1' })
      expect(again).toEqual({ created: false, task: first.task })
      const bulk = await f.queue.submitMany([
        { type: 'x', idempotency_key: 'k2' },
        { type: 'x', idempotency_key: 'k1' },
      ])
      expect(bulk.map((r) => r.created)).toEqual([false, false])
      await expect(f.queue.submit({ type: 'x', idempotency_key: 'k3' })).rejects.toThrow('tasks.max_queued')
      expect((await f.queue.counts()).queued).toBe(2)
    })

    test('0 means no bound', async () => {
      const f = await open({ maxQueued: 0, maxQueuedPerTenant: 0 })
      await f.queue.submitMany(Array.from({ length: 50 }, () => ({ type: 'x' })))
      expect((await f.queue.queuedCounts()).total).toBe(50)
    })
  })

  describe('prune and retention', () => {
    test('prune deletes finished tasks past retention, and only those', async () => {
      const f = await open({ retentionMs: 24 * HOUR })
      await f.queue.submitMany(Array.from({ length: 5 }, () => ({ type: 'x' })))
      const [a, b, c, d] = await f.queue.claim('w', 4)
      await f.queue.completeLater(a?.id as string, 'w', 1) // finished at T0
      f.clock.t = T0 + 10 * HOUR
      await f.queue.failLater(b?.id as string, 'w', fatal) // finished at T0 + 10 h
      await f.queue.cancel(d?.id as string) // finished at T0 + 10 h
      f.clock.t = T0 + 24 * HOUR + 1
      expect(await f.queue.prune()).toBe(1)
      expect(await f.queue.get(a?.id as string)).toBeUndefined()
      expect(await f.queue.prune(15 * HOUR)).toBe(0)
      expect(await f.queue.prune(0)).toBe(2)
      expect(await f.queue.counts()).toEqual({ queued: 1, running: 1, done: 0, failed: 0, cancelled: 0 })
      expect((await f.queue.get(c?.id as string))?.state).toBe('running')
      expect(await f.queue.queuedCounts()).toEqual({ total: 1, byTenant: { default: 1 } })
    })

    test('without tasks.retention_hours, finished tasks are kept for 168 hours', async () => {
      const f = await open()
      const task = await running(f)
      await f.queue.completeLater(task.id, 'w', 1)
      f.clock.t = T0 + 168 * HOUR
      expect(await f.queue.prune()).toBe(0)
      f.clock.t += 1
      expect(await f.queue.prune()).toBe(1)
    })

    test('prune with a limit deletes at most that many, the longest finished first', async () => {
      const f = await open({ retentionMs: HOUR })
      await f.queue.submitMany(Array.from({ length: 7 }, () => ({ type: 'x' })))
      const claimed = await f.queue.claim('w', 7)
      const finishedAt: Record<string, number> = {}
      for (const [i, task] of claimed.entries()) {
        f.clock.t = T0 + (7 - i) * 1000 // the last claimed finished first
        finishedAt[task.id] = f.clock.t
        await f.queue.completeLater(task.id, 'w', i)
      }
      f.clock.t = T0 + 2 * HOUR
      const byAge = claimed.map((t) => t.id).sort((x, y) => (finishedAt[x] as number) - (finishedAt[y] as number))
      expect(await f.queue.prune(undefined, 3)).toBe(3)
      for (const [i, id] of byAge.entries()) expect({ id, kept: (await f.queue.get(id)) !== undefined }).toEqual({ id, kept: i >= 3 })
      expect((await f.queue.counts()).done).toBe(4)
      expect(await f.queue.prune(undefined, 10)).toBe(4)
      expect(await f.queue.prune(undefined, 10)).toBe(0)
      expect(await f.queue.counts()).toEqual({ queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 })
    })

    test('a pruned idempotency key is free again', async () => {
      const f = await open()
      const { task } = await f.queue.submit({ type: 'x', idempotency_key: 'k' })
      await f.queue.cancel(task.id)
      f.clock.t += 1
      expect(await f.queue.prune(0)).toBe(1)
      const again = await f.queue.submit({ type: 'x', idempotency_key: 'k' })
      expect(again.created).toBe(true)
      expect(again.task.id).not.toBe(task.id)
    })
  })

  describe('events and close', () => {
    test('every change is heard once it is durable, with the task as it is then', async () => {
      const f = await open({ leaseMs: 10 })
      const other = await f.sibling()
      // Read through another handle from inside the listener: the change must be there already.
      const reads: Array<{ event: TaskEvent; seen: Promise<Task | undefined> }> = []
      f.queue.onEvent((event) => reads.push({ event, seen: Promise.resolve(other.get(event.task.id)) }))
      const step = () => {
        f.clock.t += 1 // every change its own updated_at
      }
      const { task } = await f.queue.submit({ type: 'x', max_attempts: 5 })
      step()
      await f.queue.claim('w')
      step()
      await f.queue.failLater(task.id, 'w', retryable)
      f.clock.t += 60_000
      await f.queue.claim('w')
      f.clock.t += 11
      await f.queue.recoverExpired()
      step()
      await f.queue.claim('w')
      step()
      await f.queue.release(task.id, 'w')
      step()
      await f.queue.claim('w')
      step()
      await f.queue.completeLater(task.id, 'w', 'r')
      step()
      const second = await f.queue.submit({ type: 'y' })
      step()
      await f.queue.cancel(second.task.id)
      expect(changes(f)).toEqual([
        'submitted',
        'claimed',
        'retrying',
        'claimed',
        'requeued',
        'claimed',
        'requeued',
        'claimed',
        'done',
        'submitted',
        'cancelled',
      ] satisfies TaskChange[])
      expect(f.events.map((e) => e.task.state)).toEqual([
        'queued',
        'running',
        'queued',
        'running',
        'queued',
        'running',
        'queued',
        'running',
        'done',
        'queued',
        'cancelled',
      ] satisfies TaskState[])
      expect(f.events.every((e) => e.type === 'task')).toBe(true)
      expect(f.events.at(-3)?.task).toEqual((await f.queue.get(task.id)) as Task)
      expect(reads).toHaveLength(11)
      for (const { event, seen } of reads) {
        const read = await seen
        expect(read, event.change).toBeDefined()
        expect((read as Task).updated_at, event.change).toBeGreaterThanOrEqual(event.task.updated_at)
      }
    })

    test('a listener can unsubscribe, and a failing listener breaks nothing', async () => {
      configureLogging({ level: 'none' })
      try {
        const f = await open()
        f.queue.onEvent(() => {
          throw new Error('listener bug')
        })
        const heard: string[] = []
        const off = f.queue.onEvent((e) => heard.push(e.change))
        const { task } = await f.queue.submit({ type: 'x' })
        off()
        await f.queue.claim('w')
        expect(await f.queue.completeLater(task.id, 'w', 'r')).toBe(true)
        expect(heard).toEqual(['submitted'])
        expect(changes(f)).toEqual(['submitted', 'claimed', 'done'])
        expect((await f.queue.get(task.id))?.state).toBe('done')
      } finally {
        configureLogging({ level: 'info' })
      }
    })

    test('close settles the writes under way', async () => {
      const f = await open()
      const other = await f.sibling()
      const pending = f.queue.submit({ type: 'x', idempotency_key: 'before-close' })
      await f.queue.close()
      expect((await other.list()).tasks.map((t) => t.idempotency_key)).toEqual(['before-close'])
      expect((await pending).created).toBe(true)
    })
  })
}
