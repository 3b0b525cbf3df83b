import * as v from 'valibot'
import { Bool, frac, type MetricResult, Num, opt, pct, Scoring, Str } from './shared.ts'

const Finding = v.looseObject({ id: opt(Str), severity: opt(Str), age_days: opt(Num), fixed: opt(Bool), status: opt(Str) })
const Input = v.looseObject({
  findings: opt(v.array(v.unknown())),
  sla_days: opt(v.looseObject({ critical: opt(Num), high: opt(Num), medium: opt(Num), low: opt(Num) })),
  patch_compliance_pct: opt(Num),
})
type Sev = 'critical' | 'high' | 'medium' | 'low'
const SLA: Record<Sev, number> = { critical: 7, high: 30, medium: 90, low: 180 }
// Penalty per open finding, past its SLA and within it: a critical past SLA costs a full point.
const PAST: Record<Sev, number> = { critical: 1, high: 0.5, medium: 0.1, low: 0.02 }
const WITHIN: Record<Sev, number> = { critical: 0.3, high: 0.1, medium: 0.02, low: 0 }

export function scoreSecurityVulnPatch(input: unknown): MetricResult {
  const s = new Scoring('security.vuln_patch')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  if (!root.findings && root.patch_compliance_pct === undefined) return s.none('findings and patch_compliance_pct missing')
  const findings = s.items(Finding, s.need(root.findings, 'findings', 0.4), 'findings')
  const sla = { ...SLA, ...root.sla_days }
  // Whole words only: "unresolved" is an open finding.
  const open = findings.filter((f) => f.fixed !== true && !/^(fixed|resolved|closed)$/i.test(f.status?.trim() ?? ''))
  const counts: Record<string, { open: number; past_sla: number }> = {}
  let penalty = 0
  for (const f of open) {
    const sev = (f.severity?.toLowerCase() ?? '') as Sev
    if (!(sev in SLA)) {
      s.gap(`finding ${f.id ?? '?'}: unknown severity "${f.severity ?? ''}", counted as medium`, 0.03)
    }
    const key: Sev = sev in SLA ? sev : 'medium'
    if (f.age_days === undefined) s.gap(`finding ${f.id ?? '?'}: age_days missing, counted as past SLA`, 0.03)
    const past = (f.age_days ?? Number.POSITIVE_INFINITY) > sla[key]
    const c = counts[key] ?? { open: 0, past_sla: 0 }
    counts[key] = c
    c.open++
    if (past) c.past_sla++
    penalty += past ? PAST[key] : WITHIN[key]
  }
  const findingsScore = 5 - Math.min(5, penalty)
  const compliance = root.patch_compliance_pct === undefined ? undefined : frac(root.patch_compliance_pct)
  if (compliance === undefined) s.gap('patch_compliance_pct missing', 0.1)
  const score = compliance === undefined ? findingsScore : root.findings ? 0.7 * findingsScore + 0.3 * 5 * compliance : 5 * compliance
  return s.done(
    score,
    `${open.length} open finding(s) ${JSON.stringify(counts)}; patch compliance ${compliance === undefined ? 'unknown' : pct(compliance)}.`,
    { open_findings: open.length, by_severity: counts, sla_days: sla, patch_compliance: compliance ?? null, penalty },
  )
}
