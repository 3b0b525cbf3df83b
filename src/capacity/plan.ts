/**
 * Capacity planning, pure: facts in, decisions out (no I/O). Two views of the same workload:
 *
 * 1. The sizing formula, for sizing at a glance (docs/capacity.md):
 *      required_raw       = tasks_per_hour × duration_hours ÷ (concurrency × efficiency)
 *      required_instances = ⌈required_raw⌉
 *      with_headroom      = ⌈required_raw × (1 + headroom)⌉
 *      at_peak            = ⌈required_raw × peak × (1 + headroom)⌉
 *    Headroom and peak multiply the raw value, not an already rounded count, so rounding happens once.
 *
 * 2. Erlang C (M/M/c), for what the formula hides: with random (Poisson) arrivals, a fleet sized to the
 *    average is busy ~90% of the time and tasks queue. Each instance is `concurrency` servers, and a slot's
 *    effective service time is duration ÷ efficiency (the same overhead the formula charges), so the
 *    utilisation at n instances is exactly required_raw ÷ n.
 */
import { erlangBStepper, erlangCFromB, type QueueStats, queueStats, statsFromErlangC } from './erlang.ts'

export interface CapacityInput {
  tasksPerHour: number
  durationHours: number
  /** Concurrent tasks one instance runs (servers per instance). */
  concurrency: number
  /** Fraction of a slot's time spent on useful work, in (0, 1]. */
  efficiency: number
  /** Spare capacity kept above the average load, e.g. 0.3 for 30%. */
  headroom: number
  /** Peak load as a multiple of the average, e.g. 2 for twice the average. */
  peak: number
  /** Pick the smallest instance count whose p95 queue wait is at most this; undefined for no target. */
  targetWaitSeconds?: number | undefined
}

export interface HardwareTier {
  /** Concurrency range the tier covers, as in the hardware table. */
  concurrency: string
  cpuCores: string
  ramGb: number
  vramGb: number
}

export interface HardwareRecommendation {
  concurrency: number
  /** The tier for this concurrency, or null when it is beyond the table (above 8). */
  tier: HardwareTier | null
  /** Beyond the table: split each instance into `parts` instances of `concurrency` each (that tier's hardware). */
  split: { parts: number; concurrency: number; tier: HardwareTier } | null
}

export interface CandidateRow extends QueueStats {
  instances: number
  /** Whether the p95 wait meets the target; null without a target. */
  meetsTarget: boolean | null
}

export interface QueueingPlan {
  serversPerInstance: number
  arrivalsPerSecond: number
  /** duration ÷ efficiency, in seconds: the mean time a task holds one slot. */
  serviceSeconds: number
  /** Offered load in erlangs: arrivals per second × service seconds (= required_raw × concurrency). */
  loadErlangs: number
  percentile: number
  targetWaitSeconds: number | null
  /** The smallest instance count whose p95 wait meets the target; null without a target (or unreachable). */
  recommendedInstances: number | null
  /** Ascending by instances; one gap (rows left out) when the range is longer than MAX_ROWS. */
  candidates: CandidateRow[]
  /** The at_peak instance count under the peak arrival rate. */
  atPeak: CandidateRow | null
  /** Why there is no table (the load is beyond what the analysis evaluates); null otherwise. */
  skipped: string | null
}

export interface CapacityPlan {
  input: CapacityInput
  requiredRaw: number
  requiredInstances: number
  withHeadroomRaw: number
  withHeadroom: number
  atPeakRaw: number
  atPeak: number
  hardware: HardwareRecommendation
  queueing: QueueingPlan
}

/** The statistic `--target-wait` is checked against: the 95th percentile of the queue wait. */
export const WAIT_PERCENTILE = 0.95
/** Past this many servers the Erlang recursion is skipped; such loads are far beyond one orch fleet. */
export const MAX_SERVERS = 1_000_000
/** Rows beyond max(required, with_headroom, recommended) shown in the table. */
const EXTRA_ROWS = 2
/** A longer table keeps only its first rows and those around the marked counts (at most 20). */
const MAX_ROWS = 30

/** The hardware table: what one instance needs for a given concurrency. */
export const HARDWARE_TIERS: readonly (HardwareTier & { maxConcurrency: number })[] = [
  { maxConcurrency: 2, concurrency: '1-2', cpuCores: '4-8', ramGb: 16, vramGb: 8 },
  { maxConcurrency: 4, concurrency: '3-4', cpuCores: '8-16', ramGb: 32, vramGb: 12 },
  { maxConcurrency: 8, concurrency: '5-8', cpuCores: '16-32', ramGb: 64, vramGb: 24 },
]

/**
 * Drop floating-point noise before rounding up: 49 × 0.1 ÷ 0.7 is 7.000000000000001 in binary floating
 * point, and a bare ceil would ask for an eighth instance. Nine significant digits is far more than any
 * input carries and far less than double precision, so only the noise goes.
 */
export function tidy(value: number): number {
  return Number(value.toPrecision(9))
}

export function ceilTidy(value: number): number {
  return Math.ceil(tidy(value))
}

export function planCapacity(input: CapacityInput): CapacityPlan {
  const { tasksPerHour, durationHours, concurrency, efficiency, headroom, peak } = input
  const exact = (tasksPerHour * durationHours) / (concurrency * efficiency)
  const requiredRaw = tidy(exact)
  const withHeadroomRaw = tidy(exact * (1 + headroom))
  const atPeakRaw = tidy(exact * peak * (1 + headroom))
  const requiredInstances = ceilTidy(exact)
  const withHeadroom = ceilTidy(withHeadroomRaw)
  const atPeak = ceilTidy(atPeakRaw)
  return {
    input,
    requiredRaw,
    requiredInstances,
    withHeadroomRaw,
    withHeadroom,
    atPeakRaw,
    atPeak,
    hardware: recommendHardware(concurrency),
    queueing: planQueueing(input, { requiredInstances, withHeadroom, atPeak }),
  }
}

