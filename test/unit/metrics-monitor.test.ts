import { afterEach, describe, expect, spyOn, test } from 'bun:test'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defaultConfig } from '../../src/config/schema.ts'
import { logger } from '../../src/core/log.ts'
import {
  buildSample,
  CSV_COLUMNS,
  csvHeader,
  csvRow,
  errorRate,
  type Facts,
  Monitor,
  type MonitoringConfig,
  type Reading,
} from '../../src/metrics/monitor.ts'
import { tempDir } from '../helpers/cli.ts'

const dirs: Array<{ cleanup: () => void }> = []
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup()
})

const zero = { requests: 0, backend: 0, queue_timeout: 0, refused: 0, dropped: 0 }
const reading = (at: number, over: Partial<Reading> = {}): Reading => ({
  at,
  httpRequests: 0,
  httpErrors: 0,
  model: zero,
  cacheHits: 0,
  cacheMisses: 0,
  cpuMicros: 0,
  ...over,
})

const facts: Facts = {
  instance: 'host-1',
  schedulerQueued: 3,
  tasksQueued: 4,
  tasksRunning: 2,
  inflight: 3,
  backends: [
    { name: 'gpu1', inflight: 2, concurrency: 4, healthy: true },
    { name: 'gpu,2', inflight: 1, concurrency: 2, healthy: undefined },
  ],
  rssBytes: 1000,
  heapUsedBytes: 500,
}

describe('performance samples', () => {
  test('a sample is the difference of two readings plus the levels now', () => {
    const prev = reading(Date.UTC(2030, 0, 2, 3, 4, 5), { httpRequests: 10, cacheHits: 1, cpuMicros: 1_000_000 })
    const cur = reading(prev.at + 2000, {
      httpRequests: 30,
      httpErrors: 1,
      model: { ...zero, requests: 8, backend: 1, refused: 1 },
      cacheHits: 4,
      cacheMisses: 1,
      cpuMicros: 1_500_000,
    })
    const s = buildSample(prev, cur, facts)
    expect(s).toMatchObject({
      timestamp: '2030-01-02T03:04:07.000Z',
      instance: 'host-1',
      interval_s: 2,
      queue_depth: 7,
      http_requests: 20,
      requests_per_s: 10,
      http_errors: 1,
      model_requests: 8,
      errors: 2,
      error_rate: 0.25,
      cache_hits: 3,
      cache_misses: 1,
      cache_hit_rate: 0.75,
      busy_share: 0.5,
      cpu_percent: 25,
    })
    expect(s.backends).toEqual({
      gpu1: { inflight: 2, concurrency: 4, busy_share: 0.5, healthy: true },
      'gpu,2': { inflight: 1, concurrency: 2, busy_share: 0.5, healthy: null },
    })
  })

  test('no requests, no cache lookups: error rate 0, hit rate unknown', () => {
    const s = buildSample(reading(0), reading(1000), { ...facts, backends: [] })
    expect(s.error_rate).toBe(0)
    expect(s.cache_hit_rate).toBeNull()
    expect(s.busy_share).toBe(0)
    expect(errorRate(reading(0), reading(1))).toBe(0)
  })

  test('CSV: a header of every column, rows quoted where needed, backends as name=share pairs', () => {
    expect(csvHeader()).toBe(`${CSV_COLUMNS.join(',')}\n`)
    const row = csvRow(buildSample(reading(0), reading(1000), facts))
    const fields = row.trimEnd().split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)
    expect(fields).toHaveLength(CSV_COLUMNS.length)
    expect(fields[CSV_COLUMNS.indexOf('backend_busy')]).toBe('"gpu1=0.5;gpu,2=0.5"')
    expect(fields[CSV_COLUMNS.indexOf('cache_hit_rate')]).toBe('')
  })
})

