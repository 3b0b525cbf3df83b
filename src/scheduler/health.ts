/**
 * Health checks and model discovery: every interval, each backend's health, its models (`/api/tags`) and
 * its loaded models (`/api/ps`) go to the scheduler, which routes by them. A backend that stops answering is
 * marked unhealthy and gets no new requests until it answers again.
 */
import { logger } from '../core/log.ts'
import type { Scheduler } from './scheduler.ts'

export class HealthMonitor {
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly log = logger('scheduler')

  constructor(
    private readonly scheduler: Scheduler,
    private readonly intervalMs: number,
  ) {}

  async start(): Promise<void> {
    await this.checkAll()
    if (this.intervalMs > 0 && !this.timer) {
      this.timer = setInterval(() => void this.checkAll(), this.intervalMs)
      this.timer.unref?.()
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  async checkAll(): Promise<void> {
    await Promise.all([...this.scheduler.states.values()].map((state) => this.check(state.name)))
  }

  async check(name: string): Promise<boolean> {
    const state = this.scheduler.states.get(name)
    if (!state) return false
    const signal = AbortSignal.timeout(Math.max(1000, Math.min(this.intervalMs || 5000, 10_000)))
    const status = await state.backend.health({ signal }).catch((error: unknown) => ({ ok: false, latency_ms: 0, error: String(error) }))
    if (!status.ok) {
      if (state.healthy !== false) this.log.warn(`backend ${name} (${state.backend.url}) does not answer: ${status.error ?? 'unhealthy'}`)
      this.scheduler.update(name, { healthy: false })
      return false
    }
    const [models, loaded] = await Promise.all([
      state.backend.listModels({ signal }).catch(() => undefined),
      state.backend.loadedModels({ signal }).catch(() => undefined),
    ])
    if (state.healthy === false) this.log.info(`backend ${name} answers again`)
    this.scheduler.update(name, {
      healthy: true,
      ...(models ? { models: models.map((m) => m.name) } : {}),
      ...(loaded ? { loaded: loaded.map((m) => m.name) } : {}),
    })
    return true
  }
}
