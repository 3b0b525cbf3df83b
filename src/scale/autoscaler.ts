/**
 * The autoscaler of a process's pools (resource_management.auto_scaling_enabled, docs/scaling.md#autoscaling).
 * Every scale_interval_seconds it samples each pool (requests and durable tasks waiting for its models, calls
 * in flight on its workers, workers ready and asked for, the machine's CPU and memory), asks the pure policy
 * (./policy.ts) how many workers the pool should have, and applies the answer through the supervisor. Every
 * decision is logged, kept for `orch scale status`, counted and published as a `scaling` event.
 *
 * Modes: `auto` decides and acts; `manual` (orchestrator_mode: manual) never acts on its own, and
 * `orch scale set POOL N` sizes a pool; `off` (auto_scaling_enabled false, orchestrator_mode auto) keeps
 * pool_size and refuses `set`.
 *
 * From zero: in auto mode every pool below its max stands by in the scheduler, so a request for its models
 * waits for a worker (the queue timeout plus pool_startup_timeout) instead of being refused, at 0 workers
 * or behind a queue the workers there are now would not drain in time, and wakes the autoscaler at once.
 *
 * In a cluster the durable tasks are the whole cluster's. Each machine's autoscaler takes its share of
 * them: the due tasks for the pool's models divided by the number of live task runners that run a pool of
 * that name (their heartbeats say), rounded up. So N machines facing one backlog grow by about 1/N each
 * instead of N times over.
 */
import { readFileSync } from 'node:fs'
import { cpus, freemem, totalmem } from 'node:os'
import type { EventBus } from '../bus/local.ts'
import type { OrchConfig, PoolConfig } from '../config/schema.ts'
import { ConfigError, OrchError } from '../core/errors.ts'
import { logger } from '../core/log.ts'
import { poolWorkerConcurrency } from '../scheduler/limits.ts'
import { normalizeModel } from '../scheduler/router.ts'
import type { Scheduler } from '../scheduler/scheduler.ts'
import type { TaskQueue } from '../tasks/queue.ts'
import type { RunnerRegistry } from '../tasks/workers.ts'
import { decide, emptyMemory, type PolicyMemory, type PoolSample, type ScalePolicy } from './policy.ts'

export type ScaleMode = 'auto' | 'manual' | 'off'

export interface ScaleTarget {
  poolFigures(name: string): { current: number; ready: number; inflight: number } | undefined
  scaleTo(name: string, n: number): Promise<void>
}

export interface MachineUse {
  cpuPercent?: number | undefined
  memoryPercent?: number | undefined
}

export interface AutoscalerOptions {
  config: OrchConfig
  target: ScaleTarget
  scheduler: Pick<Scheduler, 'waitingFor' | 'standby'>
  /** Durable tasks: their due count per model is part of a pool's load. */
  tasks?: Pick<TaskQueue, 'dueCount'>
  bus?: EventBus
  /** The machine's CPU and memory in use; default: measured from the OS between two evaluations. */
  machine?: () => MachineUse
  /** In a cluster: the task runners' heartbeats, which say the machines that run each pool. */
  runners?: Pick<RunnerRegistry, 'list'>
  now?: () => number
}

export interface ScaleDecision {
  at: number
  from: number
  to: number
  /** Whether the supervisor was asked to act (auto mode, a change). */
  applied: boolean
  reason: string
}

export interface PoolScaleStatus {
  pool: string
  current: number
  ready: number
  min: number
  max: number
  desired: number
  target_per_worker: number
  /** The last decisions, newest last (at most DECISIONS_KEPT). */
  decisions: ScaleDecision[]
}

export interface ScaleStatus {
  mode: ScaleMode
  interval_s: number
  pools: PoolScaleStatus[]
  /** Decisions that changed a pool's size, since start. */
  counts: { up: number; down: number }
}

const DECISIONS_KEPT = 20
/** Evaluations woken by waiting requests are at least this far apart. */
const DEMAND_GAP_MS = 100

