/**
 * GET /metrics on a running `orch serve`: the scheduler/environment names and orch's own, every series with `instance`,
 * plausible values after real traffic (including failures); and the performance_monitoring files.
 * `promtool check metrics` on the same traffic is in test/system/ (it needs Debian's prometheus package).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { CSV_COLUMNS } from '../../src/metrics/monitor.ts'
import { tempDir } from '../helpers/cli.ts'
import { driveTraffic } from '../helpers/metrics-traffic.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a text exposition (enough of the format for these checks). */
function parse(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`unparsable line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string
    out.push({ name: m[1] as string, labels, value: m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]) })
  }
  return out
}

const TOKEN = 'metrics-test-token'
const perf = tempDir('orch-perf-')
let t: TestServe
let text = ''
let samples: Sample[] = []

const find = (name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
const value = (name: string, labels: Record<string, string> = {}) => find(name, labels).reduce((sum, s) => sum + s.value, 0)

beforeAll(async () => {
  t = await startTestServe({
    tweak: (c) => {
      c.server.token = TOKEN
      const pm = c.infrastructure_system.performance_monitoring
      pm.enabled = true
      pm.collection_interval_seconds = 0.2
      pm.export_formats = ['json', 'csv']
      pm.export_path = join(perf.path, 'logs')
    },
  })
  await driveTraffic(t)
  const res = await t.fetch('/metrics')
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
  text = await res.text()
  samples = parse(text)
}, 60_000)

afterAll(async () => {
  await t?.stop()
  perf.cleanup()
})

describe('GET /metrics', () => {
  test('needs the bearer token when server.token is set', async () => {
    const res = await fetch(`${t.url}/metrics`)
    expect(res.status).toBe(401)
  })

  test('the orchestrator_*, env_* and gpu_* names are there, with plausible values', () => {
    expect(value('orchestrator_concurrency_limit', { backend: 'fake0' })).toBe(4)
    expect(find('orchestrator_inflight_tasks', { backend: 'fake0' })).toHaveLength(1)
    expect(value('orchestrator_task_errors_total', { reason: 'backend' })).toBeGreaterThanOrEqual(1)
    expect(value('orchestrator_task_errors_total', { reason: 'refused' })).toBeGreaterThanOrEqual(1)
    expect(find('env_queue_depth')[0]?.value).toBe(0)
    expect(value('gpu_wait_seconds_count', { backend: 'fake0', model: 'llama3.2' })).toBeGreaterThanOrEqual(3)
    expect(value('gpu_wait_seconds_bucket', { backend: 'fake0', model: 'llama3.2', le: '+Inf' })).toBe(
      value('gpu_wait_seconds_count', { backend: 'fake0', model: 'llama3.2' }),
    )
    const rate = find('env_error_rate')[0]?.value ?? -1
    expect(rate).toBeGreaterThanOrEqual(0)
    expect(rate).toBeLessThanOrEqual(1)
  })

  test('orch series: HTTP, backend calls, first token, tokens/s, cache, breaker, health, tasks, build', () => {
    expect(value('orch_http_request_duration_seconds_count', { method: 'GET', route: '/health', status: '200' })).toBe(1)
    expect(value('orch_http_request_duration_seconds_count', { route: 'unmatched', status: '404' })).toBe(1)
    expect(value('orch_backend_request_duration_seconds_count', { backend: 'fake0', model: 'llama3.2', kind: 'chat' })).toBe(2)
    expect(value('orch_backend_request_duration_seconds_count', { kind: 'generate' })).toBe(2)
    expect(value('orch_backend_request_duration_seconds_count', { model: 'nomic-embed-text', kind: 'embed' })).toBe(1)
    expect(value('orch_backend_calls_total', { backend: 'fake0', kind: 'chat', outcome: 'error' })).toBe(1)
    expect(value('orch_time_to_first_token_seconds_count', { backend: 'fake0', model: 'llama3.2' })).toBe(3)
    expect(value('orch_tokens_per_second_count', { backend: 'fake0', model: 'llama3.2' })).toBeGreaterThanOrEqual(1)
    expect(value('orch_tokens_per_second_sum', { backend: 'fake0', model: 'llama3.2' })).toBeGreaterThan(0)
    expect(value('orch_cache_hits_total')).toBe(1)
    expect(value('orch_cache_misses_total')).toBeGreaterThanOrEqual(2)
    expect(value('orch_breaker_state', { backend: 'fake0' })).toBe(0)
    expect(value('orch_backend_up', { backend: 'fake0' })).toBe(1)
    expect(value('orch_tasks', { state: 'done' })).toBe(1)
    expect(value('orch_build_info', { version: '0.0.0-test' })).toBe(1)
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(1e6)
  })

  test('every series carries the instance label', () => {
    expect(samples.length).toBeGreaterThan(50)
    const without = samples.filter((s) => s.labels.instance !== hostname())
    expect(without).toEqual([])
  })
})

describe('performance_monitoring', () => {
  test('json lines and csv with a header land under export_path, one sample per interval', async () => {
    const dir = join(perf.path, 'logs')
    const date = new Date().toISOString().slice(0, 10)
    const jsonl = join(dir, `orch-metrics-${date}.jsonl`)
    const csv = join(dir, `orch-metrics-${date}.csv`)
    const ready = () => existsSync(csv) && existsSync(jsonl) && readFileSync(jsonl, 'utf8').split('\n').length > 3
    for (let i = 0; i < 200 && !ready(); i++) await Bun.sleep(50)
    const rows = readFileSync(jsonl, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(rows.length).toBeGreaterThanOrEqual(3)
    for (const key of CSV_COLUMNS.filter((c) => c !== 'backend_busy')) expect(rows[0]).toHaveProperty(key)
    expect(rows[0].backends.fake0).toMatchObject({ concurrency: 4, healthy: true })
    expect(rows[0].instance).toBe(hostname())
    // The traffic before the first scrape: HTTP requests, model requests, at least one failed.
    expect(rows.reduce((n, r) => n + r.model_requests, 0)).toBeGreaterThanOrEqual(5)
    expect(rows.some((r) => r.errors > 0 && r.error_rate > 0 && r.error_rate <= 1)).toBe(true)
    const lines = readFileSync(csv, 'utf8').trimEnd().split('\n')
    expect(lines[0]).toBe(CSV_COLUMNS.join(','))
    expect(lines.slice(1).every((l) => l.split(',').length === CSV_COLUMNS.length)).toBe(true)
  })
})
