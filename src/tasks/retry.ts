/**
 * Retry policy: exponential backoff with full jitter, and which errors are worth another attempt.
 * Pure; `random` is injectable so tests are deterministic.
 */
import { OrchError } from '../core/errors.ts'

export interface RetryPolicy {
  maxAttempts: number
  baseMs: number
  maxMs: number
}

/**
 * Delay before attempt `attempt + 1`, after `attempt` failed attempts (1-based): a uniform draw in
 * [cap/2, cap] with cap = min(maxMs, baseMs × 2^(attempt-1)). Half-jitter keeps retries spread out
 * without ever retrying at once.
 */
export function backoffMs(attempt: number, policy: Pick<RetryPolicy, 'baseMs' | 'maxMs'>, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(cap / 2 + random() * (cap / 2))
}

/** Errors that another attempt can fix: backend connection failures, timeouts, 5xx, 429. */
export function isRetryableError(error: unknown): boolean {
  return error instanceof OrchError && error.retryable === true
}

/** What a failed attempt leads to: another attempt after `delayMs`, or a final failure. */
export function decideRetry(
  attempt: number,
  error: unknown,
  policy: RetryPolicy,
  random: () => number = Math.random,
): { retry: true; delayMs: number } | { retry: false; reason: 'not_retryable' | 'max_attempts' } {
  if (!isRetryableError(error)) return { retry: false, reason: 'not_retryable' }
  if (attempt >= policy.maxAttempts) return { retry: false, reason: 'max_attempts' }
  return { retry: true, delayMs: backoffMs(attempt, policy, random) }
}
