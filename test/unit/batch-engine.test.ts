import { afterAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { METRICS } from '../../src/batch/metric-list.ts'
import { type BatchInput, type MetricError, readBatchInputs, scoreBatch } from '../../src/batch/score.ts'

const EXAMPLES = join(import.meta.dir, '../../examples/Inputs')
const text = (v: unknown): BatchInput => ({ text: JSON.stringify(v) })
const SAMPLE_LB = {
  load_balancers: [{ id: 'alb-1', lat_p95: 120, lat_p99: 240, r5xx: 0.002, unhealthy_minutes: 1, requests: 1800000 }],
  slo: { p95_ms: 200, p99_ms: 400, '5xx_rate_max': 0.005 },
}

const tmp = mkdtempSync(join(tmpdir(), 'orch-batch-engine-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('batch registry', () => {
  test('16 dotted ids mapped to their file names, every category used', () => {
    expect(METRICS).toHaveLength(16)
    for (const m of METRICS) expect(m.file).toBe(`${m.id.replace('.', '_')}.json`)
    expect(new Set(METRICS.map((m) => m.category))).toEqual(new Set(['reliability', 'cost', 'security', 'efficiency']))
    expect(METRICS.every((m) => m.weight > 0 && m.why.length > 0)).toBe(true)
  })
  test('docs/batch-metrics.md documents every metric with its file and weight', async () => {
    const doc = await Bun.file(join(import.meta.dir, '../../docs/batch-metrics.md')).text()
    for (const m of METRICS) {
      expect(doc).toContain(`## \`${m.id}\``)
      expect(doc).toContain(`File \`${m.file}\` · category ${m.category} · weight ${m.weight}`)
    }
  })
})

describe('scoreBatch', () => {
  test('the Sample1 folder: both metrics 5.0, summary in the documented shape', () => {
    const r = scoreBatch(readBatchInputs(join(EXAMPLES, 'Sample1')))
    expect(Object.keys(r.metrics).sort()).toEqual(['availability.incidents', 'lb.performance'])
    expect(Object.keys(r.summary)).toEqual([
      'overall_score',
      'category_scores',
      'breakdown',
      'scored_metrics',
      'unscored_metrics',
      'unscored',
    ])
    expect(r.summary.unscored).toEqual([])
    expect(r.summary.category_scores).toEqual({ reliability: 5 })
    expect(r.summary.overall_score).toBe(5)
    expect(r.summary.scored_metrics).toBe(2)
  })

  test('weights are renormalised over the metrics present (hand-computed)', () => {
    const r = scoreBatch(
      new Map<string, BatchInput>([
        ['lb.performance', text(SAMPLE_LB)], // 5.0, weight 1
        ['availability.incidents', text({ incidents: [{ severity: 'sev1' }], slo_breaches: [] })], // 3.5, weight 1.5
        ['security.encryption', text({ resources: [{ id: 'a', encrypted_at_rest: false, encrypted_in_transit: true }] })], // 1.5, weight 1
      ]),
    )
    // reliability (5×1 + 3.5×1.5) / 2.5 = 4.1; security 1.5; overall (5 + 5.25 + 1.5) / 3.5 = 3.357
    expect(r.summary.category_scores).toEqual({ reliability: 4.1, security: 1.5 })
    expect(r.summary.overall_score).toBe(3.4)
    expect(r.summary.scored_metrics).toBe(3)
    expect(r.summary.breakdown).toEqual([
      {
        category: 'reliability',
        score: 4.1,
        weight: 0.714,
        metrics: [
          { metric_id: 'lb.performance', score: 5, weight: 0.286 },
          { metric_id: 'availability.incidents', score: 3.5, weight: 0.429 },
        ],
      },
      { category: 'security', score: 1.5, weight: 0.286, metrics: [{ metric_id: 'security.encryption', score: 1.5, weight: 0.286 }] },
    ])
  })

  test('invalid JSON is reported in its own metric, in the full result shape; the others still score', () => {
    const r = scoreBatch(
      new Map<string, BatchInput>([
        ['lb.performance', { text: '{ "load_balancers": [' }],
        ['availability.incidents', text({ incidents: [], slo_breaches: [] })],
        ['security.iam_risk', { error: 'security_iam_risk.json is a symbolic link; refused' }],
      ]),
    )
    const invalid = r.metrics['lb.performance'] as MetricError
    expect(invalid.error).toStartWith('lb_performance.json is not valid JSON: ')
    expect(invalid).toEqual({
      metric_id: 'lb.performance',
      score: null,
      confidence: 0,
      rationale: `Not scored: ${invalid.error}.`,
      evidence: {},
      gaps: [invalid.error],
      rationale_source: 'rules',
      error: invalid.error,
    })
    const link = 'security_iam_risk.json is a symbolic link; refused'
    expect(r.metrics['security.iam_risk']).toEqual({
      metric_id: 'security.iam_risk',
      score: null,
      confidence: 0,
      rationale: `Not scored: ${link}.`,
      evidence: {},
      gaps: [link],
      rationale_source: 'rules',
      error: link,
    })
    expect(r.metrics['availability.incidents']).toMatchObject({ score: 5 })
    expect(r.summary.scored_metrics).toBe(1)
    expect(r.summary.category_scores).toEqual({ reliability: 5 })
    expect(r.summary.unscored_metrics).toBe(2)
    expect(r.summary.unscored).toEqual([
      { metric_id: 'lb.performance', reason: invalid.error },
      { metric_id: 'security.iam_risk', reason: link },
    ])
  })

  test('an unusable input (confidence 0) is in metrics but not in the summary', () => {
    const r = scoreBatch(new Map<string, BatchInput>([['lb.performance', text([])]]))
    expect(r.metrics['lb.performance']).toMatchObject({ score: 0, confidence: 0 })
    const reason = (r.metrics['lb.performance'] as { gaps: string[] }).gaps.at(-1) as string
    expect(reason.length).toBeGreaterThan(0)
    expect(r.summary).toEqual({
      overall_score: 0,
      category_scores: {},
      breakdown: [],
      scored_metrics: 0,
      unscored_metrics: 1,
      unscored: [{ metric_id: 'lb.performance', reason }],
    })
  })

  test('the Full example scores all 16 metrics (its speed: scripts/bench/batch.ts)', () => {
    const r = scoreBatch(readBatchInputs(join(EXAMPLES, 'Full')))
    expect(r.summary.scored_metrics).toBe(16)
    expect(Object.keys(r.summary.category_scores).sort()).toEqual(['cost', 'efficiency', 'reliability', 'security'])
    for (const m of Object.values(r.metrics)) {
      expect('score' in m).toBe(true)
      if ('score' in m) expect(m.gaps).toEqual([])
    }
    const weights = r.summary.breakdown.flatMap((c) => c.metrics.map((m) => m.weight))
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2)
  })
})

