/**
 * What the scheduler knows about each backend (health, models served and loaded, slots in use, breaker),
 * and the routing rule: among healthy backends that serve the model and have a free slot, prefer one
 * where the model is already loaded, then the least busy.
 */
import type { Backend } from '../backends/types.ts'
import { type BreakerOptions, CircuitBreaker } from './breaker.ts'
import { OWN_KEY } from './limits.ts'

export interface BackendEntry {
  backend: Backend
  concurrency: number
  /** Where `concurrency` came from (limits.ts): a config key, or `default`; unset: the backend's own key. */
  concurrencySource?: string
  /** Models this backend serves, from config; undefined = whatever it reports (or anything, until known). */
  configuredModels?: string[]
}

export class BackendState {
  readonly backend: Backend
  readonly concurrency: number
  readonly concurrencySource: string
  readonly breaker: CircuitBreaker
  readonly configuredModels: Set<string> | undefined
  /** undefined until the first health check: an unknown backend is tried. */
  healthy: boolean | undefined = undefined
  discoveredModels: Set<string> | undefined
  loadedModels = new Set<string>()
  inflight = 0
  /** In flight per model, for models that must not run in parallel. */
  readonly perModel = new Map<string, number>()
  served = 0
  draining = false
  /** Not routable now but expected back (a pool worker restarting): requests for it wait instead of failing. */
  suspended = false

  constructor(entry: BackendEntry, breaker: BreakerOptions, now: () => number) {
    this.backend = entry.backend
    this.concurrency = entry.concurrency
    this.concurrencySource = entry.concurrencySource ?? OWN_KEY
    this.breaker = new CircuitBreaker(breaker, now)
    this.configuredModels = entry.configuredModels ? new Set(entry.configuredModels.map(normalizeModel)) : undefined
  }

  get name(): string {
    return this.backend.name
  }

  /** Healthy or not yet checked, and not draining. */
  get usable(): boolean {
    return this.healthy !== false && !this.draining && !this.suspended
  }

  serves(model: string): boolean {
    return this.servesKey(normalizeModel(model))
  }

  /** `serves`, for a model name already normalised (`name:tag`). */
  servesKey(m: string): boolean {
    if (this.configuredModels) return this.configuredModels.has(m)
    return this.discoveredModels === undefined || this.discoveredModels.has(m)
  }

  /** Whether the model list is known (from config or discovery), so "not served" is certain. */
  get knowsModels(): boolean {
    return this.configuredModels !== undefined || this.discoveredModels !== undefined
  }

  modelNames(): string[] {
    return [...(this.configuredModels ?? this.discoveredModels ?? [])]
  }
}

/** Ollama names a model `name:tag`; a bare name means `:latest`. */
export function normalizeModel(model: string): string {
  return model.includes(':') ? model : `${model}:latest`
}

export interface Capacity {
  /**
   * Whether this backend has room for one more call of model `m` (normalised): its concurrency, and one
   * at a time for a serial model.
   */
  hasRoom(state: BackendState, m: string): boolean
}

/** The best backend for `model` among those with room, or undefined. */
export function route(states: Iterable<BackendState>, model: string, capacity: Capacity): BackendState | undefined {
  const m = normalizeModel(model)
  let best: BackendState | undefined
  let bestScore = Number.POSITIVE_INFINITY
  for (const state of states) {
    if (!state.usable || !state.servesKey(m) || !state.breaker.canPass() || !capacity.hasRoom(state, m)) continue
    // Busy share in [0, 1); an already-loaded model saves a load that can take seconds, so it wins ties and
    // small differences (a full unit of preference).
    const score = state.inflight / state.concurrency + (state.loadedModels.has(m) ? 0 : 1)
    if (score < bestScore) {
      best = state
      bestScore = score
    }
  }
  return best
}
