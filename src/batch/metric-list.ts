/**
 * The 16 batch metrics (docs/batch-metrics.md): dotted ids, the exact input file names, category and weight.
 * Weights compare metrics within the whole batch and are renormalised over the metrics present, so only
 * their ratios matter. Why each weight is what it is lives beside it, and in docs/batch-metrics.md.
 */
import { scoreAvailabilityIncidents } from './metrics/availability-incidents.ts'
import { scoreComputeUtilization } from './metrics/compute-utilization.ts'
import { scoreCostAllocationQuality } from './metrics/cost-allocation-quality.ts'
import { scoreCostCommitCoverage } from './metrics/cost-commit-coverage.ts'
import { scoreCostIdleUnderutilized } from './metrics/cost-idle-underutilized.ts'
import { scoreDbUtilization } from './metrics/db-utilization.ts'
import { scoreIacCoverageDrift } from './metrics/iac-coverage-drift.ts'
import { scoreK8sUtilization } from './metrics/k8s-utilization.ts'
import { scoreLbPerformance } from './metrics/lb-performance.ts'
import { scoreScalingEffectiveness } from './metrics/scaling-effectiveness.ts'
import { scoreSecurityEncryption } from './metrics/security-encryption.ts'
import { scoreSecurityIamRisk } from './metrics/security-iam-risk.ts'
import { scoreSecurityPublicExposure } from './metrics/security-public-exposure.ts'
import { scoreSecurityVulnPatch } from './metrics/security-vuln-patch.ts'
import type { Scorer } from './metrics/shared.ts'
import { scoreStorageEfficiency } from './metrics/storage-efficiency.ts'
import { scoreTaggingCoverage } from './metrics/tagging-coverage.ts'

export type Category = 'reliability' | 'cost' | 'security' | 'efficiency'
export const CATEGORIES: readonly Category[] = ['reliability', 'cost', 'security', 'efficiency']

export interface MetricSpec {
  id: string
  file: string
  category: Category
  weight: number
  why: string
  score: Scorer
}

export const METRICS: readonly MetricSpec[] = [
  {
    id: 'tagging.coverage',
    file: 'tagging_coverage.json',
    category: 'efficiency',
    weight: 0.6,
    why: 'an enabler of cost allocation and ownership, not itself a cost or risk',
    score: scoreTaggingCoverage,
  },
  {
    id: 'compute.utilization',
    file: 'compute_utilization.json',
    category: 'efficiency',
    weight: 1,
    why: 'compute is usually the largest line of the bill',
    score: scoreComputeUtilization,
  },
  {
    id: 'k8s.utilization',
    file: 'k8s_utilization.json',
    category: 'efficiency',
    weight: 0.8,
    why: 'cluster waste is large but partly already counted in compute',
    score: scoreK8sUtilization,
  },
  {
    id: 'scaling.effectiveness',
    file: 'scaling_effectiveness.json',
    category: 'reliability',
    weight: 0.8,
    why: 'failed or slow scaling shows up as saturation before it shows up as an incident',
    score: scoreScalingEffectiveness,
  },
  {
    id: 'db.utilization',
    file: 'db_utilization.json',
    category: 'efficiency',
    weight: 0.8,
    why: 'databases are costly but rightsizing them is slower and riskier than compute',
    score: scoreDbUtilization,
  },
  {
    id: 'lb.performance',
    file: 'lb_performance.json',
    category: 'reliability',
    weight: 1,
    why: 'what users feel directly: latency and errors at the edge',
    score: scoreLbPerformance,
  },
  {
    id: 'storage.efficiency',
    file: 'storage_efficiency.json',
    category: 'efficiency',
    weight: 0.7,
    why: 'storage waste grows quietly but each unit is cheap',
    score: scoreStorageEfficiency,
  },
  {
    id: 'iac.coverage_drift',
    file: 'iac_coverage_drift.json',
    category: 'reliability',
    weight: 0.7,
    why: 'an indicator of how reproducible changes and recoveries are',
    score: scoreIacCoverageDrift,
  },
  {
    id: 'availability.incidents',
    file: 'availability_incidents.json',
    category: 'reliability',
    weight: 1.5,
    why: 'incidents and SLO breaches are the outcome every other reliability metric predicts',
    score: scoreAvailabilityIncidents,
  },
  {
    id: 'cost.idle_underutilized',
    file: 'cost_idle_underutilized.json',
    category: 'cost',
    weight: 1.2,
    why: 'idle spend is money spent for nothing, the quickest saving',
    score: scoreCostIdleUnderutilized,
  },
  {
    id: 'cost.commit_coverage',
    file: 'cost_commit_coverage.json',
    category: 'cost',
    weight: 1,
    why: 'commitments are the largest discount lever, and unused ones are waste',
    score: scoreCostCommitCoverage,
  },
  {
    id: 'cost.allocation_quality',
    file: 'cost_allocation_quality.json',
    category: 'cost',
    weight: 0.8,
    why: 'allocation does not save money itself but makes owners see their spend',
    score: scoreCostAllocationQuality,
  },
  {
    id: 'security.public_exposure',
    file: 'security_public_exposure.json',
    category: 'security',
    weight: 1.5,
    why: 'internet exposure is the most exploited path',
    score: scoreSecurityPublicExposure,
  },
  {
    id: 'security.encryption',
    file: 'security_encryption.json',
    category: 'security',
    weight: 1,
    why: 'a second line of defence once access control fails',
    score: scoreSecurityEncryption,
  },
  {
    id: 'security.iam_risk',
    file: 'security_iam_risk.json',
    category: 'security',
    weight: 1.5,
    why: 'stolen or over-broad credentials lead to account takeover',
    score: scoreSecurityIamRisk,
  },
  {
    id: 'security.vuln_patch',
    file: 'security_vuln_patch.json',
    category: 'security',
    weight: 1.2,
    why: 'unpatched known vulnerabilities are routinely exploited',
    score: scoreSecurityVulnPatch,
  },
]

export const METRIC_BY_ID: ReadonlyMap<string, MetricSpec> = new Map(METRICS.map((m) => [m.id, m]))
