/**
 * The dispatch loop: admission control and routing for every backend call, durable task or proxied
 * request alike. A caller asks for a slot (`acquire`), makes its backend call, and releases the slot with
 * the outcome, which feeds the backend's circuit breaker.
 *
 * Order: tenants take turns (round-robin), and within a tenant the highest effective priority goes first,
 * where a request gains one priority level per `agingMs` waited, so nothing starves. Limits: per backend
 * (`concurrency`, resolved in limits.ts) and per model (`parallel: false` → one at a time on a backend);
 * nothing caps calls over all backends together, so every backend added adds its slots. What may wait is
 * bounded by `maxQueue` (pool_max_queue_size); durable tasks are capped by the task runner, not here.
 *
 * Overload is answered at once: a request the queue cannot serve within its queue timeout (judged by the
 * measured service time of its model, see `drainEstimate`, with DRAIN_MARGIN to spare) is refused on
 * arrival instead of waiting the timeout out, so a client under a flood learns in milliseconds to back off.
 */
import type { BreakerOptions } from './breaker.ts'
import {
  breakerOpenError,
  cancelledError,
  modelNotFoundError,
  noBackendError,
  queueCannotDrainError,
  queueFullError,
  queueTimeoutError,
} from './errors.ts'
import { type BackendEntry, BackendState, type Capacity, normalizeModel, route } from './router.ts'

export interface SchedulerOptions {
  backends: BackendEntry[]
  /** Models (normalised `name:tag`) that must not run two calls at once on one backend. */
  serialModels: Set<string>
  maxQueue: number
  queueTimeoutMs: number
  agingMs: number
  breaker: BreakerOptions & { waitForClose: boolean }
  now?: () => number
}

export interface AcquireOptions {
  model: string
  priority?: number
  tenant?: string
  signal?: AbortSignal
  /** Overrides `queueTimeoutMs` for this request. */
  queueTimeoutMs?: number
}

export type Outcome = 'success' | 'failure' | 'neutral'

export interface ReleaseTiming {
  /**
   * Milliseconds of the call the backend spent loading the model (Ollama's load_duration). A warm model
   * does not spend them again, so they stay out of the service-time estimate.
   */
  loadMs?: number | undefined
}

export interface Slot {
  readonly backend: BackendState['backend']
  readonly waitedMs: number
  /** Give the slot back; `failure` counts against the backend's breaker, `neutral` (cancel, 4xx) does not. */
  release(outcome: Outcome, timing?: ReleaseTiming): void
}

/** How long a new request would wait for a slot, and what the figure rests on. */
export interface DrainEstimate {
  /** Requests for the model that would be served before this one. */
  ahead: number
  /** Mean slot hold time of the model, measured (EWMA). */
  serviceMs: number
  /** Slots that can serve the model now or as they free. */
  slots: number
  waitMs: number
}

/** Weight of the newest hold time in a model's service-time average: a few calls move it, one outlier does not. */
const SERVICE_EWMA_ALPHA = 0.2

/**
 * A request is admitted only if its estimated wait fits in its timeout with this share to spare. The
 * service time drifts up under the very burst being judged (the host is busier), and over a deep queue a
 * few percent add up to more than a service time: a request admitted only to time out would get the slow
 * refusal this is here to avoid. Measured: at 100x capacity, 200 ms calls and a 5 s timeout, no margin let
 * the last round in and out again at 5 s.
 */
export const DRAIN_MARGIN = 0.1

/** A call holding a slot: its model, and when it got the slot. */
interface Hold {
  model: string
  since: number
}

/** A pool that can start workers (see Scheduler.standby). */
export interface Standby {
  serves: (model: string) => boolean
  /** More workers may come: below its max, or some still starting. */
  canGrow: () => boolean
  startupMs: number
  onDemand: (model: string) => void
}

interface Job {
  model: string
  /** `model` normalised (name:tag), as limits and estimates key it. */
  key: string
  priority: number
  tenant: string
  enqueuedAt: number
  signal: AbortSignal | undefined
  resolve: (slot: Slot) => void
  reject: (error: unknown) => void
  timer: ReturnType<typeof setTimeout> | undefined
  onAbort: (() => void) | undefined
}

