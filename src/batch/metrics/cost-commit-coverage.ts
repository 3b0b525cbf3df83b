import * as v from 'valibot'
import { bandScore, clamp, frac, type MetricResult, Num, opt, pct, Scoring, Str } from './shared.ts'

const Commitment = v.looseObject({ id: opt(Str), type: opt(Str), utilization: opt(Num), amount: opt(Num) })
const Input = v.looseObject({
  eligible_spend: opt(Num),
  covered_spend: opt(Num),
  coverage_pct: opt(Num),
  utilization_pct: opt(Num),
  commitments: opt(v.array(v.unknown())),
})

export function scoreCostCommitCoverage(input: unknown): MetricResult {
  const s = new Scoring('cost.commit_coverage')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  // Coverage needs both spends (and eligible spend above 0); otherwise coverage_pct, otherwise a gap.
  let coverage = root.eligible_spend && root.covered_spend !== undefined ? root.covered_spend / root.eligible_spend : undefined
  if (coverage === undefined && root.coverage_pct !== undefined) coverage = frac(root.coverage_pct)
  const commitments = s.items(Commitment, root.commitments, 'commitments')
  let utilization = root.utilization_pct === undefined ? undefined : frac(root.utilization_pct)
  if (utilization === undefined && commitments.length) {
    const withU = commitments.filter((c) => c.utilization !== undefined)
    const weight = withU.reduce((a, c) => a + (c.amount ?? 1), 0)
    if (weight > 0) utilization = withU.reduce((a, c) => a + frac(c.utilization ?? 0) * (c.amount ?? 1), 0) / weight
  }
  if (coverage === undefined) s.gap('eligible_spend/covered_spend (or coverage_pct) missing', 0.4)
  if (utilization === undefined) s.gap('utilization_pct (or commitments[].utilization) missing', 0.3)
  if (coverage === undefined && utilization === undefined) return s.none('neither coverage nor utilization given')
  // Cover 70–90% of steady spend; beyond ~95% the commitment outgrows demand. Unused commitment is waste: 50% scores 0.
  const parts: number[] = []
  if (coverage !== undefined) parts.push(bandScore(clamp(coverage), 0.7, 0.9, 3))
  if (utilization !== undefined) parts.push(5 * clamp((utilization - 0.5) / 0.45))
  const score = parts.reduce((a, b) => a + b, 0) / parts.length
  return s.done(
    score,
    `Commitments cover ${coverage === undefined ? 'unknown' : pct(coverage)} of eligible spend and are ${utilization === undefined ? 'of unknown' : pct(utilization)} utilized.`,
    { coverage: coverage ?? null, utilization: utilization ?? null, commitments: commitments.length },
  )
}
