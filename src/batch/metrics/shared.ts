import * as v from 'valibot'

export interface MetricResult {
  metric_id: string
  score: number
  confidence: number
  rationale: string
  evidence: Record<string, unknown>
  gaps: string[]
  /** Who wrote `rationale`: the scorer's rules, or a model from the evidence (set by `rationale.ts`). */
  rationale_source?: 'rules' | 'llm'
}

export type Scorer = (input: unknown) => MetricResult

export const clamp = (x: number, lo = 0, hi = 1): number => Math.min(hi, Math.max(lo, x))
/** Rounds half up, after shedding binary noise: 0.7 × 0.75 + 0.3 × 0.75 is 0.7499… in floating point but 3.75 → 3.8. */
const roundTo = (x: number, scale: number): number => Math.round(Number((x * scale).toPrecision(12))) / scale
export const round1 = (x: number): number => roundTo(x, 10)
export const round3 = (x: number): number => roundTo(x, 1000)
export const mean = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)

/** A number, or a numeric string as exports from spreadsheets often hold. */
export const Num = v.union([v.pipe(v.number(), v.finite()), v.pipe(v.string(), v.trim(), v.nonEmpty(), v.transform(Number), v.finite())])
export const Bool = v.union([
  v.boolean(),
  v.pipe(
    v.picklist(['true', 'false', 'yes', 'no']),
    v.transform((s) => s === 'true' || s === 'yes'),
  ),
])
export const Str = v.union([v.string(), v.pipe(v.number(), v.transform(String))])
export const opt = <T extends v.GenericSchema>(s: T) => v.optional(s)

/** Fractions are 0–1; a value above 1 is read as a percentage, since exports use both. */
export const frac = (x: number): number => clamp(x > 1 ? x / 100 : x)

/** Inside [low, high] scores 5; below falls linearly to 0; above falls linearly to `overFloor` at 100%. */
export function bandScore(u: number, low: number, high: number, overFloor = 2.5): number {
  if (u < low) return (5 * u) / low
  if (u <= high) return 5
  return 5 - ((5 - overFloor) * (u - high)) / (1 - high || 1)
}

/** The first defined value among aliases: exports name the same field differently. */
export const first = <T>(...xs: (T | undefined)[]): T | undefined => xs.find((x) => x !== undefined)

/** Collects gaps as a scorer reads its input; each gap lowers the confidence by its cost. */
export class Scoring {
  readonly gaps: string[] = []
  private cost = 0
  constructor(readonly metricId: string) {}

  gap(message: string, cost = 0.15): void {
    this.gaps.push(message)
    this.cost += cost
  }

  /** Parses the root object; unknown top-level keys become cheap gaps (they may hold data we ignore). */
  root<T extends v.ObjectEntries>(schema: v.LooseObjectSchema<T, undefined>, input: unknown): v.InferOutput<typeof schema> | undefined {
    const parsed = v.safeParse(schema, input)
    if (!parsed.success) {
      this.gap(`input: ${describeIssues(parsed.issues)}`, 1)
      return undefined
    }
    const known = new Set(Object.keys(schema.entries))
    for (const key of Object.keys(parsed.output as object)) if (!known.has(key)) this.gap(`unexpected field "${key}" ignored`, 0.03)
    return parsed.output
  }

  /** Parses each item on its own so one bad record is a gap, not a failed metric. */
  items<S extends v.GenericSchema>(schema: S, list: unknown[] | undefined, label: string): v.InferOutput<S>[] {
    const out: v.InferOutput<S>[] = []
    for (const [i, item] of (list ?? []).entries()) {
      const parsed = v.safeParse(schema, item)
      if (parsed.success) out.push(parsed.output)
      else this.gap(`${label}[${i}]: ${describeIssues(parsed.issues)} (record skipped)`, 0.1)
    }
    return out
  }

  /** Notes a missing field on a record and returns undefined, so callers can skip that part of the rule. */
  need<T>(value: T | undefined, where: string, cost = 0.1): T | undefined {
    if (value === undefined) this.gap(`${where} missing`, cost)
    return value
  }

  done(score: number, rationale: string, evidence: Record<string, unknown>): MetricResult {
    return {
      metric_id: this.metricId,
      score: round1(clamp(score, 0, 5)),
      confidence: Math.round(clamp(1 - this.cost, 0.1, 1) * 100) / 100,
      rationale,
      evidence,
      gaps: this.gaps,
    }
  }

  /** Nothing usable: score 0 with confidence 0, which the summary leaves out. */
  none(reason: string, evidence: Record<string, unknown> = {}): MetricResult {
    this.gaps.push(reason)
    return { metric_id: this.metricId, score: 0, confidence: 0, rationale: `Not scored: ${reason}.`, evidence, gaps: this.gaps }
  }
}

function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .slice(0, 3)
    .map((i) => {
      const path = v.getDotPath(i)
      return path ? `${path}: ${i.message}` : i.message
    })
    .join('; ')
}

export const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`