export interface SchedulerStats {
  requests: number
  queued: number
  inflight: number
  errors: number
  queue_timeouts: number
  pool_saturated: number
  rejected: number
  /** Refused on arrival because the queue could not drain within the queue timeout (also in pool_saturated). */
  overloaded: number
  /** Backends known (the name predates pools: they are backends, not pool workers). */
  workers: number
  /** Usable backends with a free slot. */
  available: number
  /** Usable backends with a call in flight. */
  busy: number
  /** Slots of the usable backends (the sum of their concurrency), and those taken. */
  slots: number
  slots_busy: number
}

export class Scheduler {
  readonly states = new Map<string, BackendState>()
  private readonly queues = new Map<string, Job[]>()
  private readonly standbys = new Set<Standby>()
  private tenantOrder: string[] = []
  private nextTenant = 0
  private queuedCount = 0
  private inflight = 0
  private breakerTimer: ReturnType<typeof setTimeout> | undefined
  private readonly now: () => number
  private readonly counters = { requests: 0, errors: 0, queue_timeouts: 0, pool_saturated: 0, rejected: 0, overloaded: 0 }
  /** Waiting requests by normalised model, then tenant: what a drain estimate counts ahead of a new one. */
  private readonly waiting = new Map<string, Map<string, number>>()
  /** Mean slot hold time by normalised model (EWMA); absent until the model's first call ended. */
  private readonly serviceMs = new Map<string, number>()
  /** Calls in flight by backend, for the time their slots still stay taken. */
  private readonly holds = new Map<BackendState, Set<Hold>>()
  private readonly capacity: Capacity
  /** Set when health or a breaker changed: waiting requests may have become unservable. */
  private recheck = false
  /** Told when a backend is added, removed, suspended or its health or models change. */
  private readonly changeListeners = new Set<() => void>()

  constructor(private readonly options: SchedulerOptions) {
    this.now = options.now ?? Date.now
    for (const entry of options.backends) this.addBackend(entry)
    this.capacity = { hasRoom: (state, m) => this.hasRoom(state, m) }
  }

  /** Add a backend, or replace one of the same name (a restarted worker, maybe on another port). */
  addBackend(entry: BackendEntry): BackendState {
    const state = new BackendState(entry, this.options.breaker, this.now)
    this.states.set(state.name, state)
    this.pump()
    this.changed()
    return state
  }

  /** Be told whenever the set of backends or their usability may have changed; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener)
    return () => this.changeListeners.delete(listener)
  }

  private changed(): void {
    for (const listener of this.changeListeners) listener()
  }

  /**
   * Stop routing to a backend that is expected back (a worker restarting or recycling): calls in flight
   * finish, and requests that only it serves wait in the queue (up to their timeout) instead of failing.
   */
  suspend(name: string): void {
    const state = this.states.get(name)
    if (state) state.suspended = true
    this.changed()
  }

  /** `suspend` this backend if it is still the one of its name (not replaced by a newer one since). */
  suspendIfCurrent(state: BackendState): void {
    if (this.states.get(state.name) === state) this.suspend(state.name)
  }

  /** Stop routing to a backend; calls in flight finish. */
  removeBackend(name: string): void {
    const state = this.states.get(name)
    if (state) state.draining = true
    this.states.delete(name)
    this.recheck = true
    this.pump()
    this.changed()
  }

  /** Health, discovered and loaded models change what is routable: re-run dispatch. */
  update(name: string, change: { healthy?: boolean; models?: string[]; loaded?: string[] }): void {
    const state = this.states.get(name)
    if (!state) return
    if (change.healthy !== undefined) state.healthy = change.healthy
    if (change.models) state.discoveredModels = new Set(change.models.map(normalizeModel))
    if (change.loaded) state.loadedModels = new Set(change.loaded.map(normalizeModel))
    this.recheck = true
    this.pump()
    this.changed()
  }

