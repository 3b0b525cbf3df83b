/**
 * The documented shape of one metric in result.json (docs/batch-metrics.md), for the metrics that could not
 * be scored too, and the list of metrics a summary leaves out. No registry, no scorers: the runner uses it
 * on an `engine_command`'s result without loading the built-in engine.
 */
import type { MetricResult } from './metrics/shared.ts'

/**
 * A metric whose input could not be read, parsed or scored: every field of a scored result is there, so a
 * reader of result.json needs no special case, with `score: null`, confidence 0 and the reason in
 * `rationale`, `gaps` and `error`.
 */
export interface MetricError extends Omit<MetricResult, 'score'> {
  score: null
  confidence: 0
  error: string
}

/** A metric that is under `metrics` but left out of the summary, and why. */
export interface UnscoredMetric {
  metric_id: string
  reason: string
}

/** The full result shape for a metric that could not be scored; `error` says which file and what went wrong. */
export function metricError(metricId: string, error: string): MetricError {
  return {
    metric_id: metricId,
    score: null,
    confidence: 0,
    rationale: `Not scored: ${error}.`,
    evidence: {},
    gaps: [error],
    rationale_source: 'rules',
    error,
  }
}

type Loose = Record<string, unknown>

const isObject = (value: unknown): value is Loose => typeof value === 'object' && value !== null && !Array.isArray(value)

/** An entry that reports an error instead of a score. */
const isErrorEntry = (value: unknown): value is Loose & { error: string } =>
  isObject(value) && typeof value.error === 'string' && typeof value.score !== 'number'

/** Every metric under `metrics` that the summary leaves out, with the reason: its error, else its last gap. */
export function unscoredOf(metrics: Record<string, unknown>): UnscoredMetric[] {
  const out: UnscoredMetric[] = []
  for (const [id, value] of Object.entries(metrics)) {
    if (isErrorEntry(value)) out.push({ metric_id: id, reason: value.error })
    else if (isObject(value) && typeof value.score === 'number' && value.confidence === 0) {
      const gaps = Array.isArray(value.gaps) ? value.gaps.filter((g): g is string => typeof g === 'string') : []
      out.push({ metric_id: id, reason: gaps.at(-1) ?? 'nothing usable in the input' })
    }
  }
  return out
}

/**
 * An `engine_command`'s result in the documented shape: an error entry gets the fields it lacks (its own
 * values win), and a summary without `unscored` gets it from the metrics. Everything else is left as given.
 */
export function completeResult<T extends { metrics: Record<string, unknown>; summary: Record<string, unknown> }>(result: T): T {
  const metrics: Record<string, unknown> = {}
  for (const [id, value] of Object.entries(result.metrics)) {
    metrics[id] = isErrorEntry(value) ? { ...metricError(id, value.error), ...value, score: null, confidence: 0 } : value
  }
  const summary = { ...result.summary }
  if (!Array.isArray(summary.unscored)) {
    const unscored = unscoredOf(metrics)
    summary.unscored_metrics = unscored.length
    summary.unscored = unscored
  }
  return { ...result, metrics, summary }
}
