/**
 * The dashboard's figures from the Prometheus text that GET /metrics serves, so the two cannot disagree:
 * histograms summed over their series (every backend and model), and quantiles estimated from the buckets
 * as Prometheus's histogram_quantile() does (linear within a bucket; the top finite bound when the rank
 * falls in +Inf). Pure functions: the route (ui.ts) renders the text and hands it here.
 */

/** A histogram family summed over its series: cumulative counts by upper bound (+Inf last), sum and count. */
export interface Histogram {
  bounds: number[]
  cumulative: number[]
  sum: number
  count: number
}

/** Quantiles and mean of a histogram; null where it has no observations. */
export interface Distribution {
  count: number
  p50: number | null
  p99: number | null
  mean: number | null
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/
const LE = /(?:^|,)le="([^"]*)"/

/** Every histogram of the exposition by family name, its series summed bucket by bucket. */
export function parseExposition(text: string): Map<string, Histogram> {
  const histograms = new Map<string, Histogram>()
  const byBound = new Map<string, Map<number, number>>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (!m) continue
    const [, name = '', labels = '', raw = ''] = m
    const value = Number(raw)
    if (name.endsWith('_bucket')) {
      const le = LE.exec(labels)?.[1]
      if (le === undefined) continue
      const family = name.slice(0, -'_bucket'.length)
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le)
      const counts = byBound.get(family) ?? new Map<number, number>()
      counts.set(bound, (counts.get(bound) ?? 0) + value)
      byBound.set(family, counts)
    } else if (name.endsWith('_sum') || name.endsWith('_count')) {
      const family = name.slice(0, name.lastIndexOf('_'))
      const h = histograms.get(family) ?? { bounds: [], cumulative: [], sum: 0, count: 0 }
      if (name.endsWith('_sum')) h.sum += value
      else h.count += value
      histograms.set(family, h)
    }
  }
  for (const [family, counts] of byBound) {
    const h = histograms.get(family) ?? { bounds: [], cumulative: [], sum: 0, count: 0 }
    const bounds = [...counts.keys()].sort((a, b) => a - b)
    h.bounds = bounds
    h.cumulative = bounds.map((b) => counts.get(b) ?? 0)
    histograms.set(family, h)
  }
  return histograms
}

/** A family absent from the exposition (no observation yet) reads as empty. */
export function histogramOf(histograms: Map<string, Histogram>, family: string): Histogram {
  return histograms.get(family) ?? { bounds: [], cumulative: [], sum: 0, count: 0 }
}

/** The observations between two readings of the same histogram (`before` may be empty: since start). */
export function difference(after: Histogram, before: Histogram): Histogram {
  const prior = new Map(before.bounds.map((b, i) => [b, before.cumulative[i] ?? 0]))
  return {
    bounds: after.bounds,
    cumulative: after.bounds.map((b, i) => Math.max(0, (after.cumulative[i] ?? 0) - (prior.get(b) ?? 0))),
    sum: after.sum - before.sum,
    count: Math.max(0, after.count - before.count),
  }
}

/** histogram_quantile(q, …) over cumulative buckets; null without observations. */
export function quantile(q: number, h: Histogram): number | null {
  const n = h.bounds.length
  if (n < 2 || h.bounds[n - 1] !== Number.POSITIVE_INFINITY) return null
  const total = h.cumulative[n - 1] ?? 0
  if (total <= 0) return null
  const rank = q * total
  let b = 0
  while (b < n - 1 && (h.cumulative[b] ?? 0) < rank) b++
  if (b === n - 1) return h.bounds[n - 2] ?? null
  const upper = h.bounds[b] as number
  if (b === 0 && upper <= 0) return upper
  const lower = b === 0 ? 0 : (h.bounds[b - 1] as number)
  const below = b === 0 ? 0 : (h.cumulative[b - 1] as number)
  const inBucket = (h.cumulative[b] as number) - below
  return lower + (upper - lower) * ((rank - below) / inBucket)
}

export function distribution(h: Histogram): Distribution {
  return {
    count: h.count,
    p50: round(quantile(0.5, h)),
    p99: round(quantile(0.99, h)),
    mean: h.count > 0 ? round(h.sum / h.count) : null,
  }
}

/** Six significant digits: enough for a dashboard, and the same figure every time it is computed. */
export function round(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : Number(x.toPrecision(6))
}