  /**
   * A pool that can start workers for some models (an autoscaled pool below its max, possibly at 0): a
   * request for one of them waits for a worker (its queue timeout plus `startupMs`) instead of being
   * refused, when no backend serves the model yet or when the queue ahead of it would not drain in time on
   * the workers there are now; `onDemand` is told whenever such a request has to wait, so the pool grows
   * at once rather than at its next evaluation. Returns the withdrawal.
   */
  standby(entry: Standby): () => void {
    this.standbys.add(entry)
    return () => this.standbys.delete(entry)
  }

  /** Requests waiting for a slot for models `serves` says yes to, and how long the oldest has waited. */
  waitingFor(serves: (model: string) => boolean): { count: number; oldestMs: number } {
    const now = this.now()
    let count = 0
    let oldest = now
    for (const jobs of this.queues.values()) {
      for (const job of jobs) {
        if (!serves(job.model)) continue
        count++
        oldest = Math.min(oldest, job.enqueuedAt)
      }
    }
    return { count, oldestMs: now - oldest }
  }

  acquire(options: AcquireOptions): Promise<Slot> {
    this.counters.requests++
    if (options.signal?.aborted) return this.refuse(cancelledError())
    const refusal = this.refusalFor(options.model)
    if (refusal) return this.refuse(refusal)
    if (this.queuedCount >= this.options.maxQueue) {
      this.counters.pool_saturated++
      const retryAfter = Math.max(1, Math.ceil(this.options.queueTimeoutMs / 1000))
      return this.refuse(queueFullError(this.options.maxQueue, retryAfter))
    }
    // Fast path: nothing waiting ahead of it and a slot is free.
    if (this.queuedCount === 0) {
      const state = route(this.states.values(), options.model, this.capacity)
      if (state) {
        const now = this.now()
        return Promise.resolve(this.grant(state, normalizeModel(options.model), now, now))
      }
    }
    // Only a request that has to wait asks whether a pool is growing for it (the fast path never does).
    const standby = this.standbys.size > 0 ? this.growing(options.model) : undefined
    const timeoutMs = (options.queueTimeoutMs ?? this.options.queueTimeoutMs) + (standby?.startupMs ?? 0)
    standby?.onDemand(options.model)
    // A pool that is growing serves sooner than the workers there are now say: no refusal by estimate.
    if (this.queuedCount > 0 && !standby) {
      const estimate = this.drainEstimate(options.model, options.tenant, options.priority)
      if (estimate && estimate.waitMs * (1 + DRAIN_MARGIN) > timeoutMs) {
        this.counters.pool_saturated++
        this.counters.overloaded++
        return this.refuse(queueCannotDrainError({ ...estimate, model: options.model, timeoutMs }))
      }
    }
    return new Promise<Slot>((resolve, reject) => {
      const job: Job = {
        model: options.model,
        key: normalizeModel(options.model),
        priority: options.priority ?? 0,
        tenant: options.tenant ?? 'default',
        enqueuedAt: this.now(),
        signal: options.signal,
        resolve,
        reject,
        timer: undefined,
        onAbort: undefined,
      }
      this.enqueue(job, timeoutMs)
    })
  }

  /**
   * How long a request for `model` arriving now would wait for a slot; undefined while there is nothing
   * to go on (no call of the model has ended yet, or no slot can serve it now), when nobody judges.
   *
   * The simple form is ahead × service time ÷ slots. Calls in flight are counted too, because in a burst
   * every slot was just taken: the slots free at their calls' residual times r₀ ≤ … ≤ rₛ₋₁ (service time
   * minus age), then every service time after, so the request with `ahead` before it gets the slot that
   * frees at r[ahead mod slots] + ⌊ahead ÷ slots⌋ × service time. Only requests for the same model are
   * counted ahead, and of other tenants only as many as round-robin serves before this one's turn: other
   * traffic can only make the wait longer, so the figure errs towards admitting.
   */
  drainEstimate(model: string, tenant = 'default', priority = 0): DrainEstimate | undefined {
    const m = normalizeModel(model)
    const serviceMs = this.serviceMs.get(m)
    if (serviceMs === undefined) return undefined
    const residuals = this.slotResiduals(m, serviceMs)
    const slots = residuals.length
    if (slots === 0) return undefined
    const ahead = this.waitingAhead(m, tenant, priority)
    const waitMs = (residuals[ahead % slots] as number) + Math.floor(ahead / slots) * serviceMs
    return { ahead, serviceMs, slots, waitMs }
  }