describe('readBatchInputs', () => {
  test('reads only the mapped files at the batch root; links are refused', () => {
    const dir = join(tmp, 'b1')
    mkdirSync(join(dir, 'nested'), { recursive: true })
    writeFileSync(join(dir, 'lb_performance.json'), JSON.stringify(SAMPLE_LB))
    writeFileSync(join(dir, 'notes.json'), '{}')
    writeFileSync(join(dir, 'nested', 'db_utilization.json'), '{}')
    writeFileSync(join(tmp, 'outside.json'), '{}')
    symlinkSync(join(tmp, 'outside.json'), join(dir, 'security_iam_risk.json'))
    mkdirSync(join(dir, 'tagging_coverage.json'))
    symlinkSync(join(tmp, 'missing.json'), join(dir, 'db_utilization.json'))
    const inputs = readBatchInputs(dir)
    expect([...inputs.keys()].sort()).toEqual(['db.utilization', 'lb.performance', 'security.iam_risk', 'tagging.coverage'])
    expect(inputs.get('db.utilization')).toEqual({ error: 'db_utilization.json is a symbolic link; refused' })
    expect(inputs.get('security.iam_risk')).toEqual({ error: 'security_iam_risk.json is a symbolic link; refused' })
    expect(inputs.get('tagging.coverage')).toEqual({ error: 'tagging_coverage.json is not a regular file' })
    expect('text' in inputs.get('lb.performance')!).toBe(true)
  })

  test('a file over the size cap is refused unread, with its size and the key; the others are read', () => {
    const dir = join(tmp, 'big')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'lb_performance.json'), JSON.stringify(SAMPLE_LB))
    const big = JSON.stringify({ resources: Array.from({ length: 200 }, (_, i) => ({ id: `r-${i}`, tags: { owner: 'x' } })) })
    writeFileSync(join(dir, 'tagging_coverage.json'), big)
    const limit = Buffer.byteLength(JSON.stringify(SAMPLE_LB))
    const inputs = readBatchInputs(dir, limit)
    expect('text' in inputs.get('lb.performance')!).toBe(true)
    expect(inputs.get('tagging.coverage')).toEqual({
      error: `tagging_coverage.json is ${(big.length / 1024 / 1024).toFixed(1)} MiB (${big.length} bytes), over batch.max_input_bytes (${limit}); refused unread`,
    })
    const r = scoreBatch(inputs)
    expect(r.summary.scored_metrics).toBe(1)
    expect(r.metrics['tagging.coverage']).toMatchObject({
      metric_id: 'tagging.coverage',
      score: null,
      confidence: 0,
      error: expect.stringContaining('over batch.max_input_bytes'),
      gaps: [expect.stringContaining('over batch.max_input_bytes')],
    })
  })

  test('a file exactly at the cap is read', () => {
    const dir = join(tmp, 'edge')
    mkdirSync(dir, { recursive: true })
    const text = JSON.stringify(SAMPLE_LB)
    writeFileSync(join(dir, 'lb_performance.json'), text)
    expect(readBatchInputs(dir, Buffer.byteLength(text)).get('lb.performance')).toEqual({ text })
  })
})
