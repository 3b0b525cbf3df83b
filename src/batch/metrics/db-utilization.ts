import * as v from 'valibot'
import { bandScore, first, frac, type MetricResult, mean, Num, opt, round3, Scoring, Str } from './shared.ts'

const Db = v.looseObject({
  id: opt(Str),
  name: opt(Str),
  engine: opt(Str),
  cpu_avg: opt(Num),
  cpu_p95: opt(Num),
  connections_used: opt(Num),
  connections_max: opt(Num),
  storage_used_gb: opt(Num),
  storage_allocated_gb: opt(Num),
})
const Input = v.looseObject({ databases: opt(v.array(v.unknown())), instances: opt(v.array(v.unknown())) })

export function scoreDbUtilization(input: unknown): MetricResult {
  const s = new Scoring('db.utilization')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const dbs = s.items(Db, s.need(first(root.databases, root.instances), 'databases', 0.5), 'databases')
  const ratio = (used: number | undefined, max: number | undefined, usedName: string, maxName: string): number | undefined => {
    if (!max) return s.need(undefined, maxName, 0.03)
    const u = s.need(used, usedName, 0.03)
    return u === undefined ? undefined : u / max
  }
  const rows = dbs.map((d, n) => {
    const id = String(first(d.id, d.name) ?? `#${n}`)
    const cpu = s.need(first(d.cpu_p95, d.cpu_avg), `${id}.cpu_p95`, 0.08)
    // A ratio needs both figures (and a non-zero denominator); a missing one leaves that part out rather than scoring it 0.
    const conn = ratio(d.connections_used, d.connections_max, `${id}.connections_used`, `${id}.connections_max`)
    const storage = ratio(d.storage_used_gb, d.storage_allocated_gb, `${id}.storage_used_gb`, `${id}.storage_allocated_gb`)
    // Databases want more headroom than stateless compute: busy hour 30–75% CPU, storage 40–85% full.
    const parts = [
      cpu === undefined ? undefined : bandScore(frac(cpu), 0.3, 0.75, 1.5),
      conn === undefined ? undefined : bandScore(Math.min(conn, 1), 0.1, 0.8, 1.5),
      storage === undefined ? undefined : bandScore(Math.min(storage, 1), 0.4, 0.85, 1.5),
    ].filter((x): x is number => x !== undefined)
    return {
      id,
      cpu: cpu === undefined ? null : frac(cpu),
      connections: conn ?? null,
      storage: storage ?? null,
      score: parts.length ? mean(parts) : null,
    }
  })
  const scored = rows.filter((r) => r.score !== null)
  if (scored.length === 0) return s.none('no database has CPU, connection or storage figures')
  const score = mean(scored.map((r) => r.score ?? 0))
  const off = scored.filter((r) => (r.score ?? 0) < 3.5).map((r) => r.id)
  return s.done(
    score,
    off.length === 0
      ? `${scored.length} database(s) sized within band.`
      : `${off.length} of ${scored.length} database(s) poorly sized: ${off.join(', ')}.`,
    { databases: rows.map((r) => ({ ...r, score: r.score === null ? null : round3(r.score) })) },
  )
}