  /** Requests for model `m` served before a new one of `tenant` at `priority`. */
  private waitingAhead(m: string, tenant: string, priority: number): number {
    const byTenant = this.waiting.get(m)
    if (!byTenant) return 0
    let own = 0
    if (byTenant.has(tenant)) {
      const now = this.now()
      for (const job of this.queues.get(tenant) ?? []) {
        if (job.key === m && effective(job, now, this.options.agingMs) >= priority) own++
      }
    }
    // Tenants take turns: before this request's turn, another tenant is served at most own + 1 times.
    let ahead = own
    for (const [other, n] of byTenant) if (other !== tenant) ahead += Math.min(n, own + 1)
    return ahead
  }

  /**
   * When each slot able to serve `m` frees, in ms from now, ascending: 0 for a free one, else the service
   * time left of the call holding it.
   */
  private slotResiduals(m: string, serviceMs: number): number[] {
    const now = this.now()
    const serial = this.options.serialModels.has(m)
    const all: number[] = []
    for (const state of this.states.values()) {
      if (!state.usable || !state.serves(m) || !state.breaker.canPass()) continue
      const slots = serial ? 1 : state.concurrency
      const left: number[] = []
      for (const hold of this.holds.get(state) ?? []) {
        if (serial && hold.model !== m) continue
        left.push(Math.max(0, (this.serviceMs.get(hold.model) ?? serviceMs) - (now - hold.since)))
      }
      left.sort((a, b) => a - b)
      const free = Math.max(0, slots - left.length)
      all.push(...new Array<number>(free).fill(0), ...left.slice(0, slots - free))
    }
    return all.sort((a, b) => a - b)
  }

  stats(): SchedulerStats {
    let available = 0
    let busy = 0
    let slots = 0
    let slotsBusy = 0
    for (const state of this.states.values()) {
      if (!state.usable) continue
      if (state.inflight > 0) busy++
      if (state.inflight < state.concurrency) available++
      slots += state.concurrency
      slotsBusy += Math.min(state.inflight, state.concurrency)
    }
    return {
      ...this.counters,
      queued: this.queuedCount,
      inflight: this.inflight,
      workers: this.states.size,
      available,
      busy,
      slots,
      slots_busy: slotsBusy,
    }
  }

  /** Reject everything still waiting (shutdown). */
  drain(error: unknown): void {
    for (const jobs of this.queues.values()) for (const job of jobs.splice(0)) this.settle(job, error)
    this.queuedCount = 0
    this.waiting.clear()
    if (this.breakerTimer) clearTimeout(this.breakerTimer)
  }

  private refuse(error: unknown): Promise<never> {
    this.counters.rejected++
    return Promise.reject(error)
  }

  /** A standby that serves the model and can still grow. */
  private growing(model: string): Standby | undefined {
    for (const s of this.standbys) if (s.serves(model) && s.canGrow()) return s
    return undefined
  }

  /** Whether a usable backend serves the model (whatever its breaker says). */
  private servedByAny(model: string): boolean {
    for (const s of this.states.values()) if (s.usable && s.serves(model)) return true
    return false
  }

  /**
   * A request nobody can serve is refused at once instead of waiting out its queue timeout; unless a pool
   * that serves its model can still grow (Scheduler.standby): then it waits for that pool's worker.
   */
  private refusalFor(model: string): unknown {
    const refusal = this.plainRefusalFor(model)
    if (refusal === undefined || this.standbys.size === 0) return refusal
    return !this.servedByAny(model) && this.growing(model) ? undefined : refusal
  }

