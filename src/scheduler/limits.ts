/**
 * The concurrency limits, each with one meaning, resolved here and nowhere else:
 *
 * - a backend runs at most its `concurrency` calls at once: its own key, else `runtime.<type>.concurrency`
 *   (a per-backend default, never a cap over backends together), else DEFAULT_BACKEND_CONCURRENCY. A pool
 *   worker takes the runtime default of its API, except a llamacpp worker: its `llamacpp.parallel`, the
 *   requests it generates for at once.
 * - the task runner runs at most `agent_runner_concurrency` durable tasks at once (no cap of its own when
 *   `infrastructure_system.enabled` is false), and never more than the backends' slots plus its prefetch.
 *
 * Proxied calls have no overall cap: server.max_open_requests bounds the requests open, pool_max_queue_size
 * those waiting for a slot.
 */
import type { OrchConfig, PoolConfig } from '../config/schema.ts'

/** Calls in flight per backend when neither the backend nor `runtime.<type>` says. */
export const DEFAULT_BACKEND_CONCURRENCY = 4

export const OWN_KEY = 'backends[].concurrency'
export const BUILT_IN = 'default'
const RUNNER_KEY = 'infrastructure_system.distributed_simulation.agent_runner_concurrency'

/** An effective limit and where it came from: a config key, or `default` (built in). */
export interface Limit {
  concurrency: number
  source: string
}

/** A backend's effective concurrency: `own` (its key) if set, else the runtime default of its type, else 4. */
export function backendConcurrency(config: Pick<OrchConfig, 'runtime'>, type: string, own?: number | undefined): Limit {
  if (own !== undefined) return { concurrency: own, source: OWN_KEY }
  const runtime = Object.hasOwn(config.runtime, type) ? config.runtime[type] : undefined
  if (runtime) return { concurrency: runtime.concurrency, source: `runtime.${type}.concurrency` }
  return { concurrency: DEFAULT_BACKEND_CONCURRENCY, source: BUILT_IN }
}

/** The concurrency of each worker of a pool. */
export function poolWorkerConcurrency(config: Pick<OrchConfig, 'runtime'>, pool: PoolConfig): Limit {
  if (pool.llamacpp) return { concurrency: pool.llamacpp.parallel, source: 'pools[].llamacpp.parallel' }
  return backendConcurrency(config, pool.api)
}

/** Most durable tasks one orch process runs at once; null: no cap of its own (infrastructure_system off). */
export interface RunnerLimit {
  concurrency: number | null
  source: string
}

export function taskRunnerLimit(config: Pick<OrchConfig, 'infrastructure_system'>): RunnerLimit {
  const infra = config.infrastructure_system
  if (!infra.enabled) return { concurrency: null, source: 'infrastructure_system.enabled: false' }
  return { concurrency: infra.distributed_simulation.agent_runner_concurrency, source: RUNNER_KEY }
}

/** The effective limits of a running server, as GET /stats reports them under `limits`. */
export interface Limits {
  /** With the calls each has in flight now, so a reader sees how full it is. */
  backends: Array<{ name: string; inflight: number } & Limit>
  task_runner: RunnerLimit
}

/** What effectiveLimits reads of a backend's scheduler state. */
export interface BackendLimitState {
  name: string
  concurrency: number
  concurrencySource: string
  inflight: number
}

export function effectiveLimits(states: Iterable<BackendLimitState>, config: Pick<OrchConfig, 'infrastructure_system'>): Limits {
  const backends = [...states].map((s) => ({ name: s.name, concurrency: s.concurrency, source: s.concurrencySource, inflight: s.inflight }))
  return { backends, task_runner: taskRunnerLimit(config) }
}

/** One line: each backend's concurrency and its source, then the task runner's cap. */
export function formatLimits(limits: Limits): string {
  const backends = limits.backends.map((b) => `${b.name} ${b.concurrency} (${b.source})`).join(', ') || 'none'
  const runner = limits.task_runner
  const cap = runner.concurrency === null ? `no cap (${runner.source})` : `${runner.concurrency} (agent_runner_concurrency)`
  return `concurrency per backend: ${backends}; durable tasks at once: ${cap}`
}
