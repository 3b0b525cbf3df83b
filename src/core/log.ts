/**
 * Logging: consola, always to stderr (stdout carries data and `--json` only). One global level and a level
 * per category (pool, worker, heartbeat, scheduler, http, batch), as in the `logging` config section.
 */
import { type ConsolaInstance, createConsola } from 'consola'
import { colorAllowed } from './color.ts'

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'none'] as const
export type LogLevelName = (typeof LOG_LEVELS)[number]
export const LOG_CATEGORIES = ['pool', 'worker', 'heartbeat', 'scheduler', 'http', 'batch', 'config', 'store'] as const
export type LogCategory = (typeof LOG_CATEGORIES)[number]

// consola's numeric levels: 0 error, 1 warn, 2 log, 3 info, 4 debug.
const CONSOLA_LEVEL: Record<LogLevelName, number> = { debug: 4, info: 3, warning: 1, error: 0, none: Number.NEGATIVE_INFINITY }

export interface LoggingSettings {
  level: LogLevelName
  categories?: Partial<Record<LogCategory, LogLevelName>>
}

let settings: LoggingSettings = { level: 'info' }
const instances = new Map<string, ConsolaInstance>()
let root: ConsolaInstance | undefined

function base(): ConsolaInstance {
  root ??= createConsola({
    level: CONSOLA_LEVEL[settings.level],
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { date: false, compact: true },
    // consola judges colour by stdout, but logs go to stderr: plain lines into a pipe or file, or with NO_COLOR.
    ...(colorAllowed(2) ? {} : { fancy: false }),
  })
  return root
}

/** Apply levels; loggers handed out before keep working and pick up the new levels. */
export function configureLogging(next: LoggingSettings): void {
  settings = next
  base().level = CONSOLA_LEVEL[next.level]
  for (const [category, instance] of instances) instance.level = levelFor(category)
}

function levelFor(category: string): number {
  const own = settings.categories?.[category as LogCategory]
  return CONSOLA_LEVEL[own ?? settings.level]
}

/** A logger for one category; its messages are tagged `[category]`. */
export function logger(category?: LogCategory): ConsolaInstance {
  if (!category) return base()
  let instance = instances.get(category)
  if (!instance) {
    instance = base().withTag(category)
    instance.level = levelFor(category)
    instances.set(category, instance)
  }
  return instance
}

/**
 * One warning per outage, not one per attempt: `warn` logs only the first message until `ok` says the
 * thing works again (a Redis connection, a queue out of reach).
 */
export function outageWarning(log: Pick<ConsolaInstance, 'warn'>): { warn(message: string): void; ok(): void } {
  let warned = false
  return {
    warn(message) {
      if (warned) return
      warned = true
      log.warn(message)
    },
    ok() {
      warned = false
    },
  }
}
