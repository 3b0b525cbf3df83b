/**
 * The pool supervisor: every configured pool, started in `depends_on` order (a pool starts once the pools
 * it depends on have settled), each in batches of `startup_batch_size` with `startup_batch_delay_ms`
 * between. Healthy workers are registered as scheduler backends and leave when they drain, fail or stop.
 * Worker state is recorded in state.db; at start, workers a dead run left behind are reaped. With a store,
 * it takes stop/restart/reset commands on `$ORCH_HOME/run/pool.sock` (control.ts).
 */
import { randomUUID } from 'node:crypto'
import { createBackend } from '../backends/create.ts'
import { poolHeartbeat } from '../config/pools.ts'
import type { OrchConfig, PoolConfig } from '../config/schema.ts'
import { workerLogPath } from '../core/home.ts'
import { logger } from '../core/log.ts'
import { poolWorkerConcurrency } from '../scheduler/limits.ts'
import type { Scheduler } from '../scheduler/scheduler.ts'
import type { Store } from '../store/db.ts'
import { type ControlServer, handleControl, listenControl, TargetError } from './control.ts'
import { assignGpus, type Gpu, workerId } from './gpu.ts'
import { isPortFree, pickPort, sleep } from './proc.ts'
import type { WorkerLaunch } from './profiles.ts'
import { reapStale, saveWorker } from './records.ts'
import { orchCommand } from './self-launch.ts'
import { rowOfWorker } from './status.ts'
import { type WatchdogCommand, watchdogCommand } from './watchdog-launch.ts'
import { DEFAULT_TIMING, type RouteHandle, Worker, type WorkerTiming } from './worker.ts'

export interface SupervisorOptions {
  config: OrchConfig
  home: string
  /** Where worker state is recorded and stale workers are found; none: neither. */
  store?: Store
  /** Healthy workers become backends here. */
  scheduler?: Scheduler
  /** Instead of (or without) a scheduler: register a healthy worker, return how to leave. */
  onHealthy?: (worker: Worker, launch: WorkerLaunch) => RouteHandle
  /** Only these pools (and the pools they depend on). */
  only?: string[]
  /** The pid workers' watchdogs watch (default: this process); null runs workers without a watchdog. */
  watchdogParent?: number | null
  /** Detected GPUs: pools without a `gpus` list are spread over them by free memory. */
  gpus?: Gpu[]
  timing?: Partial<WorkerTiming>
  /** Take commands on `$ORCH_HOME/run/pool.sock` (default: when there is a store, i.e. a real run). */
  control?: boolean
  /** Workers a pool starts with (autoscaling: pool_size within its bounds); default pool_size. */
  initialSize?: (pool: PoolConfig) => number
  /** A worker's state changed (not called for heartbeats): the `worker` events of GET /events. */
  onWorkerState?: (worker: Worker) => void
}

/** Pools in an order where every pool comes after the pools it depends on; `only` pulls in dependencies. */
export function startOrder(pools: PoolConfig[], only?: string[]): PoolConfig[] {
  const byName = new Map(pools.map((p) => [p.name, p]))
  const ordered: PoolConfig[] = []
  const seen = new Set<string>()
  const visit = (name: string) => {
    const pool = byName.get(name)
    if (!pool || seen.has(name)) return
    seen.add(name)
    for (const dep of pool.depends_on) visit(dep)
    ordered.push(pool)
  }
  for (const name of only ?? pools.map((p) => p.name)) visit(name)
  return ordered
}

/** The scheduler's name for a worker's backend. */
export const backendName = (worker: Worker) => `${worker.settings.pool.name}/${worker.id}`

/**
 * A scheduler backend per healthy worker. Leaving (restart, recycle) suspends it: requests that only it
 * serves wait for it to come back; a worker that fails or stops for good is removed (see `forget`).
 */
