/**
 * The autoscaling policy, pure: a pool's sample, its policy and what the policy remembers → how many workers
 * it should have, and why. No clock of its own and no side effects, so recorded traces replay exactly.
 *
 * The rules, after the well-known autoscalers:
 * - Load is the work for the pool: requests and tasks waiting for its models, plus calls in flight on its
 *   workers (Ray Serve's ongoing requests). Each worker should carry `targetPerWorker` of it.
 * - The recommendation is `ceil(load / targetPerWorker)` (Kubernetes HPA's `ceil(current × metric /
 *   target)`), unless the load per ready worker is within `tolerance` of the target (0.1: ±10%), when it stays.
 *   Only ready workers count as capacity: a worker still starting (loading its model) carries nothing yet.
 * - Machine CPU or memory above its threshold recommends `ceil(current × used / threshold)` too; the highest
 *   recommendation wins.
 * - From zero (KEDA's activation): any load above `activation` wakes the pool to at least one worker.
 * - Up at once; down only to the highest recommendation of the last `downWindowMs` (HPA's stabilization
 *   window, 300 s), so a spike then silence does not flap.
 * - Idle (no load at all) for `idleMs`: down to `min`, which may be 0.
 * - Never above `max` nor below `min`.
 */

export interface PoolSample {
  /** Requests and durable tasks waiting for the pool's models. */
  queued: number
  /** Calls in flight on the pool's workers. */
  inflight: number
  /** Workers ready to serve (healthy). */
  ready: number
  /** Workers asked for: ready, starting and restarting; what the pool has now. */
  current: number
  /** Machine CPU and memory in use, percent; undefined when not known. */
  cpuPercent?: number | undefined
  memoryPercent?: number | undefined
}

export interface ScalePolicy {
  min: number
  max: number
  /** Load one worker should carry. */
  targetPerWorker: number
  /** Within this fraction of the target, nothing changes (0.1). */
  tolerance: number
  /** Scale down only to the highest recommendation of this window (ms). */
  downWindowMs: number
  /** No load for this long: down to min (ms). */
  idleMs: number
  /** Load above this wakes a pool at 0. */
  activation: number
  /** Percent; undefined: not a signal. */
  cpuThreshold?: number | undefined
  memoryThreshold?: number | undefined
}

/** What the policy remembers between evaluations of one pool. */
export interface PolicyMemory {
  /** Recommendations of the down window, oldest first. */
  recent: Array<{ at: number; desired: number }>
  /** When the pool last had load (undefined: never). */
  lastBusyAt: number | undefined
}

export interface Decision {
  desired: number
  /** Why, in words an operator reads in `orch scale status`. */
  reason: string
  memory: PolicyMemory
}

/** A pool's first memory; `since`: when it started, so its idle time counts from then (undefined: never busy). */
export const emptyMemory = (since?: number): PolicyMemory => ({ recent: [], lastBusyAt: since })

export function decide(sample: PoolSample, policy: ScalePolicy, memory: PolicyMemory, now: number): Decision {
  const load = sample.queued + sample.inflight
  const lastBusyAt = load > 0 ? now : memory.lastBusyAt
  const clamp = (n: number) => Math.min(policy.max, Math.max(policy.min, n))
  const figures = `load ${load} (${sample.queued} waiting, ${sample.inflight} in flight), ${sample.ready} ready of ${sample.current}`

  // Idle long enough: straight to the minimum, whatever the window remembers.
  if (load === 0 && (lastBusyAt === undefined || now - lastBusyAt >= policy.idleMs)) {
    const desired = clamp(policy.min)
    const since = lastBusyAt === undefined ? 'never busy' : `no load for ${Math.round((now - lastBusyAt) / 1000)} s`
    return {
      desired,
      reason: `${since} (scale_down_idle ${Math.round(policy.idleMs / 1000)} s): down to min ${policy.min}`,
      memory: { recent: [], lastBusyAt },
    }
  }

  const reasons: string[] = []
  let recommended: number
  if (sample.ready === 0) {
    // Nothing serves yet: as many as the load asks for, at least one once it passes the activation level.
    recommended = load > policy.activation ? Math.max(1, Math.ceil(load / policy.targetPerWorker)) : sample.current
    reasons.push(
      load > policy.activation ? `no worker ready: ceil(${load} / ${policy.targetPerWorker})` : 'no worker ready, load below activation',
    )
  } else {
    const ratio = load / (sample.ready * policy.targetPerWorker)
    if (Math.abs(ratio - 1) <= policy.tolerance) {
      recommended = sample.current
      reasons.push(`×${ratio.toFixed(2)} of target ${policy.targetPerWorker}/worker, within ±${policy.tolerance}`)
    } else {
      recommended = Math.ceil(load / policy.targetPerWorker)
      reasons.push(`×${ratio.toFixed(2)} of target ${policy.targetPerWorker}/worker: ceil(${load} / ${policy.targetPerWorker})`)
    }
    // Recently busy but quiet now: keep one worker until the idle time passes.
    if (recommended === 0) recommended = 1
    for (const [name, used, threshold] of [
      ['cpu', sample.cpuPercent, policy.cpuThreshold],
      ['memory', sample.memoryPercent, policy.memoryThreshold],
    ] as const) {
      if (used === undefined || threshold === undefined || used <= threshold) continue
      const byUse = Math.ceil(sample.current * (used / threshold))
      if (byUse > recommended) {
        recommended = byUse
        reasons.push(`${name} ${Math.round(used)}% over ${threshold}%: ceil(${sample.current} × ${used.toFixed(0)} / ${threshold})`)
      }
    }
  }

  const bounded = clamp(recommended)
  if (bounded !== recommended) reasons.push(bounded > recommended ? `raised to min ${policy.min}` : `capped at max ${policy.max}`)
  const recent = [...memory.recent.filter((r) => now - r.at < policy.downWindowMs), { at: now, desired: bounded }]
  let desired = bounded
  if (bounded < sample.current) {
    const highest = Math.max(...recent.map((r) => r.desired))
    if (highest > bounded) {
      desired = Math.min(sample.current, highest)
      reasons.push(`held at ${desired}: the highest recommendation of the last ${Math.round(policy.downWindowMs / 1000)} s`)
    }
  }
  return { desired, reason: `${figures}; ${reasons.join('; ')}`, memory: { recent, lastBusyAt } }
}
