/**
 * `orch capacity`: how many instances a workload needs. Thin: flags → src/capacity (pure) → a report, as
 * text or `--json`. The config is read only when --concurrency is not given (its runtime concurrency).
 */
import { existsSync } from 'node:fs'
import {
  BUCKET_MS,
  configuredSlots,
  EFFICIENCY_RULE,
  formatSeconds,
  isoSecond,
  type Measurement,
  measurementWarnings,
  measureWorkload,
  type Overrides,
  type PlanInputs,
  planInputs,
  readWindow,
  type ScopeMeasure,
  SLOTS_RULE,
  type Sourced,
  type TaskTimes,
} from '../src/capacity/measured.ts'
import { type CapacityFlags, optionalNumber, parseCapacityFlags, parseConcurrency, span } from '../src/capacity/parse.ts'
import { type CandidateRow, type CapacityPlan, type HardwareTier, planCapacity, tidy } from '../src/capacity/plan.ts'
import { type ConfigSource, describeSource } from '../src/config/provenance.ts'
import { DEFAULT_OLLAMA_CONCURRENCY } from '../src/config/schema.ts'
import { OrchError, UsageError } from '../src/core/errors.ts'
import { stateDbPath } from '../src/core/home.ts'
import { openDatabase } from '../src/store/db.ts'
import { defineOrchCommand, type GlobalArgValues, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'
import { tableLines } from './_table.ts'

export { formatSeconds }

const CONCURRENCY_KEY = 'runtime.ollama.concurrency'

/** Where --concurrency's value came from: the flag, or the config layer that set runtime.ollama.concurrency. */
type ConcurrencySource = { kind: 'flag' } | ConfigSource

/** The default concurrency: runtime.ollama.concurrency from the resolved config, and which layer set it. */
function configConcurrency(args: GlobalArgValues): { value: number; source: ConfigSource } {
  const { config, sources } = loadConfig(args)
  const value = config.runtime.ollama?.concurrency
  // The schema always adds ollama; the fallback only guards a config built some other way.
  if (value === undefined) return { value: DEFAULT_OLLAMA_CONCURRENCY, source: { kind: 'default' } }
  return { value, source: sources[CONCURRENCY_KEY] ?? { kind: 'default' } }
}

// ---- numbers for people --------------------------------------------------------------------------------

const num = (x: number, digits = 6) => String(Number(x.toPrecision(digits)))
const pct = (x: number) => (x > 0 && x < 0.001 ? '<0.1%' : `${(x * 100).toFixed(1)}%`)

export function formulaLine(plan: CapacityPlan): string {
  const i = plan.input
  return `${num(i.tasksPerHour)} tasks/h × ${num(i.durationHours)} h ÷ (${i.concurrency} × ${num(i.efficiency)}) = ${num(plan.requiredRaw)} → ${plan.requiredInstances} instances`
}

const tierText = (t: HardwareTier) => `${t.cpuCores} CPU cores, ${t.ramGb} GB RAM, ${t.vramGb} GB GPU VRAM`

function hardwareText(plan: CapacityPlan): string {
  const { concurrency, tier, split } = plan.hardware
  if (tier) return `  ${tierText(tier)} (hardware table, concurrency ${tier.concurrency})`
  const s = split as NonNullable<typeof split>
  return [
    `  concurrency ${concurrency} is beyond the hardware table (which stops at 8 per instance).`,
    `  Split each instance into ${s.parts} with concurrency ${s.concurrency} (rerun with --concurrency ${s.concurrency}):`,
    `  ${tierText(s.tier)} each`,
  ].join('\n')
}

function rowCells(row: CandidateRow): string[] {
  const waits = row.stable ? [formatSeconds(row.meanWaitSeconds), formatSeconds(row.percentileWaitSeconds)] : ['unstable', 'unstable']
  return [String(row.instances), pct(row.utilisation), pct(row.pWait), ...waits]
}

function tableText(plan: CapacityPlan): string[] {
  const q = plan.queueing
  const marks = (n: number) =>
    [
      n === plan.requiredInstances && 'formula',
      n === plan.withHeadroom && 'headroom',
      n === q.recommendedInstances && `target (p95 ≤ ${formatSeconds(q.targetWaitSeconds ?? 0)})`,
    ].filter(Boolean)
  // The last column (the marks) has no title.
  const rows: string[][] = [['instances', 'utilisation', 'P(wait)', 'mean wait', 'p95 wait', '']]
  let previous: number | undefined
  for (const row of q.candidates) {
    if (previous !== undefined && row.instances > previous + 1) rows.push(['…', '', '', '', ''])
    const mark = marks(row.instances)
    rows.push([...rowCells(row), mark.length ? `← ${mark.join(', ')}` : ''])
    previous = row.instances
  }
  const columns = [9, 11, 7, 9, 9].map((minWidth) => ({ minWidth, align: 'right' as const }))
  return tableLines(rows, { indent: '  ', columns, trimEnd: true })
}

function queueingText(plan: CapacityPlan): string[] {
  const q = plan.queueing
  const i = plan.input
  if (q.skipped) return ['Queueing (Erlang C)', `  skipped: ${q.skipped}`]
  const lines = [
    `Queueing (Erlang C, M/M/c): Poisson arrivals, ${i.concurrency} slot${i.concurrency === 1 ? '' : 's'} per instance, ${formatSeconds(q.serviceSeconds)} per task`,
    `  (${formatSeconds(i.durationHours * 3600)} ÷ efficiency ${num(i.efficiency)}); waits are time queued before a slot frees up`,
    '',
    ...tableText(plan),
  ]
  if (q.atPeak) {
    const p = q.atPeak
    const detail = p.stable ? `p95 wait ${formatSeconds(p.percentileWaitSeconds)}` : 'unstable'
    lines.push(
      '',
      `  at peak (${num(i.tasksPerHour * i.peak)} tasks/h) on ${p.instances} instances: utilisation ${pct(p.utilisation)}, ${detail}`,
    )
  }
  if (q.targetWaitSeconds !== null) lines.push('', targetText(plan))
  return lines
}

function targetText(plan: CapacityPlan): string {
  const q = plan.queueing
  const target = formatSeconds(q.targetWaitSeconds ?? 0)
  if (q.recommendedInstances === null) return `Target p95 queue wait ≤ ${target}: not reachable within the analysed range`
  const below = q.candidates.find((r) => r.instances === (q.recommendedInstances ?? 0) - 1)
  const contrast = below
    ? ` (${below.instances} would give ${below.stable ? formatSeconds(below.percentileWaitSeconds) : 'an unstable queue'})`
    : ''
  return `Target p95 queue wait ≤ ${target}: ${q.recommendedInstances} instances${contrast}`
}

function instanceLines(plan: CapacityPlan): string[] {
  const i = plan.input
  const h = `(1 + ${num(i.headroom)})`
  return [
    `  required        ${formulaLine(plan)}`,
    `  with headroom   ${num(plan.requiredRaw)} × ${h} = ${num(plan.withHeadroomRaw)} → ${plan.withHeadroom} instances`,
    `  at peak         ${num(plan.requiredRaw)} × ${num(i.peak)} × ${h} = ${num(plan.atPeakRaw)} → ${plan.atPeak} instances`,
  ]
}

/** Everything after the inputs: the formula, hardware and queueing sections. */
function planLines(plan: CapacityPlan): string[] {
  const i = plan.input
  return [
    'Instances (sizing formula, rounded up; see docs/capacity.md)',
    ...instanceLines(plan),
    '',
    `Hardware per instance (concurrency ${i.concurrency})`,
    hardwareText(plan),
    '',
    ...queueingText(plan),
  ]
}

export function renderText(plan: CapacityPlan, source: ConcurrencySource): string {
  const i = plan.input
  return [
    `Capacity for ${num(i.tasksPerHour)} tasks/h of ${formatSeconds(i.durationHours * 3600)} each, efficiency ${num(i.efficiency)}`,
    `  concurrency ${i.concurrency} per instance (${source.kind === 'flag' ? '--concurrency' : `${CONCURRENCY_KEY}, ${describeSource(source)}`})`,
    '',
    ...planLines(plan),
  ].join('\n')
}

// ---- numbers for scripts -------------------------------------------------------------------------------

const finite = (x: number) => (Number.isFinite(x) ? tidy(x) : null)

function rowJson(row: CandidateRow) {
  return {
    instances: row.instances,
    servers: row.servers,
    utilisation: tidy(row.utilisation),
    stable: row.stable,
    p_wait: tidy(row.pWait),
    mean_wait_seconds: finite(row.meanWaitSeconds),
    p95_wait_seconds: finite(row.percentileWaitSeconds),
    meets_target: row.meetsTarget,
  }
}

const tierJson = (t: HardwareTier) => ({ concurrency: t.concurrency, cpu_cores: t.cpuCores, ram_gb: t.ramGb, vram_gb: t.vramGb })

export function toJson(plan: CapacityPlan, concurrencySource: { kind: string }) {
  const { input: i, queueing: q, hardware: hw } = plan
  return {
    inputs: {
      tasks_per_hour: i.tasksPerHour,
      duration_hours: tidy(i.durationHours),
      duration_seconds: tidy(i.durationHours * 3600),
      concurrency: i.concurrency,
      concurrency_source: concurrencySource.kind,
      efficiency: i.efficiency,
      headroom: i.headroom,
      peak: i.peak,
      target_wait_seconds: i.targetWaitSeconds ?? null,
    },
    formula: formulaLine(plan),
    required_raw: plan.requiredRaw,
    required_instances: plan.requiredInstances,
    with_headroom_raw: plan.withHeadroomRaw,
    with_headroom: plan.withHeadroom,
    at_peak_raw: plan.atPeakRaw,
    at_peak: plan.atPeak,
    hardware: {
      concurrency: hw.concurrency,
      within_table: hw.tier !== null,
      tier: hw.tier ? tierJson(hw.tier) : null,
      split: hw.split ? { parts: hw.split.parts, concurrency: hw.split.concurrency, tier: tierJson(hw.split.tier) } : null,
    },
    queueing: {
      model: 'M/M/c (Erlang C): Poisson arrivals, exponential service, c = instances × concurrency',
      target_statistic: 'p95_wait_seconds',
      percentile: q.percentile,
      servers_per_instance: q.serversPerInstance,
      arrivals_per_second: tidy(q.arrivalsPerSecond),
      service_seconds: tidy(q.serviceSeconds),
      offered_load_erlangs: q.loadErlangs,
      target_wait_seconds: q.targetWaitSeconds,
      recommended_instances: q.recommendedInstances,
      candidates: q.candidates.map(rowJson),
      at_peak: q.atPeak ? rowJson(q.atPeak) : null,
      skipped: q.skipped,
    },
  }
}

// ---- --from-state: the inputs measured from state.db ------------------------------------------------------

type FromStateArgs = GlobalArgValues & CapacityFlags & { since?: string | undefined }

function maybeNumber(flag: string, text: string | undefined, expected: string, ok: (n: number) => boolean): number | undefined {
  return text === undefined ? undefined : optionalNumber(flag, text, 0, expected, ok)
}

/** The flags that still apply with --from-state: each replaces what would be measured or defaulted. */
function overridesOf(args: FromStateArgs): Overrides {
  for (const [flag, value] of [
    ['--tasks', args.tasks],
    ['--duration', args.duration],
  ] as const) {
    if (value !== undefined) {
      throw new UsageError(`${flag}: --from-state measures it from the state database; give one or the other`, {
        hint: 'run `orch capacity --help` for the flags and examples',
      })
    }
  }
  const target = args['target-wait']
  return {
    concurrency: args.concurrency === undefined ? undefined : parseConcurrency(args.concurrency, () => ({ value: 0, source: '' })),
    efficiency: maybeNumber('--efficiency', args.efficiency, 'a number in (0, 1]', (n) => n > 0 && n <= 1),
    headroom: maybeNumber('--headroom', args.headroom, 'a number ≥ 0 (0.3 = 30%)', (n) => n >= 0),
    peak: maybeNumber('--peak', args.peak, 'a number ≥ 1 (2 = twice the average)', (n) => n >= 1),
    targetWaitSeconds:
      target === undefined ? undefined : span('--target-wait', target, 1, 'a wait above 0: seconds (30) or 30s, 2m, 500ms, 1m30s'),
  }
}

function noData(message: string, sinceText: string): OrchError {
  return new OrchError(message, {
    code: 'E_CAPACITY_NO_DATA',
    hint: `the plan needs done tasks: submit work to orch serve with this --home (orch tasks submit, POST /queue/submit), or widen the window (--since ${sinceText === '7d' ? '30d' : '7d'})`,
  })
}

/** The tasks of the window, read from a read-only connection: nothing is migrated or written. */
function readTasks(path: string, since: number, until: number, sinceText: string): TaskTimes[] {
  if (!existsSync(path)) {
    throw new OrchError(`no state database at ${path}`, {
      code: 'E_CAPACITY_NO_STATE',
      hint: 'orch serve keeps its task queue in state.db under its state directory: pass that directory with --home (or ORCH_HOME)',
    })
  }
  const store = openDatabase(path, { readonly: true })
  try {
    if (store.version < TASKS_SCHEMA) throw noData(`${path} holds no task queue yet (schema version ${store.version})`, sinceText)
    return readWindow(store, since, until)
  } finally {
    store.close()
  }
}

interface Scoped {
  scope: ScopeMeasure
  inputs: PlanInputs | { skipped: string }
  plan: CapacityPlan | null
}

function planScope(scope: ScopeMeasure, m: Measurement, overrides: Overrides): Scoped {
  const inputs = planInputs(scope, m, overrides)
  return { scope, inputs, plan: 'skipped' in inputs ? null : planCapacity(inputs.input) }
}

function runFromState(args: FromStateArgs): void {
  const sinceText = args.since ?? DEFAULT_SINCE
  const sinceSeconds = span('--since', sinceText, 3600, 'a window above 0: 24h, 30m, 7d, 1h30m, or hours (24)')
  const overrides = overridesOf(args)
  const { config, home } = loadConfig(args)
  if (config.infrastructure_system.distributed_simulation.event_bus_type === 'redis') {
    throw new UsageError(
      '--from-state: this config keeps the task queue in Redis (event_bus_type: redis), and only a state.db queue is measured',
      {
        hint: 'size it with --tasks and --duration, or run --from-state where the tasks are in state.db',
      },
    )
  }
  const path = stateDbPath(home)
  const until = Date.now()
  const since = until - sinceSeconds * 1000
  const tasks = readTasks(path, since, until, sinceText)
  const m = measureWorkload(tasks, since, until, (model) => configuredSlots(config, model))
  if (m === null) throw noData(`no task in ${path} since ${isoSecond(since)} (--since ${sinceText}): nothing to measure`, sinceText)
  const overall = planScope(m.overall, m, overrides)
  if ('skipped' in overall.inputs)
    throw noData(`${path} since ${isoSecond(since)} (--since ${sinceText}): ${overall.inputs.skipped}`, sinceText)
  const models = m.models.map((scope) => planScope(scope, m, overrides))
  const context: FromStateContext = { path, sinceText, m, warnings: measurementWarnings(m) }
  if (args.json) printJson(fromStateJson(context, overall, models))
  else printText(fromStateText(context, overall, models))
}

const DEFAULT_SINCE = '24h'
/** The migration that made the tasks table (src/store/migrations.ts). */
const TASKS_SCHEMA = 2

interface FromStateContext {
  path: string
  sinceText: string
  m: Measurement
  warnings: string[]
}

const INPUT_ROWS = [
  ['tasks/h', 'tasksPerHour'],
  ['duration', 'durationSeconds'],
  ['concurrency', 'concurrency'],
  ['efficiency', 'efficiency'],
  ['peak', 'peak'],
  ['headroom', 'headroom'],
] as const

function inputLines(inputs: PlanInputs): string[] {
  const rows = INPUT_ROWS.map(([label, key]) => {
    const s = inputs[key]
    const value = key === 'durationSeconds' ? formatSeconds(s.value) : num(s.value, 3)
    return [label, value, s.source]
  })
  return tableLines(rows, { indent: '  ', columns: [{ minWidth: 12 }, { minWidth: 9, align: 'right' }], trimEnd: true })
}

function occupancyLine(scope: ScopeMeasure): string {
  const o = scope.occupancy
  const used = scope.utilisation === null ? '' : `; utilisation ${pct(scope.utilisation)} of ${scope.slots.total} slots`
  return `  running at once: mean ${num(o.averageRunning, 3)}, max ${o.maxRunning}${used}`
}

function modelText(s: Scoped): string[] {
  const head = `${s.scope.model}: ${s.scope.arrivals.toLocaleString('en-US')} tasks`
  if ('skipped' in s.inputs || s.plan === null) return [`${head}; no plan: ${'skipped' in s.inputs ? s.inputs.skipped : ''}`]
  const q = s.plan.queueing
  const target =
    q.targetWaitSeconds === null
      ? []
      : [`  target p95 ≤ ${formatSeconds(q.targetWaitSeconds)}: ${q.recommendedInstances ?? 'not reachable'}`]
  return [head, ...inputLines(s.inputs), occupancyLine(s.scope), ...instanceLines(s.plan), ...target]
}

function fromStateText(c: FromStateContext, overall: Scoped, models: Scoped[]): string {
  const { m } = c
  const slots = m.overall.slots
  const cap = slots.cap.concurrency === null ? 'no runner cap' : `at most ${slots.cap.concurrency} (agent_runner_concurrency)`
  return [
    `Capacity from measured data: ${c.path}, tasks since ${isoSecond(m.since)} (--since ${c.sinceText})`,
    `  activity ${isoSecond(m.from)} to ${isoSecond(m.to)} (${formatSeconds((m.to - m.from) / 1000)}); ${slots.total} slots, ${cap}`,
    `  ${SLOTS_RULE}`,
    `  ${EFFICIENCY_RULE}`,
    ...c.warnings.map((w) => `  warning: ${w}`),
    '',
    'Measured inputs, all models',
    ...inputLines(overall.inputs as PlanInputs),
    occupancyLine(m.overall),
    '',
    ...planLines(overall.plan as CapacityPlan),
    '',
    'Per model (a pool serving one model needs its own plan)',
    ...models.flatMap((s) => ['', ...modelText(s).map((line) => `  ${line}`)]),
  ].join('\n')
}

const sourcedJson = (s: Sourced) => ({ value: s.value, from: s.from, source: s.source })

function measuredJson(scope: ScopeMeasure) {
  const d = scope.durations
  const o = scope.occupancy
  const p = scope.peak
  const sl = scope.slots
  return {
    tasks_created: scope.arrivals,
    done_tasks: d?.count ?? 0,
    duration_seconds: d ? { mean: d.mean, p50: d.p50, p95: d.p95, min: d.min, max: d.max } : null,
    peak: {
      bucket_seconds: p.bucketMs / 1000,
      buckets: p.buckets,
      busiest_bucket_tasks: p.busiest,
      mean_per_bucket: p.meanPerBucket,
      peak: p.peak,
    },
    concurrency: { average: o.averageRunning, max: o.maxRunning },
    busy_seconds: o.busyMs / 1000,
    waiting_seconds: o.waitingMs / 1000,
    utilisation: scope.utilisation,
    slots: {
      total: sl.total,
      per_instance: sl.perInstance,
      instances: sl.instances,
      runner_cap: sl.cap.concurrency,
      runner_cap_source: sl.cap.source,
      serving: sl.entries.map((e) => ({
        kind: e.kind,
        name: e.name,
        instances: e.instances,
        concurrency: e.concurrency,
        source: e.source,
        models: e.models,
      })),
    },
  }
}

function scopedJson(s: Scoped) {
  const base = { model: s.scope.model, measured: measuredJson(s.scope) }
  if ('skipped' in s.inputs || s.plan === null)
    return { ...base, skipped: 'skipped' in s.inputs ? s.inputs.skipped : null, inputs: null, plan: null }
  const i = s.inputs
  const inputs = {
    tasks_per_hour: sourcedJson(i.tasksPerHour),
    duration_seconds: sourcedJson(i.durationSeconds),
    concurrency: sourcedJson(i.concurrency),
    efficiency: sourcedJson(i.efficiency),
    peak: sourcedJson(i.peak),
    headroom: sourcedJson(i.headroom),
    target_wait_seconds: i.input.targetWaitSeconds ?? null,
  }
  return { ...base, skipped: null, inputs, plan: toJson(s.plan, { kind: i.concurrency.from }) }
}

function fromStateJson(c: FromStateContext, overall: Scoped, models: Scoped[]) {
  const { m } = c
  return {
    from_state: {
      state_db: c.path,
      since: c.sinceText,
      window: { from: new Date(m.since).toISOString(), to: new Date(m.until).toISOString() },
      activity: { from: new Date(m.from).toISOString(), to: new Date(m.to).toISOString(), seconds: (m.to - m.from) / 1000 },
      efficiency: m.efficiency,
      rules: { slots: SLOTS_RULE, efficiency: EFFICIENCY_RULE, bucket_seconds: BUCKET_MS / 1000 },
      warnings: c.warnings,
    },
    overall: scopedJson(overall),
    models: models.map(scopedJson),
  }
}

export default defineOrchCommand({
  meta: {
    name: 'capacity',
    description:
      'How many instances a workload needs: ⌈tasks/h × duration h ÷ (concurrency × efficiency)⌉, with headroom, peak, hardware per instance, and Erlang C queue waits',
  },
  args: {
    ...globalArgs,
    tasks: { type: 'string', valueHint: 'N', description: 'Tasks per hour (required, unless --from-state)' },
    duration: {
      type: 'string',
      valueHint: 'SPAN',
      description: 'Average task duration: hours (0.1), or 6m, 90s, 1.5h, 2h30m (required, unless --from-state)',
    },
    concurrency: {
      type: 'string',
      valueHint: 'N',
      description: 'Tasks one instance runs at once (default: runtime.ollama.concurrency from the config, else 2)',
    },
    efficiency: { type: 'string', valueHint: 'F', description: "Useful fraction of a slot's time, in (0, 1] (default 0.8)" },
    headroom: { type: 'string', valueHint: 'F', description: 'Spare capacity: with_headroom = ⌈raw × (1 + headroom)⌉ (default 0.3)' },
    peak: { type: 'string', valueHint: 'X', description: 'Peak ÷ average load: at_peak = ⌈raw × peak × (1 + headroom)⌉ (default 2)' },
    'target-wait': {
      type: 'string',
      valueHint: 'SPAN',
      description: 'Pick the fewest instances whose 95th-percentile queue wait (Erlang C) is at most this: 30s, 2m, 500ms, or seconds',
    },
    'from-state': {
      type: 'boolean',
      description:
        "Measure tasks/h, duration, peak, efficiency and slots from this installation's state.db (--home) instead of --tasks and --duration; a plan overall and per model",
    },
    since: {
      type: 'string',
      valueHint: 'SPAN',
      description: 'With --from-state: the window measured, back from now: 24h, 30m, 7d, or hours (default 24h)',
    },
  },
  examples: [
    'orch capacity --tasks 100 --duration 0.1 --concurrency 2   # 100 × 0.1 ÷ (2 × 0.8) = 6.25 → 7; headroom 9; peak 17',
    'orch capacity --tasks 100 --duration 6m --target-wait 30s   # fewest instances with p95 queue wait ≤ 30 s',
    'orch capacity --tasks 1200 --duration 90s --concurrency 4 --efficiency 0.9 --headroom 0.2 --json',
    'orch capacity --from-state --since 7d --target-wait 30s   # the same plan from what this installation measured',
  ],
  run({ args }) {
    if (args['from-state']) return runFromState(args)
    if (args.since !== undefined) {
      throw new UsageError('--since: only with --from-state (the window of the state database measured)', {
        hint: 'run `orch capacity --help` for the flags and examples',
      })
    }
    let source: ConcurrencySource = { kind: 'flag' }
    const input = parseCapacityFlags(args, () => {
      const found = configConcurrency(args)
      source = found.source
      return { value: found.value, source: CONCURRENCY_KEY }
    })
    const plan = planCapacity(input)
    if (args.json) printJson(toJson(plan, source))
    else printText(renderText(plan, source))
  },
})
