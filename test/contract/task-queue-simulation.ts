/**
 * The TaskQueue contract under load: thousands of tasks, random bursts of submissions (with idempotent
 * resubmits), simulated runners on two handles that complete, fail, forget tasks or die, random cancels,
 * clock jumps that expire leases, and stale runners that try to finish what is no longer theirs. Then:
 * every task ended exactly once, none lost, none completed twice, every ending explained by its history.
 * Seeded: TASKS_SEED=<n> replays a run.
 */
import { expect, test } from 'bun:test'
import type { SubmitInput, Task, TaskChange, TaskEvent, TaskQueue } from '../../src/tasks/queue.ts'
import { prng } from '../helpers/prng.ts'
import type { Contract, TaskQueueFactory } from './task-queue-fixture.ts'

const SEED = Number(process.env.TASKS_SEED ?? 0x5eed)
const SIMULATED_TASKS = 3000
const SIM_LEASE_MS = 1000
const SIM_MAX_STALLED = 1

type Outcome = 'retryable' | 'fatal' | 'stall'

interface Runner {
  tasks: TaskQueue
  name: string
  generation: number
  owner: string
  /** Held task id → when its lease was last renewed. */
  held: Map<string, number>
}

// Which change may follow which: a task is claimed only from the queue, finished only while running.
const AFTER: Record<TaskChange, ReadonlyArray<TaskChange | undefined>> = {
  submitted: [undefined],
  claimed: ['submitted', 'retrying', 'requeued'],
  retrying: ['claimed'],
  requeued: ['claimed'],
  done: ['claimed'],
  failed: ['claimed'],
  cancelled: ['submitted', 'retrying', 'requeued', 'claimed'],
}

export function simulationCase({ factory, disposeAfter }: Contract): void {
  test(`${SIMULATED_TASKS} tasks through random failures, deaths and cancels each end exactly once (seed ${SEED})`, async () => {
    await simulate(factory, disposeAfter)
  }, 60_000)
}

