/**
 * `orch capacity --from-state`: the plan's inputs measured from this installation's task queue (state.db)
 * instead of guessed (docs/capacity.md#from-measured-data). The measures are pure functions of task times;
 * `readWindow` is the only I/O, two index range reads with bound parameters on a read-only Store.
 *
 * The rules, stated once (the command prints them and docs/capacity.md repeats them):
 * - a task runs from its claim (started_at) to its end (finished_at); durations are those of done tasks;
 * - the activity span runs from the first task of the window to the last thing that happened to one;
 * - tasks per hour = tasks created in the window ÷ the span; peak = busiest minute ÷ the mean minute;
 * - slots = the configured concurrency of the backends and pool workers serving the model, added up, at
 *   most agent_runner_concurrency (SLOTS_RULE);
 * - efficiency = slot time in use ÷ slot time, counted while a task waited for a slot (EFFICIENCY_RULE).
 */
import type { OrchConfig } from '../config/schema.ts'
import { backendConcurrency, poolWorkerConcurrency, taskRunnerLimit } from '../scheduler/limits.ts'
import { normalizeModel } from '../scheduler/router.ts'
import type { Store } from '../store/db.ts'
import type { TaskState } from '../tasks/queue.ts'
import { CAPACITY_DEFAULTS } from './parse.ts'
import type { CapacityInput } from './plan.ts'

export const BUCKET_MS = 60_000
export const SLOTS_RULE =
  'slots = the concurrency of each backend (backends[].concurrency, else runtime.<type>.concurrency, else 4) and each pool worker (pool_size × runtime.<api>.concurrency) serving the model, added up, at most agent_runner_concurrency'
export const EFFICIENCY_RULE =
  'efficiency = slot time in use ÷ slot time (slots × time), counted only while some task waited for a slot; utilisation is the same over the whole activity span'
export const NO_MODEL = '(no model)'

// ---- pure measures ---------------------------------------------------------------------------------------

/** A half-open interval [from, to) in Unix ms. */
export interface Interval {
  from: number
  to: number
}

export interface Occupancy {
  /** Task time: the sum of the running intervals. */
  busyMs: number
  /** Slot time in use: the integral of min(running, slots). */
  usedSlotMs: number
  averageRunning: number
  maxRunning: number
  /** Time some task was waiting for a slot, and the slot time in use meanwhile. */
  waitingMs: number
  usedWhileWaitingMs: number
}

function sortedEdges(intervals: Interval[], from: number, to: number): [Float64Array, Float64Array] {
  const kept = intervals.map((i) => ({ from: Math.max(i.from, from), to: Math.min(i.to, to) })).filter((i) => i.to > i.from)
  const starts = Float64Array.from(kept, (i) => i.from).sort()
  const ends = Float64Array.from(kept, (i) => i.to).sort()
  return [starts, ends]
}

/** How many tasks ran at once and how full the slots were, clipped to [from, to); one merge of sorted edges. */
export function occupancy(running: Interval[], waiting: Interval[], slots: number, from: number, to: number): Occupancy {
  const edges = [...sortedEdges(running, from, to), ...sortedEdges(waiting, from, to)]
  const steps = [1, -1, 1, -1]
  const at = [0, 0, 0, 0]
  const levels = [0, 0] // running, waiting
  const out: Occupancy = { busyMs: 0, usedSlotMs: 0, averageRunning: 0, maxRunning: 0, waitingMs: 0, usedWhileWaitingMs: 0 }
  let t = from
  for (;;) {
    let next = Number.POSITIVE_INFINITY
    for (let k = 0; k < 4; k++) next = Math.min(next, (edges[k] as Float64Array)[at[k] as number] ?? Number.POSITIVE_INFINITY)
    if (next === Number.POSITIVE_INFINITY) break
    const [r, w] = levels as [number, number]
    const dt = next - t
    const used = Math.min(r, slots) * dt
    out.busyMs += r * dt
    out.usedSlotMs += used
    if (w > 0) {
      out.waitingMs += dt
      out.usedWhileWaitingMs += used
    }
    t = next
    // Every edge at this instant before the next reading: an interval ending where another starts is no overlap.
    for (let k = 0; k < 4; k++) {
      const list = edges[k] as Float64Array
      while (list[at[k] as number] === next) {
        at[k] = (at[k] as number) + 1
        levels[k >> 1] = (levels[k >> 1] as number) + (steps[k] as number)
      }
    }
    out.maxRunning = Math.max(out.maxRunning, levels[0] as number)
  }
  out.averageRunning = to > from ? out.busyMs / (to - from) : 0
  return out
}