describe('Monitor', () => {
  function monitorIn(config: Partial<MonitoringConfig>, path?: string) {
    const dir = tempDir('orch-monitor-')
    dirs.push(dir)
    const base = defaultConfig().infrastructure_system.performance_monitoring
    // Readings 12 hours apart from 2030-06-08T00:00Z; 4 model requests and 1 error each.
    let at = Date.UTC(2030, 5, 7, 12)
    let requests = 0
    const monitor = new Monitor({
      config: { ...base, export_path: path ?? 'perf', ...config },
      cwd: dir.path,
      read: () => {
        at += 12 * 3600_000
        requests += 4
        return reading(at, { model: { ...zero, requests, backend: requests / 4 } })
      },
      facts: () => facts,
      keep: 2,
    })
    return { monitor, dir: join(dir.path, path ?? 'perf'), root: dir.path }
  }

  test('json and csv files per day under export_path, relative to the working directory; the csv header once', async () => {
    const { monitor, dir } = monitorIn({ export_formats: ['json', 'csv'] })
    for (let i = 0; i < 3; i++) monitor.tick()
    await monitor.flush()
    expect(readdirSync(dir).sort()).toEqual([
      'orch-metrics-2030-06-08.csv',
      'orch-metrics-2030-06-08.jsonl',
      'orch-metrics-2030-06-09.csv',
      'orch-metrics-2030-06-09.jsonl',
    ])
    const day1 = readFileSync(join(dir, 'orch-metrics-2030-06-08.csv'), 'utf8').trimEnd().split('\n')
    const day2 = readFileSync(join(dir, 'orch-metrics-2030-06-09.csv'), 'utf8').trimEnd().split('\n')
    expect(day1).toEqual([CSV_COLUMNS.join(','), expect.stringContaining('2030-06-08T12:00:00.000Z,host-1,43200,7,')])
    expect(day2).toHaveLength(3)
    const json = readFileSync(join(dir, 'orch-metrics-2030-06-09.jsonl'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(json.map((s) => s.error_rate)).toEqual([0.25, 0.25])
    expect(monitor.errorRate).toBe(0.25)
    expect(monitor.samples()).toHaveLength(2)
  })

  test('an existing csv file gets no second header', async () => {
    const { monitor, dir } = monitorIn({ export_formats: ['csv'] })
    monitor.tick()
    await monitor.flush()
    const again = new Monitor({
      config: { ...defaultConfig().infrastructure_system.performance_monitoring, export_path: dir, export_formats: ['csv'] },
      read: () => reading(Date.UTC(2030, 5, 8, 1)),
      facts: () => facts,
    })
    again.tick()
    await again.flush()
    const lines = readFileSync(join(dir, 'orch-metrics-2030-06-08.csv'), 'utf8').trimEnd().split('\n')
    expect(lines.filter((l) => l.startsWith('timestamp,'))).toHaveLength(1)
    expect(lines).toHaveLength(3)
  })

  test("'none' keeps samples in memory only; disabled keeps the error rate only", async () => {
    const { monitor, root } = monitorIn({ export_formats: ['none'] })
    monitor.tick()
    await monitor.flush()
    expect(monitor.samples()).toHaveLength(1)
    expect(readdirSync(root)).toEqual([])
    const off = monitorIn({ enabled: false })
    expect(off.monitor.tick()).toBeUndefined()
    expect(off.monitor.errorRate).toBe(0.25)
    expect(off.monitor.samples()).toHaveLength(0)
  })

  test('a write that fails is logged once and never thrown', async () => {
    const warn = spyOn(logger(), 'warn').mockImplementation((() => {}) as never)
    const { monitor, root } = monitorIn({ export_formats: ['json'] }, 'blocked/perf')
    writeFileSync(join(root, 'blocked'), 'a file where the directory should be')
    monitor.tick()
    monitor.tick()
    await monitor.flush()
    expect(monitor.samples()).toHaveLength(2)
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]?.[0])).toContain('performance_monitoring: cannot write under')
    warn.mockRestore()
  })
})
