import * as v from 'valibot'
import { bandScore, first, frac, type MetricResult, mean, Num, opt, pct, round3, Scoring, Str } from './shared.ts'

const Instance = v.looseObject({
  id: opt(Str),
  instance_id: opt(Str),
  cpu_avg: opt(Num),
  cpu_p95: opt(Num),
  mem_avg: opt(Num),
  mem_p95: opt(Num),
})
const Input = v.looseObject({ instances: opt(v.array(v.unknown())), target: opt(v.looseObject({ low: opt(Num), high: opt(Num) })) })

export function scoreComputeUtilization(input: unknown): MetricResult {
  const s = new Scoring('compute.utilization')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const instances = s.items(Instance, s.need(root.instances, 'instances', 0.5), 'instances')
  // Healthy sizing keeps the busy hour between 40% and 80%: below wastes money, above risks saturation.
  const low = frac(root.target?.low ?? 0.4)
  const high = frac(root.target?.high ?? 0.8)
  const rows = instances.map((i, n) => {
    const id = String(first(i.id, i.instance_id) ?? `#${n}`)
    const cpu = first(i.cpu_p95, i.cpu_avg)
    if (i.cpu_p95 === undefined) s.gap(`${id}.cpu_p95 missing${cpu === undefined ? '' : ', cpu_avg used'}`, 0.05)
    const mem = first(i.mem_p95, i.mem_avg)
    if (mem === undefined) s.gap(`${id}.mem_avg missing`, 0.03)
    const parts = [cpu, mem].filter((x): x is number => x !== undefined).map((x) => bandScore(frac(x), low, high))
    return {
      id,
      cpu: cpu === undefined ? null : frac(cpu),
      mem: mem === undefined ? null : frac(mem),
      score: parts.length ? mean(parts) : null,
    }
  })
  const scored = rows.filter((r) => r.score !== null)
  if (scored.length === 0) return s.none('no instance has CPU or memory figures')
  const score = mean(scored.map((r) => r.score ?? 0))
  const under = scored.filter((r) => (r.cpu ?? r.mem ?? 0) < low).length
  const over = scored.filter((r) => (r.cpu ?? 0) > high).length
  return s.done(
    score,
    `${scored.length} instance(s): ${under} under ${pct(low)} busy-hour utilization, ${over} over ${pct(high)}, ${scored.length - under - over} in band.`,
    {
      band: { low, high },
      underutilized: under,
      overutilized: over,
      instances: rows.map((r) => ({ ...r, score: r.score === null ? null : round3(r.score) })),
    },
  )
}
