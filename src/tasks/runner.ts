/**
 * Runs durable tasks: claims queued tasks from the task queue (as many as the usable backends have slots,
 * plus a little prefetch, and never more than `limit`: agent_runner_concurrency), runs each through the
 * engine under a lease it renews, and records the outcome.
 * A task whose lease is lost (cancelled, or taken over after this runner stalled) is aborted at once and
 * its outcome discarded: a finished task is never finished twice. With no healthy backend, nothing is
 * claimed, so work waits in the queue, durable, until one answers.
 */
import { BackendError } from '../backends/types.ts'
import type { EventBus } from '../bus/local.ts'
import { logger, outageWarning } from '../core/log.ts'
import type { Engine } from '../scheduler/engine.ts'
import { isLocalOwnerAlive } from './owner.ts'
import type { ClaimFilter, Task, TaskQueue } from './queue.ts'
import { isRetryableError } from './retry.ts'

export interface RunnerOptions {
  tasks: TaskQueue
  engine: Engine
  owner: string
  leaseMs: number
  /** Claims ahead of free slots, so a slot never waits on a claim round-trip. */
  prefetch?: number
  /** Poll for work submitted by other processes this often (ms). */
  pollMs?: number
  /** Most tasks this runner holds at once, whatever the backends (replaces slots + prefetch). */
  maxActive?: number
  /**
   * Most tasks this runner holds at once, below slots + prefetch (agent_runner_concurrency, see
   * taskRunnerLimit); unset or null: no cap of its own. Proxied calls are never counted here.
   */
  limit?: number | null | undefined
  /**
   * Claim only tasks for models the usable backends serve, when every one of them knows its models (from
   * config or discovery): in a cluster whose machines serve different models, a task waits for a machine
   * that has its model instead of failing on one that does not.
   */
  claimServedModels?: boolean
  /** Whether the owner of a task found running at start is alive; default: the local process check. */
  isOwnerAlive?: (owner: string) => boolean
  /**
   * The cluster's event stream, when the queue is shared by several processes: a task cancelled anywhere
   * is aborted here at once, and a task submitted anywhere wakes this runner (without it, a claim waits
   * for the poll).
   */
  bus?: EventBus
}

const PRUNE_EVERY_MS = 10 * 60_000
/** With no room the runner waits for a poke (a task settled, the backends changed); this is only a safety net. */
const FULL_POLL_MS = 30_000
/** Pause before claiming again after the queue could not be reached. */
const CLAIM_RETRY_MS = 500
/** Finished tasks deleted per step of a prune (one short transaction each). */
const PRUNE_STEP = 1000

interface Active {
  task: Task
  controller: AbortController
  settled: Promise<void>
}

export class TaskRunner {
  private readonly active = new Map<string, Active>()
  private running = false
  private starting: Promise<void> | undefined
  private wake: (() => void) | undefined
  private loop: Promise<void> | undefined
  private timers: Array<ReturnType<typeof setInterval>> = []
  private pruning = false
  private renewing = false
  private recovering = false
  private unsubscribe: (() => void) | undefined
  private readonly log = logger('scheduler')
  private readonly outage = outageWarning(this.log)
  readonly stats = { completed: 0, failed: 0, retried: 0, lost: 0 }

  constructor(private readonly options: RunnerOptions) {}

  /** Recovers what a dead process left running, then starts claiming; resolves once recovery is done. */
  start(): Promise<void> {
    this.starting ??= this.begin()
    return this.starting
  }