export interface Summary {
  count: number
  mean: number
  p50: number
  p95: number
  min: number
  max: number
}

/** Mean and nearest-rank percentiles; null for no values. */
export function summarize(values: number[]): Summary | null {
  if (values.length === 0) return null
  const sorted = Float64Array.from(values).sort()
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length
  return { count: sorted.length, mean, p50: rank(0.5), p95: rank(0.95), min: sorted[0] as number, max: sorted.at(-1) as number }
}

export interface Peak {
  bucketMs: number
  buckets: number
  /** Arrivals in the busiest bucket, and the mean per bucket over the span. */
  busiest: number
  meanPerBucket: number
  /** busiest ÷ mean, at least 1; null when the span is shorter than two buckets (nothing to compare). */
  peak: number | null
}

/** Arrivals counted in buckets from `from`; the last, partial bucket counts only what arrived in it. */
export function arrivalPeak(arrivals: number[], from: number, to: number, bucketMs = BUCKET_MS): Peak {
  const span = to - from
  const buckets = Math.max(1, Math.ceil(span / bucketMs))
  const counts = new Uint32Array(buckets)
  for (const t of arrivals) {
    if (t < from || t > to) continue
    const i = Math.min(buckets - 1, Math.floor((t - from) / bucketMs))
    counts[i] = (counts[i] ?? 0) + 1
  }
  const busiest = counts.reduce((m, n) => Math.max(m, n), 0)
  const meanPerBucket = span > 0 ? (arrivals.length * bucketMs) / span : 0
  const peak = span >= 2 * bucketMs && meanPerBucket > 0 ? Math.max(1, busiest / meanPerBucket) : null
  return { bucketMs, buckets, busiest, meanPerBucket, peak }
}

// ---- slots from the config -------------------------------------------------------------------------------

export interface SlotEntry {
  kind: 'backend' | 'pool'
  name: string
  /** 1 for a backend, pool_size for a pool. */
  instances: number
  concurrency: number
  source: string
  /** The models it lists; null: any model. */
  models: string[] | null
}

export interface Slots {
  /** The slots durable tasks of the model can use at once: the entries added up, at most the runner cap. */
  total: number
  perInstance: number
  instances: number
  cap: { concurrency: number | null; source: string }
  entries: SlotEntry[]
}

const serves = (models: string[] | null, model: string | undefined) =>
  model === undefined || models === null || models.some((m) => normalizeModel(m) === normalizeModel(model))

/** The slots serving `model` (every one when undefined), by SLOTS_RULE. */
export function configuredSlots(
  config: Pick<OrchConfig, 'runtime' | 'backends' | 'pools' | 'infrastructure_system'>,
  model?: string,
): Slots {
  const entries: SlotEntry[] = []
  for (const b of config.backends) {
    const limit = backendConcurrency(config, b.type, b.concurrency)
    entries.push({
      kind: 'backend',
      name: b.name,
      instances: 1,
      concurrency: limit.concurrency,
      source: limit.source,
      models: b.models ?? null,
    })
  }
  for (const p of config.pools) {
    const limit = poolWorkerConcurrency(config, p)
    const models = p.models.length > 0 ? p.models : null
    entries.push({ kind: 'pool', name: p.name, instances: p.pool_size, concurrency: limit.concurrency, source: limit.source, models })
  }
  const serving = entries.filter((e) => serves(e.models, model))
  const instances = serving.reduce((n, e) => n + e.instances, 0)
  const uncapped = serving.reduce((n, e) => n + e.instances * e.concurrency, 0)
  const cap = taskRunnerLimit(config)
  const total = cap.concurrency === null ? uncapped : Math.min(uncapped, cap.concurrency)
  return { total, perInstance: instances > 0 ? Math.max(1, Math.floor(uncapped / instances)) : 0, instances, cap, entries: serving }
}