export function schedulerRegistrar(scheduler: Scheduler, config: OrchConfig) {
  return (worker: Worker, launch: WorkerLaunch): RouteHandle => {
    const { pool } = worker.settings
    const name = backendName(worker)
    const backend = createBackend({ name, type: pool.api, url: launch.url }, config.backend_timeouts)
    const limit = poolWorkerConcurrency(config, pool)
    const state = scheduler.addBackend({
      backend,
      concurrency: limit.concurrency,
      concurrencySource: limit.source,
      ...(pool.models.length > 0 ? { configuredModels: pool.models } : {}),
    })
    return {
      inflight: () => state.inflight,
      served: () => state.served,
      leave: () => scheduler.suspendIfCurrent(state),
    }
  }
}

export class Supervisor {
  readonly runId = randomUUID()
  readonly pools = new Map<string, Worker[]>()
  private readonly log = logger('pool')
  private readonly register: (worker: Worker, launch: WorkerLaunch) => RouteHandle
  private stopped = false
  /** Workers leaving after a scale-down: not counted, not routed, still finishing. */
  private readonly retiring = new Set<Worker>()
  /** Each healthy worker's route: its calls in flight, as the scheduler counts them now. */
  private readonly handles = new WeakMap<Worker, RouteHandle>()
  private control: ControlServer | undefined
  private readonly gpuOf: Map<string, number | undefined>
  private readonly lastState = new WeakMap<Worker, string>()

  constructor(private readonly options: SupervisorOptions) {
    this.gpuOf = assignGpus(options.config.pools, options.gpus ?? [])
    const { scheduler, onHealthy } = options
    this.register =
      onHealthy ?? (scheduler ? schedulerRegistrar(scheduler, options.config) : () => ({ inflight: () => 0, served: () => 0, leave() {} }))
  }

  get workers(): Worker[] {
    return [...this.pools.values()].flat()
  }

  /** Reap stale workers, then start the pools in order; resolves when every worker is healthy or failed. */
  async start(): Promise<void> {
    const { config, store } = this.options
    if (this.options.control ?? store !== undefined) await this.listen()
    if (store) {
      const reaped = await reapStale(store, config.graceful_shutdown_timeout_ms)
      if (reaped.length > 0) this.log.warn(`reaped ${reaped.length} worker(s) left by a previous run: pids ${reaped.join(', ')}`)
    }
    for (const pool of startOrder(config.pools, this.options.only)) {
      if (this.stopped) return
      await this.startPool(pool)
    }
  }

  private async listen(): Promise<void> {
    try {
      const opened = await listenControl(this.options.home, (text) => handleControl(this, text))
      if ('server' in opened && this.stopped) opened.server.close()
      else if ('server' in opened) this.control = opened.server
      else this.log.warn(`no control channel (orch pool stop|restart|reset will not reach this run): ${opened.reason}`)
    } catch (error) {
      this.log.warn(`no control channel: ${(error as Error).message}`)
    }
  }

  private async startPool(pool: PoolConfig): Promise<void> {
    const size = this.options.initialSize?.(pool) ?? pool.pool_size
    const workers = Array.from({ length: size }, (_, i) => this.createWorker(pool, i))
    this.pools.set(pool.name, workers)
    this.log.info(`pool ${pool.name}: starting ${workers.length} worker(s)`)
    for (let i = 0; i < workers.length; i += pool.startup_batch_size) {
      if (this.stopped) return
      if (i > 0) await sleep(pool.startup_batch_delay_ms)
      await Promise.all(workers.slice(i, i + pool.startup_batch_size).map((w) => w.start()))
    }
    const healthy = workers.filter((w) => w.state === 'healthy').length
    this.log.info(`pool ${pool.name}: ${healthy}/${workers.length} healthy`)
  }