  private async begin(): Promise<void> {
    this.running = true
    const { tasks, leaseMs } = this.options
    // The queue out of reach (Redis down): their leases expire, and recovery takes them then.
    const recovered = await Promise.resolve(tasks.recoverAbandoned(this.options.isOwnerAlive ?? isLocalOwnerAlive)).catch(
      (error: unknown) => {
        this.outage.warn(`recovering tasks of processes that are gone failed: ${(error as Error).message}`)
        return []
      },
    )
    if (recovered.length > 0) this.log.info(`recovered ${recovered.length} task(s) left running by a process that is gone`)
    // Stopped while recovering: nothing to start.
    if (!this.running) return
    const heard = (id: string, change: string) => {
      if (change === 'submitted' || change === 'retrying' || change === 'requeued') this.poke()
      if (change === 'cancelled') this.active.get(id)?.controller.abort()
    }
    const fromTasks = tasks.onEvent((event) => heard(event.task.id, event.change))
    const fromBus = this.options.bus?.subscribe((event) => {
      if (event.type === 'task') heard(String(event.data.id), String(event.data.change))
    })
    // A backend back (or added) makes room.
    const fromBackends = this.options.engine.onBackendsChange(() => this.poke())
    this.unsubscribe = () => {
      fromTasks()
      fromBus?.()
      fromBackends()
    }
    void this.prune()
    const pruner = setInterval(() => void this.prune(), PRUNE_EVERY_MS)
    pruner.unref?.()
    this.timers = [
      pruner,
      setInterval(() => void this.renewAll(), Math.max(50, Math.floor(leaseMs / 3))),
      setInterval(() => void this.recover(), Math.max(50, Math.floor(leaseMs / 2))),
    ]
    this.loop = this.run()
  }

  /** Stop claiming; wait up to `graceMs` for running tasks, then abort them and hand them back to the queue. */
  async stop(graceMs = 0): Promise<void> {
    this.running = false
    await this.starting?.catch(() => undefined)
    this.starting = undefined
    this.poke()
    for (const timer of this.timers) clearInterval(timer)
    this.unsubscribe?.()
    const deadline = Date.now() + graceMs
    while (this.active.size > 0 && Date.now() < deadline) await Bun.sleep(10)
    const settling = [...this.active.values()].map(({ controller, settled }) => {
      controller.abort()
      return settled
    })
    await Promise.all(settling)
    await this.loop
  }

  get activeCount(): number {
    return this.active.size
  }

  private poke(): void {
    this.wake?.()
  }

  private capacity(): number {
    if (this.options.maxActive !== undefined) return this.options.maxActive
    let slots = 0
    for (const state of this.options.engine.backends()) if (state.usable) slots += state.concurrency
    // No backend answers: claim nothing, so the work waits in the queue (durable) until one does.
    if (slots === 0) return 0
    const wanted = slots + (this.options.prefetch ?? 2)
    const limit = this.options.limit
    return limit === undefined || limit === null ? wanted : Math.min(limit, wanted)
  }

  private claimFilter(): ClaimFilter | undefined {
    if (!this.options.claimServedModels) return undefined
    const usable = this.options.engine.backends().filter((s) => s.usable)
    // One backend that takes any model (its list not known yet) can run anything.
    if (usable.length === 0 || usable.some((s) => !s.knowsModels)) return undefined
    const models = new Set<string>()
    for (const state of usable) {
      for (const name of state.modelNames()) {
        models.add(name)
        // Tasks name a model as submitted; Ollama's `name:latest` is also just `name`.
        if (name.endsWith(':latest')) models.add(name.slice(0, -':latest'.length))
      }
    }
    return { models: [...models] }
  }

  private async run(): Promise<void> {
    const { tasks, owner } = this.options
    while (this.running) {
      const room = this.capacity() - this.active.size
      let claimed: Task[]
      try {
        claimed = room > 0 ? await tasks.claim(owner, room, this.claimFilter()) : []
      } catch (error) {
        // The queue is out of reach (Redis down): nothing was claimed; try again after a pause.
        this.outage.warn(`claiming tasks failed: ${(error as Error).message}; retrying`)
        await this.idle(undefined, CLAIM_RETRY_MS)
        continue
      }
      this.outage.ok()
      // Stopped while the claim was under way: hand back what it got, untouched.
      if (!this.running) {
        for (const task of claimed) await Promise.resolve(tasks.release(task.id, owner)).catch(() => undefined)
        break
      }
      for (const task of claimed) this.execute(task)
      if (room - claimed.length <= 0) {
        // No room (every slot taken, or no usable backend): nothing can start before a task settles or the
        // backends change, and both poke; waking at the due tasks' run_after, or polling, would only spin.
        await this.idle(undefined, FULL_POLL_MS)
      } else if (claimed.length === 0) {
        // Room left and nothing due: sleep until the next retry comes due.
        await this.idle(await Promise.resolve(tasks.nextRunAfter()).catch(() => undefined))
      }
    }
  }

