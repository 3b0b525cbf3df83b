/** The dashboard's figures from the /metrics exposition: histograms summed over series, quantiles, history points. */
import { describe, expect, test } from 'bun:test'
import { Registry } from '../../src/metrics/prometheus.ts'
import { historyOf, RATE_WINDOW_MS, ratePerSecond } from '../../src/server/routes/ui.ts'
import { difference, distribution, histogramOf, parseExposition, quantile } from '../../src/server/routes/ui-figures.ts'

/** A registry's exposition with one histogram observed on two series (two backends). */
function exposition(a: number[], b: number[]): string {
  const r = new Registry({ constLabels: { instance: 'x' } })
  const h = r.histogram('call_seconds', 'test', ['backend'], [0.1, 0.5, 1])
  for (const v of a) h.labels('one').observe(v)
  for (const v of b) h.labels('two "quoted"').observe(v)
  return r.render()
}

describe('parseExposition', () => {
  test('sums every series of a histogram bucket by bucket, with its sum and count', () => {
    const h = histogramOf(parseExposition(exposition([0.05, 0.3], [0.7, 5])), 'call_seconds')
    expect(h.bounds).toEqual([0.1, 0.5, 1, Number.POSITIVE_INFINITY])
    expect(h.cumulative).toEqual([1, 2, 3, 4])
    expect(h.count).toBe(4)
    expect(h.sum).toBeCloseTo(6.05)
  })

  test('a family that is absent reads as empty: no quantile, no mean', () => {
    expect(distribution(histogramOf(parseExposition(''), 'call_seconds'))).toEqual({ count: 0, p50: null, p99: null, mean: null })
  })
})

describe('quantile (as histogram_quantile)', () => {
  const h = histogramOf(parseExposition(exposition([0.05, 0.05, 0.3, 0.3], [])), 'call_seconds')
  test('interpolates linearly inside the bucket the rank falls in', () => {
    // 4 observations: rank 2 is the top of the first bucket; rank 3 half way into (0.1, 0.5].
    expect(quantile(0.5, h)).toBeCloseTo(0.1)
    expect(quantile(0.75, h)).toBeCloseTo(0.3)
  })

  test('a rank in the +Inf bucket is the highest finite bound', () => {
    const tail = histogramOf(parseExposition(exposition([0.05], [7, 8, 9])), 'call_seconds')
    expect(quantile(0.99, tail)).toBe(1)
  })
})

describe('history', () => {
  const empty = { bounds: [], cumulative: [], sum: 0, count: 0 }
  const reading = (at: number, requests: number, text: string) => ({
    at,
    requests,
    latency: text ? histogramOf(parseExposition(text), 'call_seconds') : empty,
  })

  test('each point is the interval between two readings: its rate and its own latency quantiles', () => {
    const readings = [reading(0, 10, exposition([0.05], [])), reading(2000, 14, exposition([0.05, 0.7, 0.7], []))]
    const [point] = historyOf(readings)
    expect(point?.requests_per_s).toBe(2)
    // Only the two calls of the interval, both in (0.5, 1]: the first reading's fast call is not in it.
    expect(point?.latency_p50_s).toBeCloseTo(0.75)
    expect(difference(readings[1]!.latency, readings[0]!.latency).count).toBe(2)
  })

  test('requests per second over the window; none before a second reading', () => {
    const now = reading(RATE_WINDOW_MS + 10_000, 130, '')
    expect(ratePerSecond([now], now)).toBeNull()
    const old = reading(0, 0, '') // outside the window: not the reference
    const inWindow = reading(10_000, 10, '')
    expect(ratePerSecond([old, inWindow, now], now)).toBe(2)
  })
})
