/**
 * One pool worker: a model-server process and its lifecycle.
 *   starting → (probe with backoff until healthy, within pool_startup_timeout) → healthy → heartbeats
 *   exit, missed heartbeats or a failed start → unhealthy → restart after a backoff (1 s doubling to 5 min,
 *     back to 1 s after 10 min healthy); more than max_restarts within window_seconds → failed (no restarts
 *     until reset)
 *   worker_ttl or worker_max_requests reached → draining (no new requests, in-flight ones finish) → restart
 *   stop → SIGTERM to the process group, SIGKILL after graceful_shutdown_timeout_ms → stopped
 * Routing is the hooks' business: `onHealthy` registers the worker and returns a handle to leave again.
 */

import { closeSync } from 'node:fs'
import type { Subprocess } from 'bun'
import type { PoolConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import { openWorkerLog, rotateWorkerLog } from './logs.ts'
import { ping, signalGroup, terminateGroup, waitOrAbort } from './proc.ts'
import { planLaunch, type WorkerLaunch } from './profiles.ts'
import type { SelfCommand } from './self-launch.ts'
import type { WatchdogCommand } from './watchdog-launch.ts'

export type WorkerState = 'starting' | 'healthy' | 'unhealthy' | 'draining' | 'failed' | 'stopped'
type RunEnd = 'recycle' | 'exited' | 'unhealthy' | 'timeout' | 'stopped'

export interface WorkerTiming {
  probeInitialMs: number
  probeMaxMs: number
  restartInitialMs: number
  restartMaxMs: number
  /** Healthy this long: the restart backoff starts over. */
  healthyResetMs: number
  /** How often recycling conditions are checked. */
  checkMs: number
}

export const DEFAULT_TIMING: WorkerTiming = {
  probeInitialMs: 500,
  probeMaxMs: 10_000,
  restartInitialMs: 1000,
  restartMaxMs: 300_000,
  healthyResetMs: 600_000,
  checkMs: 100,
}

export interface WorkerSettings {
  pool: PoolConfig
  id: string
  gpu: string | undefined
  heartbeat: { enabled: boolean; ping_interval_ms: number; timeout_ms: number; max_missed_heartbeats: number; initial_delay_ms: number }
  barrier: { enabled: boolean; max_restarts: number; window_seconds: number }
  startupTimeoutMs: number
  graceMs: number
  logPath: string
  runId: string
  /** How to run the watchdog and the pid it watches; null: no watchdog (the worker runs directly). */
  watchdog: { command: WatchdogCommand; parent: number } | null
  /** How to run this orch, for llamacpp workers (src/pool/self-launch.ts). */
  orch?: SelfCommand | undefined
  timing: WorkerTiming
}

/** A registered worker, as routing sees it. */
export interface RouteHandle {
  inflight(): number
  served(): number
  leave(): void
}

export interface WorkerHooks {
  allocatePort(worker: Worker): number
  onHealthy(worker: Worker, launch: WorkerLaunch): RouteHandle
  /** May this worker recycle now (a sibling is healthy, none is recycling)? */
  canRecycle(worker: Worker): boolean
  onChange(worker: Worker): void
}

export class Worker {
  state: WorkerState = 'stopped'
  pid: number | undefined
  port: number | undefined
  startedAt: number | undefined
  lastHeartbeat: number | undefined
  /** Processes spawned, first start included. */
  spawns = 0
  /** Restarts after a failure: a crash, a failed start, missed heartbeats (as orch pool status shows them). */
  restarts = 0
  /** Restarts without a failure: recycles (worker_ttl, worker_max_requests) and those asked for (orch pool restart, reset). */
  recycles = 0
  served = 0
  inflight = 0
  private crashes: number[] = []
  private stopping = false
  /** A restart was asked for: the healthy run ends like a recycle (drained), then starts again. */
  private restartAsked = false
  private closed = false
  private stopCtl = new AbortController()
  private loopDone: Promise<void> = Promise.resolve()
  /** Resolved at the next healthy, failed or stopped. */
  private waiters: Array<() => void> = []
  private readonly log = logger('worker')

  constructor(
    readonly settings: WorkerSettings,
    private readonly hooks: WorkerHooks,
  ) {}

  get id(): string {
    return this.settings.id
  }

  /** Start the lifecycle; resolves once the worker is first healthy, failed or stopped. */
  start(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.stopping = false
    this.restartAsked = false
    this.stopCtl = new AbortController()
    const ready = this.settledNext()
    this.loopDone = this.loop()
    return ready
  }

  /** Stop; `final`: for good (the supervisor is stopping), so a restart or reset in flight starts nothing. */
  async stop(final = false): Promise<void> {
    if (final) this.closed = true
    this.stopping = true
    this.stopCtl.abort()
    if (this.pid !== undefined) await terminateGroup(this.pid, this.settings.graceMs)
    await this.loopDone
  }

  /** A failed worker starts again with a clean crash record. */
  reset(): Promise<void> | undefined {
    if (this.state !== 'failed') return undefined
    this.crashes = []
    if (!this.closed) this.recycles++
    return this.start()
  }

  /**
   * Start again; resolves once healthy, failed or stopped. A healthy worker drains first (leaves routing,
   * in-flight requests finish); any other is stopped and started with a clean crash record.
   */
  async restart(): Promise<void> {
    // Draining: a recycle is under way and brings a new process anyway.
    if ((this.state === 'healthy' || this.state === 'draining') && !this.stopping) {
      if (this.state === 'healthy') this.restartAsked = true
      return this.settledNext()
    }
    await this.stop()
    this.crashes = []
    if (!this.closed) this.recycles++
    return this.start()
  }

  private settledNext(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  private setState(state: WorkerState): void {
    this.state = state
    if (state === 'healthy' || state === 'failed' || state === 'stopped') for (const resolve of this.waiters.splice(0)) resolve()
    this.hooks.onChange(this)
  }

  private async loop(): Promise<void> {
    const { timing, barrier } = this.settings
    let backoff = timing.restartInitialMs
    while (!this.stopping) {
      const startedRun = Date.now()
      const end = await this.runOnce()
      if (this.stopping || end === 'stopped') break
      if (end === 'recycle') {
        this.recycles++
        continue
      }
      const now = Date.now()
      if (now - startedRun >= timing.healthyResetMs) backoff = timing.restartInitialMs
      this.crashes = [...this.crashes.filter((t) => now - t < barrier.window_seconds * 1000), now]
      if (barrier.enabled && this.crashes.length > barrier.max_restarts) {
        this.log.error(
          `${this.id}: ${this.crashes.length} crashes within ${barrier.window_seconds}s; marked failed (orch pool reset to retry)`,
        )
        this.pid = undefined
        this.setState('failed')
        return
      }
      this.log.warn(`${this.id}: ${end}; restarting in ${backoff} ms`)
      await waitOrAbort(backoff, this.stopCtl.signal)
      backoff = Math.min(backoff * 2, timing.restartMaxMs)
      if (!this.stopping) this.restarts++
    }
    this.pid = undefined
    this.setState('stopped')
  }

  private spawn(launch: WorkerLaunch): Subprocess {
    const { settings } = this
    rotateWorkerLog(settings.logPath)
    const fd = openWorkerLog(settings.logPath)
    const { watchdog } = settings
    const marker = ['--run', settings.runId, '--worker', `${settings.pool.name}/${this.id}`, '--grace', String(settings.graceMs)]
    const argv = watchdog ? [...watchdog.command.argv, '--parent', String(watchdog.parent), ...marker, '--', ...launch.argv] : launch.argv
    const env = { ...process.env, ...launch.env, ...watchdog?.command.env }
    try {
      return Bun.spawn(argv, { env, stdin: 'ignore', stdout: fd, stderr: fd, detached: true })
    } finally {
      closeSync(fd)
    }
  }

  private async runOnce(): Promise<RunEnd> {
    let launch: WorkerLaunch
    let proc: Subprocess
    try {
      this.port = this.hooks.allocatePort(this)
      launch = planLaunch(this.settings.pool, { port: this.port, gpu: this.settings.gpu, orch: this.settings.orch })
      proc = this.spawn(launch)
    } catch (error) {
      // No free port, a missing program, an unwritable log: a failed start, restarted like a crash.
      this.log.error(`${this.id}: cannot start: ${(error as Error).message}`)
      this.setState('unhealthy')
      return 'exited'
    }
    this.spawns++
    // This new process is the restart that was asked for, however the last run ended.
    this.restartAsked = false
    this.pid = proc.pid
    this.startedAt = Date.now()
    this.served = 0
    this.setState('starting')
    const run = new AbortController()
    const stop = () => run.abort()
    this.stopCtl.signal.addEventListener('abort', stop, { once: true })
    const exited = proc.exited.then((): RunEnd => 'exited')
    try {
      const started = await Promise.race([exited, this.probe(launch.healthUrl, run.signal)])
      if (started !== 'healthy') return await this.finish(started, proc, undefined)
      const handle = this.hooks.onHealthy(this, launch)
      this.setState('healthy')
      this.log.info(`${this.id}: healthy on ${launch.url} (pid ${proc.pid})`)
      return await this.finish(await Promise.race([exited, this.monitor(launch.healthUrl, handle, run.signal)]), proc, handle)
    } finally {
      run.abort()
      this.stopCtl.signal.removeEventListener('abort', stop)
    }
  }

  /** Leave routing, drain when recycling, and make sure the process group is gone. */
  private async finish(end: RunEnd, proc: Subprocess, handle: RouteHandle | undefined): Promise<RunEnd> {
    const result: RunEnd = this.stopping ? 'stopped' : end
    if (result === 'recycle' && handle) {
      this.setState('draining')
      handle.leave()
      while (handle.inflight() > 0 && !this.stopping && proc.exitCode === null) await waitOrAbort(20, this.stopCtl.signal)
      this.log.info(`${this.id}: recycled after ${handle.served()} requests`)
    } else {
      handle?.leave()
      if (result !== 'stopped') this.setState('unhealthy')
    }
    if (result === 'exited') {
      this.log.warn(`${this.id}: exited (code ${proc.exitCode ?? proc.signalCode})`)
      signalGroup(proc.pid, 'SIGKILL')
    } else await terminateGroup(proc.pid, this.settings.graceMs)
    await proc.exited
    return result
  }

  private async probe(url: string, signal: AbortSignal): Promise<RunEnd | 'healthy'> {
    const { timing, startupTimeoutMs } = this.settings
    const deadline = Date.now() + startupTimeoutMs
    let delay = timing.probeInitialMs
    while (!signal.aborted) {
      const left = deadline - Date.now()
      if (left <= 0) {
        this.log.warn(`${this.id}: not healthy within ${startupTimeoutMs} ms`)
        return 'timeout'
      }
      await waitOrAbort(Math.min(delay, left), signal)
      if (signal.aborted) break
      if (await ping(url, Math.min(2000, Math.max(100, deadline - Date.now())))) return 'healthy'
      delay = Math.min(delay * 2, timing.probeMaxMs)
    }
    return 'stopped'
  }

  private recycleDue(handle: RouteHandle): boolean {
    const { worker_ttl: ttl, worker_max_requests: maxRequests } = this.settings.pool
    if (ttl !== 'infinity' && Date.now() - (this.startedAt ?? 0) >= ttl * 1000) return true
    return maxRequests !== 'infinity' && handle.served() + handle.inflight() >= maxRequests
  }

  /** Heartbeats and recycling checks while healthy; resolves with why the run should end. */
  private async monitor(url: string, handle: RouteHandle, signal: AbortSignal): Promise<RunEnd> {
    const hb = this.settings.heartbeat
    const beat = logger('heartbeat')
    let nextPing = Date.now() + hb.initial_delay_ms + hb.ping_interval_ms
    let missed = 0
    while (!signal.aborted) {
      this.served = handle.served()
      this.inflight = handle.inflight()
      if (this.restartAsked || (this.recycleDue(handle) && this.hooks.canRecycle(this))) {
        this.restartAsked = false
        return 'recycle'
      }
      if (hb.enabled && Date.now() >= nextPing) {
        nextPing = Date.now() + hb.ping_interval_ms
        const ok = await ping(url, hb.timeout_ms)
        if (signal.aborted) break
        if (ok || handle.inflight() > 0) {
          // A worker busy streaming a response counts as alive even when the ping is slow.
          missed = 0
          this.lastHeartbeat = Date.now()
        } else {
          missed++
          beat.warn(`${this.id}: missed heartbeat ${missed}/${hb.max_missed_heartbeats}`)
          if (missed >= hb.max_missed_heartbeats) return 'unhealthy'
        }
        rotateWorkerLog(this.settings.logPath)
        this.hooks.onChange(this)
      }
      await waitOrAbort(this.settings.timing.checkMs, signal)
    }
    return 'stopped'
  }
}
