import * as v from 'valibot'
import { frac, type MetricResult, Num, opt, Scoring, Str } from './shared.ts'

const Incident = v.looseObject({ id: opt(Str), severity: opt(Str), sev: opt(Num), duration_minutes: opt(Num) })
const Input = v.looseObject({
  incidents: opt(v.array(v.unknown())),
  slo_breaches: opt(v.array(v.unknown())),
  slo: opt(v.looseObject({ objective: opt(Str), target: opt(Num) })),
  measured_availability: opt(Num),
})
// Severity 1 is an outage; a low-severity incident is still a signal but barely moves the score.
const PENALTY: Record<string, number> = { '1': 1.5, '2': 1, '3': 0.5, '4': 0.2 }
const BREACH_PENALTY = 1

function severityOf(i: v.InferOutput<typeof Incident>): string | undefined {
  if (i.sev !== undefined) {
    const n = Math.round(i.sev)
    return n >= 1 && n <= 4 ? String(n) : undefined
  }
  const m = i.severity?.toLowerCase().match(/[1-4]/)
  if (m) return m[0]
  return { critical: '1', high: '2', medium: '3', low: '4' }[i.severity?.toLowerCase() ?? '']
}

export function scoreAvailabilityIncidents(input: unknown): MetricResult {
  const s = new Scoring('availability.incidents')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const incidents = s.items(Incident, s.need(root.incidents, 'incidents', 0.4), 'incidents')
  const breaches = s.need(root.slo_breaches, 'slo_breaches', 0.3) ?? []
  if (root.incidents === undefined && root.slo_breaches === undefined) return s.none('neither incidents nor slo_breaches given')
  const bySeverity: Record<string, number> = {}
  let penalty = 0
  for (const i of incidents) {
    let sev = severityOf(i)
    if (sev === undefined) {
      const given = i.sev ?? i.severity
      s.gap(`incident ${i.id ?? '?'}: severity ${given === undefined ? 'missing' : `"${given}" unknown`}, counted as 3`, 0.05)
      sev = '3'
    }
    bySeverity[`sev${sev}`] = (bySeverity[`sev${sev}`] ?? 0) + 1
    penalty += PENALTY[sev] ?? 0.5
  }
  penalty += breaches.length * BREACH_PENALTY
  const target = root.slo?.target === undefined ? undefined : frac(root.slo.target)
  const measured = root.measured_availability === undefined ? undefined : frac(root.measured_availability)
  if (measured !== undefined && target === undefined) s.gap('slo.target missing; measured_availability not compared', 0.05)
  // 99.9 read as a percentage is 0.9990000000000001: equal to a 0.999 target is not below it.
  const belowTarget = target !== undefined && measured !== undefined && measured < target - 1e-9
  if (belowTarget) penalty += 1
  const rationale =
    incidents.length === 0 && breaches.length === 0 && !belowTarget
      ? 'No incidents and no SLO breaches in the period.'
      : `${incidents.length} incident(s) ${JSON.stringify(bySeverity)}, ${breaches.length} SLO breach(es)${belowTarget ? `, availability ${measured} below target ${target}` : ''}.`
  return s.done(5 - penalty, rationale, {
    incidents: incidents.length,
    by_severity: bySeverity,
    slo_breaches: breaches.length,
    slo_target: target ?? null,
    measured_availability: measured ?? null,
    penalty,
  })
}
