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

/** One sample of the exposition: its metric name, labels (unescaped) and value. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const unescapeLabel = (v: string) => v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))

export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (!m) continue
    const [, name = '', rawLabels = '', raw = ''] = m
    const labels: Record<string, string> = {}
    for (const [, key, value] of rawLabels.matchAll(LABEL)) labels[key as string] = unescapeLabel(value as string)
    samples.push({ name, labels, value: Number(raw) })
  }
  return samples
}

/**
 * A histogram family's series summed by a key of their labels (`sum by (model) (…)`); series whose key is
 * undefined are left out.
 */
export function histogramsBy(samples: readonly Sample[], family: string, keyOf: (labels: Record<string, string>) => string | undefined) {
  const sums = new Map<string, { bounds: Map<number, number>; sum: number; count: number }>()
  for (const s of samples) {
    const part =
      s.name === `${family}_bucket` ? 'bucket' : s.name === `${family}_sum` ? 'sum' : s.name === `${family}_count` ? 'count' : undefined
    if (part === undefined) continue
    const key = keyOf(s.labels)
    if (key === undefined) continue
    const entry = sums.get(key) ?? { bounds: new Map<number, number>(), sum: 0, count: 0 }
    sums.set(key, entry)
    if (part === 'sum') entry.sum += s.value
    else if (part === 'count') entry.count += s.value
    else if (s.labels.le !== undefined) {
      const bound = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le)
      entry.bounds.set(bound, (entry.bounds.get(bound) ?? 0) + s.value)
    }
  }
  const out = new Map<string, Histogram>()
  for (const [key, e] of sums) {
    const bounds = [...e.bounds.keys()].sort((a, b) => a - b)
    out.set(key, { bounds, cumulative: bounds.map((b) => e.bounds.get(b) ?? 0), sum: e.sum, count: e.count })
  }
  return out
}

/** A counter family summed by a key of its labels, over the samples `where` accepts. */
export function countersBy(
  samples: readonly Sample[],
  name: string,
  keyOf: (labels: Record<string, string>) => string | undefined,
  where: (labels: Record<string, string>) => boolean = () => true,
): Map<string, number> {
  const out = new Map<string, number>()
  for (const s of samples) {
    if (s.name !== name || !where(s.labels)) continue
    const key = keyOf(s.labels)
    if (key !== undefined) out.set(key, (out.get(key) ?? 0) + s.value)
  }
  return out
}

/** Traffic and latency of one model, or of one model on one backend, since start. */
export interface ModelFigures {
  model: string
  /** Absent in a model's own row: it sums every backend (`backends` names them). */
  backend?: string
  backends?: string[]
  /** Backend calls, every outcome: the count of the call-duration histogram. */
  calls: number
  /** Failed calls, where the call-outcome series carry a model label; null where they do not. */
  errors: number | null
  /** Calls per second over the last minute of readings; null until two readings span some time. */
  per_s: number | null
  latency_s: Distribution
  ttft_s: Distribution
  tokens_per_s: Distribution
}

export const MODEL_FAMILIES = {
  latency: 'orch_backend_request_duration_seconds',
  ttft: 'orch_time_to_first_token_seconds',
  tokens: 'orch_tokens_per_second',
  outcomes: 'orch_backend_calls_total',
} as const

/** Separates model and backend in a key: neither label can hold it (label values here are printable). */
const SEP = '\u0000'
export const modelKey = (model: string, backend?: string) => (backend === undefined ? model : `${model}${SEP}${backend}`)

/**
 * The per-model figures of the exposition: one row per model (its series summed over backends), and one
 * per model and backend. `rate(key)` gives a key's calls per second (ratePerModel over the readings).
 */