  /** Sleep until poked, the given time (a retry coming due), or the poll interval passes. */
  private idle(nextRunAfter: number | undefined, poll = this.options.pollMs ?? 1000): Promise<void> {
    // A due task that the claim left (another model's, under claimServedModels) is not this runner's to wake for.
    const wait = nextRunAfter === undefined ? poll : nextRunAfter - Date.now()
    const until = wait <= 0 ? poll : Math.max(1, Math.min(poll, wait))
    return new Promise((resolve) => {
      const timer = setTimeout(done, until)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.wake = done
    })
  }

  private execute(task: Task): void {
    const controller = new AbortController()
    const { engine, tasks, owner } = this.options
    // Outcomes are group-committed with everything else of the turn: one fsync for many tasks.
    const settled = engine
      .run(task.type, task.payload, { priority: task.priority, tenant: task.tenant, signal: controller.signal })
      .then(
        async (result) => {
          if (await tasks.completeLater(task.id, owner, result)) this.stats.completed++
          else this.stats.lost++
        },
        async (error: unknown) => {
          // Shutting down: hand the task back untouched, for the next start.
          if (controller.signal.aborted && !this.running) {
            await tasks.release(task.id, owner)
            return
          }
          const failed = await tasks.failLater(task.id, owner, toTaskError(error))
          if (!failed) this.stats.lost++
          else if (failed.state === 'queued') this.stats.retried++
          else this.stats.failed++
        },
      )
      .catch((error: unknown) => this.log.error(`recording the outcome of task ${task.id} failed: ${(error as Error).message}`))
      .finally(() => {
        this.active.delete(task.id)
        this.poke()
      })
    this.active.set(task.id, { task, controller, settled })
  }

  /**
   * Retention: finished tasks older than tasks.retention_hours go, PRUNE_STEP at a time with a turn of the
   * event loop between steps, so a week of finished tasks going at once never stalls requests.
   */
  private async prune(): Promise<void> {
    if (this.pruning) return
    this.pruning = true
    let removed = 0
    try {
      for (;;) {
        const step = await this.options.tasks.prune(undefined, PRUNE_STEP)
        removed += step
        if (step < PRUNE_STEP) break
        await Bun.sleep(0)
        // Stopped meanwhile: the store may be closing; the rest goes at the next start.
        if (!this.running) break
      }
    } catch (error) {
      this.log.warn(`pruning finished tasks failed: ${(error as Error).message}`)
    } finally {
      this.pruning = false
    }
    if (removed > 0) this.log.debug(`pruned ${removed} finished task(s) past retention`)
  }

  /**
   * Renew every lease held. A lease found lost (cancelled, taken over) aborts its task at once. A renewal
   * that fails (the queue out of reach) changes nothing here: the task goes on, and if the queue stays out
   * of reach past the lease, another runner may take it over and this one's outcome is refused.
   */
  private async renewAll(): Promise<void> {
    if (this.renewing) return
    this.renewing = true
    try {
      await Promise.all(
        [...this.active].map(async ([id, { controller }]) => {
          try {
            if (!(await this.options.tasks.renew(id, this.options.owner))) controller.abort()
          } catch (error) {
            this.outage.warn(`renewing the lease of task ${id} failed: ${(error as Error).message}`)
          }
        }),
      )
    } finally {
      this.renewing = false
    }
  }

  /** Requeue tasks whose lease ran out (another runner died); a new task in the queue wakes the loop. */
  private async recover(): Promise<void> {
    if (this.recovering) return
    this.recovering = true
    try {
      if ((await this.options.tasks.recoverExpired()).length > 0) this.poke()
    } catch (error) {
      this.outage.warn(`recovering expired leases failed: ${(error as Error).message}`)
    } finally {
      this.recovering = false
    }
  }
}

function toTaskError(error: unknown): { code: string; message: string; retryable: boolean } {
  const code =
    error instanceof BackendError || (error instanceof Error && 'code' in error) ? String((error as { code: unknown }).code) : 'E_TASK'
  return { code, message: error instanceof Error ? error.message : String(error), retryable: isRetryableError(error) }
}
