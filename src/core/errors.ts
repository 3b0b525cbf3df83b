/**
 * The OrchError family. Every error a user can cause or meet carries a stable string code, the process
 * exit code it maps to, and a hint that tells the fix. commands/index.ts prints them; nothing else exits.
 */

export const ExitCode = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface OrchErrorOptions {
  code?: string
  exitCode?: ExitCodeValue
  hint?: string
  cause?: unknown
  /** The HTTP status the error maps to: the one orch answers with, or for a BackendError the backend's own. */
  status?: number
  /** Whether another attempt could succeed (a task is retried; a client may retry). */
  retryable?: boolean
  /** When retrying could succeed, in seconds: the Retry-After header of the answer. */
  retryAfterS?: number
  /**
   * Anything a script would want in `--json` error output (issues, paths, limits). `status`, `retryable` and
   * `retry_after_s` here are taken as the options of those names.
   */
  details?: Record<string, unknown>
}

/** The wire names of the typed facts: keys of these names in a details bag set the fields. */
const FACT_KEYS = ['status', 'retryable', 'retry_after_s'] as const

export class OrchError extends Error {
  readonly code: string
  readonly exitCode: ExitCodeValue
  readonly hint: string | undefined
  readonly status: number | undefined
  readonly retryable: boolean | undefined
  readonly retryAfterS: number | undefined
  /** The extra facts, without the typed ones. */
  readonly #extra: Record<string, unknown> | undefined

  constructor(message: string, options: OrchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OrchError'
    this.code = options.code ?? 'E_RUNTIME'
    this.exitCode = options.exitCode ?? ExitCode.failure
    this.hint = options.hint
    const given = options.details
    this.status = options.status ?? numberOf(given?.status)
    this.retryable = options.retryable ?? (typeof given?.retryable === 'boolean' ? given.retryable : undefined)
    this.retryAfterS = options.retryAfterS ?? numberOf(given?.retry_after_s)
    let extra: Record<string, unknown> | undefined
    if (given !== undefined) {
      extra = {}
      for (const [key, value] of Object.entries(given)) if (!(FACT_KEYS as readonly string[]).includes(key)) extra[key] = value
    }
    this.#extra = extra
  }

  /** The typed facts under their wire names, as `details` and `toJSON` show them; none when undefined. */
  protected facts(): Record<string, unknown> {
    const facts: Record<string, unknown> = {}
    if (this.status !== undefined) facts.status = this.status
    if (this.retryable !== undefined) facts.retryable = this.retryable
    if (this.retryAfterS !== undefined) facts.retry_after_s = this.retryAfterS
    return facts
  }

  /**
   * What `--json` error output prints after code, message and hint: the typed facts under their wire names
   * (`status`, `retryable`, `retry_after_s`), then the extra facts. Computed; the fields are the source.
   */
  get details(): Record<string, unknown> | undefined {
    const facts = this.facts()
    if (this.#extra === undefined && Object.keys(facts).length === 0) return undefined
    return { ...facts, ...this.#extra }
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, ...this.details }
  }
}

function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined
}

/**
 * A refusal of a client's request, with the HTTP status it maps to (which the server's error responses
 * read); not retryable unless `facts` says so. `details.field` names the field at fault.
 */
export function httpError(
  status: number,
  message: string,
  code = `E_HTTP_${status}`,
  details: Record<string, unknown> = {},
  facts: { retryable?: boolean; retryAfterS?: number } = {},
): OrchError {
  return new OrchError(message, { code, status, retryable: facts.retryable ?? false, retryAfterS: facts.retryAfterS, details })
}

/** Bad flags, unknown commands, missing arguments: exit 2. */
export class UsageError extends OrchError {
  constructor(message: string, options: Omit<OrchErrorOptions, 'exitCode'> = {}) {
    super(message, { code: 'E_USAGE', ...options, exitCode: ExitCode.usage })
    this.name = 'UsageError'
  }
}

/** One problem in a configuration file or variable, with where it was found. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `pools[1].pool_size`; empty for the document as a whole. */
  path: string
  message: string
  file?: string
  line?: number
  column?: number
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.file ? `${issue.file}${issue.line ? `:${issue.line}${issue.column ? `:${issue.column}` : ''}` : ''}: ` : ''
  return `${where}${issue.path ? `${issue.path}: ` : ''}${issue.message}`
}

/** A configuration that cannot be used: exit 2, every problem listed at once. */
export class ConfigError extends OrchError {
  readonly issues: ConfigIssue[]

  constructor(issues: ConfigIssue[] | string, options: Omit<OrchErrorOptions, 'exitCode'> = {}) {
    const list = typeof issues === 'string' ? [{ path: '', message: issues }] : issues
    const head =
      list.length === 1
        ? formatIssue(list[0] as ConfigIssue)
        : `${list.length} problems in the configuration:\n${list.map((i) => `  - ${formatIssue(i)}`).join('\n')}`
    super(head, { code: 'E_CONFIG', hint: 'run `orch config validate` to list every problem', ...options, exitCode: ExitCode.usage })
    this.name = 'ConfigError'
    this.issues = list
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), issues: this.issues }
  }
}

/** The closest candidate by edit distance, when it is close enough to be a likely typo. */
export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of candidates) {
    const d = editDistance(input.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  const limit = Math.max(1, Math.floor(input.length / 3))
  return best !== undefined && bestDistance <= limit ? best : undefined
}

/**
 * Edit distance where a swap of two adjacent letters counts as one edit ("hots" for "host" is one slip):
 * optimal string alignment, three rows.
 */
export function editDistance(a: string, b: string): number {
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (before[j - 2] ?? 0) + 1)
      current[j] = d
    }
    before = previous
    previous = current
  }
  return previous[b.length] ?? 0
}
