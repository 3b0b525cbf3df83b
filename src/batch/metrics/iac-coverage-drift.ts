import * as v from 'valibot'
import { Bool, clamp, first, frac, type MetricResult, Num, opt, pct, Scoring, Str } from './shared.ts'

const Resource = v.looseObject({ id: opt(Str), managed: opt(Bool), iac_managed: opt(Bool), drifted: opt(Bool) })
const Input = v.looseObject({
  resources: opt(v.array(v.unknown())),
  total_resources: opt(Num),
  managed_resources: opt(Num),
  drifted_resources: opt(Num),
  coverage_pct: opt(Num),
})

export function scoreIacCoverageDrift(input: unknown): MetricResult {
  const s = new Scoring('iac.coverage_drift')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  let total = root.total_resources
  let managed = root.managed_resources
  let drifted = root.drifted_resources
  if (root.resources) {
    const rs = s.items(Resource, root.resources, 'resources')
    total = rs.length
    managed = rs.filter((r) => first(r.managed, r.iac_managed) === true).length
    drifted = rs.filter((r) => r.drifted === true).length
    if (rs.some((r) => r.drifted === undefined)) s.gap('some resources lack "drifted"; counted as not drifted', 0.1)
  }
  // More managed than total (stale counts) is full coverage, not more than full.
  let coverage = total && managed !== undefined ? clamp(managed / total) : undefined
  if (coverage === undefined && root.coverage_pct !== undefined) {
    coverage = frac(root.coverage_pct)
    s.gap('managed_resources missing; coverage_pct used', 0.05)
  }
  if (coverage === undefined) return s.none('neither resources nor total/managed counts given')
  if (drifted === undefined) s.gap('drifted_resources missing; drift assumed 0', 0.25)
  // The drift rate is over managed resources; with coverage_pct alone there is no managed count to divide by.
  else if (managed === undefined) s.gap('managed_resources missing; drift rate unknown, assumed 0', 0.25)
  const driftRate = managed ? clamp((drifted ?? 0) / managed) : 0
  // Drift is weighted hard: 20% of managed resources drifted zeroes that half of the score.
  const score = 5 * (0.6 * coverage + 0.4 * (1 - clamp(driftRate * 5)))
  return s.done(score, `${pct(coverage)} of resources managed as code; ${pct(driftRate)} of managed resources drifted.`, {
    total_resources: total ?? null,
    managed_resources: managed ?? null,
    drifted_resources: drifted ?? null,
    coverage,
    drift_rate: driftRate,
  })
}
