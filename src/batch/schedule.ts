/**
 * The batch scheduler: a tick at once, then one every interval. With `all`, a tick drains every
 * pending batch and reports progress against the number pending when it began. It stops between batches
 * when the signal aborts (SIGINT): a batch in flight finishes, so no batch is left locked.
 */
import { logger } from '../core/log.ts'
import { waitOrAbort } from '../core/wait.ts'
import type { RunOutcome } from './tick.ts'

export interface ScheduleOptions {
  intervalMs: number
  /** Drain every pending batch each tick instead of one. */
  all?: boolean
  signal: AbortSignal
  tick: () => Promise<RunOutcome>
  /** How many batches are pending now: the total a drain's progress counts against. */
  pending?: () => number
  /** After every runner pass that processed a batch. */
  onBatch?: (outcome: RunOutcome, progress: Progress) => void
  /** After every tick, with what it did. */
  onTick?: (summary: TickSummary) => void
}

export interface Progress {
  /** 1-based tick number. */
  tick: number
  /** Batches this tick has processed so far, this one included. */
  done: number
  /** Pending when the tick began, or more if batches arrived meanwhile. */
  total: number
  /** How long this batch took. */
  ms: number
}

export interface TickSummary {
  tick: number
  processed: number
  failed: number
  ms: number
  /** When the next tick starts (epoch ms), unless the signal aborts first. */
  nextAt: number
  /** Why the tick could not look for batches (inputs_root went missing), when it could not. */
  error?: string
}

/** Resolves with the number of ticks run once the signal aborts. */
export async function runSchedule(options: ScheduleOptions): Promise<number> {
  const log = logger('batch')
  let ticks = 0
  while (!options.signal.aborted) {
    ticks++
    const started = performance.now()
    let total = options.all ? (options.pending?.() ?? 0) : 1
    let processed = 0
    let failed = 0
    let error: string | undefined
    do {
      const batchStarted = performance.now()
      const outcome = await options.tick()
      log.info(`tick ${ticks}: runner exit ${outcome.exitCode}${outcome.batch ? ` (${outcome.batch})` : ''}`)
      if (outcome.batch === undefined) {
        error = outcome.error
        break
      }
      processed++
      if (outcome.exitCode !== 0) failed++
      total = Math.max(total, processed)
      options.onBatch?.(outcome, { tick: ticks, done: processed, total, ms: performance.now() - batchStarted })
    } while (options.all && !options.signal.aborted)
    const summary: TickSummary = {
      tick: ticks,
      processed,
      failed,
      ms: performance.now() - started,
      nextAt: Date.now() + options.intervalMs,
    }
    options.onTick?.(error === undefined ? summary : { ...summary, error })
    await waitOrAbort(options.intervalMs, options.signal)
  }
  return ticks
}