  private createWorker(pool: PoolConfig, index: number): Worker {
    const { config, home } = this.options
    const id = workerId(pool.name, index + 1)
    // Workers added by autoscaling past the first assignment take the pool's GPUs in turn.
    const gpu = this.gpuOf.get(id) ?? (pool.gpus.length > 0 ? pool.gpus[index % pool.gpus.length] : undefined)
    return new Worker(
      {
        pool,
        id,
        gpu: gpu === undefined ? undefined : String(gpu),
        heartbeat: poolHeartbeat(config.heartbeat, pool.heartbeat),
        barrier: config.crash_barrier,
        startupTimeoutMs: config.pool_startup_timeout,
        graceMs: config.graceful_shutdown_timeout_ms,
        logPath: workerLogPath(home, pool.name, id),
        runId: this.runId,
        watchdog: this.watchdog(),
        ...(pool.profile === 'llamacpp' ? { orch: orchCommand(home) } : {}),
        timing: { ...DEFAULT_TIMING, ...this.options.timing },
      },
      {
        allocatePort: (worker) => this.allocatePort(worker, pool, index),
        onHealthy: (worker, launch) => {
          const handle = this.register(worker, launch)
          this.handles.set(worker, handle)
          return handle
        },
        canRecycle: (worker) => this.canRecycle(worker),
        onChange: (worker) => {
          this.record(worker)
          if (this.lastState.get(worker) !== worker.state) {
            this.lastState.set(worker, worker.state)
            this.options.onWorkerState?.(worker)
          }
          // Failed (crash barrier) or stopped: no longer expected back, so requests for it get 503 at once.
          if (worker.state === 'failed' || worker.state === 'stopped') this.options.scheduler?.removeBackend(backendName(worker))
        },
      },
    )
  }

  private watchdog(): { command: WatchdogCommand; parent: number } | null {
    const parent = this.options.watchdogParent === undefined ? process.pid : this.options.watchdogParent
    return parent === null ? null : { command: watchdogCommand(this.options.home), parent }
  }

  private allocatePort(worker: Worker, pool: PoolConfig, index: number): number {
    const taken = new Set(this.workers.filter((w) => w !== worker && w.port !== undefined).map((w) => w.port as number))
    if (worker.port !== undefined && !taken.has(worker.port) && isPortFree(worker.port)) return worker.port
    return pickPort(pool.port === undefined ? undefined : pool.port + index, taken)
  }

  /** One recycle at a time per pool, and only while a sibling serves (a pool of one recycles anyway). */
  private canRecycle(worker: Worker): boolean {
    const siblings = (this.pools.get(worker.settings.pool.name) ?? []).filter((w) => w !== worker)
    if (siblings.some((w) => w.state === 'draining' || w.state === 'starting')) return false
    return siblings.length === 0 || siblings.some((w) => w.state === 'healthy')
  }

  private record(worker: Worker): void {
    const { store } = this.options
    if (!store) return
    try {
      saveWorker(store, rowOfWorker(worker, this.runId))
    } catch (error) {
      this.log.warn(`cannot record worker ${worker.id}: ${(error as Error).message}`)
    }
  }

  /** The workers a control command names: a pool, a worker id (within `pool` when both), `name` (a pool, else a worker id), or all. */
  select(target: { pool?: string | undefined; worker?: string | undefined; name?: string | undefined }): Worker[] {
    const { name } = target
    if (name !== undefined) return this.select(this.pools.has(name) ? { pool: name } : { worker: name })
    const { pool, worker } = target
    if (pool !== undefined && !this.pools.has(pool)) throw new TargetError(`unknown pool "${pool}"`, this.known())
    const inPool = pool === undefined ? this.workers : (this.pools.get(pool) ?? [])
    if (worker === undefined) return inPool
    const found = inPool.filter((w) => w.id === worker)
    if (found.length === 0) throw new TargetError(`unknown worker "${worker}"${pool ? ` in pool "${pool}"` : ''}`, this.known())
    return found
  }

  private known(): { pools: string[]; workers: string[] } {
    return { pools: [...this.pools.keys()], workers: this.workers.map((w) => w.id) }
  }

  /** Stop workers and keep them stopped (no restarts) until they are restarted. */
  async stopWorkers(workers: Worker[]): Promise<void> {
    await Promise.all(workers.map((w) => w.stop()))
  }

