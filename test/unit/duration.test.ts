/**
 * One grammar of durations for every place that reads one: config keys, `orch tasks --timeout`,
 * `orch stop --timeout`, `orch capacity --duration/--target-wait` and `/tasks/{id}/wait?timeout=`. Each
 * place keeps its own range and message.
 */
import { describe, expect, test } from 'bun:test'
import { parseTimeout } from '../../commands/tasks.ts'
import { parseCapacityFlags } from '../../src/capacity/parse.ts'
import { parseDuration as parseConfigDuration } from '../../src/config/fields.ts'
import { parseDurationMs, parseDurationSeconds } from '../../src/core/duration.ts'
import { type OrchError, UsageError } from '../../src/core/errors.ts'
import { MAX_WAIT_MS, parseDuration as parseWaitTimeout } from '../../src/server/routes/tasks.ts'

describe('the grammar', () => {
  const ms: Record<string, number> = {
    '90': 90_000,
    '1.5': 1500,
    '500ms': 500,
    '30s': 30_000,
    '5m': 300_000,
    '1h': 3_600_000,
    '2d': 172_800_000,
    '1h30m': 5_400_000,
    '2m 30s': 150_000,
    '1m30s500ms': 90_500,
    ' 1H30M ': 5_400_000,
    '30 m': 1_800_000,
  }
  test.each(Object.entries(ms))('%p is %d ms', (text, expected) => {
    expect(parseDurationMs(text)).toBe(expected)
  })

  test.each(['', 'soon', '30m2h', '1m1m', 'm', '6x', '1h-30m', '0x10', 'Infinity', '1.2.3s'])('%p is not a duration', (text) => {
    expect(parseDurationMs(text)).toBeUndefined()
  })

  test('a plain number counts in the unit the caller gives; its sign is kept for the caller to judge', () => {
    expect(parseDurationSeconds('0.1', 3600)).toBeCloseTo(360, 12)
    expect(parseDurationMs('-5')).toBe(-5000)
  })

  test('parts are summed in milliseconds: 300ms is exactly 0.3 s', () => {
    expect(parseDurationSeconds('300ms')).toBe(0.3)
    expect(parseDurationSeconds('1m30s')).toBe(90)
  })
})

describe('every place takes the same grammar', () => {
  test('config: 1h30m is 5400 seconds; 0 and negative are refused', () => {
    expect(parseConfigDuration('1h30m')).toBe(5400)
    expect(parseConfigDuration('2m 30s')).toBe(150)
    expect(parseConfigDuration('0')).toBeUndefined()
    expect(parseConfigDuration('-5')).toBeUndefined()
  })

  test('orch tasks --timeout: 1h30m; a negative or unknown one is a usage error with the same words', () => {
    expect(parseTimeout('1h30m')).toBe(5_400_000)
    expect(parseTimeout('0')).toBe(0)
    expect(parseTimeout(undefined)).toBeUndefined()
    for (const text of ['-1', 'soon']) {
      expect(() => parseTimeout(text)).toThrow(UsageError)
      expect(() => parseTimeout(text)).toThrow(`--timeout must be a duration like 30s, 5m or 1h, got "${text}"`)
    }
  })

  test('?timeout= of a wait: 1m30s, hours capped at the longest wait; a negative one is a 400 naming timeout', () => {
    expect(parseWaitTimeout('1m30s')).toBe(90_000)
    expect(parseWaitTimeout('1h')).toBe(MAX_WAIT_MS)
    expect(parseWaitTimeout(null)).toBe(30_000)
    for (const text of ['-1', 'soon']) {
      const error = (() => {
        try {
          parseWaitTimeout(text)
        } catch (thrown) {
          return thrown as OrchError
        }
        throw new Error(`accepted ${text}`)
      })()
      expect(error.message).toBe(`timeout: expected a duration like 30s, 500ms or 2m, got "${text}"`)
      expect(error.details).toMatchObject({ status: 400, field: 'timeout' })
    }
  })

  test('orch capacity: --duration 1d and --target-wait 1m 30s', () => {
    const flags = { tasks: '1', duration: '1d', concurrency: '1', 'target-wait': '1m 30s' }
    const input = parseCapacityFlags(flags, () => ({ value: 1, source: 'default' }))
    expect(input.durationHours).toBe(24)
    expect(input.targetWaitSeconds).toBe(90)
  })
})
