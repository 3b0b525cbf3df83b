/**
 * Every scorer's rule (docs/batch-metrics.md) at its boundaries: band edges, just inside and outside, zero and
 * empty denominators, 0% and 100%, caps and floors, rounding, fallbacks and aliases, and the gaps that lower confidence.
 * Expected scores are worked by hand from the documented rule; the arithmetic is in the comment beside each.
 */
import { describe, expect, test } from 'bun:test'
import { METRIC_BY_ID } from '../../src/batch/metric-list.ts'
import type { MetricResult } from '../../src/batch/metrics/shared.ts'

/** Scores and checks the common invariants: score 0–5 with one decimal, confidence 0–1 with two. */
function run(id: string, input: unknown): MetricResult {
  const r = METRIC_BY_ID.get(id)!.score(input)
  expect(r.metric_id).toBe(id)
  expect(r.score).toBeGreaterThanOrEqual(0)
  expect(r.score).toBeLessThanOrEqual(5)
  expect(Math.round(r.score * 10) / 10).toBe(r.score)
  expect(r.confidence).toBeGreaterThanOrEqual(0)
  expect(r.confidence).toBeLessThanOrEqual(1)
  expect(Math.round(r.confidence * 100) / 100).toBe(r.confidence)
  return r
}
const scoreOf = (id: string, input: unknown): number => run(id, input).score
const expectNotScored = (r: MetricResult) => {
  expect(r.score).toBe(0)
  expect(r.confidence).toBe(0)
  expect(r.gaps.length).toBeGreaterThan(0)
}

describe('tagging.coverage', () => {
  const T = 'tagging.coverage'
  const req = ['owner', 'env', 'cost_center']
  test('0% and 100% of required tags, full confidence', () => {
    const all = run(T, { required_tags: req, resources: [{ id: 'a', tags: { owner: 'o', env: 'p', cost_center: 'c' } }] })
    expect(all.score).toBe(5)
    expect(all.confidence).toBe(1)
    expect(scoreOf(T, { required_tags: req, resources: [{ id: 'a', tags: { name: 'x' } }] })).toBe(0)
  })
  test('per-resource fractions are averaged, not counted all-or-nothing', () => {
    // 1 of 3 tags: 5 × 1/3 = 1.67 → 1.7
    expect(scoreOf(T, { required_tags: req, resources: [{ id: 'a', tags: { owner: 'o' } }] })).toBe(1.7)
    // mean(1/3, 2/3) = 0.5 → 2.5 (all-or-nothing would give 0)
    expect(
      scoreOf(T, {
        required_tags: req,
        resources: [
          { id: 'a', tags: { owner: 'o' } },
          { id: 'b', tags: { owner: 'o', env: 'p' } },
        ],
      }),
    ).toBe(2.5)
  })
  test('empty, blank and null values count as missing, in a map and in an AWS-style list', () => {
    const one = (tags: unknown) => scoreOf(T, { required_tags: ['owner', 'env'], resources: [{ id: 'a', tags }] })
    // owner empty, env present: 5 × 1/2 = 2.5
    expect(one({ owner: '', env: 'p' })).toBe(2.5)
    expect(one({ owner: '  ', env: 'p' })).toBe(2.5)
    expect(one({ owner: null, env: 'p' })).toBe(2.5)
    expect(
      one([
        { Key: 'owner', Value: '' },
        { Key: 'env', Value: 'p' },
      ]),
    ).toBe(2.5)
    expect(one([{ Key: 'owner' }, { Key: 'env', Value: 'p' }])).toBe(2.5)
  })
  test('keys compare case-insensitively; lower-case key/value lists are read too', () => {
    const r = run(T, {
      required_tags: ['Owner', 'ENV'],
      resources: [
        {
          id: 'a',
          tags: [
            { Key: 'OWNER', Value: 'o' },
            { key: 'env', value: 'p' },
          ],
        },
        { arn: 'arn:b', tags: { owner: 'o', Env: 'p' } },
      ],
    })
    expect(r.score).toBe(5)
    expect(r.gaps).toEqual([])
  })
  test('required_tags absent or empty: the three defaults are used, with a gap (0.15)', () => {
    for (const required_tags of [undefined, []]) {
      const r = run(T, { required_tags, resources: [{ id: 'a', tags: { owner: 'o', env: 'p', cost_center: 'c' } }] })
      expect(r.score).toBe(5)
      expect(r.confidence).toBe(0.85)
      expect(r.gaps[0]).toContain('required_tags missing')
    }
    // only owner of owner/env/cost_center: 5/3 → 1.7
    expect(scoreOf(T, { resources: [{ id: 'a', tags: { owner: 'o' } }] })).toBe(1.7)
  })
  test('a resource without tags counts as untagged, a small gap (0.02)', () => {
    // mean(0, 1) = 0.5 → 2.5
    const r = run(T, { required_tags: ['owner'], resources: [{ id: 'a' }, { id: 'b', tags: { owner: 'o' } }] })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.98)
  })
  test('counts-only variant: 5 × fully_tagged / total_resources, with a gap (0.2)', () => {
    // 5 × 6/8 = 3.75 → 3.8 (half up)
    const r = run(T, { required_tags: req, total_resources: 8, fully_tagged: 6 })
    expect(r.score).toBe(3.8)
    expect(r.confidence).toBe(0.8)
    // without required_tags too: 1 − 0.15 − 0.2 = 0.65
    expect(run(T, { total_resources: 8, fully_tagged: 6 }).confidence).toBe(0.65)
    expect(scoreOf(T, { required_tags: req, total_resources: 8, fully_tagged: 0 })).toBe(0)
    expect(scoreOf(T, { required_tags: req, total_resources: '8', fully_tagged: '8' })).toBe(5)
    // more fully tagged than resources is capped at 5
    expect(scoreOf(T, { required_tags: req, total_resources: 8, fully_tagged: 9 })).toBe(5)
  })
  test('zero or empty denominators are not scored', () => {
    expectNotScored(run(T, { required_tags: req, total_resources: 0, fully_tagged: 0 }))
    expectNotScored(run(T, { required_tags: req, resources: [] }))
    // the only record does not parse: skipped, nothing left
    expectNotScored(run(T, { required_tags: req, resources: [42] }))
  })
  test('a malformed record is skipped with a gap (0.1); the rest scores', () => {
    const r = run(T, { required_tags: ['owner'], resources: [42, { id: 'b', tags: { owner: 'o' } }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.9)
  })
})

describe('compute.utilization', () => {
  const C = 'compute.utilization'
  const one = (cpu: unknown, mem: unknown, target?: unknown) => scoreOf(C, { instances: [{ id: 'a', cpu_p95: cpu, mem_p95: mem }], target })
  test('band edges 0.4 and 0.8 score 5; default band when target absent', () => {
    expect(one(0.4, 0.8)).toBe(5)
    expect(one(0.8, 0.4)).toBe(5)
  })
  test('below the band: 5 × u / low', () => {
    // cpu 0.2 → 5 × 0.2/0.4 = 2.5; mem 0.6 → 5; mean 3.75 → 3.8
    expect(one(0.2, 0.6)).toBe(3.8)
    // just below the edge: 5 × 0.39/0.4 = 4.875 for both → 4.9
    expect(one(0.39, 0.39)).toBe(4.9)
    expect(one(0, 0)).toBe(0)
  })
  test('above the band: falls linearly to 2.5 at 100%', () => {
    // 0.9 → 5 − 2.5 × 0.1/0.2 = 3.75 for both → 3.8
    expect(one(0.9, 0.9)).toBe(3.8)
    // just above the edge: 5 − 2.5 × 0.01/0.2 = 4.875 → 4.9
    expect(one(0.81, 0.81)).toBe(4.9)
    // 1 is 100% (a fraction), not 1%
    expect(one(1, 1)).toBe(2.5)
  })
  test('a value above 1 is a percentage', () => {
    // 100 → 1.0 → 2.5; 40 → 0.4 → 5; mean 3.75 → 3.8
    expect(one(100, 40)).toBe(3.8)
    // 1.5 → 1.5% → 5 × 0.015/0.4 = 0.1875 → 0.2
    expect(one(1.5, 1.5)).toBe(0.2)
    expect(one('60', '0.6')).toBe(5)
  })
  test('p95 preferred over avg; avg alone is used with a gap (0.05)', () => {
    expect(scoreOf(C, { instances: [{ id: 'a', cpu_p95: 0.6, cpu_avg: 0.1, mem_p95: 0.6, mem_avg: 0.1 }] })).toBe(5)
    // cpu_avg 0.2 → 2.5; mem_avg 0.6 → 5; mean 3.8
    const r = run(C, { instances: [{ instance_id: 'a', cpu_avg: 0.2, mem_avg: 0.6 }] })
    expect(r.score).toBe(3.8)
    expect(r.confidence).toBe(0.95)
    expect(r.gaps).toEqual(['a.cpu_p95 missing, cpu_avg used'])
  })
  test('memory missing: CPU alone, a gap (0.03); an instance with neither is left out of the mean', () => {
    const r = run(C, { instances: [{ id: 'a', cpu_p95: 0.2 }] })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.97)
    // a: no figures (0.05 + 0.03), left out; b: 2.5 (mean would be 1.25 if a counted as 0)
    const both = run(C, { instances: [{ id: 'a' }, { id: 'b', cpu_p95: 0.2, mem_p95: 0.2 }] })
    expect(both.score).toBe(2.5)
    expect(both.confidence).toBe(0.92)
  })
  test('the metric is the mean over instances', () => {
    // mean(5, 2.5) = 3.75 → 3.8
    expect(
      scoreOf(C, {
        instances: [
          { id: 'a', cpu_p95: 0.5, mem_p95: 0.5 },
          { id: 'b', cpu_p95: 1, mem_p95: 1 },
        ],
      }),
    ).toBe(3.8)
  })
  test('a custom target (percentages) moves the band', () => {
    // band 0.5–0.7: cpu 0.25 → 5 × 0.25/0.5 = 2.5; mem 0.85 → 5 − 2.5 × 0.15/0.3 = 3.75; mean 3.125 → 3.1
    expect(one(0.25, 0.85, { low: 50, high: 70 })).toBe(3.1)
    // high = 100%: nothing is above the band, no division by zero
    expect(one(1, 1, { low: 0.4, high: 1 })).toBe(5)
  })
  test('nothing usable is not scored', () => {
    expectNotScored(run(C, { instances: [] }))
    expectNotScored(run(C, { instances: [{ id: 'a' }] }))
  })
})