// ---- the workload of a window ----------------------------------------------------------------------------

/** One task as the window read gives it, in Unix ms. `endedAt`: finished_at, or a running task's lease end. */
export interface TaskTimes {
  model: string
  state: TaskState
  attempts: number
  createdAt: number
  startedAt: number | null
  endedAt: number | null
}

export interface ScopeMeasure {
  /** null: every model. */
  model: string | null
  arrivals: number
  /** Durations of done tasks, in seconds. */
  durations: Summary | null
  peak: Peak
  occupancy: Occupancy
  slots: Slots
  /** usedSlotMs ÷ (slots × span); null without slots. */
  utilisation: number | null
}

export interface Measurement {
  since: number
  until: number
  /** The activity span: the first and last moment something happened to a task of the window. */
  from: number
  to: number
  overall: ScopeMeasure
  models: ScopeMeasure[]
  /** EFFICIENCY_RULE over every model (they share the slots); null when no task ever waited for one. */
  efficiency: number | null
}

function spanOf(tasks: TaskTimes[], since: number, until: number): Interval {
  let from = Number.POSITIVE_INFINITY
  let to = Number.NEGATIVE_INFINITY
  for (const t of tasks) {
    from = Math.min(from, t.createdAt)
    to = Math.max(to, t.endedAt ?? t.startedAt ?? t.createdAt)
  }
  return { from: Math.max(since, from), to: Math.min(until, to) }
}

function running(tasks: TaskTimes[]): Interval[] {
  return tasks.flatMap((t) => (t.startedAt === null ? [] : [{ from: t.startedAt, to: t.endedAt ?? t.startedAt }]))
}

/** Waits for a slot: submission to start of tasks that started on their first attempt (a retry's wait is a backoff). */
function waiting(tasks: TaskTimes[]): Interval[] {
  return tasks.flatMap((t) => (t.startedAt === null || t.attempts > 1 ? [] : [{ from: t.createdAt, to: t.startedAt }]))
}

function measureScope(model: string | null, tasks: TaskTimes[], slots: Slots, span: Interval, since: number): ScopeMeasure {
  const arrivals = tasks.filter((t) => t.createdAt >= since).map((t) => t.createdAt)
  const done = tasks.filter((t) => t.state === 'done' && t.startedAt !== null && t.endedAt !== null)
  const occ = occupancy(running(tasks), waiting(tasks), slots.total, span.from, span.to)
  const slotMs = slots.total * (span.to - span.from)
  return {
    model,
    arrivals: arrivals.length,
    durations: summarize(done.map((t) => ((t.endedAt as number) - (t.startedAt as number)) / 1000)),
    peak: arrivalPeak(arrivals, span.from, span.to),
    occupancy: occ,
    slots,
    utilisation: slotMs > 0 ? occ.usedSlotMs / slotMs : null,
  }
}

/** Every measure of the window, overall and per model (busiest first); null when no task is in it. */
export function measureWorkload(tasks: TaskTimes[], since: number, until: number, slotsOf: (model?: string) => Slots): Measurement | null {
  if (tasks.length === 0) return null
  const span = spanOf(tasks, since, until)
  const overall = measureScope(null, tasks, slotsOf(), span, since)
  const byModel = new Map<string, TaskTimes[]>()
  for (const t of tasks) {
    const own = byModel.get(t.model)
    if (own) own.push(t)
    else byModel.set(t.model, [t])
  }
  const models = [...byModel]
    .map(([model, own]) => measureScope(model, own, slotsOf(model === NO_MODEL ? undefined : model), span, since))
    .sort((a, b) => b.arrivals - a.arrivals || (a.model ?? '').localeCompare(b.model ?? ''))
  const { waitingMs, usedWhileWaitingMs } = overall.occupancy
  const efficiency = waitingMs > 0 && overall.slots.total > 0 ? usedWhileWaitingMs / (overall.slots.total * waitingMs) : null
  return { since, until, from: span.from, to: span.to, overall, models, efficiency: efficiency && efficiency > 0 ? efficiency : null }
}

// ---- the read --------------------------------------------------------------------------------------------