interface PoolRun {
  pool: PoolConfig
  policy: ScalePolicy
  serves: (model: string) => boolean
  models: string[] | undefined
  memory: PolicyMemory
  desired: number
  decisions: ScaleDecision[]
  withdraw?: () => void
}

/**
 * A pool's autoscaling bounds: min_workers and max_workers (default resource_management.min_agent_runners
 * and max_agent_runners), its target per worker (default the concurrency of one worker), its idle time,
 * and the workers it starts with (pool_size within the bounds). min above max is refused.
 */
export function poolScale(
  config: OrchConfig,
  pool: PoolConfig,
): { min: number; max: number; targetPerWorker: number; idleMs: number; initial: number } {
  const rm = config.infrastructure_system.resource_management
  const min = pool.min_workers ?? rm.min_agent_runners
  const max = pool.max_workers ?? rm.max_agent_runners
  if (min > max) {
    const index = config.pools.indexOf(pool)
    throw new ConfigError([
      {
        path: `pools[${index}].min_workers`,
        message: `${min} is above max_workers ${max} (pool ${pool.name}; defaults from resource_management)`,
      },
    ])
  }
  const idle = pool.scale_down_idle
  return {
    min,
    max,
    targetPerWorker: pool.target_per_worker ?? poolWorkerConcurrency(config, pool).concurrency,
    idleMs: idle === 'infinity' ? Number.POSITIVE_INFINITY : idle * 1000,
    initial: Math.min(max, Math.max(min, pool.pool_size)),
  }
}

export function scaleMode(config: OrchConfig): ScaleMode {
  if (config.infrastructure_system.distributed_simulation.orchestrator_mode === 'manual') return 'manual'
  return config.infrastructure_system.resource_management.auto_scaling_enabled ? 'auto' : 'off'
}

export class Autoscaler {
  readonly mode: ScaleMode
  readonly counts = { up: 0, down: 0 }
  private readonly pools = new Map<string, PoolRun>()
  private readonly now: () => number
  private readonly machine: () => MachineUse
  private readonly log = logger('pool')
  private timer: ReturnType<typeof setInterval> | undefined
  private evaluating: Promise<void> | undefined
  private again = false
  private demandTimer: ReturnType<typeof setTimeout> | undefined
  private lastDemandAt = Number.NEGATIVE_INFINITY

  constructor(private readonly options: AutoscalerOptions) {
    const { config } = options
    this.mode = scaleMode(config)
    this.now = options.now ?? Date.now
    this.machine = options.machine ?? machineSampler()
    const rm = config.infrastructure_system.resource_management
    for (const pool of config.pools) {
      const bounds = poolScale(config, pool)
      const models = pool.models.length > 0 ? modelNames(pool.models) : undefined
      const keys = models ? new Set(pool.models.map(normalizeModel)) : undefined
      this.pools.set(pool.name, {
        pool,
        policy: {
          min: bounds.min,
          max: bounds.max,
          targetPerWorker: bounds.targetPerWorker,
          tolerance: rm.scale_tolerance,
          downWindowMs: rm.scale_down_window_seconds * 1000,
          idleMs: bounds.idleMs,
          activation: 0,
          cpuThreshold: rm.cpu_threshold_percent,
          memoryThreshold: rm.memory_threshold_percent,
        },
        serves: keys ? (model) => keys.has(normalizeModel(model)) : () => true,
        models,
        // A pool starting now is not idle yet: its scale_down_idle counts from here.
        memory: emptyMemory(this.now()),
        desired: bounds.initial,
        decisions: [],
      })
    }
  }

  get intervalMs(): number {
    return Math.max(50, this.options.config.infrastructure_system.resource_management.scale_interval_seconds * 1000)
  }

  start(): void {
    if (this.mode === 'off' || this.timer) return
    if (this.mode !== 'auto') return
    // Requests for a pool that can still grow wait for it, and wake the autoscaler (scale from zero).
    const startupMs = this.options.config.pool_startup_timeout
    for (const run of this.pools.values()) {
      run.withdraw = this.options.scheduler.standby({
        serves: run.serves,
        // Below its max, or with workers still starting: more capacity is on its way.
        canGrow: () => {
          const figures = this.options.target.poolFigures(run.pool.name)
          return figures === undefined || figures.current < run.policy.max || figures.ready < figures.current
        },
        startupMs,
        onDemand: () => this.demand(),
      })
    }
    this.timer = setInterval(() => void this.evaluate(), this.intervalMs)
    this.timer.unref?.()
  }

