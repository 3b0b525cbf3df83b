import * as v from 'valibot'
import { Bool, bandScore, clamp, first, type MetricResult, mean, Num, opt, pct, Scoring, Str } from './shared.ts'

const Volume = v.looseObject({ id: opt(Str), size_gb: opt(Num), used_gb: opt(Num), attached: opt(Bool), state: opt(Str) })
const Snapshot = v.looseObject({ id: opt(Str), age_days: opt(Num), size_gb: opt(Num) })
const Input = v.looseObject({ volumes: opt(v.array(v.unknown())), snapshots: opt(v.array(v.unknown())), snapshot_max_age_days: opt(Num) })

export function scoreStorageEfficiency(input: unknown): MetricResult {
  const s = new Scoring('storage.efficiency')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  const volumes = s.items(Volume, s.need(root.volumes, 'volumes', 0.4), 'volumes')
  const snapshots = s.items(Snapshot, s.need(root.snapshots, 'snapshots', 0.15), 'snapshots')
  const maxAge = root.snapshot_max_age_days ?? 90
  const isAttached = (vol: v.InferOutput<typeof Volume>) =>
    first(vol.attached, vol.state === undefined ? undefined : vol.state === 'in-use') ?? true
  const totalGb = volumes.reduce((a, vol) => a + (vol.size_gb ?? 0), 0)
  const unattachedGb = volumes.filter((vol) => !isAttached(vol)).reduce((a, vol) => a + (vol.size_gb ?? 0), 0)
  const attached = volumes.filter((vol) => isAttached(vol) && vol.size_gb)
  const withUse = attached.filter((vol) => vol.used_gb !== undefined)
  if (attached.length > withUse.length) s.gap(`${attached.length - withUse.length} volume(s) without used_gb`, 0.05)
  const fill = withUse.length
    ? withUse.reduce((a, vol) => a + (vol.used_gb ?? 0), 0) / withUse.reduce((a, vol) => a + (vol.size_gb ?? 0), 0)
    : undefined
  // A snapshot without an age cannot be judged: left out of the share, as a gap.
  const aged = snapshots.filter((sn) => sn.age_days !== undefined)
  if (aged.length < snapshots.length) s.gap(`${snapshots.length - aged.length} snapshot(s) without age_days`, 0.05)
  const oldSnaps = aged.filter((sn) => (sn.age_days ?? 0) > maxAge).length
  const parts: number[] = []
  if (totalGb > 0) parts.push(5 * (1 - clamp((unattachedGb / totalGb) * 5))) // 20% of capacity unattached scores 0
  if (fill !== undefined) parts.push(bandScore(clamp(fill), 0.5, 0.9, 3))
  if (aged.length) parts.push(5 * (1 - oldSnaps / aged.length))
  if (parts.length === 0) return s.none('no volume sizes or snapshots to score')
  return s.done(
    mean(parts),
    `${pct(totalGb ? unattachedGb / totalGb : 0)} of ${totalGb} GB unattached; attached volumes ${fill === undefined ? 'fill unknown' : `${pct(fill)} full`}; ${oldSnaps} of ${aged.length} dated snapshot(s) older than ${maxAge} days.`,
    {
      total_gb: totalGb,
      unattached_gb: unattachedGb,
      fill: fill ?? null,
      snapshots: snapshots.length,
      old_snapshots: oldSnaps,
      snapshot_max_age_days: maxAge,
    },
  )
}
