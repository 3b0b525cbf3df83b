/**
 * Cron schedules through croner: parse, next and latest occurrence, in a timezone. Pure: the firing
 * itself (a timer on the persisted `next_run_at`) lives in the service, so a restart, a second process or
 * a clock jump all read the same persisted instant.
 */
import { Cron } from 'croner'

/** A parsed expression (5 fields, or 6 with seconds first, or a nickname like @daily); throws when invalid. */
export function parseCron(expression: string, timezone: string): Cron {
  // Paused and without a callback: croner starts no timer, the object only computes dates.
  return new Cron(expression, { timezone, paused: true, mode: 'auto' })
}

/** The first occurrence strictly after `after` (ms), or undefined when the expression never fires again. */
export function nextRunAfter(expression: string, timezone: string, after: number): number | undefined {
  return parseCron(expression, timezone).nextRun(new Date(after))?.getTime()
}

/** The latest occurrence at or before `at` (ms). */
export function latestRunAtOrBefore(expression: string, timezone: string, at: number): number | undefined {
  // previousRuns is exclusive of its reference, and works in whole seconds: one ms later includes `at`.
  return parseCron(expression, timezone)
    .previousRuns(1, new Date(at + 1))[0]
    ?.getTime()
}

export interface FirePlan {
  /** The occurrence this firing runs for: the latest one due (older missed ones are not caught up). */
  scheduledFor: number
  /** Occurrences between the persisted next_run_at and scheduledFor passed while nothing ran: skipped. */
  missed: boolean
  /** The next occurrence after `now`; undefined when there is none. */
  next: number | undefined
}

/**
 * What a schedule does at `now` when its persisted `nextRunAt` has come: one run, for the latest due
 * occurrence (catch-up of the latest missed one only), and the next occurrence after now.
 */
export function planFire(expression: string, timezone: string, nextRunAt: number, now: number): FirePlan | undefined {
  if (now < nextRunAt) return undefined
  const latest = latestRunAtOrBefore(expression, timezone, now)
  const scheduledFor = latest !== undefined && latest > nextRunAt ? latest : nextRunAt
  return { scheduledFor, missed: scheduledFor > nextRunAt, next: nextRunAfter(expression, timezone, Math.max(now, scheduledFor)) }
}

/** The timezone schedules use when a workflow names none: this process's, fixed at creation. */
export function localTimezone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
}