  /**
   * A request waits for a pool that can grow: evaluate now, or, when one ran less than DEMAND_GAP_MS ago,
   * once that gap is over. Steady traffic that queues briefly costs an evaluation per gap, not per request.
   */
  private demand(): void {
    if (this.demandTimer) return
    const wait = this.lastDemandAt + DEMAND_GAP_MS - this.now()
    if (wait <= 0) {
      this.lastDemandAt = this.now()
      void this.evaluate()
      return
    }
    this.demandTimer = setTimeout(() => {
      this.demandTimer = undefined
      this.lastDemandAt = this.now()
      void this.evaluate()
    }, wait)
    this.demandTimer.unref?.()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.demandTimer) clearTimeout(this.demandTimer)
    this.demandTimer = undefined
    this.timer = undefined
    for (const run of this.pools.values()) run.withdraw?.()
  }

  /** One evaluation of every pool (auto mode acts on it). Overlapping calls run one more pass, not two at once. */
  evaluate(): Promise<void> {
    if (this.evaluating) {
      this.again = true
      return this.evaluating
    }
    this.evaluating = (async () => {
      do {
        this.again = false
        const machine = this.machine()
        const sharers = await this.machinesByPool()
        for (const run of this.pools.values()) await this.evaluatePool(run, machine, sharers.get(run.pool.name) ?? 1)
      } while (this.again)
    })().finally(() => {
      this.evaluating = undefined
    })
    return this.evaluating
  }

  /** Manual mode: size a pool to `n` (within 0 and its max_workers). */
  async set(poolName: string, n: number): Promise<PoolScaleStatus> {
    const run = this.pools.get(poolName)
    if (!run) {
      throw new OrchError(`no pool named "${poolName}" (pools: ${[...this.pools.keys()].join(', ') || 'none'})`, {
        code: 'E_SCALE_POOL',
        status: 404,
      })
    }
    if (this.mode !== 'manual') {
      const why =
        this.mode === 'auto'
          ? 'the autoscaler sizes the pools (orchestrator_mode: auto); set infrastructure_system.distributed_simulation.orchestrator_mode: manual to size them by hand'
          : 'autoscaling is off (resource_management.auto_scaling_enabled: false) and pools keep pool_size; set orchestrator_mode: manual to size them by hand'
      throw new OrchError(`refused: ${why}`, { code: 'E_SCALE_MODE', status: 409, exitCode: 2 })
    }
    if (!Number.isInteger(n) || n < 0 || n > run.policy.max) {
      throw new OrchError(`workers: expected a whole number from 0 to max_workers ${run.policy.max}, got ${n}`, {
        code: 'E_VALIDATION',
        status: 400,
        exitCode: 2,
      })
    }
    const from = this.options.target.poolFigures(poolName)?.current ?? 0
    run.desired = n
    this.record(run, { at: this.now(), from, to: n, applied: n !== from, reason: `orch scale set ${poolName} ${n}` })
    if (n !== from) await this.options.target.scaleTo(poolName, n)
    return this.poolStatus(run)
  }

  status(): ScaleStatus {
    return {
      mode: this.mode,
      interval_s: this.intervalMs / 1000,
      pools: [...this.pools.values()].map((run) => this.poolStatus(run)),
      counts: { ...this.counts },
    }
  }

  private poolStatus(run: PoolRun): PoolScaleStatus {
    const figures = this.options.target.poolFigures(run.pool.name) ?? { current: 0, ready: 0, inflight: 0 }
    return {
      pool: run.pool.name,
      current: figures.current,
      ready: figures.ready,
      min: run.policy.min,
      max: run.policy.max,
      desired: run.desired,
      target_per_worker: run.policy.targetPerWorker,
      decisions: [...run.decisions],
    }
  }

  /** Live task runners per pool name (their heartbeats list their machine's pools); read once per evaluation. */
  private async machinesByPool(): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    if (!this.options.runners) return counts
    try {
      for (const runner of await this.options.runners.list()) {
        if (!runner.alive) continue
        for (const pool of runner.pools ?? []) counts.set(pool, (counts.get(pool) ?? 0) + 1)
      }
    } catch (error) {
      // Redis out of reach: each machine counts as alone (it over-provisions rather than starves).
      this.log.debug(`scale: runners not read: ${(error as Error).message}`)
    }
    return counts
  }

  /** `sharers`: the machines (this one included) that run a pool of this name and share its durable tasks. */
  private async evaluatePool(run: PoolRun, machine: MachineUse, sharers: number): Promise<void> {
    const figures = this.options.target.poolFigures(run.pool.name)
    if (!figures) return
    const waiting = this.options.scheduler.waitingFor(run.serves).count
    let due = 0
    if (this.options.tasks) {
      const cap = run.policy.max * run.policy.targetPerWorker * 2 + 1
      try {
        const cluster = await this.options.tasks.dueCount(run.models, cap)
        due = Math.ceil(cluster / Math.max(1, sharers))
      } catch (error) {
        // The queue out of reach (Redis down): decide on what this machine sees.
        this.log.debug(`scale ${run.pool.name}: durable tasks not counted: ${(error as Error).message}`)
      }
    }
    const sample: PoolSample = {
      queued: waiting + due,
      inflight: figures.inflight,
      ready: figures.ready,
      current: figures.current,
      cpuPercent: machine.cpuPercent,
      memoryPercent: machine.memoryPercent,
    }
    const now = this.now()
    const decision = decide(sample, run.policy, run.memory, now)
    run.memory = decision.memory
    run.desired = decision.desired
    if (decision.desired === figures.current) return
    const applied = this.mode === 'auto'
    this.record(run, { at: now, from: figures.current, to: decision.desired, applied, reason: decision.reason })
    if (applied) await this.options.target.scaleTo(run.pool.name, decision.desired)
  }

  private record(run: PoolRun, decision: ScaleDecision): void {
    run.decisions.push(decision)
    if (run.decisions.length > DECISIONS_KEPT) run.decisions.shift()
    if (decision.applied) {
      if (decision.to > decision.from) this.counts.up++
      else this.counts.down++
    }
    const verb = decision.applied ? 'scaling' : 'would scale'
    this.log.info(`pool ${run.pool.name}: ${verb} ${decision.from} → ${decision.to}: ${decision.reason}`)
    this.options.bus?.publish('scaling', { pool: run.pool.name, ...decision })
  }
}

