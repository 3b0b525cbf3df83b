/**
 * The scheduler of seed 003: a tick at once, then one every interval. It stops between ticks when the
 * signal aborts (SIGINT): a tick in flight finishes, so no batch is left locked.
 */
import { logger } from '../log.ts'
import { waitOrAbort } from '../wait.ts'
import type { RunOutcome } from './runner.ts'

export interface ScheduleOptions {
  intervalMs: number
  /** Drain every pending batch each tick instead of one. */
  all?: boolean
  signal: AbortSignal
  tick: () => Promise<RunOutcome>
  onTick?: (outcome: RunOutcome, index: number) => void
}

/** Resolves with the number of ticks run once the signal aborts. */
export async function runSchedule(options: ScheduleOptions): Promise<number> {
  const log = logger('batch')
  let ticks = 0
  while (!options.signal.aborted) {
    let outcome = await options.tick()
    options.onTick?.(outcome, ticks)
    log.info(`tick ${ticks + 1}: runner exit ${outcome.exitCode}${outcome.batch ? ` (${outcome.batch})` : ''}`)
    while (options.all && outcome.batch !== undefined && !options.signal.aborted) {
      outcome = await options.tick()
      options.onTick?.(outcome, ticks)
      if (outcome.batch !== undefined) log.info(`tick ${ticks + 1}: runner exit ${outcome.exitCode} (${outcome.batch})`)
    }
    ticks++
    await waitOrAbort(options.intervalMs, options.signal)
  }
  return ticks
}
