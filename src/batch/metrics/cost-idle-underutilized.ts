import * as v from 'valibot'
import { Bool, clamp, first, frac, type MetricResult, Num, opt, pct, Scoring, Str } from './shared.ts'

const Resource = v.looseObject({
  id: opt(Str),
  monthly_cost: opt(Num),
  cost: opt(Num),
  idle: opt(Bool),
  underutilized: opt(Bool),
  cpu_avg: opt(Num),
})
const Input = v.looseObject({
  resources: opt(v.array(v.unknown())),
  total_monthly_spend: opt(Num),
  total_cost: opt(Num),
  currency: opt(Str),
})
const IDLE_CPU = 0.05
const LOW_CPU = 0.2

export function scoreCostIdleUnderutilized(input: unknown): MetricResult {
  const s = new Scoring('cost.idle_underutilized')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const rs = s.items(Resource, s.need(root.resources, 'resources', 0.5), 'resources')
  if (rs.length === 0) return s.none('no resources to score')
  let idleCost = 0
  let underCost = 0
  let listed = 0
  for (const r of rs) {
    const cost = first(r.monthly_cost, r.cost)
    if (cost === undefined) {
      s.gap(`${r.id ?? '?'}: monthly_cost missing`, 0.05)
      continue
    }
    listed += cost
    const cpu = r.cpu_avg === undefined ? undefined : frac(r.cpu_avg)
    if (first(r.idle, cpu === undefined ? undefined : cpu < IDLE_CPU)) idleCost += cost
    else if (first(r.underutilized, cpu === undefined ? undefined : cpu < LOW_CPU)) underCost += cost
  }
  let total = first(root.total_monthly_spend, root.total_cost)
  if (total === undefined) {
    s.gap('total_monthly_spend missing; sum of listed resources used', 0.2)
    total = listed
  }
  if (!total) return s.none('no spend to compare against')
  // Idle spend is pure waste; underutilized spend counts half, since rightsizing recovers only part of it.
  const waste = (idleCost + underCost / 2) / total
  const score = 5 * (1 - clamp(waste / 0.3))
  return s.done(
    score,
    `${pct(idleCost / total)} of spend idle and ${pct(underCost / total)} underutilized (weighted waste ${pct(waste)}; 30% scores 0).`,
    {
      total_monthly_spend: total,
      idle_cost: idleCost,
      underutilized_cost: underCost,
      waste_fraction: waste,
      currency: root.currency ?? null,
    },
  )
}