describe('k8s.utilization', () => {
  const K = 'k8s.utilization'
  const cluster = (c: Record<string, unknown>) => ({ clusters: [{ name: 'c', ...c }] })
  const full = (alloc: number, req: number, used: number) =>
    cluster({ cpu_allocatable: alloc, cpu_requested: req, cpu_used: used, mem_allocatable: alloc, mem_requested: req, mem_used: used })
  test('lower edges: packing 0.6 and efficiency 0.7 score 5, full confidence', () => {
    // 60/100 = 0.6, 42/60 = 0.7
    const r = run(K, full(100, 60, 42))
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    // upper packing edge 0.85, efficiency 1.0
    expect(scoreOf(K, full(100, 85, 85))).toBe(5)
  })
  test('below the bands: 5 × u / low', () => {
    // packing 0.3 → 5 × 0.3/0.6 = 2.5; efficiency 10.5/30 = 0.35 → 5 × 0.35/0.7 = 2.5
    expect(scoreOf(K, full(100, 30, 10.5))).toBe(2.5)
  })
  test('packing above 0.85 falls to 3.5 at 100% and no lower when requests exceed allocatable', () => {
    // packing 1 → 3.5, efficiency 1 → 5: mean(3.5, 5, 3.5, 5) = 4.25 → 4.3 (half up)
    expect(scoreOf(K, full(100, 100, 100))).toBe(4.3)
    // packing 1.2 capped at 1 → 3.5; efficiency 120/120 → 5
    expect(scoreOf(K, full(100, 120, 120))).toBe(4.3)
    // packing 0.925 → 5 − 1.5 × 0.075/0.15 = 4.25; efficiency 1 → 5: mean 4.625 → 4.6
    expect(scoreOf(K, full(100, 92.5, 92.5))).toBe(4.6)
  })
  test('usage above requests counts as 1, not as over-use', () => {
    // packing 0.7 → 5; efficiency 150/70 capped at 1 → 5
    expect(scoreOf(K, full(100, 70, 150))).toBe(5)
  })
  test('the cluster score is the mean of the parts present; missing memory is a gap (0.05)', () => {
    // cpu only: packing 0.3 → 2.5, efficiency 0.7 → 5: mean 3.75 → 3.8
    const r = run(K, cluster({ cpu_allocatable: 100, cpu_requested: 30, cpu_used: 21 }))
    expect(r.score).toBe(3.8)
    expect(r.confidence).toBe(0.95)
  })
  test('zero denominators leave the ratio out, as a gap', () => {
    // cpu_requested 0: packing 0/100 = 0 → 0; efficiency has no denominator → left out (0.08); memory missing (0.05)
    const r = run(K, cluster({ cpu_allocatable: 100, cpu_requested: 0, cpu_used: 5 }))
    expect(r.score).toBe(0)
    expect(r.confidence).toBe(0.87)
    // allocatable 0: packing left out (0.08); efficiency 42/60 = 0.7 → 5
    const z = run(
      K,
      cluster({ cpu_allocatable: 0, cpu_requested: 60, cpu_used: 42, mem_allocatable: 100, mem_requested: 60, mem_used: 42 }),
    )
    expect(z.score).toBe(5)
    expect(z.confidence).toBe(0.92)
  })
  test('the metric is the mean over clusters; alias id', () => {
    // mean(5, 2.5) = 3.75 → 3.8
    expect(
      scoreOf(K, {
        clusters: [
          { id: 'a', ...full(100, 60, 42).clusters[0], name: undefined },
          { id: 'b', ...full(100, 30, 10.5).clusters[0], name: undefined },
        ],
      }),
    ).toBe(3.8)
  })
  test('no request or usage figures is not scored', () => {
    expectNotScored(run(K, { clusters: [{ name: 'c' }] }))
    expectNotScored(run(K, { clusters: [] }))
  })
})