  private plainRefusalFor(model: string): unknown {
    // The usual case first, without building lists: a usable backend serves the model and lets calls through.
    for (const s of this.states.values()) if (s.usable && s.serves(model) && s.breaker.canPass()) return undefined
    const states = [...this.states.values()]
    const usable = states.filter((s) => s.usable)
    const serving = usable.filter((s) => s.serves(model))
    // A backend coming back (suspended, healthy otherwise) will serve: wait for it.
    if (serving.length === 0 && states.some((s) => s.suspended && s.healthy !== false && s.serves(model))) return undefined
    if (serving.length === 0) {
      if (usable.length > 0 && usable.every((s) => s.knowsModels)) {
        return modelNotFoundError(model, [...new Set(usable.flatMap((s) => s.modelNames()))])
      }
      return noBackendError(
        model,
        states.map((s) => s.name),
      )
    }
    if (!this.options.breaker.waitForClose && serving.every((s) => !s.breaker.canPass())) {
      const retryAfterMs = Math.min(...serving.map((s) => s.breaker.retryAfterMs()))
      return breakerOpenError(
        serving.map((s) => s.name),
        Math.max(1, Math.ceil(retryAfterMs / 1000)),
      )
    }
    return undefined
  }

  private hasRoom(state: BackendState, m: string): boolean {
    if (state.inflight >= state.concurrency) return false
    return !this.options.serialModels.has(m) || (state.perModel.get(m) ?? 0) === 0
  }

  private enqueue(job: Job, timeoutMs: number): void {
    let queue = this.queues.get(job.tenant)
    if (!queue) {
      queue = []
      this.queues.set(job.tenant, queue)
      this.tenantOrder.push(job.tenant)
    }
    queue.push(job)
    this.queuedCount++
    this.countWaiting(job, 1)
    job.timer = setTimeout(() => {
      if (!this.remove(job)) return
      this.counters.queue_timeouts++
      this.settle(job, queueTimeoutError(this.now() - job.enqueuedAt, job.model))
    }, timeoutMs)
    if (job.signal) {
      job.onAbort = () => {
        if (this.remove(job)) this.settle(job, cancelledError())
      }
      job.signal.addEventListener('abort', job.onAbort, { once: true })
    }
    this.armBreakerTimer(job.model)
  }

  /** With wait_for_close, a request held back by open circuits needs a dispatch pass when one half-opens. */
  private armBreakerTimer(model: string): void {
    if (this.breakerTimer) return
    let soonest = Number.POSITIVE_INFINITY
    for (const state of this.states.values()) {
      if (state.serves(model) && !state.breaker.canPass()) soonest = Math.min(soonest, state.breaker.retryAfterMs())
    }
    if (!Number.isFinite(soonest)) return
    this.breakerTimer = setTimeout(() => {
      this.breakerTimer = undefined
      this.recheck = true
      this.pump()
    }, soonest + 1)
  }

  private remove(job: Job): boolean {
    const queue = this.queues.get(job.tenant)
    const index = queue?.indexOf(job) ?? -1
    if (!queue || index < 0) return false
    queue.splice(index, 1)
    this.queuedCount--
    this.countWaiting(job, -1)
    if (queue.length === 0) {
      this.queues.delete(job.tenant)
      const at = this.tenantOrder.indexOf(job.tenant)
      this.tenantOrder.splice(at, 1)
      if (at < this.nextTenant) this.nextTenant--
    }
    return true
  }

  private countWaiting(job: Job, delta: number): void {
    const m = job.key
    const byTenant = this.waiting.get(m) ?? new Map<string, number>()
    const n = (byTenant.get(job.tenant) ?? 0) + delta
    if (n > 0) byTenant.set(job.tenant, n)
    else byTenant.delete(job.tenant)
    if (byTenant.size > 0) this.waiting.set(m, byTenant)
    else this.waiting.delete(m)
  }

  /** A call ended: its hold time, less any model load, moves the model's service-time average. */
  private observeHold(m: string, hold: Hold, timing: ReleaseTiming | undefined): void {
    const sample = Math.max(0, this.now() - hold.since - Math.max(0, timing?.loadMs ?? 0))
    const before = this.serviceMs.get(m)
    this.serviceMs.set(m, before === undefined ? sample : before + SERVICE_EWMA_ALPHA * (sample - before))
  }

