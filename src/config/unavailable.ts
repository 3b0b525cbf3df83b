/**
 * Keys the schema knows whose feature this version does not have. A value that would be ignored is
 * refused, by the one verdict `orch config validate` and every command share (checkData in load.ts), with
 * what to do instead. Only values a user set (config file, ORCH_* variable, flag) are refused: the
 * defaults never are, so `{}` stays valid and `orch config init` writes none of the refused keys.
 */
import { isPlainObject, type PathSegment } from './paths.ts'
import type { PathIssue } from './validate.ts'

export interface UnavailableRule {
  /** Docs path of the key: `pools[].heartbeat.dependent`, `models.<provider>.<model>.context`. */
  key: string
  /** The values refused; absent: any value set is refused. */
  values?: readonly unknown[]
  /** The whole message: that it is not available in this version, and what to do instead. */
  message: string
}

const DISTRIBUTED = 'infrastructure_system.distributed_simulation'
const DEPENDENT =
  'false is not available in this version: a worker always stops when the orch process supervising it ends (its watchdog ends it); remove the key'

export const UNAVAILABLE: readonly UnavailableRule[] = [
  {
    key: `${DISTRIBUTED}.event_bus_type`,
    values: ['kafka'],
    message:
      '"kafka" is not available in this version: orch has no Kafka bus, as it could not be tested without a Kafka server; use local_memory',
  },
  { key: 'heartbeat.dependent', values: [false], message: DEPENDENT },
  { key: 'pools[].heartbeat.dependent', values: [false], message: DEPENDENT },
]

/** Whether the rule refuses this value: every value when it lists none. */
const refuses = (rule: UnavailableRule, value: unknown) => rule.values === undefined || rule.values.includes(value)

/** Whether a rule refuses this value at this docs path (for the example file: it must write none). */
export function isUnavailable(key: string, value: unknown): boolean {
  return UNAVAILABLE.some((rule) => rule.key === key && refuses(rule, value))
}

/** Keys every value of which is refused (the example file shows them commented out). */
export function isUnavailableKey(key: string): boolean {
  return UNAVAILABLE.some((rule) => rule.key === key && rule.values === undefined)
}

/** `pools[].heartbeat.dependent` → `pools`, `[]`, `heartbeat`, `dependent`; `<provider>` → `<>`. */
function partsOf(key: string): string[] {
  return key.split('.').flatMap((part) => (part.endsWith('[]') ? [part.slice(0, -2), '[]'] : part.startsWith('<') ? ['<>'] : [part]))
}

/** The real paths of the containers a docs path's leaf lives in, with the container itself. */
function containers(
  node: unknown,
  parts: string[],
  segments: PathSegment[],
): Array<{ node: Record<string, unknown>; segments: PathSegment[] }> {
  if (parts.length === 0) return isPlainObject(node) ? [{ node, segments }] : []
  const [part, ...rest] = parts as [string, ...string[]]
  if (part === '[]') return Array.isArray(node) ? node.flatMap((item, index) => containers(item, rest, [...segments, index])) : []
  if (!isPlainObject(node)) return []
  if (part === '<>') return Object.keys(node).flatMap((key) => containers(node[key], rest, [...segments, key]))
  return containers(node[part], rest, [...segments, part])
}

/**
 * Every value a rule refuses, among those `isSet` says a user set. `data` is the resolved config (or the
 * merged raw data when the schema refused it); it is read only at the rules' keys.
 */
export function unavailableIssues(data: unknown, isSet: (segments: PathSegment[]) => boolean): PathIssue[] {
  const issues: PathIssue[] = []
  for (const rule of UNAVAILABLE) {
    const parts = partsOf(rule.key)
    const leaf = parts.pop() as string
    for (const { node, segments } of containers(data, parts, [])) {
      const at = [...segments, leaf]
      if (!isSet(at)) continue
      const value = node[leaf]
      if (value === undefined) continue
      if (refuses(rule, value)) issues.push({ segments: at, message: rule.message })
    }
  }
  return issues
}