// tasks_finished is a partial index (finished_at IS NOT NULL), which a range on finished_at implies; pinned so
// a file without it fails loudly instead of scanning. The second read is tasks_state_created's two ranges.
export const FINISHED_IN_WINDOW = `
  SELECT model, state, attempts, created_at, started_at, finished_at AS ended_at
    FROM tasks INDEXED BY tasks_finished
   WHERE finished_at >= ?1 AND finished_at <= ?2`
export const UNFINISHED_IN_WINDOW = `
  SELECT model, state, attempts, created_at, started_at, lease_expires_at AS ended_at
    FROM tasks
   WHERE state IN ('queued', 'running') AND created_at >= ?1 AND created_at <= ?2`

interface Row {
  model: string | null
  state: TaskState
  attempts: number
  created_at: number
  started_at: number | null
  ended_at: number | null
}

/** The tasks finished in [since, until] and those created then and not finished; a running one ends at its lease (or until). */
export function readWindow(store: Store, since: number, until: number): TaskTimes[] {
  const tasks: TaskTimes[] = []
  for (const sql of [FINISHED_IN_WINDOW, UNFINISHED_IN_WINDOW]) {
    for (const row of store.prepare(sql).iterate(since, until) as IterableIterator<Row>) {
      const running = row.state === 'running' && row.started_at !== null
      const endedAt = running ? Math.max(row.started_at as number, Math.min(row.ended_at ?? until, until)) : row.ended_at
      tasks.push({
        model: row.model ?? NO_MODEL,
        state: row.state,
        attempts: row.attempts,
        createdAt: row.created_at,
        startedAt: row.started_at,
        endedAt: row.state === 'queued' ? null : endedAt,
      })
    }
  }
  return tasks
}

// ---- the plan's inputs, each with where it came from -----------------------------------------------------

/** Flags that replace a measured input, or set what is never measured (headroom, the wait target). */
export interface Overrides {
  concurrency?: number | undefined
  efficiency?: number | undefined
  peak?: number | undefined
  headroom?: number | undefined
  targetWaitSeconds?: number | undefined
}

export interface Sourced {
  value: number
  from: 'measured' | 'config' | 'flag' | 'default'
  source: string
}

export interface PlanInputs {
  input: CapacityInput
  tasksPerHour: Sourced
  durationSeconds: Sourced
  concurrency: Sourced
  efficiency: Sourced
  peak: Sourced
  headroom: Sourced
}

const count = (n: number) => n.toLocaleString('en-US')
const num = (x: number, digits = 6) => String(Number(x.toPrecision(digits)))
/** 2026-12-01T10:00:05Z: to the second, as the task times are kept to the millisecond. */
export const isoSecond = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