  private settle(job: Job, error: unknown): void {
    this.cleanup(job)
    this.counters.errors++
    job.reject(error)
  }

  private cleanup(job: Job): void {
    if (job.timer) clearTimeout(job.timer)
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort)
  }

  private tryDispatch(job: Job): boolean {
    const state = route(this.states.values(), job.model, this.capacity)
    if (!state) return false
    this.cleanup(job)
    job.resolve(this.grant(state, job.key, job.enqueuedAt, this.now()))
    return true
  }

  /** A slot on `state` for a request of model `m` (normalised) that asked at `enqueuedAt`. */
  private grant(state: BackendState, m: string, enqueuedAt: number, now: number): Slot {
    const isTrial = state.breaker.onStart()
    state.inflight++
    state.perModel.set(m, (state.perModel.get(m) ?? 0) + 1)
    this.inflight++
    const hold: Hold = { model: m, since: now }
    const holds = this.holds.get(state) ?? new Set<Hold>()
    holds.add(hold)
    this.holds.set(state, holds)
    let released = false
    return {
      backend: state.backend,
      waitedMs: hold.since - enqueuedAt,
      release: (outcome, timing) => {
        if (released) return
        released = true
        holds.delete(hold)
        if (holds.size === 0) this.holds.delete(state)
        // Every outcome counts: a slot freed early by a cancel or a fast failure drains the queue as fast.
        this.observeHold(m, hold, timing)
        state.inflight--
        state.perModel.set(m, (state.perModel.get(m) ?? 1) - 1)
        state.served++
        this.inflight--
        if (outcome === 'success') state.breaker.onSuccess()
        else if (outcome === 'failure') {
          state.breaker.onFailure()
          this.recheck = true
        } else state.breaker.onNeutral(isTrial)
        this.pump()
      },
    }
  }

  /** Dispatch as many waiting requests as the limits allow, tenants in turn. */
  private pump(): void {
    while (this.queuedCount > 0) {
      if (!this.dispatchOne()) break
    }
  }

  private dispatchOne(): boolean {
    const now = this.now()
    const tenants = this.tenantOrder.length
    for (let k = 0; k < tenants; k++) {
      const index = (this.nextTenant + k) % tenants
      const tenant = this.tenantOrder[index] as string
      const job = this.bestRoutable(this.queues.get(tenant) ?? [], now)
      if (!job) continue
      const after = this.tenantOrder[(index + 1) % tenants] as string
      this.remove(job)
      const at = this.tenantOrder.indexOf(after)
      this.nextTenant = at >= 0 ? at : 0
      if (!this.tryDispatch(job)) throw new Error('routable job could not be dispatched')
      return true
    }
    if (this.recheck) this.failUnservable()
    return false
  }

  /** The waiting job with the highest effective priority that some backend can take now. */
  private bestRoutable(jobs: Job[], now: number): Job | undefined {
    const aging = this.options.agingMs
    const ranked = jobs.length === 1 ? jobs : [...jobs].sort((a, b) => effective(b, now, aging) - effective(a, now, aging))
    const tried = new Set<string>()
    for (const job of ranked) {
      if (tried.has(job.model)) continue
      tried.add(job.model)
      if (route(this.states.values(), job.model, this.capacity)) return job
    }
    return undefined
  }

  /**
   * Waiting requests whose model lost every backend fail now rather than at their timeout; with
   * wait_for_close, requests held back by open breakers get a dispatch pass when the first one half-opens.
   */
  private failUnservable(): void {
    this.recheck = false
    for (const jobs of [...this.queues.values()]) {
      for (const job of [...jobs]) {
        const refusal = this.refusalFor(job.model)
        if (refusal && this.remove(job)) this.settle(job, refusal)
        else this.armBreakerTimer(job.model)
      }
    }
  }
}

function effective(job: Job, now: number, agingMs: number): number {
  return job.priority + (now - job.enqueuedAt) / agingMs
}
