/**
 * How the dashboard writes numbers. No DOM here: the browser test formats the API's figures with the same
 * functions and compares them with what the page shows.
 */

export const NONE = 'no data'

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? NONE : integer.format(n)
}

/** A duration given in seconds: milliseconds below one second. */
export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return NONE
  return s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`
}

/** A duration given in milliseconds, for waits: `850 ms`, `12.3 s`, `4 min 05 s`. */
export function waited(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return NONE
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const total = Math.round(ms / 1000)
  return `${Math.floor(total / 60)} min ${String(total % 60).padStart(2, '0')} s`
}

export function perSecond(x: number | null | undefined): string {
  return x === null || x === undefined ? NONE : `${x.toFixed(2)}/s`
}

export function percent(ratio: number | null | undefined): string {
  return ratio === null || ratio === undefined ? NONE : `${(ratio * 100).toFixed(1)}%`
}

/** `used of limit`, or `used (no limit)` when there is no cap. */
export function ofLimit(used: number, limit: number | null): string {
  return limit === null ? `${count(used)} (no limit)` : `${count(used)} of ${count(limit)}`
}

/** A Unix-ms time as UTC, to the second: the same text whatever the viewer's time zone. */
export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return NONE
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

export function health(healthy: boolean | null): string {
  if (healthy === null) return 'not checked yet'
  return healthy ? 'up' : 'down'
}

export function breaker(state: string): string {
  return state === 'half_open' ? 'half-open' : state
}