  /** One at a time, each drained first, so a pool always has a worker serving while its siblings restart. */
  async restartWorkers(workers: Worker[]): Promise<void> {
    for (const worker of workers) if (!this.stopped) await worker.restart()
  }

  /** Failed workers among these start again with a clean crash record; returns those reset. */
  async resetWorkers(workers: Worker[]): Promise<Worker[]> {
    const failed = workers.filter((w) => w.state === 'failed')
    await Promise.all(failed.map((w) => w.reset()))
    return failed
  }

  /** A pool's workers now: asked for (starting, healthy, restarting), ready (healthy), calls in flight on them. */
  poolFigures(name: string): { current: number; ready: number; inflight: number } | undefined {
    const workers = this.pools.get(name)
    if (!workers) return undefined
    const live = workers.filter((w) => !this.retiring.has(w) && w.state !== 'failed' && w.state !== 'stopped')
    return {
      current: live.length,
      ready: live.filter((w) => w.state === 'healthy').length,
      inflight: workers.reduce((n, w) => n + this.inflightOf(w), 0),
    }
  }

  /**
   * Grow or shrink a pool to `n` workers. New workers start at once, in the background (they count as
   * asked for, not as ready, until healthy). Removed ones (not ready first, then the least busy, then the
   * newest) leave routing at once, finish their calls in flight within graceful_shutdown_timeout_ms, then
   * stop. Failed workers are not counted and are left for `orch pool reset`.
   */
  async scaleTo(name: string, n: number): Promise<void> {
    const pool = this.options.config.pools.find((p) => p.name === name)
    const workers = this.pools.get(name)
    if (!pool || !workers || this.stopped) return
    const live = workers.filter((w) => !this.retiring.has(w) && w.state !== 'failed' && w.state !== 'stopped')
    if (n > live.length) {
      const used = new Set(workers.map((w) => w.id))
      const added: Worker[] = []
      for (let index = 0; added.length < n - live.length; index++) {
        if (used.has(workerId(pool.name, index + 1))) continue
        const worker = this.createWorker(pool, index)
        workers.push(worker)
        added.push(worker)
      }
      this.log.info(`pool ${name}: ${live.length} → ${n} worker(s)`)
      for (const worker of added) void worker.start().catch((error: unknown) => this.log.warn(`${worker.id}: ${(error as Error).message}`))
      return
    }
    if (n >= live.length) return
    const order = [...live].sort(
      (a, b) =>
        Number(a.state === 'healthy') - Number(b.state === 'healthy') ||
        this.inflightOf(a) - this.inflightOf(b) ||
        (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
    )
    const leaving = order.slice(0, live.length - n)
    this.log.info(`pool ${name}: ${live.length} → ${n} worker(s)`)
    await Promise.all(leaving.map((worker) => this.retire(worker, workers)))
  }

  private inflightOf(worker: Worker): number {
    return this.handles.get(worker)?.inflight() ?? worker.inflight
  }

  /** Out of routing now, calls in flight finished (or the grace period over), then stopped and forgotten. */
  private async retire(worker: Worker, workers: Worker[]): Promise<void> {
    this.retiring.add(worker)
    this.options.scheduler?.removeBackend(backendName(worker))
    const deadline = Date.now() + this.options.config.graceful_shutdown_timeout_ms
    while (this.inflightOf(worker) > 0 && Date.now() < deadline && !this.stopped) await sleep(20)
    await worker.stop(true)
    const at = workers.indexOf(worker)
    if (at >= 0) workers.splice(at, 1)
    this.retiring.delete(worker)
  }

  /** Stop every worker, dependents first. */
  async stop(): Promise<void> {
    this.stopped = true
    this.control?.close()
    this.control = undefined
    for (const name of [...this.pools.keys()].reverse()) {
      await Promise.all((this.pools.get(name) ?? []).map((w) => w.stop(true)))
    }
  }
}
