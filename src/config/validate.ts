/**
 * Validate merged config data against the schema and turn every problem into one sentence at one key path:
 * what was expected, what was got. Unknown keys are found by our own walk because valibot's strict objects
 * stop at the first unknown key of an object, and a user fixing typos wants all of them at once.
 */
import * as v from 'valibot'
import { didYouMean } from '../core/errors.ts'
import { keysAt, schemaAt } from './keys.ts'
import { isPlainObject, type PathSegment } from './paths.ts'
import { type OrchConfig, OrchConfigSchema } from './schema.ts'

export interface PathIssue {
  segments: PathSegment[]
  message: string
}

/** A value as a message shows it: strings quoted, containers named, long text cut. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'a list'
  if (isPlainObject(value)) return 'a mapping'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  return String(value)
}

function unknownKeyMessage(key: string, known: string[]): string {
  const guess = didYouMean(key, known)
  if (guess) return `unknown key "${key}"; did you mean "${guess}"?`
  return known.length <= 12 ? `unknown key "${key}"; expected one of: ${known.join(', ')}` : `unknown key "${key}"`
}

/** Every key the schema does not know, anywhere in the data. */
export function findUnknownKeys(value: unknown, segments: PathSegment[] = []): PathIssue[] {
  const schema = schemaAt(segments)
  if (!schema) return []
  if (Array.isArray(value) && schema.type === 'array') return value.flatMap((item, index) => findUnknownKeys(item, [...segments, index]))
  if (!isPlainObject(value) || (schema.type !== 'strict_object' && schema.type !== 'record')) return []
  const known = keysAt(segments)
  return Object.keys(value).flatMap((key) =>
    known && !known.includes(key)
      ? [{ segments: [...segments, key], message: unknownKeyMessage(key, known) }]
      : findUnknownKeys(value[key], [...segments, key]),
  )
}

function messageOf(issue: v.BaseIssue<unknown>): string {
  const last = issue.path?.at(-1)
  if (issue.type === 'strict_object' && last?.origin === 'key') return 'missing; this key is required'
  if (issue.message.startsWith('expected ')) return `${issue.message}, got ${describeValue(issue.input)}`
  return issue.message
}

const isUnknownKey = (issue: v.BaseIssue<unknown>) => issue.type === 'strict_object' && issue.expected === 'never'

/** Validate merged data; issues are deduplicated and in document order of their paths. */
export function validateData(data: unknown): { config?: OrchConfig; issues: PathIssue[] } {
  const result = v.safeParse(OrchConfigSchema, data, { abortEarly: false })
  const issues: PathIssue[] = findUnknownKeys(data)
  const seen = new Set(issues.map((i) => JSON.stringify(i)))
  for (const issue of result.issues ?? []) {
    if (isUnknownKey(issue)) continue
    const entry = { segments: (issue.path ?? []).map((item) => item.key as PathSegment), message: messageOf(issue) }
    const key = JSON.stringify(entry)
    if (!seen.has(key)) issues.push(entry)
    seen.add(key)
  }
  if (result.success) issues.push(...scaleBoundIssues(result.output))
  return result.success && issues.length === 0 ? { config: result.output, issues: [] } : { issues }
}

/**
 * A pool's autoscaling bounds, with their defaults from resource_management: min_workers above
 * max_workers can never be met. Checked across sections, so only once the config parsed.
 */
function scaleBoundIssues(config: OrchConfig): PathIssue[] {
  const rm = config.infrastructure_system.resource_management
  const issues: PathIssue[] = []
  config.pools.forEach((pool, index) => {
    const min = pool.min_workers ?? rm.min_agent_runners
    const max = pool.max_workers ?? rm.max_agent_runners
    if (min <= max) return
    const [key, other] = pool.min_workers !== undefined ? ['min_workers', 'max_workers'] : ['max_workers', 'min_workers']
    const from = (k: string, v: number) =>
      pool[k as 'min_workers' | 'max_workers'] !== undefined
        ? `${v}`
        : `${v} from resource_management.${k === 'min_workers' ? 'min' : 'max'}_agent_runners`
    issues.push({
      segments: ['pools', index, key],
      message: `must allow min_workers <= max_workers; ${key} is ${from(key, key === 'min_workers' ? min : max)}, ${other} is ${from(other, other === 'min_workers' ? min : max)}`,
    })
  })
  return issues
}
