import { describe, expect, test } from 'bun:test'
import { METRIC_BY_ID, METRICS } from '../../src/batch/metric-list.ts'
import { bandScore } from '../../src/batch/metrics/shared.ts'

const score = (id: string, input: unknown) => METRIC_BY_ID.get(id)!.score(input)

const SAMPLE_LB = {
  load_balancers: [{ id: 'alb-1', lat_p95: 120, lat_p99: 240, r5xx: 0.002, unhealthy_minutes: 1, requests: 1800000 }],
  slo: { p95_ms: 200, p99_ms: 400, '5xx_rate_max': 0.005 },
}
const SAMPLE_AVAIL = { incidents: [], slo_breaches: [], slo: { objective: 'availability', target: 0.999 } }

describe('batch scorers: the Sample1 examples', () => {
  test('one load balancer inside every SLO scores high with full confidence', () => {
    const r = score('lb.performance', SAMPLE_LB)
    expect(r.score).toBeGreaterThanOrEqual(4.5)
    expect(r.confidence).toBe(1)
    expect(r.gaps).toEqual([])
    expect(r.rationale).toContain('within SLO')
  })
  test('no incidents and no breaches scores 5.0', () => {
    const r = score('availability.incidents', SAMPLE_AVAIL)
    expect(r.score).toBe(5)
    expect(r.metric_id).toBe('availability.incidents')
  })
})

