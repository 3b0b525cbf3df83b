/**
 * Circuit breaker per backend: after `failureThreshold` consecutive failures the circuit
 * opens and calls fail fast; after `resetTimeoutMs` it is half-open and lets exactly one trial call through;
 * the trial's success closes it, its failure opens it again for another `resetTimeoutMs`.
 *
 * Listeners hear each opening (with its time) and each closing, so instances sharing a backend can share
 * what one of them found (breaker-sync.ts); what they hear back is applied with `applyRemote`, which tells
 * no listener, so a state passed on is never passed back.
 */

export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  enabled: boolean
  failureThreshold: number
  resetTimeoutMs: number
}

/** An opening (the circuit opened, or opened again, at `openedAt`) or a closing (a call succeeded). */
export interface BreakerTransition {
  state: 'open' | 'closed'
  /** ms since the epoch on this process's clock; 0 for a closing. */
  openedAt: number
  resetTimeoutMs: number
}

export type BreakerListener = (transition: BreakerTransition) => void

export class CircuitBreaker {
  private failures = 0
  private openedAt = 0
  private trialInFlight = false
  private opened = false
  private readonly listeners = new Set<BreakerListener>()

  constructor(
    private readonly options: BreakerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** The state as of now; an open circuit whose timeout has passed reads as half-open. */
  get state(): BreakerState {
    if (!this.opened) return 'closed'
    return this.now() - this.openedAt >= this.options.resetTimeoutMs ? 'half_open' : 'open'
  }

  /** When the circuit last opened (this process's clock); undefined while it is closed. */
  get openedAtMs(): number | undefined {
    return this.opened ? this.openedAt : undefined
  }

  get resetTimeoutMs(): number {
    return this.options.resetTimeoutMs
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
    const wasOpen = this.opened
    this.failures = 0
    this.opened = false
    this.trialInFlight = false
    if (wasOpen) this.tell({ state: 'closed', openedAt: 0, resetTimeoutMs: this.options.resetTimeoutMs })
  }

  onFailure(): void {
    this.trialInFlight = false
    if (!this.options.enabled) return
    this.failures++
    if (this.opened || this.failures >= this.options.failureThreshold) {
      this.opened = true
      this.openedAt = this.now()
      this.tell({ state: 'open', openedAt: this.openedAt, resetTimeoutMs: this.options.resetTimeoutMs })
    }
  }

  /**
   * Take a state another instance found: open since `openedAt` (this process's clock; a time in the past
   * may make it half-open at once, one in the future counts as now), or closed. Listeners are not told.
   */
  applyRemote(state: 'open' | 'closed', openedAt = 0): void {
    if (!this.options.enabled) return
    // A trial call in flight stays the trial: its outcome still closes or reopens the circuit.
    if (state === 'closed') {
      this.failures = 0
      this.opened = false
      return
    }
    this.opened = true
    this.openedAt = Math.min(openedAt, this.now())
  }

  /** Hear every local opening and closing; returns the unsubscribe. */
  onTransition(listener: BreakerListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private tell(transition: BreakerTransition): void {
    for (const listener of this.listeners) {
      try {
        listener(transition)
      } catch {
        // Whoever listens must not fail the call whose outcome this is.
      }
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
