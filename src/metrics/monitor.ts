/**
 * performance_monitoring: every `collection_interval_seconds` a sample of the load — queue
 * depth, calls in flight, requests per second, errors, cache hit rate, how busy each backend is, the
 * process's memory and CPU — kept in memory and appended under `export_path` as JSON lines
 * (`orch-metrics-<date>.jsonl`) and/or CSV (`orch-metrics-<date>.csv`, header first). A write that fails is
 * logged, never fatal. Building a sample from two readings is pure (`buildSample`).
 */
import { appendFile, mkdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { OrchConfig } from '../config/schema.ts'
import { logger } from '../core/log.ts'
import { errorsOf, type ModelCounts } from './engine-metrics.ts'

export type MonitoringConfig = OrchConfig['infrastructure_system']['performance_monitoring']

/** Monotonic counts read at each tick; a sample is the difference between two readings. */
export interface Reading {
  /** Unix ms. */
  at: number
  httpRequests: number
  httpErrors: number
  model: ModelCounts
  cacheHits: number
  cacheMisses: number
  /** User + system CPU time of the process, µs. */
  cpuMicros: number
}

export interface BackendFacts {
  name: string
  inflight: number
  concurrency: number
  healthy: boolean | undefined
}

/** Levels at the sample instant. */
export interface Facts {
  instance: string
  schedulerQueued: number
  tasksQueued: number
  tasksRunning: number
  inflight: number
  backends: BackendFacts[]
  rssBytes: number
  heapUsedBytes: number
}

export interface BackendSample {
  inflight: number
  concurrency: number
  busy_share: number
  healthy: boolean | null
}

export interface MonitorSample {
  timestamp: string
  instance: string
  interval_s: number
  queue_depth: number
  scheduler_queued: number
  tasks_queued: number
  tasks_running: number
  inflight: number
  http_requests: number
  requests_per_s: number
  http_errors: number
  model_requests: number
  errors: number
  error_rate: number
  cache_hits: number
  cache_misses: number
  /** null when the cache was not asked in the interval. */
  cache_hit_rate: number | null
  /** Slots in use / slots, over all backends. */
  busy_share: number
  backends: Record<string, BackendSample>
  rss_bytes: number
  heap_used_bytes: number
  cpu_percent: number
}

/** CSV columns, in order; `backend_busy` is `name=share` pairs joined by `;`. */
export const CSV_COLUMNS = [
  'timestamp',
  'instance',
  'interval_s',
  'queue_depth',
  'scheduler_queued',
  'tasks_queued',
  'tasks_running',
  'inflight',
  'http_requests',
  'requests_per_s',
  'http_errors',
  'model_requests',
  'errors',
  'error_rate',
  'cache_hits',
  'cache_misses',
  'cache_hit_rate',
  'busy_share',
  'backend_busy',
  'rss_bytes',
  'heap_used_bytes',
  'cpu_percent',
] as const

const round = (x: number, digits = 3) => Number(x.toFixed(digits))
const ratio = (a: number, b: number) => (b > 0 ? a / b : 0)

/** Errors over model requests between two readings (0 without requests). */
export function errorRate(prev: Reading, cur: Reading): number {
  const requests = cur.model.requests - prev.model.requests
  return Math.min(1, ratio(errorsOf(cur.model) - errorsOf(prev.model), requests))
}

export function buildSample(prev: Reading, cur: Reading, facts: Facts): MonitorSample {
  const seconds = Math.max(0.001, (cur.at - prev.at) / 1000)
  const hits = cur.cacheHits - prev.cacheHits
  const misses = cur.cacheMisses - prev.cacheMisses
  const backends: Record<string, BackendSample> = {}
  let used = 0
  let slots = 0
  for (const b of facts.backends) {
    backends[b.name] = {
      inflight: b.inflight,
      concurrency: b.concurrency,
      busy_share: round(ratio(b.inflight, b.concurrency)),
      healthy: b.healthy ?? null,
    }
    used += b.inflight
    slots += b.concurrency
  }
  const httpRequests = cur.httpRequests - prev.httpRequests
  return {
    timestamp: new Date(cur.at).toISOString(),
    instance: facts.instance,
    interval_s: round(seconds),
    queue_depth: facts.schedulerQueued + facts.tasksQueued,
    scheduler_queued: facts.schedulerQueued,
    tasks_queued: facts.tasksQueued,
    tasks_running: facts.tasksRunning,
    inflight: facts.inflight,
    http_requests: httpRequests,
    requests_per_s: round(httpRequests / seconds),
    http_errors: cur.httpErrors - prev.httpErrors,
    model_requests: cur.model.requests - prev.model.requests,
    errors: errorsOf(cur.model) - errorsOf(prev.model),
    error_rate: round(errorRate(prev, cur), 4),
    cache_hits: hits,
    cache_misses: misses,
    cache_hit_rate: hits + misses > 0 ? round(hits / (hits + misses), 4) : null,
    busy_share: round(ratio(used, slots)),
    backends,
    rss_bytes: facts.rssBytes,
    heap_used_bytes: facts.heapUsedBytes,
    cpu_percent: round(ratio(cur.cpuMicros - prev.cpuMicros, seconds * 1e6) * 100, 1),
  }
}

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function csvRow(sample: MonitorSample): string {
  const busy = Object.entries(sample.backends)
    .map(([name, b]) => `${name}=${b.busy_share}`)
    .join(';')
  const row: Record<string, unknown> = { ...sample, backend_busy: busy }
  return `${CSV_COLUMNS.map((c) => csvField(row[c])).join(',')}\n`
}

export const csvHeader = () => `${CSV_COLUMNS.join(',')}\n`

export interface MonitorOptions {
  config: MonitoringConfig
  read: () => Reading
  facts: () => Facts
  /** Where a relative export_path starts (default: the working directory). */
  cwd?: string
  /** Samples kept in memory (default 720: an hour at 5 s). */
  keep?: number
}

export class Monitor {
  /** env_error_rate: over the last interval, kept whether or not sampling is enabled. */
  errorRate = 0
  readonly dir: string
  private prev: Reading
  private readonly recent: MonitorSample[] = []
  private readonly headed = new Set<string>()
  private writing: Promise<void> = Promise.resolve()
  private failing = false
  private readonly log = logger()

  constructor(private readonly options: MonitorOptions) {
    this.prev = options.read()
    this.dir = resolve(options.cwd ?? process.cwd(), options.config.export_path)
  }

  get enabled(): boolean {
    return this.options.config.enabled
  }

  /** Take a reading; when enabled, build a sample from it, keep it and export it. */
  tick(): MonitorSample | undefined {
    const cur = this.options.read()
    const prev = this.prev
    this.prev = cur
    this.errorRate = errorRate(prev, cur)
    if (!this.enabled) return undefined
    const sample = buildSample(prev, cur, this.options.facts())
    this.recent.push(sample)
    if (this.recent.length > (this.options.keep ?? 720)) this.recent.shift()
    this.export(sample)
    return sample
  }

  samples(): readonly MonitorSample[] {
    return this.recent
  }

  /** Resolves when every sample so far is written (or has failed to be). */
  flush(): Promise<void> {
    return this.writing
  }

  private export(sample: MonitorSample): void {
    const formats = this.options.config.export_formats.filter((f) => f !== 'none')
    if (formats.length === 0) return
    const date = sample.timestamp.slice(0, 10)
    this.writing = this.writing.then(async () => {
      try {
        await mkdir(this.dir, { recursive: true })
        if (formats.includes('json')) await appendFile(join(this.dir, `orch-metrics-${date}.jsonl`), `${JSON.stringify(sample)}\n`)
        if (formats.includes('csv')) await this.appendCsv(join(this.dir, `orch-metrics-${date}.csv`), sample)
        this.failing = false
      } catch (error) {
        // Once per run of failures: a full disk must not flood the log every interval.
        if (!this.failing) this.log.warn(`performance_monitoring: cannot write under ${this.dir}: ${(error as Error).message}`)
        this.failing = true
      }
    })
  }

  private async appendCsv(file: string, sample: MonitorSample): Promise<void> {
    if (!this.headed.has(file)) {
      const size = await stat(file).then(
        (s) => s.size,
        () => 0,
      )
      if (size === 0) await appendFile(file, csvHeader())
      this.headed.add(file)
    }
    await appendFile(file, csvRow(sample))
  }
}