// For each metric a good input and a bad one; good ≥ 4.5, bad ≤ 2.
const CASES: Record<string, { good: unknown; bad: unknown }> = {
  'tagging.coverage': {
    good: {
      required_tags: ['owner', 'env'],
      resources: [
        { id: 'a', tags: { owner: 'x', env: 'p' } },
        {
          id: 'b',
          tags: [
            { Key: 'Owner', Value: 'y' },
            { Key: 'env', Value: 'p' },
          ],
        },
      ],
    },
    bad: {
      required_tags: ['owner', 'env'],
      resources: [
        { id: 'a', tags: {} },
        { id: 'b', tags: { owner: 'x' } },
        { id: 'c', tags: {} },
      ],
    },
  },
  'compute.utilization': {
    good: {
      instances: [
        { id: 'a', cpu_p95: 0.6, mem_avg: 0.7 },
        { id: 'b', cpu_p95: 65, mem_avg: 55 },
      ],
    },
    bad: {
      instances: [
        { id: 'a', cpu_p95: 0.05, mem_avg: 0.1 },
        { id: 'b', cpu_p95: 0.1, mem_avg: 0.08 },
      ],
    },
  },
  'k8s.utilization': {
    good: {
      clusters: [
        { name: 'p', cpu_allocatable: 100, cpu_requested: 75, cpu_used: 70, mem_allocatable: 400, mem_requested: 300, mem_used: 260 },
      ],
    },
    bad: {
      clusters: [{ name: 'p', cpu_allocatable: 100, cpu_requested: 10, cpu_used: 1, mem_allocatable: 400, mem_requested: 40, mem_used: 5 }],
    },
  },
  'scaling.effectiveness': {
    good: { events: [{ reaction_seconds: 60, success: true }], saturation_minutes: 0, window_minutes: 10080, target_reaction_seconds: 300 },
    bad: {
      events: [
        { reaction_seconds: 900, success: false },
        { reaction_seconds: 600, success: false },
      ],
      saturation_minutes: 2000,
      window_minutes: 10080,
      target_reaction_seconds: 300,
    },
  },
  'db.utilization': {
    good: {
      databases: [{ id: 'a', cpu_p95: 0.5, connections_used: 200, connections_max: 500, storage_used_gb: 300, storage_allocated_gb: 500 }],
    },
    bad: {
      databases: [{ id: 'a', cpu_p95: 0.02, connections_used: 1, connections_max: 1000, storage_used_gb: 10, storage_allocated_gb: 1000 }],
    },
  },
  'lb.performance': {
    good: SAMPLE_LB,
    bad: { load_balancers: [{ id: 'x', lat_p95: 450, lat_p99: 900, r5xx: 0.02, unhealthy_minutes: 90 }], slo: SAMPLE_LB.slo },
  },
  'storage.efficiency': {
    good: { volumes: [{ id: 'a', size_gb: 100, used_gb: 70, attached: true }], snapshots: [{ id: 's', age_days: 10 }] },
    bad: {
      volumes: [
        { id: 'a', size_gb: 100, used_gb: 5, attached: true },
        { id: 'b', size_gb: 100, attached: false },
      ],
      snapshots: [{ id: 's', age_days: 400 }],
    },
  },
  'iac.coverage_drift': {
    good: { total_resources: 100, managed_resources: 98, drifted_resources: 0 },
    bad: { total_resources: 100, managed_resources: 20, drifted_resources: 8 },
  },
  'availability.incidents': {
    good: SAMPLE_AVAIL,
    bad: {
      incidents: [
        { id: 'a', severity: 'sev1' },
        { id: 'b', severity: 'critical' },
      ],
      slo_breaches: [{ id: 'x' }],
      slo: { target: 0.999 },
    },
  },
  'cost.idle_underutilized': {
    good: { total_monthly_spend: 10000, resources: [{ id: 'a', monthly_cost: 50, idle: true }] },
    bad: {
      total_monthly_spend: 10000,
      resources: [
        { id: 'a', monthly_cost: 3000, idle: true },
        { id: 'b', monthly_cost: 2000, cpu_avg: 0.1 },
      ],
    },
  },
  'cost.commit_coverage': {
    good: { eligible_spend: 1000, covered_spend: 800, utilization_pct: 98 },
    bad: { eligible_spend: 1000, covered_spend: 100, utilization_pct: 55 },
  },
  'cost.allocation_quality': {
    good: { total_cost: 1000, allocated_cost: 970 },
    bad: { total_cost: 1000, unallocated_cost: 450 },
  },
  'security.public_exposure': {
    good: {
      resources: [
        { id: 'alb', public: true, open_ports: [443], justified: true },
        { id: 'db', public: false },
      ],
    },
    bad: {
      resources: [
        { id: 'sg', public: true, open_ports: [22, 3389] },
        { id: 'b', type: 's3_bucket', public: true },
        { id: 'c', public: 'yes' },
      ],
    },
  },
  'security.encryption': {
    good: { resources: [{ id: 'a', encrypted_at_rest: true, encrypted_in_transit: true }] },
    bad: {
      resources: [
        { id: 'a', encrypted_at_rest: false, encrypted_in_transit: false },
        { id: 'b', encrypted: false, tls: true },
      ],
    },
  },
  'security.iam_risk': {
    good: { root_mfa: true, root_access_keys: false, users: [{ name: 'a', mfa: true, access_key_age_days: 10 }], policies: [] },
    bad: {
      root_mfa: false,
      root_access_keys: true,
      users: [{ name: 'a', mfa: false, access_key_age_days: 400 }],
      policies: [{ name: 'p', wildcard: true }],
    },
  },
  'security.vuln_patch': {
    good: { findings: [{ id: 'c', severity: 'low', age_days: 3 }], patch_compliance_pct: 99 },
    bad: { findings: [1, 2, 3, 4].map((i) => ({ id: `c${i}`, severity: 'critical', age_days: 60 })), patch_compliance_pct: 40 },
  },
}

describe('batch scorers: good scores high, bad scores low, missing fields are gaps', () => {
  test('every registered metric has a case', () => {
    expect(Object.keys(CASES).sort()).toEqual(METRICS.map((m) => m.id).sort())
  })
  for (const [id, c] of Object.entries(CASES)) {
    test(id, () => {
      const good = score(id, c.good)
      const bad = score(id, c.bad)
      expect(good.score).toBeGreaterThanOrEqual(4.5)
      expect(bad.score).toBeLessThanOrEqual(2)
      for (const r of [good, bad]) {
        expect(r.metric_id).toBe(id)
        expect(r.score).toBe(Math.round(r.score * 10) / 10)
        expect(r.confidence).toBeGreaterThan(0)
        expect(r.rationale.length).toBeGreaterThan(0)
      }
      expect(good.gaps).toEqual([])
      expect(good.confidence).toBe(1)
    })
    test(`${id}: nonsense input is not scored and never throws`, () => {
      for (const input of [null, 42, 'text', [], {}]) {
        const r = score(id, input)
        expect(r.score).toBeGreaterThanOrEqual(0)
        expect(r.confidence).toBeLessThan(1)
        expect(r.gaps.length).toBeGreaterThan(0)
      }
    })
  }
})

