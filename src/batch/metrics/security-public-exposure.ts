import * as v from 'valibot'
import { Bool, first, type MetricResult, Num, opt, Scoring, Str } from './shared.ts'

const Resource = v.looseObject({
  id: opt(Str),
  type: opt(Str),
  public: opt(Bool),
  internet_facing: opt(Bool),
  open_ports: opt(v.array(Num)),
  justified: opt(Bool),
  exception: opt(Bool),
})
const Input = v.looseObject({ resources: opt(v.array(v.unknown())) })
// Admin and data ports open to the internet are how most breaches start.
const SENSITIVE_PORTS = new Set([22, 3389, 3306, 5432, 1433, 6379, 27017, 9200, 11211])

export function scoreSecurityPublicExposure(input: unknown): MetricResult {
  const s = new Scoring('security.public_exposure')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  if (!root.resources) return s.none('resources missing')
  const rs = s.items(Resource, root.resources, 'resources')
  // An empty inventory is no evidence that nothing is exposed.
  if (rs.length === 0) return s.none('no resources to score')
  const findings: { id: string; reason: string; penalty: number }[] = []
  for (const [n, r] of rs.entries()) {
    const id = String(r.id ?? `#${n}`)
    const isPublic = first(r.public, r.internet_facing)
    if (isPublic === undefined) s.gap(`${id}: public flag missing`, 0.05)
    if (!isPublic || first(r.justified, r.exception)) continue
    const ports = (r.open_ports ?? []).filter((p) => SENSITIVE_PORTS.has(p))
    if (ports.length) findings.push({ id, reason: `sensitive port(s) ${ports.join(', ')} open to the internet`, penalty: 1.5 })
    else if (/bucket|s3|blob|storage|database|rds|db/i.test(r.type ?? '')) findings.push({ id, reason: `public ${r.type}`, penalty: 1.5 })
    else findings.push({ id, reason: 'public without a recorded justification', penalty: 0.5 })
  }
  const score = 5 - findings.reduce((a, f) => a + f.penalty, 0)
  const rationale =
    findings.length === 0
      ? `No unjustified public exposure among ${rs.length} resource(s).`
      : `${findings.length} exposure finding(s): ${findings.map((f) => `${f.id} (${f.reason})`).join('; ')}.`
  return s.done(score, rationale, { resources: rs.length, findings })
}