function tierFor(concurrency: number): HardwareTier | null {
  const found = HARDWARE_TIERS.find((t) => concurrency <= t.maxConcurrency)
  if (!found) return null
  const { maxConcurrency: _, ...tier } = found
  return tier
}

/** The hardware table per instance; above 8 it suggests the fewest equal parts that fit the table. */
export function recommendHardware(concurrency: number): HardwareRecommendation {
  const tier = tierFor(concurrency)
  if (tier) return { concurrency, tier, split: null }
  const parts = Math.ceil(concurrency / 8)
  const each = Math.ceil(concurrency / parts)
  return { concurrency, tier: null, split: { parts, concurrency: each, tier: tierFor(each) as HardwareTier } }
}

interface FormulaCounts {
  requiredInstances: number
  withHeadroom: number
  atPeak: number
}

function planQueueing(input: CapacityInput, counts: FormulaCounts): QueueingPlan {
  const { concurrency, targetWaitSeconds } = input
  const serviceSeconds = (input.durationHours * 3600) / input.efficiency
  const arrivalsPerSecond = input.tasksPerHour / 3600
  const loadErlangs = tidy((input.tasksPerHour * input.durationHours) / input.efficiency)
  const base = {
    serversPerInstance: concurrency,
    arrivalsPerSecond,
    serviceSeconds,
    loadErlangs,
    percentile: WAIT_PERCENTILE,
    targetWaitSeconds: targetWaitSeconds ?? null,
  }
  if (loadErlangs > MAX_SERVERS) {
    const skipped = `offered load ${loadErlangs} erlangs is beyond the ${MAX_SERVERS} servers the queueing analysis evaluates`
    return { ...base, recommendedInstances: null, candidates: [], atPeak: null, skipped }
  }
  const firstStable = Math.floor(loadErlangs / concurrency) + 1
  const recommendedInstances =
    targetWaitSeconds === undefined ? null : smallestMeetingTarget(loadErlangs, concurrency, serviceSeconds, targetWaitSeconds, firstStable)
  const start = Math.min(counts.requiredInstances, firstStable)
  // A large --headroom must not make the table walk millions of servers; rows that far out wait for nothing.
  const lastAffordable = Math.max(start, Math.floor((2 * MAX_SERVERS) / concurrency))
  const end = Math.min(Math.max(counts.requiredInstances, counts.withHeadroom, recommendedInstances ?? 0) + EXTRA_ROWS, lastAffordable)
  const judge = (row: QueueStats) => (targetWaitSeconds === undefined ? null : row.percentileWaitSeconds <= targetWaitSeconds)
  const marks = [counts.withHeadroom, recommendedInstances ?? start]
  const candidates = evaluate(candidateCounts(start, end, marks), loadErlangs, concurrency, serviceSeconds).map((row) => ({
    ...row,
    meetsTarget: judge(row),
  }))
  const peakAffordable = loadErlangs * input.peak <= MAX_SERVERS && counts.atPeak * concurrency <= 2 * MAX_SERVERS
  const peakRow = peakAffordable
    ? { instances: counts.atPeak, ...queueStats(counts.atPeak * concurrency, loadErlangs * input.peak, serviceSeconds, WAIT_PERCENTILE) }
    : undefined
  const atPeak = peakRow ? { ...peakRow, meetsTarget: judge(peakRow) } : null
  return { ...base, recommendedInstances, candidates, atPeak, skipped: null }
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)

/**
 * start..end when that fits MAX_ROWS; otherwise the first 10 rows (where waits change fastest) and two rows
 * either side of each marked count (headroom, target), ascending.
 */
function candidateCounts(start: number, end: number, marks: number[]): number[] {
  if (end - start + 1 <= MAX_ROWS) return range(start, end)
  const keep = new Set(range(start, start + 9))
  for (const mark of marks) for (const n of range(Math.max(start, mark - 2), Math.min(end, mark + 2))) keep.add(n)
  return [...keep].sort((a, b) => a - b)
}

/** Queue statistics for ascending instance counts, in one Erlang B recursion. */
function evaluate(counts: number[], load: number, concurrency: number, serviceSeconds: number) {
  const stepB = erlangBStepper(load)
  return counts.map((instances) => {
    const servers = instances * concurrency
    const pWait = erlangCFromB(servers, load, stepB(servers))
    return { instances, ...statsFromErlangC(servers, load, pWait, serviceSeconds, WAIT_PERCENTILE) }
  })
}

/**
 * The smallest instance count whose p95 queue wait is at most `target`. Waits fall as servers are added and
 * the p95 is 0 once P(wait) ≤ 5%, so the search ends a few √A servers past the load; the bound is a guard.
 */
export function smallestMeetingTarget(load: number, concurrency: number, serviceSeconds: number, target: number, from = 1): number | null {
  const stepB = erlangBStepper(load)
  for (let n = Math.max(1, from); n * concurrency <= 2 * MAX_SERVERS; n++) {
    const servers = n * concurrency
    const pWait = erlangCFromB(servers, load, stepB(servers))
    if (statsFromErlangC(servers, load, pWait, serviceSeconds, WAIT_PERCENTILE).percentileWaitSeconds <= target) return n
  }
  return null
}