describe('batch scorers: gaps and variants', () => {
  test('a missing slo becomes a gap and lowers confidence; defaults still score', () => {
    const r = score('lb.performance', { load_balancers: SAMPLE_LB.load_balancers })
    expect(r.gaps.some((g) => g.includes('slo missing'))).toBe(true)
    expect(r.confidence).toBeLessThan(1)
    expect(r.score).toBeGreaterThanOrEqual(4.5)
  })
  test('a missing per-record field is a gap; the rest still scores', () => {
    const r = score('lb.performance', { ...SAMPLE_LB, load_balancers: [{ id: 'alb-1', lat_p95: 120, lat_p99: 240 }] })
    expect(r.gaps).toContain('alb-1.r5xx missing')
    expect(r.confidence).toBeLessThan(1)
    expect(r.score).toBe(5)
  })
  test('an unexpected top-level field is a cheap gap', () => {
    const r = score('availability.incidents', { ...SAMPLE_AVAIL, region: 'eu-west-1' })
    expect(r.gaps).toEqual(['unexpected field "region" ignored'])
    expect(r.confidence).toBeGreaterThan(0.9)
    expect(r.score).toBe(5)
  })
  test('a malformed record is skipped as a gap', () => {
    const r = score('compute.utilization', {
      instances: [
        { id: 'a', cpu_p95: 'lots' },
        { id: 'b', cpu_p95: 0.6, mem_avg: 0.6 },
      ],
    })
    expect(r.gaps[0]).toContain('instances[0]')
    expect(r.score).toBe(5)
  })
  test('numeric strings and percentages are accepted', () => {
    expect(score('compute.utilization', { instances: [{ id: 'a', cpu_p95: '60', mem_avg: '0.6' }] }).score).toBe(5)
  })
  test('lb: a p95 at twice the SLO zeroes that dimension; requests weight the average', () => {
    const r = score('lb.performance', {
      slo: SAMPLE_LB.slo,
      load_balancers: [
        { id: 'a', lat_p95: 400, lat_p99: 100, r5xx: 0, requests: 1 },
        { id: 'b', lat_p95: 100, lat_p99: 100, r5xx: 0, requests: 3 },
      ],
    })
    // a: mean(0, 5, 5) = 3.333; b: 5 → (3.333 + 15) / 4 = 4.58
    expect(r.score).toBe(4.6)
  })
  test('availability: penalties by severity and per breach', () => {
    const r = score('availability.incidents', {
      incidents: [{ severity: 'sev1' }, { severity: 'sev3' }],
      slo_breaches: [{}],
      slo: { target: 0.999 },
    })
    expect(r.score).toBe(2) // 5 - 1.5 - 0.5 - 1
  })
  test('bandScore boundaries', () => {
    expect(bandScore(0.4, 0.4, 0.8)).toBe(5)
    expect(bandScore(0.8, 0.4, 0.8)).toBe(5)
    expect(bandScore(0.2, 0.4, 0.8)).toBe(2.5)
    expect(bandScore(1, 0.4, 0.8)).toBe(2.5)
  })
  test('cost idle: 30% weighted waste scores 0; missing total is a gap', () => {
    expect(
      score('cost.idle_underutilized', { total_monthly_spend: 100, resources: [{ id: 'a', monthly_cost: 30, idle: true }] }).score,
    ).toBe(0)
    const r = score('cost.idle_underutilized', {
      resources: [
        { id: 'a', monthly_cost: 10, idle: true },
        { id: 'b', monthly_cost: 90 },
      ],
    })
    expect(r.gaps[0]).toContain('total_monthly_spend missing')
    expect(r.confidence).toBeLessThan(1)
  })
})