async function simulate(factory: TaskQueueFactory, disposeAfter: (dispose: () => void | Promise<void>) => void): Promise<void> {
  const random = prng(SEED)
  const clock = { t: 1_700_000_000_000 }
  const made = await factory({
    retry: { maxAttempts: 3, baseMs: 50, maxMs: 400 },
    maxStalled: SIM_MAX_STALLED,
    leaseMs: SIM_LEASE_MS,
    agingMs: 500,
    now: () => clock.t,
    random,
  })
  disposeAfter(() => made.dispose())
  const primary = made.queue
  const connections = [primary, await made.sibling()]

  const history = new Map<string, TaskChange[]>()
  const violations: string[] = []
  const record = (e: TaskEvent) => {
    const list = history.get(e.task.id) ?? []
    if (!AFTER[e.change].includes(list.at(-1))) violations.push(`${e.task.id}: ${e.change} after ${list.at(-1)}`)
    list.push(e.change)
    history.set(e.task.id, list)
  }
  for (const c of connections) c.onEvent(record)

  const ids: string[] = []
  const keys = new Map<string, string>() // tenant/key → id
  const lastOutcome = new Map<string, Outcome>()
  const completions = new Map<string, number>()
  const stalls = new Map<string, number>()
  /** Tasks whose runner dropped them or died: that runner may come back later and try to finish them. */
  const stale: Array<{ id: string; owner: string; after: number }> = []
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T

  const runners: Runner[] = Array.from({ length: 6 }, (_, i) => ({
    tasks: connections[i % 2] as TaskQueue,
    name: `r${i}`,
    generation: 0,
    owner: `r${i}.0`,
    held: new Map(),
  }))

  /** A call that finishes a task succeeds exactly when the queue says the caller still holds it. */
  const holds = async (id: string, owner: string) => {
    const task = await primary.get(id)
    return task?.state === 'running' && task.lease_owner === owner
  }

  const complete = async (tasks: TaskQueue, id: string, owner: string) => {
    const expected = await holds(id, owner)
    const ok = await tasks.completeLater(id, owner, { by: owner })
    if (ok !== expected) violations.push(`${id}: complete by ${owner} returned ${ok}, expected ${expected}`)
    if (ok) completions.set(id, (completions.get(id) ?? 0) + 1)
  }

  const fail = async (tasks: TaskQueue, id: string, owner: string, retryable: boolean) => {
    const expected = await holds(id, owner)
    const task = await tasks.failLater(id, owner, { code: 'E_TEST', message: 'simulated', retryable })
    if ((task !== undefined) !== expected) violations.push(`${id}: fail by ${owner} returned ${task?.state}, expected ${expected}`)
    if (task) lastOutcome.set(id, retryable ? 'retryable' : 'fatal')
  }

  const submitBurst = async () => {
    const size = 1 + Math.floor(random() * 60)
    const inputs: SubmitInput[] = []
    for (let i = 0; i < size && ids.length + fresh(inputs) < SIMULATED_TASKS; i++) {
      const previous = inputs.at(-1)
      if (previous?.idempotency_key && random() < 0.1) {
        inputs.push({ ...previous }) // the same key twice in one batch
        continue
      }
      const tenant = pick(['a', 'b', 'c'])
      const resubmit = keys.size > 0 && random() < 0.15
      const key = resubmit ? pick([...keys.keys()]) : random() < 0.3 ? `${tenant}/k${ids.length + inputs.length}` : undefined
      inputs.push({
        type: pick(['chat', 'embed']),
        priority: Math.floor(random() * 5),
        max_attempts: 1 + Math.floor(random() * 4),
        tenant: key ? (key.split('/')[0] as string) : tenant,
        ...(key ? { idempotency_key: key.split('/')[1] as string } : {}),
      })
    }
    const commits = made.commits?.()
    const results = await primary.submitMany(inputs)
    if (commits !== undefined) expect(made.commits?.()).toBe(commits + 1)
    results.forEach(({ task, created }, i) => {
      const key = inputs[i]?.idempotency_key ? `${task.tenant}/${task.idempotency_key}` : undefined
      if (created) {
        ids.push(task.id)
        if (key) keys.set(key, task.id)
      } else if (!key || keys.get(key) !== task.id) {
        violations.push(`${task.id}: created: false without an earlier submission of its key`)
      }
    })
  }

  const drop = (id: string, owner: string) => {
    // It comes back, if at all, once its lease has lapsed: the task is requeued or claimed by another by then.
    stale.push({ id, owner, after: clock.t + SIM_LEASE_MS * (1 + random()) })
  }

  const work = async (runner: Runner) => {
    const now = clock.t
    // Outcomes first, renewals after: a runner may finish just after its lease lapsed without knowing it.
    for (const id of [...runner.held.keys()]) {
      const roll = random()
      if (roll < 0.4) await complete(runner.tasks, id, runner.owner)
      else if (roll < 0.5) await fail(runner.tasks, id, runner.owner, true)
      else if (roll < 0.53) await fail(runner.tasks, id, runner.owner, false)
      else if (roll < 0.56)
        drop(id, runner.owner) // dropped without a word
      else continue // still working on it
      runner.held.delete(id)
    }
    for (const [id, renewedAt] of runner.held) {
      // Renew at a third of the lease, as a runner does, but now and then forget to.
      if (now - renewedAt < SIM_LEASE_MS / 3 || random() < 0.03) continue
      const expected = await holds(id, runner.owner)
      const renewed = await runner.tasks.renew(id, runner.owner)
      if (renewed !== expected) violations.push(`${id}: renew by ${runner.owner} returned ${renewed}, expected ${expected}`)
      if (renewed) runner.held.set(id, now)
      else runner.held.delete(id) // lease lost: the runner must stop
    }
    if (runner.held.size < 8) {
      for (const task of await runner.tasks.claim(runner.owner, 1 + Math.floor(random() * 6))) runner.held.set(task.id, now)
    }
    if (random() < 0.01) {
      // The runner dies: everything it held waits for its lease to lapse; it restarts as a new owner.
      for (const id of runner.held.keys()) drop(id, runner.owner)
      runner.held.clear()
      runner.generation++
      runner.owner = `${runner.name}.${runner.generation}`
    }
  }

  const cancelOne = async () => {
    const id = pick(ids.slice(-50)) // recent ones, so that some are still queued or running
    const before = (await primary.get(id)) as Task
    const after = await primary.cancel(id)
    const live = before.state === 'queued' || before.state === 'running'
    if (live ? after?.state !== 'cancelled' : after?.state !== before.state)
      violations.push(`${id}: cancel of ${before.state} gave ${after?.state}`)
  }

  for (let step = 0; ; step++) {
    if (step > 100_000) throw new Error('the simulation does not converge')
    if (ids.length < SIMULATED_TASKS && random() < 0.6) await submitBurst()
    clock.t += random() < 0.01 ? SIM_LEASE_MS * 1.5 : Math.floor(random() * 120)
    for (const task of await pick(connections).recoverExpired()) {
      lastOutcome.set(task.id, 'stall')
      stalls.set(task.id, (stalls.get(task.id) ?? 0) + 1)
    }
    for (const runner of runners) await work(runner)
    if (ids.length > 0 && random() < 0.05) await cancelOne()
    const due = stale.findIndex((s) => s.after <= clock.t)
    if (due >= 0 && random() < 0.3) {
      // A runner that lost a task comes back and tries to finish it anyway.
      const { id, owner } = stale.splice(due, 1)[0] as { id: string; owner: string }
      if (random() < 0.5) await complete(pick(connections), id, owner)
      else await fail(pick(connections), id, owner, random() < 0.5)
    }
    const counts = await primary.counts()
    const busy = runners.some((r) => r.held.size > 0)
    if (ids.length >= SIMULATED_TASKS && counts.queued === 0 && counts.running === 0 && !busy) break
    if (counts.running === 0 && !busy) clock.t = Math.max(clock.t, (await primary.nextRunAfter()) ?? clock.t)
  }

  expect(violations).toEqual([])
  expect(ids.length).toBe(SIMULATED_TASKS)
  const counts = await primary.counts()
  expect(counts.queued + counts.running).toBe(0)
  expect(counts.done + counts.failed + counts.cancelled).toBe(SIMULATED_TASKS)
  // The queue holds exactly the tasks submitted: none lost, none extra.
  const listed: string[] = []
  let cursor: string | undefined
  do {
    const page = await primary.list({ limit: 1000, ...(cursor ? { cursor } : {}) })
    listed.push(...page.tasks.map((t) => t.id))
    cursor = page.next_cursor ?? undefined
  } while (cursor)
  expect(listed.sort()).toEqual([...ids].sort())

  for (const id of ids) {
    const task = (await primary.get(id)) as Task
    checkTask(task, history.get(id) ?? [], completions.get(id) ?? 0, lastOutcome.get(id))
    expect(task.stalled_count, id).toBe(stalls.get(id) ?? 0)
  }
  // The run must have exercised every ending, or it proves little.
  const reasons = new Set<unknown>()
  for (const id of ids) reasons.add((await primary.get(id))?.fail_reason)
  for (const reason of ['not_retryable', 'max_attempts', 'stalled', 'cancelled', null]) expect(reasons).toContain(reason)
}

