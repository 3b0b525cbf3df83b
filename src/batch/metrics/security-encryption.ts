import * as v from 'valibot'
import { Bool, first, type MetricResult, opt, pct, Scoring, Str } from './shared.ts'

const Resource = v.looseObject({
  id: opt(Str),
  type: opt(Str),
  encrypted_at_rest: opt(Bool),
  encrypted: opt(Bool),
  encrypted_in_transit: opt(Bool),
  tls: opt(Bool),
})
const Input = v.looseObject({ resources: opt(v.array(v.unknown())) })

export function scoreSecurityEncryption(input: unknown): MetricResult {
  const s = new Scoring('security.encryption')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const rs = s.items(Resource, s.need(root.resources, 'resources', 0.5), 'resources')
  if (rs.length === 0) return s.none('no resources to score')
  const atRest = rs.map((r) => first(r.encrypted_at_rest, r.encrypted))
  const inTransit = rs.map((r) => first(r.encrypted_in_transit, r.tls))
  const restKnown = atRest.filter((x) => x !== undefined)
  const transitKnown = inTransit.filter((x) => x !== undefined)
  if (restKnown.length < rs.length) s.gap(`${rs.length - restKnown.length} resource(s) without encrypted_at_rest`, 0.15)
  if (transitKnown.length < rs.length) s.gap(`${rs.length - transitKnown.length} resource(s) without encrypted_in_transit`, 0.1)
  if (restKnown.length === 0 && transitKnown.length === 0) return s.none('no resource states its encryption')
  const rest = restKnown.length ? restKnown.filter(Boolean).length / restKnown.length : undefined
  const transit = transitKnown.length ? transitKnown.filter(Boolean).length / transitKnown.length : undefined
  // At rest weighs more: an unencrypted volume or bucket leaks everything once access control slips.
  const score = rest !== undefined && transit !== undefined ? 5 * (0.7 * rest + 0.3 * transit) : 5 * (rest ?? transit ?? 0)
  const plain = rs.filter((_, i) => atRest[i] === false).map((r) => r.id ?? '?')
  return s.done(
    score,
    `${rest === undefined ? 'unknown' : pct(rest)} encrypted at rest, ${transit === undefined ? 'unknown' : pct(transit)} in transit${plain.length ? `; unencrypted at rest: ${plain.join(', ')}` : ''}.`,
    { resources: rs.length, at_rest_fraction: rest ?? null, in_transit_fraction: transit ?? null, unencrypted_at_rest: plain },
  )
}
