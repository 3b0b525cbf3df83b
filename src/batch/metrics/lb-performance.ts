import * as v from 'valibot'
import { clamp, first, frac, type MetricResult, mean, Num, opt, pct, round3, Scoring, Str } from './shared.ts'

const Lb = v.looseObject({
  id: opt(Str),
  name: opt(Str),
  lat_p95: opt(Num),
  p95_ms: opt(Num),
  lat_p99: opt(Num),
  p99_ms: opt(Num),
  r5xx: opt(Num),
  error_rate_5xx: opt(Num),
  unhealthy_minutes: opt(Num),
  requests: opt(Num),
})
const Slo = v.looseObject({ p95_ms: opt(Num), p99_ms: opt(Num), '5xx_rate_max': opt(Num), error_rate_max: opt(Num) })
const Input = v.looseObject({ load_balancers: opt(v.array(v.unknown())), slo: opt(Slo) })
const DEFAULT_SLO = { p95: 200, p99: 400, r5xx: 0.005 }

/** Within target scores 5; at twice the target it scores 0. */
const dimScore = (value: number, target: number): number => (value <= target ? 5 : 5 * clamp(2 - value / target))

export function scoreLbPerformance(input: unknown): MetricResult {
  const s = new Scoring('lb.performance')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const lbs = s.items(Lb, s.need(root.load_balancers, 'load_balancers', 0.5), 'load_balancers')
  if (lbs.length === 0) return s.none('no load balancers to score')
  if (!root.slo) s.gap('slo missing; default p95 200 ms, p99 400 ms, 5xx 0.5% used', 0.2)
  const sloRate = first(root.slo?.['5xx_rate_max'], root.slo?.error_rate_max)
  const slo = {
    p95: root.slo?.p95_ms ?? DEFAULT_SLO.p95,
    p99: root.slo?.p99_ms ?? DEFAULT_SLO.p99,
    r5xx: sloRate === undefined ? DEFAULT_SLO.r5xx : frac(sloRate),
  }
  if (root.slo) {
    if (root.slo.p95_ms === undefined) s.gap(`slo.p95_ms missing; ${DEFAULT_SLO.p95} ms used`, 0.05)
    if (root.slo.p99_ms === undefined) s.gap(`slo.p99_ms missing; ${DEFAULT_SLO.p99} ms used`, 0.05)
    if (sloRate === undefined) s.gap(`slo.5xx_rate_max missing; ${pct(DEFAULT_SLO.r5xx)} used`, 0.05)
  }
  const rows = lbs.map((lb, i) => {
    const id = String(lb.id ?? lb.name ?? `#${i}`)
    const p95 = s.need(first(lb.lat_p95, lb.p95_ms), `${id}.lat_p95`)
    const p99 = s.need(first(lb.lat_p99, lb.p99_ms), `${id}.lat_p99`)
    const rawRate = s.need(first(lb.r5xx, lb.error_rate_5xx), `${id}.r5xx`)
    const r5xx = rawRate === undefined ? undefined : frac(rawRate)
    const dims: number[] = []
    const breaches: string[] = []
    const check = (value: number | undefined, target: number, label: string, show: (x: number) => string) => {
      if (value === undefined) return
      dims.push(dimScore(value, target))
      if (value > target) breaches.push(`${label} ${show(value)} > ${show(target)}`)
    }
    check(p95, slo.p95, 'p95', String)
    check(p99, slo.p99, 'p99', String)
    check(r5xx, slo.r5xx, '5xx', pct)
    // Unhealthy targets cost up to one point, a full point at an hour; a balancer never scores below 0.
    const unhealthy = lb.unhealthy_minutes ?? 0
    const score = dims.length === 0 ? undefined : Math.max(0, mean(dims) - clamp(unhealthy / 60))
    return { id, score, weight: Math.max(0, lb.requests ?? 1), breaches, unhealthy_minutes: unhealthy }
  })
  const scored = rows.filter((r) => r.score !== undefined)
  if (scored.length === 0) return s.none('no load balancer has latency or 5xx figures')
  // Weighted by traffic; when no balancer reports any requests, a plain mean rather than 0 / 0.
  const totalWeight = scored.reduce((a, r) => a + r.weight, 0)
  const score =
    totalWeight > 0 ? scored.reduce((a, r) => a + (r.score ?? 0) * r.weight, 0) / totalWeight : mean(scored.map((r) => r.score ?? 0))
  const breaching = scored.filter((r) => r.breaches.length > 0)
  const rationale =
    breaching.length === 0
      ? `All ${scored.length} load balancer(s) within SLO (p95 ≤ ${slo.p95} ms, p99 ≤ ${slo.p99} ms, 5xx ≤ ${pct(slo.r5xx)}).`
      : `${breaching.length} of ${scored.length} load balancer(s) breach SLO: ${breaching.map((r) => `${r.id} (${r.breaches.join(', ')})`).join('; ')}.`
  return s.done(score, rationale, {
    slo,
    load_balancers: rows.map((r) => ({ ...r, score: r.score === undefined ? null : round3(r.score) })),
  })
}
