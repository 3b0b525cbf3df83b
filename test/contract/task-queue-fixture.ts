/**
 * What the TaskQueue contract (./task-queue.ts) runs on: the factory an implementation hands in, and the
 * fixture every case opens, a fresh queue on a hand-driven clock whose events are recorded.
 */
import { afterEach } from 'bun:test'
import type { OrchError } from '../../src/core/errors.ts'
import type { SubmitInput, Task, TaskEvent, TaskQueue, TaskQueueOptions } from '../../src/tasks/queue.ts'

export interface QueueUnderTest {
  /** A fresh queue, empty, built from the options the suite passed. */
  queue: TaskQueue
  /** Another handle on the same queue (its own connection), built from the same options. */
  sibling(): TaskQueue | Promise<TaskQueue>
  /** Commits made through `queue`, where the implementation counts them: a bulk submission is exactly one. */
  commits?(): number
  /** Close every handle and remove the queue with its data. */
  dispose(): void | Promise<void>
}

export type TaskQueueFactory = (options: TaskQueueOptions) => QueueUnderTest | Promise<QueueUnderTest>

export const T0 = 1_700_000_000_000
export const HOUR = 3_600_000
export const RETRY = { maxAttempts: 3, baseMs: 1000, maxMs: 60_000 }
export const retryable = { code: 'E_BACKEND_HTTP', message: 'HTTP 503', retryable: true }
export const fatal = { code: 'E_BACKEND_HTTP', message: 'HTTP 400', retryable: false }

/** The options every case starts from: leases of 30 s, one stall allowed, the clock given, `random` fixed at 0.5. */
export function baseOptions(clock: { t: number }): TaskQueueOptions {
  return { retry: RETRY, maxStalled: 1, leaseMs: 30_000, agingMs: 10_000, now: () => clock.t, random: () => 0.5 }
}

export interface Fixture {
  queue: TaskQueue
  clock: { t: number }
  /** Every event of `queue`, in order. */
  events: TaskEvent[]
  sibling(): Promise<TaskQueue>
  commits: (() => number) | undefined
}

export interface Contract {
  factory: TaskQueueFactory
  /** A fresh queue on a clock at T0 with `random` fixed at 0.5 (backoff at its midpoint), disposed after the test. */
  open(options?: Partial<TaskQueueOptions>): Promise<Fixture>
  /** Submit one task and claim it as `owner`. */
  running(f: Fixture, owner?: string, input?: Partial<SubmitInput>): Promise<Task>
  /** Run `dispose` after the current test. */
  disposeAfter(dispose: () => void | Promise<void>): void
}

/** The fixture of one implementation's run of the contract; disposes every queue after each test. */
export function contractHarness(factory: TaskQueueFactory): Contract {
  const disposers: Array<() => void | Promise<void>> = []
  afterEach(async () => {
    for (const dispose of disposers.splice(0).reverse()) await dispose()
  })
  const disposeAfter = (dispose: () => void | Promise<void>) => {
    disposers.push(dispose)
  }
  async function open(options: Partial<TaskQueueOptions> = {}): Promise<Fixture> {
    const clock = { t: T0 }
    const made = await factory({ ...baseOptions(clock), ...options })
    disposeAfter(() => made.dispose())
    const events: TaskEvent[] = []
    made.queue.onEvent((e) => events.push(e))
    return { queue: made.queue, clock, events, sibling: async () => await made.sibling(), commits: made.commits?.bind(made) }
  }
  async function running(f: Fixture, owner = 'w', input: Partial<SubmitInput> = {}): Promise<Task> {
    const { task } = await f.queue.submit({ type: 'x', ...input })
    const [claimed] = await f.queue.claim(owner)
    if (claimed?.id !== task.id) throw new Error('the task just submitted was not the one claimed')
    return claimed
  }
  return { factory, open, running, disposeAfter }
}

export const changes = (f: Fixture) => f.events.map((e) => e.change)

export const rejection = (result: PromiseSettledResult<unknown>) => (result as PromiseRejectedResult).reason as OrchError

/** The error a promise rejects with; the test fails if it resolves. */
export const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error as OrchError,
  )
