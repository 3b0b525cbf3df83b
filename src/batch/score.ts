/**
 * The built-in batch engine: scores only the metrics whose file is present, each on its own, then a weighted
 * summary (docs/batch-metrics.md). Pure apart from `readBatchInputs`, which is the only file access.
 */
import { lstatSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CATEGORIES, type Category, METRIC_BY_ID, METRICS } from './metric-list.ts'
import { type MetricResult, round1, round3 } from './metrics/shared.ts'
import { type MetricError, metricError, type UnscoredMetric, unscoredOf } from './result.ts'

export type { MetricError, UnscoredMetric } from './result.ts'

export type BatchInput = { text: string } | { error: string }
export interface CategoryBreakdown {
  category: Category
  score: number
  weight: number
  metrics: { metric_id: string; score: number; weight: number }[]
}
export interface BatchSummary {
  overall_score: number
  category_scores: Partial<Record<Category, number>>
  breakdown: CategoryBreakdown[]
  scored_metrics: number
  /** How many metrics with an input file did not count: an error, or nothing usable (confidence 0). */
  unscored_metrics: number
  unscored: UnscoredMetric[]
}
export interface BatchScore {
  metrics: Record<string, MetricResult | MetricError>
  summary: BatchSummary
}

/** `batch.max_input_bytes`' default: 16 MiB, far above a real export of one metric, far below trouble. */
export const DEFAULT_MAX_INPUT_BYTES = 16 * 1024 * 1024

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/**
 * Reads the mapped files present at the batch root; names come from the registry, never from the user. A
 * file over `maxBytes` is refused unread (its metric reports why); the other metrics are still scored.
 */
export function readBatchInputs(dir: string, maxBytes = DEFAULT_MAX_INPUT_BYTES): Map<string, BatchInput> {
  const inputs = new Map<string, BatchInput>()
  for (const m of METRICS) {
    const path = join(dir, m.file)
    // lstat, not exists: a link (even a dangling one) could point outside the batch folder, so it is refused.
    const stat = lstatSync(path, { throwIfNoEntry: false })
    if (stat === undefined) continue
    try {
      if (stat.isSymbolicLink()) inputs.set(m.id, { error: `${m.file} is a symbolic link; refused` })
      else if (!stat.isFile()) inputs.set(m.id, { error: `${m.file} is not a regular file` })
      else if (stat.size > maxBytes)
        inputs.set(m.id, {
          error: `${m.file} is ${mib(stat.size)} (${stat.size} bytes), over batch.max_input_bytes (${maxBytes}); refused unread`,
        })
      else inputs.set(m.id, { text: readFileSync(path, 'utf8') })
    } catch (e) {
      inputs.set(m.id, { error: `${m.file}: ${(e as Error).message}` })
    }
  }
  return inputs
}

export function scoreBatch(files: Map<string, BatchInput>): BatchScore {
  const metrics: Record<string, MetricResult | MetricError> = {}
  for (const m of METRICS) {
    const input = files.get(m.id)
    if (input === undefined) continue
    if ('error' in input) {
      metrics[m.id] = metricError(m.id, input.error)
      continue
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(input.text)
    } catch (e) {
      metrics[m.id] = metricError(m.id, `${m.file} is not valid JSON: ${(e as Error).message}`)
      continue
    }
    try {
      metrics[m.id] = m.score(parsed)
    } catch (e) {
      // A scorer bug must not sink the batch; it is reported like any other unusable input.
      metrics[m.id] = metricError(m.id, `${m.file}: the scorer failed: ${(e as Error).message}`)
    }
  }
  return { metrics, summary: summarize(metrics) }
}

/** Weighted means with weights renormalised over the metrics that scored (an error or confidence 0 is left out). */
export function summarize(metrics: Record<string, MetricResult | MetricError>): BatchSummary {
  const scored = Object.values(metrics).filter((r): r is MetricResult => typeof r.score === 'number' && r.confidence > 0)
  const weightOf = (r: MetricResult) => METRIC_BY_ID.get(r.metric_id)?.weight ?? 0
  const total = scored.reduce((a, r) => a + weightOf(r), 0)
  const breakdown: CategoryBreakdown[] = []
  const category_scores: Partial<Record<Category, number>> = {}
  for (const category of CATEGORIES) {
    const inCat = scored.filter((r) => METRIC_BY_ID.get(r.metric_id)?.category === category)
    if (inCat.length === 0) continue
    const catWeight = inCat.reduce((a, r) => a + weightOf(r), 0)
    const score = round1(inCat.reduce((a, r) => a + r.score * weightOf(r), 0) / catWeight)
    category_scores[category] = score
    breakdown.push({
      category,
      score,
      weight: round3(catWeight / total),
      metrics: inCat.map((r) => ({ metric_id: r.metric_id, score: r.score, weight: round3(weightOf(r) / total) })),
    })
  }
  const overall = total > 0 ? round1(scored.reduce((a, r) => a + r.score * weightOf(r), 0) / total) : 0
  const unscored = unscoredOf(metrics)
  return {
    overall_score: overall,
    category_scores,
    breakdown,
    scored_metrics: scored.length,
    unscored_metrics: unscored.length,
    unscored,
  }
}