export function modelFiguresOf(samples: readonly Sample[], rate: (key: string) => number | null) {
  const byModel = (l: Record<string, string>) => l.model
  const byPair = (l: Record<string, string>) =>
    l.model === undefined || l.backend === undefined ? undefined : modelKey(l.model, l.backend)
  const perModel = familiesBy(samples, byModel)
  const perPair = familiesBy(samples, byPair)
  const models: ModelFigures[] = [...perModel.latency.keys()].sort().map((model) => {
    const backends = [...perPair.latency.keys()].filter((k) => k.startsWith(`${model}${SEP}`)).map((k) => k.slice(model.length + 1))
    return { model, backends: backends.sort(), ...figuresFor(perModel, model, rate) }
  })
  const byBackend: ModelFigures[] = [...perPair.latency.keys()].sort().map((key) => {
    const [model = '', backend = ''] = key.split(SEP)
    return { model, backend, ...figuresFor(perPair, key, rate) }
  })
  return { models, by_backend: byBackend }
}

/** Every per-model family, keyed by `keyOf`; errors only where the outcome series carry a model label. */
function familiesBy(samples: readonly Sample[], keyOf: (labels: Record<string, string>) => string | undefined) {
  const outcomesHaveModel = samples.some((s) => s.name === MODEL_FAMILIES.outcomes && s.labels.model !== undefined)
  return {
    latency: histogramsBy(samples, MODEL_FAMILIES.latency, keyOf),
    ttft: histogramsBy(samples, MODEL_FAMILIES.ttft, keyOf),
    tokens: histogramsBy(samples, MODEL_FAMILIES.tokens, keyOf),
    errors: outcomesHaveModel ? countersBy(samples, MODEL_FAMILIES.outcomes, keyOf, (l) => l.outcome === 'error') : undefined,
  }
}

function figuresFor(f: ReturnType<typeof familiesBy>, key: string, rate: (key: string) => number | null) {
  const latency = histogramOf(f.latency, key)
  return {
    calls: latency.count,
    errors: f.errors === undefined ? null : (f.errors.get(key) ?? 0),
    per_s: rate(key),
    latency_s: distribution(latency),
    ttft_s: distribution(histogramOf(f.ttft, key)),
    tokens_per_s: distribution(histogramOf(f.tokens, key)),
  }
}

/** One reading of the per-model call counts (model keys and model-backend keys, see modelKey). */
export interface ModelReading {
  at: number
  calls: Map<string, number>
}

/** The calls of every model and model-backend pair in the exposition, for the rates. */
export function modelCalls(samples: readonly Sample[]): Map<string, number> {
  const count = `${MODEL_FAMILIES.latency}_count`
  const calls = countersBy(samples, count, (l) => l.model)
  for (const [k, v] of countersBy(samples, count, (l) =>
    l.model === undefined || l.backend === undefined ? undefined : modelKey(l.model, l.backend),
  ))
    calls.set(k, v)
  return calls
}

/** Calls per second of `key` between the oldest reading in the window and `now`; null without one. */
export function ratePerModel(readings: readonly ModelReading[], now: ModelReading, key: string, windowMs: number): number | null {
  const from = readings.find((r) => r.at >= now.at - windowMs && r.at < now.at)
  if (!from) return null
  return round(((now.calls.get(key) ?? 0) - (from.calls.get(key) ?? 0)) / ((now.at - from.at) / 1000))
}

/** Per interval between two readings: each model's calls per second (models only, not backend pairs). */
export function modelHistoryOf(readings: readonly ModelReading[]): Array<{ t: number; per_model: Record<string, number> }> {
  const points: Array<{ t: number; per_model: Record<string, number> }> = []
  for (let i = 1; i < readings.length; i++) {
    const a = readings[i - 1] as ModelReading
    const b = readings[i] as ModelReading
    const perModel: Record<string, number> = {}
    for (const [key, n] of b.calls) {
      if (key.includes(SEP)) continue
      perModel[key] = round((n - (a.calls.get(key) ?? 0)) / ((b.at - a.at) / 1000)) ?? 0
    }
    points.push({ t: Math.round(b.at / 1000), per_model: perModel })
  }
  return points
}