/** 0s, <1ms, 850ms, 12.3s, 4m 10s, 2h 5m; unstable queues have no finite wait. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unbounded'
  if (seconds === 0) return '0s'
  if (seconds < 0.001) return '<1ms'
  if (seconds < 1) return `${num(seconds * 1000, 3)}ms`
  if (seconds < 60) return `${num(seconds, 3)}s`
  const whole = Math.round(seconds)
  if (whole < 3600) return `${Math.floor(whole / 60)}m${whole % 60 ? ` ${whole % 60}s` : ''}`
  const minutes = Math.round(seconds / 60)
  return `${Math.floor(minutes / 60)}h${minutes % 60 ? ` ${minutes % 60}m` : ''}`
}

const flag = (value: number, name: string): Sourced => ({ value, from: 'flag', source: name })

function slotsText(slots: Slots): string {
  const each = slots.entries.map((e) => `${e.name} ${e.instances > 1 ? `${e.instances} × ` : ''}${e.concurrency} (${e.source})`)
  if (slots.entries.every((e) => e.concurrency === slots.perInstance)) return `configured: ${each.join(', ')}`
  const all = slots.entries.reduce((n, e) => n + e.instances * e.concurrency, 0)
  return `configured: ${each.join(', ')}; ${all} slots ÷ ${count(slots.instances)} instances, rounded down`
}

function efficiencyOf(m: Measurement, o: Overrides): Sourced {
  if (o.efficiency !== undefined) return flag(o.efficiency, '--efficiency')
  if (m.efficiency === null) {
    const source = `default ${CAPACITY_DEFAULTS.efficiency}: no task waited for a slot in the window, so the slots were never short of work to measure`
    return { value: CAPACITY_DEFAULTS.efficiency, from: 'default', source }
  }
  const waited = formatSeconds(m.overall.occupancy.waitingMs / 1000)
  const source = `slot time in use ÷ slot time while tasks waited for a slot (${waited} of waiting, ${m.overall.slots.total} slots, all models)`
  return { value: m.efficiency, from: 'measured', source }
}

function peakOf(scope: ScopeMeasure, m: Measurement, o: Overrides): Sourced {
  if (o.peak !== undefined) return flag(o.peak, '--peak')
  const p = scope.peak
  const minute = `${p.bucketMs / 60_000}-minute`
  if (p.peak === null) {
    const source = `1: the activity span (${formatSeconds((m.to - m.from) / 1000)}) is shorter than two ${minute} buckets; --peak sets it`
    return { value: 1, from: 'default', source }
  }
  return {
    value: p.peak,
    from: 'measured',
    source: `busiest ${minute} bucket (${count(p.busiest)} tasks) ÷ the mean per bucket (${num(p.meanPerBucket, 3)})`,
  }
}

/** The CapacityInput of one scope (overall or a model), or why it has none. */
export function planInputs(scope: ScopeMeasure, m: Measurement, o: Overrides = {}): PlanInputs | { skipped: string } {
  const of = scope.model === null ? '' : ` of ${scope.model}`
  const d = scope.durations
  if (d === null) return { skipped: `no done task${of} finished in the window` }
  if (d.mean <= 0) return { skipped: `the done tasks${of} took under a millisecond each` }
  if (scope.arrivals === 0) return { skipped: `no task${of} was created in the window` }
  if (o.concurrency === undefined && scope.slots.instances === 0) {
    return { skipped: `no configured backend or pool serves ${scope.model ?? 'these tasks'}` }
  }
  const spanSeconds = (m.to - m.from) / 1000
  const tasksPerHour: Sourced = {
    value: (scope.arrivals / spanSeconds) * 3600,
    from: 'measured',
    source: `${count(scope.arrivals)} tasks${of} created over the activity span of ${formatSeconds(spanSeconds)} (${isoSecond(m.from)} to ${isoSecond(m.to)})`,
  }
  const durationSeconds: Sourced = {
    value: d.mean,
    from: 'measured',
    source: `mean of ${count(d.count)} done tasks${of} since ${isoSecond(m.since)} (p50 ${formatSeconds(d.p50)}, p95 ${formatSeconds(d.p95)})`,
  }
  const concurrency =
    o.concurrency !== undefined
      ? flag(o.concurrency, '--concurrency')
      : ({ value: scope.slots.perInstance, from: 'config', source: slotsText(scope.slots) } satisfies Sourced)
  const efficiency = efficiencyOf(m, o)
  const peak = peakOf(scope, m, o)
  const headroom =
    o.headroom !== undefined
      ? flag(o.headroom, '--headroom')
      : ({ value: CAPACITY_DEFAULTS.headroom, from: 'default', source: 'default' } satisfies Sourced)
  const input: CapacityInput = {
    tasksPerHour: tasksPerHour.value,
    durationHours: durationSeconds.value / 3600,
    concurrency: concurrency.value,
    efficiency: efficiency.value,
    headroom: headroom.value,
    peak: peak.value,
    targetWaitSeconds: o.targetWaitSeconds,
  }
  return { input, tasksPerHour, durationSeconds, concurrency, efficiency, peak, headroom }
}

/** What makes a measure less than it seems, in words. */
export function measurementWarnings(m: Measurement): string[] {
  const { maxRunning } = m.overall.occupancy
  const slots = m.overall.slots.total
  if (slots === 0 || maxRunning <= slots) return []
  return [
    `up to ${maxRunning} tasks ran at once on ${slots} slots: the task runner claims ahead of free slots, so a duration includes time spent waiting in orch for a slot (agent_runner_concurrency at most ${slots} avoids it)`,
  ]
}
