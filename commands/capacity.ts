/**
 * `orch capacity`: how many instances a workload needs. Thin: flags → src/capacity (pure) → a report, as
 * text or `--json`. The config is read only when --concurrency is not given (its runtime concurrency).
 */
import { parseCapacityFlags } from '../src/capacity/parse.ts'
import { type CandidateRow, type CapacityPlan, type HardwareTier, planCapacity, tidy } from '../src/capacity/plan.ts'
import { type ConfigSource, describeSource } from '../src/config/provenance.ts'
import { DEFAULT_OLLAMA_CONCURRENCY } from '../src/config/schema.ts'
import { defineOrchCommand, type GlobalArgValues, globalArgs, printJson, printText } from './_args.ts'
import { loadConfig } from './_config.ts'
import { tableLines } from './_table.ts'

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

export function renderText(plan: CapacityPlan, source: ConcurrencySource): string {
  const i = plan.input
  const h = `(1 + ${num(i.headroom)})`
  return [
    `Capacity for ${num(i.tasksPerHour)} tasks/h of ${formatSeconds(i.durationHours * 3600)} each, efficiency ${num(i.efficiency)}`,
    `  concurrency ${i.concurrency} per instance (${source.kind === 'flag' ? '--concurrency' : `${CONCURRENCY_KEY}, ${describeSource(source)}`})`,
    '',
    'Instances (sizing formula, rounded up; see docs/capacity.md)',
    `  required        ${formulaLine(plan)}`,
    `  with headroom   ${num(plan.requiredRaw)} × ${h} = ${num(plan.withHeadroomRaw)} → ${plan.withHeadroom} instances`,
    `  at peak         ${num(plan.requiredRaw)} × ${num(i.peak)} × ${h} = ${num(plan.atPeakRaw)} → ${plan.atPeak} instances`,
    '',
    `Hardware per instance (concurrency ${i.concurrency})`,
    hardwareText(plan),
    '',
    ...queueingText(plan),
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

export function toJson(plan: CapacityPlan, concurrencySource: ConcurrencySource) {
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

export default defineOrchCommand({
  meta: {
    name: 'capacity',
    description:
      'How many instances a workload needs: ⌈tasks/h × duration h ÷ (concurrency × efficiency)⌉, with headroom, peak, hardware per instance, and Erlang C queue waits',
  },
  args: {
    ...globalArgs,
    tasks: { type: 'string', valueHint: 'N', description: 'Tasks per hour (required)' },
    duration: { type: 'string', valueHint: 'SPAN', description: 'Average task duration: hours (0.1), or 6m, 90s, 1.5h, 2h30m (required)' },
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
  },
  examples: [
    'orch capacity --tasks 100 --duration 0.1 --concurrency 2   # 100 × 0.1 ÷ (2 × 0.8) = 6.25 → 7; headroom 9; peak 17',
    'orch capacity --tasks 100 --duration 6m --target-wait 30s   # fewest instances with p95 queue wait ≤ 30 s',
    'orch capacity --tasks 1200 --duration 90s --concurrency 4 --efficiency 0.9 --headroom 0.2 --json',
  ],
  run({ args }) {
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
