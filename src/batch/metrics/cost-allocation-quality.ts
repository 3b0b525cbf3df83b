import * as v from 'valibot'
import { Bool, clamp, first, frac, type MetricResult, Num, opt, pct, Scoring } from './shared.ts'

const Input = v.looseObject({
  total_cost: opt(Num),
  allocated_cost: opt(Num),
  unallocated_cost: opt(Num),
  allocated_pct: opt(Num),
  shared_cost: opt(Num),
  shared_cost_distributed: opt(Bool),
})

export function scoreCostAllocationQuality(input: unknown): MetricResult {
  const s = new Scoring('cost.allocation_quality')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const total = root.total_cost
  let allocated = first(
    root.allocated_cost,
    total !== undefined && root.unallocated_cost !== undefined ? total - root.unallocated_cost : undefined,
  )
  let share = total && allocated !== undefined ? allocated / total : undefined
  if (share === undefined && root.allocated_pct !== undefined) share = frac(root.allocated_pct)
  if (share === undefined) return s.none('total_cost with allocated_cost/unallocated_cost (or allocated_pct) missing')
  allocated ??= total === undefined ? undefined : share * total
  // Shared costs (support, networking) left in one bucket hide who spends what: undistributed shared spend counts as unallocated.
  let effective = clamp(share)
  if (root.shared_cost !== undefined && !total) s.gap('shared_cost ignored: no total_cost to compare it with', 0.05)
  if (root.shared_cost !== undefined && total) {
    if (root.shared_cost_distributed === undefined) s.gap('shared_cost_distributed missing; shared cost assumed undistributed', 0.1)
    if (root.shared_cost_distributed !== true) effective = clamp(effective - root.shared_cost / total)
  }
  // 95% allocated is the usual FinOps target; half unallocated scores 0.
  const score = 5 * clamp((effective - 0.5) / 0.45)
  return s.done(score, `${pct(effective)} of spend allocated to an owner (95% scores 5, 50% scores 0).`, {
    total_cost: total ?? null,
    allocated_cost: allocated ?? null,
    allocated_fraction: share,
    effective_fraction: effective,
  })
}
