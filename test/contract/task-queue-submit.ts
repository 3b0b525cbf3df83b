/** The TaskQueue contract: submission and idempotency keys. */
import { describe, expect, test } from 'bun:test'
import type { Task } from '../../src/tasks/queue.ts'
import { type Contract, changes, failure, rejection, T0 } from './task-queue-fixture.ts'

export function submitCases({ open }: Contract): void {
  describe('submit', () => {
    test('a task has its defaults, its fields and a time-sortable id; get and list show it field for field', async () => {
      const f = await open()
      const { task, created } = await f.queue.submit({ type: 'embed', model: 'nomic', payload: { input: ['x'] }, priority: 2 })
      expect(created).toBe(true)
      expect(task).toEqual({
        id: task.id,
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
        lease_owner: null,
        lease_expires_at: null,
        run_after: T0,
        result: null,
        error: null,
        fail_reason: null,
        created_at: T0,
        updated_at: T0,
        started_at: null,
        finished_at: null,
      })
      expect(task.id).toMatch(/^t_[0-9a-z]{21}$/)
      f.clock.t += 1
      const later = await f.queue.submit({ type: 'embed', tenant: 'acme', idempotency_key: 'k', max_attempts: 7 })
      expect(later.task.id > task.id).toBe(true)
      expect(later.task).toMatchObject({ payload: null, model: null, tenant: 'acme', idempotency_key: 'k', max_attempts: 7, priority: 0 })
      expect(await f.queue.get(task.id)).toEqual(task)
      expect(await f.queue.get(later.task.id)).toEqual(later.task)
      expect((await f.queue.list()).tasks).toEqual([later.task, task])
      expect(await f.queue.get('t_unknown')).toBeUndefined()
      expect(f.events).toEqual([
        { type: 'task', task, change: 'submitted' },
        { type: 'task', task: later.task, change: 'submitted' },
      ])
    })

    test('once a submission resolves, another handle on the queue reads its task', async () => {
      const f = await open()
      const other = await f.sibling()
      const { task } = await f.queue.submit({ type: 'chat', payload: { q: 1 } })
      expect(await other.get(task.id)).toEqual(task)
      const many = await f.queue.submitMany([{ type: 'a' }, { type: 'b' }])
      for (const { task: t } of many) expect((await other.get(t.id))?.type).toBe(t.type)
    })

    test('concurrent submissions each get their own task, all committed', async () => {
      const f = await open()
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => f.queue.submit({ type: 'chat', payload: { i } })))
      expect(results.every((r) => r.created)).toBe(true)
      expect(new Set(results.map((r) => r.task.id)).size).toBe(200)
      expect((await f.queue.counts()).queued).toBe(200)
      expect(results.map((r) => r.task.payload)).toEqual(Array.from({ length: 200 }, (_, i) => ({ i })))
    })

    test('an invalid input is refused (E_TASK_INVALID) alone; the submissions beside it commit', async () => {
      const f = await open()
      const results = await Promise.allSettled([
        f.queue.submit({ type: 'ok' }),
        f.queue.submit({ type: '' }),
        f.queue.submit({ type: 'x', max_attempts: 0 }),
        f.queue.submit({ type: 'x', max_attempts: 1.5 }),
        f.queue.submit({ type: 'x', priority: Number.POSITIVE_INFINITY }),
        f.queue.submit({ type: 'x', payload: { n: 1n } }),
        f.queue.submit({ type: 'ok2' }),
      ])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'fulfilled'])
      for (const i of [1, 2, 3, 4]) expect(rejection(results[i] as PromiseSettledResult<unknown>).code).toBe('E_TASK_INVALID')
      expect(rejection(results[1] as PromiseSettledResult<unknown>).message).toBe('invalid task: type must be a non-empty string')
      expect(rejection(results[2] as PromiseSettledResult<unknown>).message).toBe(
        'invalid task: max_attempts must be a positive integer, got 0',
      )
      expect((await f.queue.counts()).queued).toBe(2)
      expect(changes(f)).toEqual(['submitted', 'submitted'])
    })

    test('a bulk submission is all or nothing: one invalid input queues none of them, commits nothing, fires no event', async () => {
      const f = await open()
      const commits = f.commits?.()
      const error = await failure(f.queue.submitMany([{ type: 'ok' }, { type: 'x', priority: Number.NaN }]))
      expect(error.code).toBe('E_TASK_INVALID')
      expect(error.message).toContain('priority')
      expect(await f.queue.counts()).toEqual({ queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 })
      expect((await f.queue.list()).tasks).toEqual([])
      expect(f.events).toEqual([])
      if (f.commits) {
        await Bun.sleep(1) // nor on a later turn, where commits are grouped
        expect(f.commits()).toBe(commits as number)
      }
      const results = await f.queue.submitMany([{ type: 'a' }, { type: 'b', priority: 1 }, { type: 'c' }])
      expect(results.map((r) => [r.task.type, r.created])).toEqual([
        ['a', true],
        ['b', true],
        ['c', true],
      ])
    })

    test('a bulk submission is one commit, where the implementation counts commits', async () => {
      const f = await open()
      if (!f.commits) return
      const before = f.commits()
      await f.queue.submitMany(Array.from({ length: 50 }, () => ({ type: 'x' })))
      expect(f.commits()).toBe(before + 1)
    })
  })

  describe('idempotency keys', () => {
    test('a key repeated in one bulk yields one task; keys are per tenant', async () => {
      const f = await open()
      const [a, b, c] = await f.queue.submitMany([
        { type: 'chat', idempotency_key: 'k1', payload: 1 },
        { type: 'chat', idempotency_key: 'k1', payload: 2 },
        { type: 'chat', idempotency_key: 'k1', tenant: 'other' },
      ])
      expect(a?.created).toBe(true)
      expect(b).toEqual({ task: a?.task as Task, created: false })
      expect(b?.task.payload).toBe(1)
      expect(c?.created).toBe(true)
      expect(c?.task.id).not.toBe(a?.task.id as string)
      expect(changes(f)).toEqual(['submitted', 'submitted'])
      expect((await f.queue.counts()).queued).toBe(2)
    })

    test('a key from an earlier submission returns its task, also once it finished, and adds nothing', async () => {
      const f = await open()
      const first = await f.queue.submit({ type: 'chat', idempotency_key: 'k' })
      const again = await f.queue.submit({ type: 'chat', idempotency_key: 'k', payload: 'other' })
      expect(again).toEqual({ task: first.task, created: false })
      await f.queue.claim('w')
      expect(await f.queue.completeLater(first.task.id, 'w', { ok: true })).toBe(true)
      const late = await f.queue.submit({ type: 'chat', idempotency_key: 'k' })
      expect(late.created).toBe(false)
      expect(late.task).toMatchObject({ id: first.task.id, state: 'done', result: { ok: true } })
      expect(await f.queue.counts()).toMatchObject({ queued: 0, done: 1 })
      expect(changes(f)).toEqual(['submitted', 'claimed', 'done'])
    })

    test('concurrent submissions of one key make one task', async () => {
      const f = await open()
      const results = await Promise.all(Array.from({ length: 10 }, () => f.queue.submit({ type: 'x', idempotency_key: 'same' })))
      expect(results.filter((r) => r.created)).toHaveLength(1)
      expect(new Set(results.map((r) => r.task.id)).size).toBe(1)
      expect((await f.queue.counts()).queued).toBe(1)
    })

    test('a key given to another handle of the queue returns the same task', async () => {
      const f = await open()
      const other = await f.sibling()
      const first = await f.queue.submit({ type: 'x', idempotency_key: 'k' })
      const again = await other.submit({ type: 'x', idempotency_key: 'k' })
      expect(again).toMatchObject({ created: false, task: { id: first.task.id } })
    })

    test('tasks without a key are never merged', async () => {
      const f = await open()
      const results = await f.queue.submitMany([{ type: 'chat' }, { type: 'chat' }])
      expect(results.every((r) => r.created)).toBe(true)
      expect(results[0]?.task.id).not.toBe(results[1]?.task.id as string)
    })
  })
}
