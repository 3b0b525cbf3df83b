/** The TaskQueue contract: leases and fencing, failure and retry, cancel, recovery. */
import { describe, expect, test } from 'bun:test'
import type { Task } from '../../src/tasks/queue.ts'
import { backoffMs } from '../../src/tasks/retry.ts'
import { type Contract, changes, fatal, RETRY, retryable, T0 } from './task-queue-fixture.ts'

export function leaseCases({ open, running }: Contract): void {
  describe('leases and fencing', () => {
    test('renew extends the lease of its owner only', async () => {
      const f = await open()
      const task = await running(f)
      f.clock.t += 10_000
      expect(await f.queue.renew(task.id, 'w')).toBe(true)
      expect((await f.queue.get(task.id))?.lease_expires_at).toBe(T0 + 40_000)
      expect(await f.queue.renew(task.id, 'other')).toBe(false)
      expect(await f.queue.renew('t_missing', 'w')).toBe(false)
      expect((await f.queue.get(task.id))?.lease_expires_at).toBe(T0 + 40_000)
      await f.queue.completeLater(task.id, 'w', null)
      expect(await f.queue.renew(task.id, 'w')).toBe(false)
    })

    test('a renewed lease does not expire at its first deadline', async () => {
      const f = await open({ leaseMs: 1000 })
      const task = await running(f)
      f.clock.t = T0 + 900
      expect(await f.queue.renew(task.id, 'w')).toBe(true)
      f.clock.t = T0 + 1500
      expect(await f.queue.recoverExpired()).toEqual([])
      expect((await f.queue.get(task.id))?.state).toBe('running')
    })

    test('complete records the result once; a second complete or another owner changes nothing', async () => {
      const f = await open()
      const task = await running(f)
      expect(await f.queue.completeLater(task.id, 'other', 'theirs')).toBe(false)
      expect(await f.queue.get(task.id)).toEqual(task)
      f.clock.t += 7
      expect(await f.queue.completeLater(task.id, 'w', { answer: 42 })).toBe(true)
      const done = await f.queue.get(task.id)
      expect(done).toEqual({
        ...task,
        state: 'done',
        result: { answer: 42 },
        lease_expires_at: null,
        updated_at: T0 + 7,
        finished_at: T0 + 7,
      })
      expect(await f.queue.completeLater(task.id, 'w', 'again')).toBe(false)
      expect(await f.queue.get(task.id)).toEqual(done as Task)
      expect(await f.queue.claim('w')).toEqual([])
      expect(changes(f)).toEqual(['submitted', 'claimed', 'done'])
      expect(f.events.at(-1)?.task).toEqual(done as Task)
    })

    test('a stale owner (lease expired, task requeued and claimed elsewhere) can neither complete, fail, renew nor release', async () => {
      const f = await open()
      const task = await running(f, 'old')
      f.clock.t += 30_001
      expect((await f.queue.recoverExpired()).map((t) => t.state)).toEqual(['queued'])
      expect((await f.queue.claim('new')).map((t) => t.id)).toEqual([task.id])
      const held = await f.queue.get(task.id)
      const heard = f.events.length
      expect(await f.queue.completeLater(task.id, 'old', 'stale')).toBe(false)
      expect(await f.queue.failLater(task.id, 'old', fatal)).toBeUndefined()
      expect(await f.queue.failLater(task.id, 'old', retryable)).toBeUndefined()
      expect(await f.queue.renew(task.id, 'old')).toBe(false)
      expect(await f.queue.release(task.id, 'old')).toBe(false)
      expect(await f.queue.get(task.id)).toEqual(held as Task)
      expect(held).toMatchObject({ state: 'running', lease_owner: 'new', attempts: 2 })
      expect(f.events.length).toBe(heard)
      expect(await f.queue.completeLater(task.id, 'new', 'fresh')).toBe(true)
      expect((await f.queue.get(task.id))?.result).toBe('fresh')
    })

    test('a stale owner on another handle is refused too', async () => {
      const f = await open({ leaseMs: 10 })
      const other = await f.sibling()
      await other.submit({ type: 'x' })
      const [task] = await other.claim('old')
      f.clock.t += 11
      await f.queue.recoverExpired()
      await f.queue.claim('new')
      expect(await other.completeLater(task?.id as string, 'old', 'stale')).toBe(false)
      expect(await other.renew(task?.id as string, 'old')).toBe(false)
      expect(await f.queue.get(task?.id as string)).toMatchObject({ state: 'running', lease_owner: 'new', result: null })
    })

    test('nothing about a queued task can be written by an owner: it holds no lease', async () => {
      const f = await open()
      const { task } = await f.queue.submit({ type: 'x' })
      expect(await f.queue.completeLater(task.id, 'w', 1)).toBe(false)
      expect(await f.queue.failLater(task.id, 'w', fatal)).toBeUndefined()
      expect(await f.queue.renew(task.id, 'w')).toBe(false)
      expect(await f.queue.release(task.id, 'w')).toBe(false)
      expect(await f.queue.get(task.id)).toEqual(task)
    })

    test('release hands a running task back untouched: queued at once, attempt refunded, no stall', async () => {
      const f = await open()
      const task = await running(f)
      f.clock.t += 50
      expect(await f.queue.release(task.id, 'w')).toBe(true)
      const back = await f.queue.get(task.id)
      expect(back).toMatchObject({
        state: 'queued',
        attempts: 0,
        stalled_count: 0,
        lease_owner: null,
        lease_expires_at: null,
        run_after: T0 + 50,
      })
      expect(f.events.at(-1)).toEqual({ type: 'task', task: back as Task, change: 'requeued' })
      expect(await f.queue.release(task.id, 'w')).toBe(false)
      expect((await f.queue.claim('w2'))[0]).toMatchObject({ id: task.id, attempts: 1 })
    })
  })

  describe('failure and retry', () => {
    test('a non-retryable error fails at once', async () => {
      const f = await open()
      const task = await running(f)
      f.clock.t += 3
      const failed = await f.queue.failLater(task.id, 'w', fatal)
      expect(failed).toEqual({
        ...task,
        state: 'failed',
        fail_reason: 'not_retryable',
        error: fatal,
        lease_expires_at: null,
        updated_at: T0 + 3,
        finished_at: T0 + 3,
      })
      expect(await f.queue.get(task.id)).toEqual(failed as Task)
      expect(f.events.at(-1)).toEqual({ type: 'task', task: failed as Task, change: 'failed' })
    })

    test('a retryable error requeues with backoff until max_attempts, then fails', async () => {
      const f = await open()
      const task = await running(f, 'w', { max_attempts: 3 })
      for (let attempt = 1; attempt <= 2; attempt++) {
        const retried = await f.queue.failLater(task.id, 'w', retryable)
        expect(retried).toMatchObject({ state: 'queued', attempts: attempt, lease_owner: null, lease_expires_at: null, error: retryable })
        expect(retried?.fail_reason).toBeNull()
        expect(retried?.run_after).toBe(f.clock.t + backoffMs(attempt, RETRY, () => 0.5))
        expect(f.events.at(-1)?.change).toBe('retrying')
        expect(await f.queue.claim('w')).toEqual([])
        f.clock.t = retried?.run_after as number
        expect((await f.queue.claim('w'))[0]?.attempts).toBe(attempt + 1)
      }
      const last = await f.queue.failLater(task.id, 'w', retryable)
      expect(last).toMatchObject({ state: 'failed', fail_reason: 'max_attempts', attempts: 3, finished_at: f.clock.t })
      expect(await f.queue.failLater(task.id, 'w', retryable)).toBeUndefined()
      expect(changes(f)).toEqual(['submitted', 'claimed', 'retrying', 'claimed', 'retrying', 'claimed', 'failed'])
    })

    test('the backoff grows with each attempt and stays within retry_max_ms', async () => {
      const f = await open({ retry: { maxAttempts: 10, baseMs: 1000, maxMs: 5000 }, random: () => 1 })
      const task = await running(f)
      const delays: number[] = []
      for (let attempt = 1; attempt <= 5; attempt++) {
        const retried = await f.queue.failLater(task.id, 'w', retryable)
        delays.push((retried?.run_after as number) - f.clock.t)
        f.clock.t = retried?.run_after as number
        await f.queue.claim('w')
      }
      expect(delays).toEqual([1000, 2000, 4000, 5000, 5000])
    })

    test('a task submitted with max_attempts 1 never retries', async () => {
      const f = await open()
      const task = await running(f, 'w', { max_attempts: 1 })
      expect((await f.queue.failLater(task.id, 'w', retryable))?.fail_reason).toBe('max_attempts')
    })
  })

  describe('cancel', () => {
    test('a queued task is cancelled and never claimed', async () => {
      const f = await open()
      const { task } = await f.queue.submit({ type: 'x' })
      f.clock.t += 2
      const cancelled = await f.queue.cancel(task.id)
      expect(cancelled).toEqual({ ...task, state: 'cancelled', fail_reason: 'cancelled', updated_at: T0 + 2, finished_at: T0 + 2 })
      expect(await f.queue.claim('w')).toEqual([])
      expect(f.events.at(-1)).toEqual({ type: 'task', task: cancelled as Task, change: 'cancelled' })
      expect(await f.queue.queuedCounts()).toEqual({ total: 0, byTenant: {} })
    })

    test('a running task is cancelled; its runner loses the lease and cannot finish it', async () => {
      const f = await open()
      const task = await running(f)
      expect((await f.queue.cancel(task.id))?.state).toBe('cancelled')
      expect(await f.queue.renew(task.id, 'w')).toBe(false)
      expect(await f.queue.completeLater(task.id, 'w', 'late')).toBe(false)
      expect(await f.queue.failLater(task.id, 'w', retryable)).toBeUndefined()
      expect(await f.queue.release(task.id, 'w')).toBe(false)
      f.clock.t += 60_000
      expect(await f.queue.recoverExpired()).toEqual([])
      expect(await f.queue.get(task.id)).toMatchObject({ state: 'cancelled', fail_reason: 'cancelled', result: null })
      expect(changes(f)).toEqual(['submitted', 'claimed', 'cancelled'])
    })

    test('a finished task is returned unchanged and fires nothing; an unknown id is undefined', async () => {
      const f = await open()
      const task = await running(f)
      await f.queue.completeLater(task.id, 'w', 1)
      const done = await f.queue.get(task.id)
      const heard = f.events.length
      expect(await f.queue.cancel(task.id)).toEqual(done as Task)
      expect(f.events.length).toBe(heard)
      expect(await f.queue.cancel('t_unknown')).toBeUndefined()
    })
  })

  describe('recovery', () => {
    test('an expired lease requeues the task once, keeping the attempt; the next expiry fails it as stalled', async () => {
      const f = await open({ maxStalled: 1, leaseMs: 1000 })
      const { task } = await f.queue.submit({ type: 'x' })
      await f.queue.claim('w')
      f.clock.t = T0 + 1000
      expect(await f.queue.recoverExpired()).toEqual([]) // expires strictly after lease_expires_at
      f.clock.t = T0 + 1001
      const [requeued] = await f.queue.recoverExpired()
      expect(requeued).toMatchObject({
        id: task.id,
        state: 'queued',
        stalled_count: 1,
        attempts: 1,
        lease_owner: null,
        lease_expires_at: null,
        run_after: T0 + 1001,
        fail_reason: null,
        finished_at: null,
      })
      expect(requeued?.error?.code).toBe('E_STALLED')
      expect(f.events.at(-1)).toEqual({ type: 'task', task: requeued as Task, change: 'requeued' })
      expect(await f.queue.get(task.id)).toEqual(requeued as Task)
      await f.queue.claim('w2')
      f.clock.t += 1001
      const [failed] = await f.queue.recoverExpired()
      expect(failed).toMatchObject({ state: 'failed', fail_reason: 'stalled', stalled_count: 2, attempts: 2, finished_at: f.clock.t })
      expect(f.events.at(-1)?.change).toBe('failed')
      expect(await f.queue.recoverExpired()).toEqual([])
    })

    test('max_stalled 0 fails at the first lost lease', async () => {
      const f = await open({ maxStalled: 0, leaseMs: 10 })
      await f.queue.submit({ type: 'x' })
      await f.queue.claim('w')
      f.clock.t += 11
      expect((await f.queue.recoverExpired())[0]?.fail_reason).toBe('stalled')
    })

    test('a stall on the last attempt fails the task as max_attempts, so attempts never exceed max_attempts', async () => {
      const f = await open({ maxStalled: 5, leaseMs: 10 })
      await f.queue.submit({ type: 'x', max_attempts: 1 })
      await f.queue.claim('w')
      f.clock.t += 11
      expect((await f.queue.recoverExpired())[0]).toMatchObject({
        state: 'failed',
        fail_reason: 'max_attempts',
        attempts: 1,
        stalled_count: 1,
      })
    })

    test('only expired leases are recovered', async () => {
      const f = await open({ leaseMs: 1000 })
      await f.queue.submitMany([{ type: 'x' }, { type: 'x' }])
      const [early] = await f.queue.claim('w')
      f.clock.t = T0 + 500
      const [late] = await f.queue.claim('w')
      f.clock.t = T0 + 1001
      expect((await f.queue.recoverExpired()).map((t) => t.id)).toEqual([early?.id as string])
      expect((await f.queue.get(late?.id as string))?.state).toBe('running')
    })

    test('recoverAbandoned requeues the tasks of owners that are gone, now, and leaves live owners alone', async () => {
      const f = await open()
      await f.queue.submitMany([{ type: 'x' }, { type: 'x' }, { type: 'x' }])
      const [a] = await f.queue.claim('dead:1:old-run')
      const [b] = await f.queue.claim('live:2:current')
      const asked: string[] = []
      const alive = (owner: string) => {
        asked.push(owner)
        return !owner.startsWith('dead')
      }
      const recovered = await f.queue.recoverAbandoned(alive)
      expect(recovered.map((t) => [t.id, t.state, t.stalled_count, t.lease_owner])).toEqual([[a?.id as string, 'queued', 1, null]])
      expect(new Set(asked)).toEqual(new Set(['dead:1:old-run', 'live:2:current']))
      expect(f.events.at(-1)?.change).toBe('requeued')
      expect((await f.queue.get(b?.id as string))?.state).toBe('running')
      expect(await f.queue.recoverAbandoned(alive)).toEqual([])
      expect(await f.queue.recoverAbandoned(() => true)).toEqual([])
    })
  })
}
