/**
 * Circuit breaker per backend: after `failureThreshold` consecutive failures the circuit
 * opens and calls fail fast; after `resetTimeoutMs` it is half-open and lets exactly one trial call through;
 * the trial's success closes it, its failure opens it again for another `resetTimeoutMs`.
 */

export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  enabled: boolean
  failureThreshold: number
  resetTimeoutMs: number
}

export class CircuitBreaker {
  private failures = 0
  private openedAt = 0
  private trialInFlight = false
  private opened = false

  constructor(
    private readonly options: BreakerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** The state as of now; an open circuit whose timeout has passed reads as half-open. */
  get state(): BreakerState {
    if (!this.opened) return 'closed'
    return this.now() - this.openedAt >= this.options.resetTimeoutMs ? 'half_open' : 'open'
  }

  /** Milliseconds until an open circuit admits a trial call (0 when it would admit one now). */
  retryAfterMs(): number {
    if (!this.opened) return 0
    return Math.max(0, this.openedAt + this.options.resetTimeoutMs - this.now())
  }

  /** Whether a call may start now. Does not reserve anything; call `onStart` when it does start. */
  canPass(): boolean {
    if (!this.options.enabled) return true
    const state = this.state
    return state === 'closed' || (state === 'half_open' && !this.trialInFlight)
  }

  /** A call starts; in half-open state it is the trial. Returns whether it is the trial. */
  onStart(): boolean {
    if (this.options.enabled && this.state === 'half_open') {
      this.trialInFlight = true
      return true
    }
    return false
  }

  onSuccess(): void {
    this.failures = 0
    this.opened = false
    this.trialInFlight = false
  }

  onFailure(): void {
    this.trialInFlight = false
    if (!this.options.enabled) return
    this.failures++
    if (this.opened || this.failures >= this.options.failureThreshold) {
      this.opened = true
      this.openedAt = this.now()
    }
  }

  /** A call ended without saying anything about the backend (cancelled by its caller, 4xx). */
  onNeutral(isTrial: boolean): void {
    if (isTrial) this.trialInFlight = false
  }

  reset(): void {
    this.onSuccess()
  }
}
