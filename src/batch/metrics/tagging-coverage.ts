import * as v from 'valibot'
import { first, type MetricResult, mean, Num, opt, pct, Scoring, Str } from './shared.ts'

const Resource = v.looseObject({
  id: opt(Str),
  arn: opt(Str),
  tags: opt(v.union([v.array(v.unknown()), v.record(v.string(), v.unknown())])),
})
const Input = v.looseObject({
  resources: opt(v.array(v.unknown())),
  required_tags: opt(v.array(v.string())),
  total_resources: opt(Num),
  fully_tagged: opt(Num),
})
const DEFAULT_REQUIRED = ['owner', 'env', 'cost_center']

/** An empty tag value says nothing about the owner or environment, so it counts as missing. */
const hasValue = (x: unknown): boolean => x !== undefined && x !== null && String(x).trim() !== ''

/** Tags arrive as a map or as AWS-style [{Key, Value}] lists; keys compare case-insensitively, empty values count as missing. */
function tagKeys(tags: unknown): Set<string> {
  if (Array.isArray(tags)) {
    const pairs = tags.map((t) => (t ?? {}) as Record<string, unknown>)
    return new Set(pairs.filter((t) => hasValue(t.Value ?? t.value)).map((t) => String(t.Key ?? t.key ?? '').toLowerCase()))
  }
  const map = (tags ?? {}) as Record<string, unknown>
  return new Set(
    Object.keys(map)
      .filter((k) => hasValue(map[k]))
      .map((k) => k.toLowerCase()),
  )
}

export function scoreTaggingCoverage(input: unknown): MetricResult {
  const s = new Scoring('tagging.coverage')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const required = root.required_tags?.length ? root.required_tags : DEFAULT_REQUIRED
  if (!root.required_tags?.length) s.gap(`required_tags missing; ${DEFAULT_REQUIRED.join(', ')} used`, 0.15)
  if (!root.resources) {
    if (root.total_resources && root.fully_tagged !== undefined) {
      s.gap('only counts given, no per-resource tags', 0.2)
      const c = root.fully_tagged / root.total_resources
      return s.done(5 * c, `${pct(c)} of ${root.total_resources} resources carry every required tag.`, {
        required,
        fully_tagged_fraction: c,
      })
    }
    return s.none('resources missing')
  }
  const rs = s.items(Resource, root.resources, 'resources')
  if (rs.length === 0) return s.none('no resources to score')
  const missing: Record<string, number> = {}
  const fractions = rs.map((r) => {
    if (r.tags === undefined) s.gap(`${first(r.id, r.arn) ?? '?'}: tags missing, counted as untagged`, 0.02)
    const keys = tagKeys(r.tags)
    const have = required.filter((t) => keys.has(t.toLowerCase()))
    for (const t of required) if (!keys.has(t.toLowerCase())) missing[t] = (missing[t] ?? 0) + 1
    return have.length / required.length
  })
  const coverage = mean(fractions)
  const full = fractions.filter((f) => f === 1).length / rs.length
  return s.done(
    5 * coverage,
    `${pct(full)} of ${rs.length} resources carry every required tag; ${pct(coverage)} of required tags present overall.`,
    {
      required,
      resources: rs.length,
      fully_tagged_fraction: full,
      tag_coverage: coverage,
      missing_by_tag: missing,
    },
  )
}
