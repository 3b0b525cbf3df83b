import * as v from 'valibot'
import { bandScore, first, type MetricResult, mean, Num, opt, pct, round3, Scoring, Str } from './shared.ts'

const Cluster = v.looseObject({
  name: opt(Str),
  id: opt(Str),
  cpu_allocatable: opt(Num),
  cpu_requested: opt(Num),
  cpu_used: opt(Num),
  mem_allocatable: opt(Num),
  mem_requested: opt(Num),
  mem_used: opt(Num),
})
const Input = v.looseObject({ clusters: opt(v.array(v.unknown())) })

/** Two ratios per resource: requests packed onto nodes (60–85% good) and usage of what was requested (70–100% good). */
function resourceScores(alloc?: number, req?: number, used?: number): { packing?: number; efficiency?: number } {
  return {
    packing: alloc && req !== undefined ? req / alloc : undefined,
    efficiency: req && used !== undefined ? used / req : undefined,
  }
}

export function scoreK8sUtilization(input: unknown): MetricResult {
  const s = new Scoring('k8s.utilization')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const clusters = s.items(Cluster, s.need(root.clusters, 'clusters', 0.5), 'clusters')
  const rows = clusters.map((c, n) => {
    const id = String(first(c.name, c.id) ?? `#${n}`)
    const cpu = resourceScores(c.cpu_allocatable, c.cpu_requested, c.cpu_used)
    const mem = resourceScores(c.mem_allocatable, c.mem_requested, c.mem_used)
    if (cpu.packing === undefined) s.gap(`${id}: cpu_allocatable/cpu_requested missing`, 0.08)
    if (cpu.efficiency === undefined) s.gap(`${id}: cpu_requested/cpu_used missing`, 0.08)
    if (mem.packing === undefined && mem.efficiency === undefined) s.gap(`${id}: memory figures missing`, 0.05)
    const parts: number[] = []
    for (const r of [cpu, mem]) {
      if (r.packing !== undefined) parts.push(bandScore(Math.min(r.packing, 1), 0.6, 0.85, 3.5))
      // Usage above requests is not waste, so anything from 70% upward scores 5.
      if (r.efficiency !== undefined) parts.push(bandScore(Math.min(r.efficiency, 1), 0.7, 1))
    }
    return {
      id,
      cpu_packing: cpu.packing ?? null,
      cpu_efficiency: cpu.efficiency ?? null,
      mem_packing: mem.packing ?? null,
      mem_efficiency: mem.efficiency ?? null,
      score: parts.length ? mean(parts) : null,
    }
  })
  const scored = rows.filter((r) => r.score !== null)
  if (scored.length === 0) return s.none('no cluster has request or usage figures')
  const score = mean(scored.map((r) => r.score ?? 0))
  const worst = scored.reduce((a, r) => ((r.score ?? 0) < (a.score ?? 0) ? r : a))
  return s.done(
    score,
    `${scored.length} cluster(s); lowest ${worst.id}: CPU requests ${worst.cpu_packing === null ? 'n/a' : pct(worst.cpu_packing)} of allocatable, usage ${worst.cpu_efficiency === null ? 'n/a' : pct(worst.cpu_efficiency)} of requests.`,
    { clusters: rows.map((r) => ({ ...r, score: r.score === null ? null : round3(r.score) })) },
  )
}