/** Inputs that will create a task (upper bound: a resubmitted key creates none). */
function fresh(inputs: SubmitInput[]): number {
  return new Set(inputs.map((input, i) => (input.idempotency_key ? `${input.tenant}/${input.idempotency_key}` : i))).size
}

function checkTask(task: Task, history: TaskChange[], completions: number, lastOutcome: Outcome | undefined): void {
  const where = `${task.id} (${history.join(' ')})`
  const endings = history.filter((c) => c === 'done' || c === 'failed' || c === 'cancelled')
  expect(endings, where).toHaveLength(1)
  expect(history.at(-1), where).toBe(endings[0] as TaskChange)
  expect(task.state as string, where).toBe(endings[0] as string)
  expect(history.filter((c) => c === 'claimed').length, where).toBe(task.attempts)
  expect(task.attempts, where).toBeLessThanOrEqual(task.max_attempts)
  expect(completions, where).toBe(task.state === 'done' ? 1 : 0)
  if (task.state === 'done') expect(task.fail_reason, where).toBeNull()
  if (task.state === 'cancelled') expect(task.fail_reason, where).toBe('cancelled')
  if (task.state !== 'failed') return
  switch (task.fail_reason) {
    case 'not_retryable':
      expect(lastOutcome, where).toBe('fatal')
      break
    case 'max_attempts':
      expect(task.attempts, where).toBe(task.max_attempts)
      expect(lastOutcome === 'retryable' || lastOutcome === 'stall', where).toBe(true)
      break
    case 'stalled':
      expect(task.stalled_count, where).toBeGreaterThan(SIM_MAX_STALLED)
      expect(lastOutcome, where).toBe('stall')
      break
    default:
      throw new Error(`${where}: failed with reason ${task.fail_reason}`)
  }
}
