/** The TaskQueue contract: claim order, aging, filters and due times. */
import { describe, expect, test } from 'bun:test'
import type { Task } from '../../src/tasks/queue.ts'
import { backoffMs } from '../../src/tasks/retry.ts'
import { type Contract, RETRY, retryable, T0 } from './task-queue-fixture.ts'

export function claimCases({ open, running }: Contract): void {
  describe('claim', () => {
    test('leases the task: running, attempts + 1, owner, expiry, started_at; then it is gone from the queue', async () => {
      const f = await open()
      const { task } = await f.queue.submit({ type: 'chat' })
      f.clock.t += 5
      const [claimed] = await f.queue.claim('w1')
      expect(claimed).toEqual({
        ...task,
        state: 'running',
        attempts: 1,
        lease_owner: 'w1',
        lease_expires_at: T0 + 5 + 30_000,
        started_at: T0 + 5,
        updated_at: T0 + 5,
      })
      expect(await f.queue.get(task.id)).toEqual(claimed as Task)
      expect(await f.queue.claim('w2')).toEqual([])
      expect(f.events.at(-1)).toEqual({ type: 'task', task: claimed as Task, change: 'claimed' })
      expect(await f.queue.counts()).toMatchObject({ queued: 0, running: 1 })
    })

    test('a limit below 1 claims nothing', async () => {
      const f = await open()
      await f.queue.submit({ type: 'x' })
      expect(await f.queue.claim('w', 0)).toEqual([])
      expect((await f.queue.counts()).queued).toBe(1)
    })

    test('higher priority first; equal ones oldest first, then by id', async () => {
      const f = await open()
      const low = await f.queue.submit({ type: 'x', priority: 0 })
      f.clock.t += 1
      const [high1, high2] = await f.queue.submitMany([
        { type: 'x', priority: 5 },
        { type: 'x', priority: 5 },
      ])
      f.clock.t += 1
      const high0 = await f.queue.submit({ type: 'x', priority: 5 })
      const negative = await f.queue.submit({ type: 'x', priority: -3 })
      const order = (await f.queue.claim('w', 10)).map((t) => t.id)
      const ties = [high1?.task.id, high2?.task.id].sort()
      expect(order).toEqual([...ties, high0.task.id, low.task.id, negative.task.id] as string[])
    })

    test('claims across calls follow the same order as one claim of all', async () => {
      const f = await open()
      const submitted: string[] = []
      for (let i = 0; i < 12; i++) {
        f.clock.t = T0 + i
        submitted.push((await f.queue.submit({ type: 'x', priority: i % 4 })).task.id)
      }
      const seen: string[] = []
      for (let round = 0; round < 6; round++) for (const t of await f.queue.claim('w', 2)) seen.push(t.id)
      const expected = submitted
        .map((id, i) => ({ id, priority: i % 4, i }))
        .sort((a, b) => b.priority - a.priority || a.i - b.i)
        .map((t) => t.id)
      expect(seen).toEqual(expected)
    })

    test('aging: an old low-priority task beats new high-priority ones once 5 × agingMs older', async () => {
      // effective = priority + age/agingMs, so low (0, created T0) ties a 5 created at T0 + 5·agingMs, and the
      // tie goes to the older task. With one new priority-5 task per tick of agingMs/2, claimed one per tick,
      // the low task wins at tick 10, when the competing task is exactly 5 × agingMs younger.
      const f = await open({ agingMs: 1000 })
      const low = await f.queue.submit({ type: 'x', priority: 0 })
      let wonAt = -1
      for (let tick = 1; tick <= 20 && wonAt < 0; tick++) {
        f.clock.t = T0 + tick * 500
        await f.queue.submit({ type: 'x', priority: 5 })
        if ((await f.queue.claim('w'))[0]?.id === low.task.id) wonAt = tick
      }
      expect(wonAt).toBe(10)
    })

    test('tenants take no turns in the claim: the best task goes first whoever queued it', async () => {
      // Fairness between tenants is tasks.max_queued_per_tenant here, and the engine's round-robin once claimed.
      const f = await open()
      const noisy = await f.queue.submitMany(Array.from({ length: 5 }, () => ({ type: 'x', tenant: 'noisy' })))
      f.clock.t += 1
      const quiet = await f.queue.submit({ type: 'x', tenant: 'quiet' })
      f.clock.t += 1
      const urgent = await f.queue.submit({ type: 'x', tenant: 'quiet', priority: 1 })
      const order = (await f.queue.claim('w', 10)).map((t) => t.id)
      expect(order).toEqual([urgent.task.id, ...noisy.map((r) => r.task.id).sort(), quiet.task.id])
    })

    test('skips tasks whose run_after is in the future, and nextRunAfter says when to look again', async () => {
      const f = await open()
      expect(await f.queue.nextRunAfter()).toBeUndefined()
      const task = await running(f)
      await f.queue.failLater(task.id, 'w', retryable)
      const delay = backoffMs(1, RETRY, () => 0.5)
      expect(await f.queue.nextRunAfter()).toBe(T0 + delay)
      f.clock.t = T0 + delay - 1
      expect(await f.queue.claim('w')).toEqual([])
      f.clock.t = T0 + delay
      expect((await f.queue.claim('w')).map((t) => t.id)).toEqual([task.id])
      expect(await f.queue.nextRunAfter()).toBeUndefined()
    })

    test('dueCount counts due queued tasks by model, up to its cap; a retry counts once it is due', async () => {
      const f = await open()
      await f.queue.submitMany([
        { type: 'chat', model: 'a' },
        { type: 'chat', model: 'a' },
        { type: 'chat', model: 'b' },
        { type: 'chat', model: 'a' },
      ])
      expect(await f.queue.dueCount(undefined, 100)).toBe(4)
      expect(await f.queue.dueCount(['a'], 100)).toBe(3)
      expect(await f.queue.dueCount(['a', 'b'], 100)).toBe(4)
      expect(await f.queue.dueCount(['nope'], 100)).toBe(0)
      expect(await f.queue.dueCount(['a'], 2)).toBe(2)
      const [claimed] = await f.queue.claim('w', 1, { models: ['b'] })
      expect(await f.queue.dueCount(['b'], 100)).toBe(0)
      await f.queue.failLater(claimed?.id as string, 'w', retryable)
      expect(await f.queue.dueCount(['b'], 100)).toBe(0)
      f.clock.t = T0 + backoffMs(1, RETRY, () => 0.5)
      expect(await f.queue.dueCount(['b'], 100)).toBe(1)
      expect(await f.queue.dueCount(['a'], 100)).toBe(3)
    })

    test('filters by type and model; limit caps the batch', async () => {
      const f = await open()
      await f.queue.submitMany([
        { type: 'chat', model: 'a' },
        { type: 'embed', model: 'a' },
        { type: 'chat', model: 'b' },
        { type: 'chat', model: 'a' },
      ])
      expect((await f.queue.claim('w', 10, { types: ['embed'] })).map((t) => t.type)).toEqual(['embed'])
      expect((await f.queue.claim('w', 10, { models: ['b'] })).map((t) => t.model)).toEqual(['b'])
      expect(await f.queue.claim('w', 1, { types: ['chat'], models: ['a'] })).toHaveLength(1)
      expect(await f.queue.claim('w', 10, { types: [] })).toEqual([])
      expect(await f.queue.claim('w', 10, { models: ['nope'] })).toEqual([])
      expect(await f.queue.claim('w', 10)).toHaveLength(1)
    })

    test('two handles on one queue never claim the same task', async () => {
      const f = await open()
      const other = await f.sibling()
      await f.queue.submitMany(Array.from({ length: 300 }, (_, i) => ({ type: 'x', priority: i % 7 })))
      const seen = new Map<string, string>()
      for (let round = 0; round < 200; round++) {
        const [queue, owner] = round % 2 ? [other, 'b'] : [f.queue, 'a']
        for (const task of await queue.claim(owner, 1 + (round % 4))) {
          expect(seen.has(task.id)).toBe(false)
          seen.set(task.id, owner)
        }
      }
      expect(seen.size).toBe(300)
      expect((await f.queue.counts()).running).toBe(300)
      expect(new Set(seen.values())).toEqual(new Set(['a', 'b']))
    })
  })
}