/** Task models as submitted: `name:latest` is also just `name`. */
function modelNames(models: string[]): string[] {
  const names = new Set<string>()
  for (const model of models) {
    const full = normalizeModel(model)
    names.add(model)
    names.add(full)
    if (full.endsWith(':latest')) names.add(full.slice(0, -':latest'.length))
  }
  return [...names]
}

/** CPU in use since the previous call (all cores), and memory in use (MemAvailable where Linux says it). */
export function machineSampler(): () => MachineUse {
  let last = cpuTimes()
  return () => {
    const now = cpuTimes()
    const busy = now.busy - last.busy
    const total = now.total - last.total
    last = now
    return { cpuPercent: total > 0 ? (busy / total) * 100 : undefined, memoryPercent: memoryInUse() }
  }
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0
  let total = 0
  for (const cpu of cpus()) {
    const t = cpu.times
    busy += t.user + t.nice + t.sys + t.irq
    total += t.user + t.nice + t.sys + t.irq + t.idle
  }
  return { busy, total }
}

function memoryInUse(): number | undefined {
  const total = totalmem()
  if (!(total > 0)) return undefined
  let available = freemem()
  try {
    const match = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))
    if (match) available = Number(match[1]) * 1024
  } catch {
    // Not Linux: the free memory the OS reports.
  }
  return ((total - available) / total) * 100
}