describe('scaling.effectiveness', () => {
  const S = 'scaling.effectiveness'
  const base = { saturation_minutes: 0, window_minutes: 1000, target_reaction_seconds: 300 }
  test('all successful, in time, never saturated: 5 with full confidence', () => {
    const r = run(S, { ...base, events: [{ type: 'scale_out', reaction_seconds: 60, success: true }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
  })
  test('a reaction exactly at the target is within it; one second over is not', () => {
    expect(scoreOf(S, { ...base, events: [{ reaction_seconds: 300, success: true }] })).toBe(5)
    // 5 × (0.4 × 1 + 0.3 × 0 + 0.3 × 1) = 3.5
    expect(scoreOf(S, { ...base, events: [{ reaction_seconds: 301, success: true }] })).toBe(3.5)
  })
  test('success rate: 0%, 50%', () => {
    // 5 × (0 + 0.3 + 0.3) = 3
    expect(scoreOf(S, { ...base, events: [{ reaction_seconds: 10, success: false }] })).toBe(3)
    // 5 × (0.4 × 0.5 + 0.3 + 0.3) = 4
    expect(
      scoreOf(S, {
        ...base,
        events: [
          { reaction_seconds: 10, success: false },
          { reaction_seconds: 10, success: true },
        ],
      }),
    ).toBe(4)
  })
  test('saturated 10% of the window zeroes that part, 5% halves it, more is no worse', () => {
    const ev = [{ reaction_seconds: 10, success: true }]
    // 5 × (0.4 + 0.3 + 0.3 × (1 − 1)) = 3.5
    expect(scoreOf(S, { ...base, events: ev, saturation_minutes: 100 })).toBe(3.5)
    expect(scoreOf(S, { ...base, events: ev, saturation_minutes: 500 })).toBe(3.5)
    // 5 × (0.7 + 0.3 × 0.5) = 4.25 → 4.3
    expect(scoreOf(S, { ...base, events: ev, saturation_minutes: 50 })).toBe(4.3)
  })
  test('everything wrong scores 0', () => {
    expect(scoreOf(S, { ...base, saturation_minutes: 1000, events: [{ reaction_seconds: 999, success: false }] })).toBe(0)
  })
  test('no events: both rates count as 1', () => {
    const r = run(S, { ...base, events: [], saturation_minutes: 50 })
    // 5 × (0.4 + 0.3 + 0.15) = 4.25 → 4.3
    expect(r.score).toBe(4.3)
    expect(r.confidence).toBe(1)
    // events missing altogether: the same, with a gap (0.3)
    const m = run(S, { saturation_minutes: 50, window_minutes: 1000, target_reaction_seconds: 300 })
    expect(m.score).toBe(4.3)
    expect(m.confidence).toBe(0.7)
  })
  test('aliases: scaling_events, duration_seconds, status words', () => {
    const r = run(S, {
      ...base,
      scaling_events: [
        { direction: 'out', duration_seconds: 100, status: 'Successful' },
        { direction: 'out', duration_seconds: 100, status: 'completed' },
        { direction: 'in', duration_seconds: 100, status: 'Failed' },
        { direction: 'in', duration_seconds: 100, status: 'incomplete' },
      ],
    })
    // success 2/4: 5 × (0.2 + 0.3 + 0.3) = 4
    expect(r.score).toBe(4)
    expect(scoreOf(S, { ...base, events: [{ reaction_seconds: 1, status: 'broken' }] })).toBe(3)
    expect(scoreOf(S, { ...base, events: [{ reaction_seconds: 1, success: 'yes' }] })).toBe(5)
  })
  test('events without a reaction time are left out of the timely share', () => {
    // timed: 1 of 1 within → 1 (it would be 0.5 if the untimed one counted as late)
    expect(
      scoreOf(S, {
        ...base,
        events: [{ reaction_seconds: 10, success: true }, { success: true }],
      }),
    ).toBe(5)
    // none timed: the share counts as 1, with a gap (0.15)
    const r = run(S, { ...base, events: [{ success: true }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.85)
  })
  test('target defaults to 300 s, with a gap (0.05)', () => {
    const { target_reaction_seconds: _, ...noTarget } = base
    const r = run(S, { ...noTarget, events: [{ reaction_seconds: 300, success: true }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.95)
    expect(scoreOf(S, { ...noTarget, events: [{ reaction_seconds: 301, success: true }] })).toBe(3.5)
  })
  test('saturation missing or a zero window: that part counts as 1, with a gap (0.15)', () => {
    const ev = [{ reaction_seconds: 10, success: false }]
    // 5 × (0 + 0.3 + 0.3) = 3
    const r = run(S, { events: ev, target_reaction_seconds: 300 })
    expect(r.score).toBe(3)
    expect(r.confidence).toBe(0.85)
    const z = run(S, { events: ev, target_reaction_seconds: 300, saturation_minutes: 10, window_minutes: 0 })
    expect(z.score).toBe(3)
    expect(z.confidence).toBe(0.85)
  })
  test('neither events nor saturation is not scored', () => {
    expectNotScored(run(S, { target_reaction_seconds: 300 }))
  })
})

describe('db.utilization', () => {
  const D = 'db.utilization'
  const db = (cpu: number, cu: number, cm: number, su: number, sa: number) => ({
    databases: [{ id: 'd', cpu_p95: cpu, connections_used: cu, connections_max: cm, storage_used_gb: su, storage_allocated_gb: sa }],
  })
  test('each band edge scores 5: CPU 0.3/0.75, connections 0.1/0.8, storage 0.4/0.85', () => {
    const r = run(D, db(0.3, 100, 1000, 40, 100))
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    expect(scoreOf(D, db(0.75, 800, 1000, 85, 100))).toBe(5)
  })
  test('below the bands: 5 × u / low', () => {
    // cpu 0.15/0.3, connections 0.05/0.1, storage 0.2/0.4: each 2.5
    expect(scoreOf(D, db(0.15, 50, 1000, 20, 100))).toBe(2.5)
    expect(scoreOf(D, db(0, 0, 1000, 0, 100))).toBe(0)
  })
  test('above the bands: each falls to 1.5 at 100%, and no lower past it', () => {
    expect(scoreOf(D, db(1, 1000, 1000, 100, 100))).toBe(1.5)
    // CPU as a percentage; connections and storage over their maxima are capped at 100%
    expect(scoreOf(D, db(100, 1200, 1000, 150, 100))).toBe(1.5)
    // cpu 0.875 → 5 − 3.5 × 0.125/0.25 = 3.25; the other two 5: mean 4.4167 → 4.4
    expect(scoreOf(D, db(0.875, 500, 1000, 50, 100))).toBe(4.4)
  })
  test('a ratio with a missing used figure is left out, with a gap, not scored 0', () => {
    // only CPU 0.5 → 5; connections_used and storage_used_gb missing (0.03 each)
    const r = run(D, { databases: [{ id: 'd', cpu_p95: 0.5, connections_max: 500, storage_allocated_gb: 100 }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.94)
    expect(r.gaps).toEqual(['d.connections_used missing', 'd.storage_used_gb missing'])
  })
  test('a zero or missing maximum leaves the ratio out, with a gap (0.03)', () => {
    // cpu 0.15 → 2.5 alone
    const r = run(D, { databases: [{ id: 'd', cpu_p95: 0.15, connections_used: 5, connections_max: 0, storage_used_gb: 5 }] })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.94)
  })
  test('CPU missing is a gap (0.08); aliases instances, name, cpu_avg', () => {
    const r = run(D, { instances: [{ name: 'd', connections_used: 50, connections_max: 1000 }] })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.89)
    expect(scoreOf(D, { instances: [{ name: 'd', cpu_avg: 0.15 }] })).toBe(2.5)
  })
  test('the metric is the mean over databases', () => {
    // mean(5, 1.5) = 3.25 → 3.3 (half up)
    expect(scoreOf(D, { databases: [db(0.5, 500, 1000, 50, 100).databases[0], db(1, 1000, 1000, 100, 100).databases[0]] })).toBe(3.3)
  })
  test('no figures is not scored', () => {
    expectNotScored(run(D, { databases: [{ id: 'd', engine: 'postgres' }] }))
    expectNotScored(run(D, { databases: [] }))
  })
})

describe('lb.performance', () => {
  const L = 'lb.performance'
  const slo = { p95_ms: 200, p99_ms: 400, '5xx_rate_max': 0.005 }
  const lb = (o: Record<string, unknown>) => ({ id: 'a', lat_p95: 100, lat_p99: 100, r5xx: 0, ...o })
  const one = (o: Record<string, unknown>) => scoreOf(L, { slo, load_balancers: [lb(o)] })
  test('exactly at every SLO scores 5', () => {
    const r = run(L, { slo, load_balancers: [lb({ lat_p95: 200, lat_p99: 400, r5xx: 0.005, unhealthy_minutes: 0 })] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
  })
  test('over the SLO: 5 × (2 − value / target); twice the target and beyond score 0', () => {
    // p95 210: 5 × 0.95 = 4.75; mean(4.75, 5, 5) = 4.9167 → 4.9
    expect(one({ lat_p95: 210 })).toBe(4.9)
    // p99 600: 5 × 0.5 = 2.5; mean(5, 2.5, 5) = 4.1667 → 4.2
    expect(one({ lat_p99: 600 })).toBe(4.2)
    // 5xx 0.0075: 2.5 → 4.2
    expect(one({ r5xx: 0.0075 })).toBe(4.2)
    expect(one({ lat_p95: 400, lat_p99: 800, r5xx: 0.01 })).toBe(0)
    expect(one({ lat_p95: 4000, lat_p99: 8000, r5xx: 0.5 })).toBe(0)
  })
  test('unhealthy minutes cost up to one point: min(1, minutes / 60)', () => {
    expect(one({ unhealthy_minutes: 30 })).toBe(4.5)
    expect(one({ unhealthy_minutes: 60 })).toBe(4)
    expect(one({ unhealthy_minutes: 600 })).toBe(4)
  })
  test('a balancer never scores below 0', () => {
    // a: mean 0 − 1 → 0 (not −1); b: 5; equal weight → 2.5
    expect(
      scoreOf(L, {
        slo,
        load_balancers: [lb({ id: 'a', lat_p95: 400, lat_p99: 800, r5xx: 0.01, unhealthy_minutes: 60 }), lb({ id: 'b' })],
      }),
    ).toBe(2.5)
  })
  test('weights: requests, 1 when absent, a plain mean when every balancer reports 0', () => {
    const bad = { lat_p95: 400, lat_p99: 800, r5xx: 0.01 }
    // 0 × 3 + 5 × 1 / 4 = 1.25 → 1.3
    expect(scoreOf(L, { slo, load_balancers: [lb({ id: 'a', ...bad, requests: 3 }), lb({ id: 'b', requests: 1 })] })).toBe(1.3)
    // absent → 1 each: 2.5
    expect(scoreOf(L, { slo, load_balancers: [lb({ id: 'a', ...bad }), lb({ id: 'b' })] })).toBe(2.5)
    // a balancer with no traffic does not count
    expect(scoreOf(L, { slo, load_balancers: [lb({ id: 'a', ...bad, requests: 0 }), lb({ id: 'b', requests: 10 })] })).toBe(5)
    // all zero: plain mean, not 0
    expect(scoreOf(L, { slo, load_balancers: [lb({ id: 'a', ...bad, requests: 0 }), lb({ id: 'b', requests: 0 })] })).toBe(2.5)
  })
  test('5xx rates may be percentages, in the record and in the SLO', () => {
    // 1.5 → 1.5% = 0.015 over 0.01: 5 × (2 − 1.5) = 2.5; mean(5, 5, 2.5) → 4.2
    expect(scoreOf(L, { slo: { ...slo, '5xx_rate_max': 0.01 }, load_balancers: [lb({ r5xx: 1.5 })] })).toBe(4.2)
    // SLO 2 → 2%: 0.03 over 0.02 → 2.5 → 4.2; 0.01 (1%) within → 5
    expect(scoreOf(L, { slo: { ...slo, '5xx_rate_max': 2 }, load_balancers: [lb({ r5xx: 0.03 })] })).toBe(4.2)
    expect(scoreOf(L, { slo: { ...slo, '5xx_rate_max': 2 }, load_balancers: [lb({ r5xx: 0.01 })] })).toBe(5)
  })
  test('aliases: name, p95_ms, p99_ms, error_rate_5xx, error_rate_max', () => {
    const r = run(L, {
      slo: { p95_ms: 200, p99_ms: 400, error_rate_max: 0.01 },
      load_balancers: [{ name: 'x', p95_ms: 300, p99_ms: 400, error_rate_5xx: 0.01 }],
    })
    // p95 300 → 2.5: mean(2.5, 5, 5) → 4.2
    expect(r.score).toBe(4.2)
    expect(r.gaps).toEqual([])
  })
  test('a partial SLO keeps the defaults for the rest, each a gap (0.05)', () => {
    // default p99 400 and 5xx 0.5%: p99 600 → 2.5 → 4.2
    const r = run(L, { slo: { p95_ms: 100 }, load_balancers: [lb({ lat_p95: 100, lat_p99: 600 })] })
    expect(r.score).toBe(4.2)
    expect(r.confidence).toBe(0.9)
    // no slo at all: one gap (0.2)
    expect(run(L, { load_balancers: [lb({})] }).confidence).toBe(0.8)
  })
  test('missing dimensions: the mean of those present, each a gap (0.1)', () => {
    // p95 300 → 2.5 alone
    const r = run(L, { slo, load_balancers: [{ id: 'a', lat_p95: 300 }] })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.8)
    expectNotScored(run(L, { slo, load_balancers: [{ id: 'a', requests: 5 }] }))
  })
})

describe('storage.efficiency', () => {
  const St = 'storage.efficiency'
  test('unattached share: 0% scores 5, 10% 2.5, 20% and more 0', () => {
    // attached fill 56/80 = 0.7 → 5; unattached 20/100 → 5 × (1 − 1) = 0: mean 2.5
    const vols = (unattached: number) => ({
      snapshots: [],
      volumes: [
        { id: 'a', size_gb: 100 - unattached, used_gb: 0.7 * (100 - unattached), attached: true },
        { id: 'b', size_gb: unattached, attached: false },
      ],
    })
    expect(scoreOf(St, vols(20))).toBe(2.5)
    expect(scoreOf(St, vols(40))).toBe(2.5)
    // 10% → 5 × (1 − 0.5) = 2.5; mean(2.5, 5) = 3.75 → 3.8
    expect(scoreOf(St, vols(10))).toBe(3.8)
  })
  test('state "in-use" is attached, any other state is not; neither counts as attached', () => {
    const r = run(St, {
      snapshots: [],
      volumes: [
        { id: 'a', size_gb: 80, used_gb: 56, state: 'in-use' },
        { id: 'b', size_gb: 20, state: 'available' },
      ],
    })
    expect(r.score).toBe(2.5)
    expect(scoreOf(St, { snapshots: [], volumes: [{ id: 'a', size_gb: 100, used_gb: 70 }] })).toBe(5)
  })
  test('fill band 0.5–0.9: edges 5, below 5 × fill / 0.5, above falls to 3 at 100%', () => {
    // one attached volume: the unattached part is 5, so score = mean(5, fill score)
    const fill = (used: number) => scoreOf(St, { snapshots: [], volumes: [{ id: 'a', size_gb: 100, used_gb: used, attached: true }] })
    expect(fill(50)).toBe(5)
    expect(fill(90)).toBe(5)
    // 0.25 → 2.5: mean 3.75 → 3.8
    expect(fill(25)).toBe(3.8)
    // 0.95 → 5 − 2 × 0.05/0.1 = 4: mean 4.5
    expect(fill(95)).toBe(4.5)
    // 1.0 → 3: mean 4; more used than size is capped at 100%
    expect(fill(100)).toBe(4)
    expect(fill(150)).toBe(4)
    // empty attached volume: 0 → mean 2.5
    expect(fill(0)).toBe(2.5)
  })
  test('fill is total used over total size, not a mean of per-volume fills', () => {
    // 100/200 = 0.5 → 5 (per-volume mean of 5 and 5 × 0.1/0.5 = 1 would give 3)
    expect(
      scoreOf(St, {
        snapshots: [],
        volumes: [
          { id: 'a', size_gb: 100, used_gb: 90, attached: true },
          { id: 'b', size_gb: 100, used_gb: 10, attached: true },
        ],
      }),
    ).toBe(5)
  })
  test('snapshots exactly at the maximum age are fine, one day older is not', () => {
    // volumes missing: a gap (0.4); snapshot part only
    const r = run(St, { snapshots: [{ id: 's', age_days: 90 }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.6)
    // 1 of 2 old → 2.5
    expect(
      scoreOf(St, {
        snapshots: [
          { id: 's', age_days: 90 },
          { id: 't', age_days: 91 },
        ],
      }),
    ).toBe(2.5)
    expect(scoreOf(St, { snapshot_max_age_days: 30, snapshots: [{ id: 's', age_days: 31 }] })).toBe(0)
    expect(scoreOf(St, { snapshot_max_age_days: '30', snapshots: [{ id: 's', age_days: 30 }] })).toBe(5)
  })
  test('a snapshot without age_days is left out of the share, a gap (0.05)', () => {
    const r = run(St, { volumes: [], snapshots: [{ id: 's', age_days: 10 }, { id: 't' }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.95)
    expectNotScored(run(St, { volumes: [], snapshots: [{ id: 't' }] }))
  })
  test('an attached volume without used_gb is left out of the fill, a gap (0.05)', () => {
    // unattached 0% → 5; fill unknown; snapshots missing (0.15)
    const r = run(St, { volumes: [{ id: 'a', size_gb: 100, attached: true }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.8)
  })
  test('nothing to score is not scored', () => {
    expectNotScored(run(St, { volumes: [], snapshots: [] }))
    expectNotScored(run(St, { volumes: [{ id: 'a', size_gb: 0 }], snapshots: [] }))
  })
})

describe('iac.coverage_drift', () => {
  const I = 'iac.coverage_drift'
  const counts = (total: number, managed: number, drifted: number) => ({
    total_resources: total,
    managed_resources: managed,
    drifted_resources: drifted,
  })
  test('100% coverage without drift scores 5; nothing managed scores 2', () => {
    const r = run(I, counts(100, 100, 0))
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    // coverage 0; drift over 0 managed is 0: 5 × (0 + 0.4) = 2
    expect(scoreOf(I, counts(10, 0, 0))).toBe(2)
  })
  test('drift: 10% halves the drift part, 20% zeroes it, more is no worse', () => {
    // 5 × (0.6 + 0.4 × 0.5) = 4
    expect(scoreOf(I, counts(100, 100, 10))).toBe(4)
    // 19%: 5 × (0.6 + 0.4 × 0.05) = 3.1
    expect(scoreOf(I, counts(100, 100, 19))).toBe(3.1)
    expect(scoreOf(I, counts(100, 100, 20))).toBe(3)
    expect(scoreOf(I, counts(100, 100, 100))).toBe(3)
  })
  test('coverage counts 60%: half managed without drift is 3.5', () => {
    // 5 × (0.6 × 0.5 + 0.4) = 3.5
    expect(scoreOf(I, counts(100, 50, 0))).toBe(3.5)
  })
  test('coverage is capped at 1 when managed exceeds total', () => {
    // coverage 1 (not 1.2), drift 12/120 = 10%: 5 × (0.6 + 0.2) = 4
    expect(scoreOf(I, counts(100, 120, 12))).toBe(4)
  })
  test('missing drift counts: a gap (0.25), drift taken as 0', () => {
    const r = run(I, { total_resources: 100, managed_resources: 100 })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.75)
  })
  test('coverage_pct instead of the counts', () => {
    // 5 × (0.6 × 0.5 + 0.4) = 3.5; gaps: managed missing (0.05), drift missing (0.25)
    const r = run(I, { coverage_pct: 50 })
    expect(r.score).toBe(3.5)
    expect(r.confidence).toBe(0.7)
    // with total_resources but no managed count, coverage_pct is still what counts: 5 × (0.48 + 0.4) = 4.4
    expect(scoreOf(I, { total_resources: 100, coverage_pct: 0.8 })).toBe(4.4)
    // a drift count without managed_resources cannot be a rate: a gap (0.25), drift taken as 0
    const d = run(I, { coverage_pct: 80, drifted_resources: 50 })
    expect(d.score).toBe(4.4)
    expect(d.confidence).toBe(0.7)
  })
  test('per-resource variant: managed | iac_managed, drifted', () => {
    // coverage 3/4, drift 1/3 → min(1, 5/3) = 1: 5 × 0.6 × 0.75 = 2.25 → 2.3 (half up)
    const r = run(I, {
      resources: [
        { id: 'a', managed: true, drifted: false },
        { id: 'b', iac_managed: true, drifted: false },
        { id: 'c', managed: false, drifted: false },
        { id: 'd', managed: 'yes', drifted: true },
      ],
    })
    expect(r.score).toBe(2.3)
    expect(r.confidence).toBe(1)
    // drifted missing on a record: counted as not drifted, a gap (0.1)
    const g = run(I, { resources: [{ id: 'a', managed: true }] })
    expect(g.score).toBe(5)
    expect(g.confidence).toBe(0.9)
  })
  test('zero total or no resources is not scored', () => {
    expectNotScored(run(I, counts(0, 0, 0)))
    expectNotScored(run(I, { resources: [] }))
    expectNotScored(run(I, { drifted_resources: 3 }))
  })
})

describe('availability.incidents', () => {
  const A = 'availability.incidents'
  const inc = (...severities: unknown[]) => ({
    slo_breaches: [],
    incidents: severities.map((s, i) => (typeof s === 'number' ? { id: `i${i}`, sev: s } : { id: `i${i}`, severity: s })),
  })
  test('one penalty per severity: sev1 1.5, sev2 1, sev3 0.5, sev4 0.2', () => {
    expect(scoreOf(A, inc('sev1'))).toBe(3.5)
    expect(scoreOf(A, inc('sev2'))).toBe(4)
    expect(scoreOf(A, inc('sev3'))).toBe(4.5)
    expect(scoreOf(A, inc('sev4'))).toBe(4.8)
  })
  test('severity names and numbers map the same way', () => {
    expect(scoreOf(A, inc('critical'))).toBe(3.5)
    expect(scoreOf(A, inc('High'))).toBe(4)
    expect(scoreOf(A, inc('medium'))).toBe(4.5)
    expect(scoreOf(A, inc('low'))).toBe(4.8)
    expect(scoreOf(A, inc(1))).toBe(3.5)
    expect(scoreOf(A, inc(4))).toBe(4.8)
    // all four: 5 − 3.2 = 1.8
    expect(scoreOf(A, inc('SEV-1', 2, 'sev3', 'sev4'))).toBe(1.8)
  })
  test('a missing or unknown severity counts as sev3 (0.5), a gap (0.05)', () => {
    for (const r of [run(A, inc('major')), run(A, inc(7)), run(A, inc(0)), run(A, { slo_breaches: [], incidents: [{ id: 'x' }] })]) {
      expect(r.score).toBe(4.5)
      expect(r.confidence).toBe(0.95)
    }
  })
  test('1.0 per SLO breach', () => {
    expect(scoreOf(A, { incidents: [], slo_breaches: [{}, {}] })).toBe(3)
  })
  test('measured availability: below target costs 1, equal to it does not', () => {
    const at = (target: unknown, measured: unknown) =>
      scoreOf(A, { incidents: [], slo_breaches: [], slo: { target }, measured_availability: measured })
    expect(at(0.999, 0.999)).toBe(5)
    expect(at(0.999, 0.9989)).toBe(4)
    expect(at(0.999, 0.9991)).toBe(5)
    // percentages: 99.9% equals 0.999
    expect(at(99.9, 0.999)).toBe(5)
    expect(at(0.999, 99.9)).toBe(5)
    expect(at(0.999, 99.8)).toBe(4)
  })
  test('measured availability without a target is not compared, a gap (0.05)', () => {
    const r = run(A, { incidents: [], slo_breaches: [], measured_availability: 0.5 })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.95)
  })
  test('floor 0', () => {
    // 4 × 1.5 + 1 + 1 = 8 → 0
    expect(
      scoreOf(A, {
        ...inc('sev1', 'sev1', 'sev1', 'sev1'),
        slo_breaches: [{}],
        slo: { target: 0.999 },
        measured_availability: 0.9,
      }),
    ).toBe(0)
  })
  test('only one of incidents and breaches: scored with a gap; neither: not scored', () => {
    // breaches only: incidents missing (0.4)
    const b = run(A, { slo_breaches: [{}] })
    expect(b.score).toBe(4)
    expect(b.confidence).toBe(0.6)
    // incidents only: breaches missing (0.3)
    const i = run(A, { incidents: [] })
    expect(i.score).toBe(5)
    expect(i.confidence).toBe(0.7)
    expectNotScored(run(A, { slo: { target: 0.999 } }))
  })
})

describe('cost.idle_underutilized', () => {
  const C = 'cost.idle_underutilized'
  const one = (r: Record<string, unknown>, total = 1000) => scoreOf(C, { total_monthly_spend: total, resources: [{ id: 'r', ...r }] })
  test('no waste scores 5 with full confidence', () => {
    const r = run(C, { total_monthly_spend: 1000, resources: [{ id: 'a', monthly_cost: 300, idle: false, underutilized: false }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
  })
  test('idle counts fully, underutilized half; 30% weighted waste scores 0, more is no worse', () => {
    // idle 15% → 5 × (1 − 0.5) = 2.5
    expect(one({ monthly_cost: 150, idle: true })).toBe(2.5)
    // underutilized 30% → waste 15% → 2.5
    expect(one({ monthly_cost: 300, underutilized: true })).toBe(2.5)
    // underutilized 60% → waste 30% → 0
    expect(one({ monthly_cost: 600, underutilized: true })).toBe(0)
    expect(one({ monthly_cost: 900, idle: true })).toBe(0)
  })
  test('CPU thresholds without flags: below 5% idle, below 20% underutilized', () => {
    // cpu exactly 5%: not idle, underutilized: 300 / 2 / 1000 = 15% → 2.5
    expect(one({ monthly_cost: 300, cpu_avg: 0.05 })).toBe(2.5)
    // just under 5%: idle → 30% → 0
    expect(one({ monthly_cost: 300, cpu_avg: 0.049 })).toBe(0)
    // exactly 20%: neither → 5; just under: underutilized → 2.5
    expect(one({ monthly_cost: 300, cpu_avg: 0.2 })).toBe(5)
    expect(one({ monthly_cost: 300, cpu_avg: 0.199 })).toBe(2.5)
    // percentages: 4 → 4% idle; 20 → 20% neither
    expect(one({ monthly_cost: 300, cpu_avg: 4 })).toBe(0)
    expect(one({ monthly_cost: 300, cpu_avg: 20 })).toBe(5)
  })
  test('flags override CPU', () => {
    expect(one({ monthly_cost: 300, cpu_avg: 0.01, idle: false, underutilized: false })).toBe(5)
    expect(one({ monthly_cost: 300, cpu_avg: 0.9, idle: true })).toBe(0)
    // idle false but CPU says underutilized: 2.5
    expect(one({ monthly_cost: 300, cpu_avg: 0.01, idle: false })).toBe(2.5)
  })
  test('total_cost alias; without a total the listed costs are summed, a gap (0.2)', () => {
    expect(scoreOf(C, { total_cost: 1000, resources: [{ id: 'a', cost: 150, idle: true }] })).toBe(2.5)
    // 10 idle of 100 listed: 10% → 5 × (1 − 1/3) = 3.33 → 3.3
    const r = run(C, {
      resources: [
        { id: 'a', monthly_cost: 10, idle: true },
        { id: 'b', monthly_cost: 90 },
      ],
    })
    expect(r.score).toBe(3.3)
    expect(r.confidence).toBe(0.8)
  })
  test('a resource without a cost is skipped, a gap (0.05)', () => {
    const r = run(C, {
      total_monthly_spend: 1000,
      resources: [
        { id: 'a', idle: true },
        { id: 'b', monthly_cost: 150, idle: true },
      ],
    })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.95)
  })
  test('zero spend or no resources is not scored', () => {
    expectNotScored(run(C, { total_monthly_spend: 0, resources: [{ id: 'a', monthly_cost: 0, idle: true }] }))
    expectNotScored(run(C, { resources: [{ id: 'a', monthly_cost: 0 }] }))
    expectNotScored(run(C, { total_monthly_spend: 1000, resources: [] }))
  })
})

describe('cost.commit_coverage', () => {
  const C = 'cost.commit_coverage'
  // utilization 95% scores 5, so the score is mean(coverage part, 5)
  const cov = (covered: number, eligible = 1000) => scoreOf(C, { eligible_spend: eligible, covered_spend: covered, utilization_pct: 95 })
  // coverage 80% scores 5, so the score is mean(5, utilization part)
  const util = (u: number) => scoreOf(C, { coverage_pct: 80, utilization_pct: u })
  test('coverage band 0.7–0.9: edges 5, below 5 × c / 0.7, above falls to 3 at 100%', () => {
    expect(cov(700)).toBe(5)
    expect(cov(900)).toBe(5)
    // 0.35 → 2.5: mean 3.75 → 3.8
    expect(cov(350)).toBe(3.8)
    // 0 → 0: mean 2.5
    expect(cov(0)).toBe(2.5)
    // 0.95 → 5 − 2 × 0.05/0.1 = 4: mean 4.5
    expect(cov(950)).toBe(4.5)
    // 1.0 → 3: mean 4; over-coverage capped at 100%
    expect(cov(1000)).toBe(4)
    expect(cov(1500)).toBe(4)
  })
  test('utilization: 95% scores 5, 50% 0, linear between, capped both ways', () => {
    expect(util(95)).toBe(5)
    expect(util(100)).toBe(5)
    // 50% → 0: mean 2.5; below 50% no lower
    expect(util(50)).toBe(2.5)
    expect(util(30)).toBe(2.5)
    // 72.5% → 2.5: mean 3.75 → 3.8
    expect(util(72.5)).toBe(3.8)
    expect(util(0.725)).toBe(3.8)
  })
  test('commitments: utilization weighted by amount (1 when absent); utilization_pct wins', () => {
    // (0.95 × 3 + 0.5 × 1) / 4 = 0.8375 → 5 × 0.3375/0.45 = 3.75; mean(5, 3.75) = 4.375 → 4.4
    const commitments = [
      { id: 'a', utilization: 95, amount: 3 },
      { id: 'b', utilization: 0.5, amount: 1 },
    ]
    expect(scoreOf(C, { coverage_pct: 80, commitments })).toBe(4.4)
    // without amounts: (0.95 + 0.5) / 2 = 0.725 → 2.5: mean 3.75 → 3.8
    expect(
      scoreOf(C, {
        coverage_pct: 80,
        commitments: [
          { id: 'a', utilization: 0.95 },
          { id: 'b', utilization: 0.5 },
        ],
      }),
    ).toBe(3.8)
    expect(scoreOf(C, { coverage_pct: 80, utilization_pct: 95, commitments })).toBe(5)
  })
  test('one part alone scores by itself, with a gap', () => {
    // coverage only: utilization gap (0.3)
    const c = run(C, { coverage_pct: 35 })
    expect(c.score).toBe(2.5)
    expect(c.confidence).toBe(0.7)
    // utilization only: coverage gap (0.4)
    const u = run(C, { utilization_pct: 72.5 })
    expect(u.score).toBe(2.5)
    expect(u.confidence).toBe(0.6)
  })
  test('coverage needs both spends and eligible spend above 0; else coverage_pct, else a gap', () => {
    // covered_spend missing: coverage_pct 80 is used (not 0 / 1000)
    expect(scoreOf(C, { eligible_spend: 1000, coverage_pct: 80, utilization_pct: 95 })).toBe(5)
    expect(scoreOf(C, { eligible_spend: 0, covered_spend: 0, coverage_pct: 80, utilization_pct: 95 })).toBe(5)
    // neither: utilization alone, with the coverage gap
    const r = run(C, { eligible_spend: 1000, utilization_pct: 95 })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.6)
  })
  test('neither coverage nor utilization is not scored', () => {
    expectNotScored(run(C, { eligible_spend: 0 }))
    expectNotScored(run(C, { commitments: [{ id: 'a', amount: 5 }] }))
  })
})

describe('cost.allocation_quality', () => {
  const Q = 'cost.allocation_quality'
  const alloc = (allocated: number) => scoreOf(Q, { total_cost: 1000, allocated_cost: allocated })
  test('95% allocated scores 5, 50% scores 0, linear between, capped both ways', () => {
    const r = run(Q, { total_cost: 1000, allocated_cost: 950 })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    expect(alloc(1000)).toBe(5)
    expect(alloc(1200)).toBe(5)
    expect(alloc(500)).toBe(0)
    expect(alloc(0)).toBe(0)
    // 72.5% → 5 × 0.225/0.45 = 2.5
    expect(alloc(725)).toBe(2.5)
    // just below 95%: 5 × 0.44/0.45 = 4.89 → 4.9
    expect(alloc(940)).toBe(4.9)
  })
  test('unallocated_cost and allocated_pct forms', () => {
    expect(scoreOf(Q, { total_cost: 1000, unallocated_cost: 275 })).toBe(2.5)
    expect(scoreOf(Q, { allocated_pct: 72.5 })).toBe(2.5)
    expect(scoreOf(Q, { allocated_pct: 0.95 })).toBe(5)
  })
  test('undistributed shared cost counts as unallocated', () => {
    const base = { total_cost: 1000, allocated_cost: 950, shared_cost: 225 }
    // 0.95 − 0.225 = 0.725 → 2.5
    expect(scoreOf(Q, { ...base, shared_cost_distributed: false })).toBe(2.5)
    expect(scoreOf(Q, { ...base, shared_cost_distributed: true })).toBe(5)
    expect(scoreOf(Q, { ...base, shared_cost_distributed: 'yes' })).toBe(5)
    // shared larger than allocated: effective floors at 0 → 0
    expect(scoreOf(Q, { ...base, shared_cost: 2000, shared_cost_distributed: false })).toBe(0)
  })
  test('a missing distributed flag counts as not distributed, a gap (0.1)', () => {
    const r = run(Q, { total_cost: 1000, allocated_cost: 950, shared_cost: 225 })
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.9)
  })
  test('shared cost without total_cost cannot be a share: ignored, a gap (0.05)', () => {
    const r = run(Q, { allocated_pct: 95, shared_cost: 225, shared_cost_distributed: false })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.95)
  })
  test('zero total or nothing usable is not scored', () => {
    expectNotScored(run(Q, { total_cost: 0, allocated_cost: 0 }))
    expectNotScored(run(Q, { allocated_cost: 900 }))
  })
})

describe('security.public_exposure', () => {
  const P = 'security.public_exposure'
  const one = (r: Record<string, unknown>) => scoreOf(P, { resources: [{ id: 'r', public: true, ...r }] })
  test('every admin or data port costs 1.5; other ports 0.5', () => {
    for (const port of [22, 3389, 3306, 5432, 1433, 6379, 27017, 9200, 11211]) expect(one({ open_ports: [port] })).toBe(3.5)
    expect(one({ open_ports: ['22'] })).toBe(3.5)
    expect(one({ open_ports: [443, 80] })).toBe(4.5)
    expect(one({ open_ports: [] })).toBe(4.5)
  })
  test('a public bucket or database costs 1.5; other types 0.5', () => {
    for (const type of ['s3_bucket', 'rds', 'database', 'storage_account']) expect(one({ type })).toBe(3.5)
    expect(one({ type: 'ec2' })).toBe(4.5)
  })
  test('one penalty per resource: a bucket with an open data port costs 1.5, not 3', () => {
    expect(one({ type: 's3_bucket', open_ports: [22, 3306] })).toBe(3.5)
  })
  test('justified or exception, and private resources, cost nothing', () => {
    expect(one({ open_ports: [22], justified: true })).toBe(5)
    expect(one({ open_ports: [22], exception: 'yes' })).toBe(5)
    expect(one({ public: false, open_ports: [22], type: 'rds' })).toBe(5)
    expect(scoreOf(P, { resources: [{ id: 'r', internet_facing: true, open_ports: [22] }] })).toBe(3.5)
  })
  test('penalties add up across resources, floor 0', () => {
    const r = (n: number, extra: Record<string, unknown>) => ({
      resources: Array.from({ length: n }, (_, i) => ({ id: `r${i}`, public: true, ...extra })),
    })
    // 3 × 0.5 = 1.5 → 3.5
    expect(scoreOf(P, r(3, {}))).toBe(3.5)
    // 3 × 1.5 = 4.5 → 0.5; 4 × 1.5 = 6 → 0
    expect(scoreOf(P, r(3, { open_ports: [22] }))).toBe(0.5)
    expect(scoreOf(P, r(4, { open_ports: [22] }))).toBe(0)
  })
  test('a missing public flag counts as not public, a gap (0.05)', () => {
    const r = run(P, { resources: [{ id: 'r', open_ports: [22] }] })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(0.95)
  })
  test('an empty inventory is not scored', () => {
    expectNotScored(run(P, { resources: [] }))
    expectNotScored(run(P, { resources: ['x'] }))
  })
})

describe('security.encryption', () => {
  const E = 'security.encryption'
  const res = (...rs: [unknown, unknown][]) => ({
    resources: rs.map(([rest, transit], i) => ({ id: `r${i}`, encrypted_at_rest: rest, encrypted_in_transit: transit })),
  })
  test('100% and 0%', () => {
    const r = run(E, res([true, true]))
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    expect(scoreOf(E, res([false, false]))).toBe(0)
  })
  test('at rest weighs 0.7, in transit 0.3', () => {
    expect(scoreOf(E, res([true, false]))).toBe(3.5)
    expect(scoreOf(E, res([false, true]))).toBe(1.5)
    // 3/4 each: 5 × 0.75 = 3.75 → 3.8 (half up)
    expect(scoreOf(E, res([true, true], [true, true], [true, false], [false, true]))).toBe(3.8)
  })
  test('each share is over the resources that state it', () => {
    // at rest known for 2 of 3 (both yes) → 1; transit 0 of 3 → 5 × 0.7 = 3.5; gap (0.15)
    const r = run(E, res([true, false], [true, false], [undefined, false]))
    expect(r.score).toBe(3.5)
    expect(r.confidence).toBe(0.85)
  })
  test('with only one of the two known, 5 × that share', () => {
    // at rest only, 1 of 2: 2.5; transit gap (0.1)
    const r = run(E, res([true, undefined], [false, undefined]))
    expect(r.score).toBe(2.5)
    expect(r.confidence).toBe(0.9)
    // transit only, 1 of 4: 1.25 → 1.3; at-rest gap (0.15)
    const t = run(E, res([undefined, true], [undefined, false], [undefined, false], [undefined, false]))
    expect(t.score).toBe(1.3)
    expect(t.confidence).toBe(0.85)
  })
  test('aliases encrypted and tls, and yes/no strings', () => {
    expect(scoreOf(E, { resources: [{ id: 'a', encrypted: 'yes', tls: 'no' }] })).toBe(3.5)
    expect(scoreOf(E, { resources: [{ id: 'a', encrypted: 'false', tls: 'true' }] })).toBe(1.5)
  })
  test('no resource stating its encryption is not scored', () => {
    expectNotScored(run(E, { resources: [{ id: 'a' }] }))
    expectNotScored(run(E, { resources: [] }))
  })
})

describe('security.iam_risk', () => {
  const I = 'security.iam_risk'
  const clean = { root_mfa: true, root_access_keys: false, users: [] as unknown[], policies: [] as unknown[] }
  const users = (n: number, u: Record<string, unknown>) => Array.from({ length: n }, (_, i) => ({ name: `u${i}`, mfa: true, ...u }))
  test('no risk scores 5 with full confidence', () => {
    const r = run(I, clean)
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
  })
  test('root without MFA costs 2, root access keys 2', () => {
    expect(scoreOf(I, { ...clean, root_mfa: false })).toBe(3)
    expect(scoreOf(I, { ...clean, root_access_keys: true })).toBe(3)
    expect(scoreOf(I, { ...clean, root_mfa: false, root_access_keys: 'yes' })).toBe(1)
  })
  test('users without MFA: 0.3 each, at most 1.5', () => {
    expect(scoreOf(I, { ...clean, users: users(1, { mfa: false }) })).toBe(4.7)
    expect(scoreOf(I, { ...clean, users: users(5, { mfa: false }) })).toBe(3.5)
    expect(scoreOf(I, { ...clean, users: users(6, { mfa: false }) })).toBe(3.5)
    expect(scoreOf(I, { ...clean, users: [{ name: 'a', mfa_enabled: false }] })).toBe(4.7)
  })
  test('access keys older than the maximum: 0.2 each, at most 1; exactly at the maximum is fine', () => {
    expect(scoreOf(I, { ...clean, users: users(1, { access_key_age_days: 90 }) })).toBe(5)
    expect(scoreOf(I, { ...clean, users: users(1, { access_key_age_days: 91 }) })).toBe(4.8)
    expect(scoreOf(I, { ...clean, users: users(5, { access_key_age_days: 400 }) })).toBe(4)
    expect(scoreOf(I, { ...clean, users: users(6, { access_key_age_days: 400 }) })).toBe(4)
    expect(scoreOf(I, { ...clean, key_max_age_days: 30, users: users(1, { access_key_age_days: 31 }) })).toBe(4.8)
    expect(scoreOf(I, { ...clean, key_max_age_days: 30, users: users(1, { access_key_age_days: 30 }) })).toBe(5)
  })
  test('wildcard policies: 0.5 each, at most 1.5; * action on * resource, or the wildcard flag', () => {
    const wild = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `p${i}`, actions: ['*'], resources: ['*'] }))
    expect(scoreOf(I, { ...clean, policies: wild(1) })).toBe(4.5)
    expect(scoreOf(I, { ...clean, policies: wild(3) })).toBe(3.5)
    expect(scoreOf(I, { ...clean, policies: wild(4) })).toBe(3.5)
    expect(scoreOf(I, { ...clean, policies: [{ name: 'p', wildcard: true }] })).toBe(4.5)
    // * action on one resource, or a service wildcard on *, is not the full wildcard
    expect(scoreOf(I, { ...clean, policies: [{ name: 'p', actions: ['*'], resources: ['arn:aws:s3:::b/*'] }] })).toBe(5)
    expect(scoreOf(I, { ...clean, policies: [{ name: 'p', actions: ['s3:*'], resources: ['*'] }] })).toBe(5)
  })
  test('floor 0: every penalty at its cap is 8 points', () => {
    expect(
      scoreOf(I, {
        root_mfa: false,
        root_access_keys: true,
        users: users(6, { mfa: false, access_key_age_days: 400 }),
        policies: [{ name: 'a', wildcard: true }],
      }),
    ).toBe(0)
  })
  test('gaps: root_mfa (0.1), root_access_keys (0.1), users (0.25), policies (0.15)', () => {
    expect(run(I, { ...clean, root_mfa: undefined }).confidence).toBe(0.9)
    expect(run(I, { ...clean, root_access_keys: undefined }).confidence).toBe(0.9)
    expect(run(I, { root_mfa: true, root_access_keys: false }).confidence).toBe(0.6)
    expectNotScored(run(I, { root_access_keys: true }))
  })
})

describe('security.vuln_patch', () => {
  const V = 'security.vuln_patch'
  const f = (severity: string, age_days?: number, extra: Record<string, unknown> = {}) => ({
    id: `${severity}-${age_days}`,
    severity,
    age_days,
    ...extra,
  })
  // patch compliance absent: the findings score alone (a gap of 0.1)
  const fs = (...findings: unknown[]) => scoreOf(V, { findings })
  test('at the SLA is within it, one day past is not (default 7, 30, 90, 180)', () => {
    expect(fs(f('critical', 7))).toBe(4.7)
    expect(fs(f('critical', 8))).toBe(4)
    expect(fs(f('high', 30))).toBe(4.9)
    expect(fs(f('high', 31))).toBe(4.5)
    // medium: 5 of them, 5 × 0.02 = 0.1 within, 5 × 0.1 = 0.5 past
    expect(fs(...Array(5).fill(f('medium', 90)))).toBe(4.9)
    expect(fs(...Array(5).fill(f('medium', 91)))).toBe(4.5)
    // low: nothing within, 0.02 past: 5 × 0.02 = 0.1
    expect(fs(...Array(5).fill(f('low', 180)))).toBe(5)
    expect(fs(...Array(5).fill(f('low', 181)))).toBe(4.9)
  })
  test('the findings score is capped at 5 points of penalty', () => {
    expect(fs(...Array(5).fill(f('critical', 60)))).toBe(0)
    expect(fs(...Array(9).fill(f('critical', 60)))).toBe(0)
  })
  test('with patch compliance: 0.7 × findings + 0.3 × 5 × compliance; compliance alone: 5 × compliance', () => {
    const r = run(V, { findings: [], patch_compliance_pct: 100 })
    expect(r.score).toBe(5)
    expect(r.confidence).toBe(1)
    // 0.7 × 5 + 0 = 3.5
    expect(scoreOf(V, { findings: [], patch_compliance_pct: 0 })).toBe(3.5)
    // 0.7 × 0 + 1.5 × 1 = 1.5
    expect(scoreOf(V, { findings: Array(5).fill(f('critical', 60)), patch_compliance_pct: 1 })).toBe(1.5)
    // 0.7 × 4 + 1.5 × 0.5 = 3.55 → 3.6 (half up)
    expect(scoreOf(V, { findings: [f('critical', 60)], patch_compliance_pct: 50 })).toBe(3.6)
    // findings missing: 5 × 0.5 = 2.5, a gap (0.4)
    const c = run(V, { patch_compliance_pct: 50 })
    expect(c.score).toBe(2.5)
    expect(c.confidence).toBe(0.6)
  })
  test('fixed, resolved and closed findings are ignored; "unresolved" is open', () => {
    expect(fs(f('critical', 60, { fixed: true }), f('critical', 60, { status: 'Resolved' }), f('critical', 60, { status: 'closed' }))).toBe(
      5,
    )
    expect(fs(f('critical', 60, { status: 'unresolved' }))).toBe(4)
    expect(fs(f('critical', 60, { status: 'open', fixed: false }))).toBe(4)
  })
  test('a finding without age_days counts as past its SLA, a gap (0.03)', () => {
    const r = run(V, { findings: [f('critical')], patch_compliance_pct: 100 })
    // findings 4: 0.7 × 4 + 1.5 = 4.3
    expect(r.score).toBe(4.3)
    expect(r.confidence).toBe(0.97)
  })
  test('an unknown severity counts as medium, a gap (0.03)', () => {
    // 5 × medium past = 0.5 → 4.5
    const r = run(V, { findings: Array(5).fill(f('urgent', 100)), patch_compliance_pct: 100 })
    // 0.7 × 4.5 + 1.5 = 4.65 → 4.7
    expect(r.score).toBe(4.7)
    expect(r.confidence).toBe(0.85)
  })
  test('a partial sla_days keeps the defaults for the others', () => {
    // critical SLA 3: age 5 past → 1; high keeps 30: age 45 past → 0.5 → 3.5
    expect(scoreOf(V, { sla_days: { critical: 3 }, findings: [f('critical', 5), f('high', 45)] })).toBe(3.5)
  })
  test('confidence never drops below 0.1 for a scored metric', () => {
    // 40 findings without severity or age: 40 × (0.03 + 0.03) + 0.1 ≫ 0.9; 40 × medium past = 4 → 1
    const r = run(V, { findings: Array.from({ length: 40 }, (_, i) => ({ id: `x${i}` })) })
    expect(r.score).toBe(1)
    expect(r.confidence).toBe(0.1)
  })
  test('neither findings nor compliance is not scored', () => {
    expectNotScored(run(V, { sla_days: { critical: 7 } }))
  })
})
