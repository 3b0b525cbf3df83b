/**
 * `orch capacity` flags → a validated CapacityInput. Every rejection is a UsageError (exit 2) that names the
 * flag and quotes what was given, so the message alone tells the fix.
 */
import { parseDurationSeconds, parseNumber } from '../core/duration.ts'
import { UsageError } from '../core/errors.ts'
import type { CapacityInput } from './plan.ts'

/** Flag values as citty hands them over: strings, absent when not given. */
export interface CapacityFlags {
  tasks?: string | undefined
  duration?: string | undefined
  concurrency?: string | undefined
  efficiency?: string | undefined
  headroom?: string | undefined
  peak?: string | undefined
  'target-wait'?: string | undefined
}

/** The defaults: 0.8 efficiency, 30% headroom, peak at twice the average load. */
export const CAPACITY_DEFAULTS = { efficiency: 0.8, headroom: 0.3, peak: 2 } as const
/** Beyond this the question is not "how many instances" but "are the units right". */
export const MAX_INSTANCES = 1e9
const MAX_CONCURRENCY = 10_000

function fail(flag: string, expected: string, got: string): never {
  throw new UsageError(`${flag}: expected ${expected}, got "${got}"`, { hint: 'run `orch capacity --help` for the flags and examples' })
}

function required(flag: string, value: string | undefined, example: string): string {
  if (value === undefined) throw new UsageError(`${flag}: required (${example})`, { hint: 'run `orch capacity --help` for examples' })
  return value
}

function positive(flag: string, text: string, what = 'a number > 0'): number {
  const value = parseNumber(text)
  if (value === undefined || !Number.isFinite(value) || value <= 0) fail(flag, what, text)
  return value
}

export function optionalNumber(
  flag: string,
  text: string | undefined,
  fallback: number,
  expected: string,
  ok: (n: number) => boolean,
): number {
  if (text === undefined) return fallback
  const value = parseNumber(text)
  if (value === undefined || !Number.isFinite(value) || !ok(value)) fail(flag, expected, text)
  return value
}

export function span(flag: string, text: string, plainUnitSeconds: number, expected: string): number {
  const seconds = parseDurationSeconds(text, plainUnitSeconds)
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) fail(flag, expected, text)
  return seconds
}

/** Concurrency from the flag, or else from `defaultConcurrency` (the config), which is only asked then. */
export function parseConcurrency(text: string | undefined, defaultConcurrency: () => { value: unknown; source: string }): number {
  const expected = `a whole number from 1 to ${MAX_CONCURRENCY}`
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_CONCURRENCY
  if (text !== undefined) {
    const value = parseNumber(text)
    if (!ok(value)) fail('--concurrency', expected, text)
    return value
  }
  const { value, source } = defaultConcurrency()
  if (!ok(value)) fail(`${source} (the default for --concurrency)`, expected, String(value))
  return value
}

/** Validate every flag; the config's concurrency is read only when --concurrency is not given. */
export function parseCapacityFlags(flags: CapacityFlags, defaultConcurrency: () => { value: unknown; source: string }): CapacityInput {
  const tasksPerHour = positive('--tasks', required('--tasks', flags.tasks, 'tasks per hour, e.g. --tasks 100'))
  const durationText = required('--duration', flags.duration, 'average task duration, e.g. --duration 6m or --duration 0.1')
  const durationHours = span('--duration', durationText, 3600, 'hours (0.1) or a duration like 6m, 90s, 1.5h, 2h30m, above 0') / 3600
  const concurrency = parseConcurrency(flags.concurrency, defaultConcurrency)
  const efficiency = optionalNumber(
    '--efficiency',
    flags.efficiency,
    CAPACITY_DEFAULTS.efficiency,
    'a number in (0, 1]',
    (n) => n > 0 && n <= 1,
  )
  const headroom = optionalNumber('--headroom', flags.headroom, CAPACITY_DEFAULTS.headroom, 'a number ≥ 0 (0.3 = 30%)', (n) => n >= 0)
  const peak = optionalNumber('--peak', flags.peak, CAPACITY_DEFAULTS.peak, 'a number ≥ 1 (2 = twice the average)', (n) => n >= 1)
  const target = flags['target-wait']
  const targetWaitSeconds =
    target === undefined ? undefined : span('--target-wait', target, 1, 'a wait above 0: seconds (30) or 30s, 2m, 500ms, 1m30s')
  const atPeak = ((tasksPerHour * durationHours) / (concurrency * efficiency)) * peak * (1 + headroom)
  if (!(atPeak <= MAX_INSTANCES)) {
    throw new UsageError(
      `--tasks × --duration: the workload would need ${atPeak.toPrecision(3)} instances at peak, over ${MAX_INSTANCES}`,
      {
        hint: '--tasks is per hour and a plain --duration is in hours (use 6m or 90s for minutes or seconds)',
      },
    )
  }
  return { tasksPerHour, durationHours, concurrency, efficiency, headroom, peak, targetWaitSeconds }
}
