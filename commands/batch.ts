/**
 * `orch batch`: the batch runner. One folder under `batch.inputs_root` is one batch; `tick` runs the newest
 * pending one, `schedule` ticks every interval, `run` scores one folder now. Exit codes: 0 done (or nothing
 * pending), 1 engine failure, 2 result file not written or no inputs_root folder (docs/operations.md).
 */
import { existsSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { localEngineWriter, type RationaleWriter, serveWriter } from '../src/batch/rationale.ts'
import { type Progress, runSchedule, type TickSummary } from '../src/batch/schedule.ts'
import { type BatchScorer, engineFor } from '../src/batch/scorer.ts'
import { forgetBatch, importProcessedJson } from '../src/batch/state.ts'
import { batchStatus } from '../src/batch/status.ts'
import {
  type BatchSettings,
  checkBatchName,
  E_BATCH_INPUTS_ROOT,
  type LockInfo,
  listBatchFolders,
  processedJsonFile,
  RESULT_FILE,
  type RunOutcome,
  requireInputsRoot,
  resolveSettings,
  scoreFolder,
  staleLockMessage,
  tick,
} from '../src/batch/tick.ts'
import type { OrchConfig } from '../src/config/schema.ts'
import { formatAge } from '../src/core/age.ts'
import { OrchError, UsageError } from '../src/core/errors.ts'
import { logger } from '../src/core/log.ts'
import { openStore, type Store } from '../src/store/db.ts'
import { defineOrchCommand, type GlobalArgValues, globalArgs, printJson, printText } from './_args.ts'
import { checkUrl, clientAt } from './_client.ts'
import { loadConfig } from './_config.ts'

interface Context {
  settings: BatchSettings
  intervalSeconds: number
  store: Store
  /** `engine_command` or the built-in scorers; with `--llm` (and a backend that answered) or `--url`, a model writes the rationale. */
  engine: BatchScorer
}

const rationaleArgs = {
  llm: { type: 'boolean', description: 'A configured backend writes each rationale from the evidence (rules when none answers)' },
  url: { type: 'string', valueHint: 'URL', description: 'A running orch serve writes each rationale' },
  model: {
    type: 'string',
    valueHint: 'NAME',
    description: 'Model for the rationale (default: the first backend’s first model, else llama3.2)',
  },
} as const

interface RationaleArgValues {
  llm?: boolean | undefined
  url?: string | undefined
  model?: string | undefined
}

const defaultModel = (config: OrchConfig): string => config.backends[0]?.models?.[0] ?? 'llama3.2'

/** The writer the flags ask for, and what to close after; none (rules only) when no backend answers. */
async function openWriter(args: RationaleArgValues, config: OrchConfig): Promise<{ writer?: RationaleWriter; close: () => Promise<void> }> {
  const model = args.model ?? defaultModel(config)
  const none = { close: async () => {} }
  if (args.url !== undefined) {
    const url = checkUrl(args.url, 'orch batch run DIR --url http://127.0.0.1:9097')
    return { ...none, writer: serveWriter(clientAt(url, config.server), model) }
  }
  if (args.llm !== true) return none
  return localEngineWriter(config, model)
}

/**
 * Config, store and engine for one command. With `needsInputsRoot` a missing inputs_root folder is a
 * configuration error (exit 2), found before anything is opened: "nothing pending" would hide it.
 */
async function withContext<T>(
  args: GlobalArgValues & RationaleArgValues,
  fn: (ctx: Context) => T | Promise<T>,
  options: { needsInputsRoot?: boolean } = {},
): Promise<T> {
  const resolved = loadConfig(args)
  const { batch } = resolved.config
  const settings = resolveSettings(batch, process.cwd())
  if (options.needsInputsRoot) requireInputsRoot(settings)
  const rationale = await openWriter(args, resolved.config)
  const store = openStore(resolved.home)
  const ctx = {
    settings,
    intervalSeconds: batch.interval_seconds,
    store,
    engine: engineFor(batch.engine_command, rationale.writer, { maxInputBytes: batch.max_input_bytes }),
  }
  return Promise.resolve()
    .then(() => fn(ctx))
    .finally(async () => {
      store.close()
      await rationale.close()
    })
}

/** For the commands that list inputs_root (`tick`, `schedule`, `status`): a missing folder exits 2. */
const withInputsRoot = <T>(args: GlobalArgValues & RationaleArgValues, fn: (ctx: Context) => T | Promise<T>): Promise<T> =>
  withContext(args, fn, { needsInputsRoot: true })

function report(outcome: RunOutcome, json: boolean | undefined): number {
  if (json)
    printJson({
      exit_code: outcome.exitCode,
      batch: outcome.batch ?? null,
      result_path: outcome.resultPath ?? null,
      error: outcome.error ?? null,
      result: outcome.result ?? null,
    })
  else if (outcome.error) process.stderr.write(`error: ${outcome.error}\n`)
  else if (outcome.batch) printText(`${outcome.batch}: ${scoreLine(outcome)} → ${outcome.resultPath}`)
  else printText('nothing pending')
  return outcome.exitCode
}

const run = defineOrchCommand({
  meta: { name: 'run', description: 'Score one batch folder now and write its result.json' },
  args: {
    ...globalArgs,
    ...rationaleArgs,
    dir: { type: 'positional', required: true, valueHint: 'DIR', description: 'Folder of metric JSON files' },
    out: { type: 'string', valueHint: 'FILE', description: 'Write the result here instead of <outputs_root>/<batch>/result.json' },
  },
  examples: [
    'orch batch run examples/Inputs/Sample1',
    'orch batch run Data/Inputs/Sample2 --out result.json --json',
    'orch batch run examples/Inputs/Sample1 --llm --model llama3.2',
  ],
  run({ args }) {
    const dir = resolve(args.dir)
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new UsageError(`${args.dir} is not a folder`, { hint: 'pass a folder holding the batch’s metric JSON files' })
    }
    return withContext(args, async (ctx) => {
      const out = args.out ? resolve(args.out) : join(ctx.settings.outputsRoot, checkBatchName(basename(dir)), RESULT_FILE)
      const outcome = await scoreFolder(dir, out, ctx.engine)
      if (args.json) {
        if (outcome.exitCode === 0) printJson(outcome.result)
        else printJson({ error: { code: outcome.exitCode === 1 ? 'E_BATCH_ENGINE' : 'E_BATCH_WRITE', message: outcome.error } })
        if (outcome.error) process.stderr.write(`error: ${outcome.error}\n`)
        return outcome.exitCode
      }
      return report(outcome, false)
    })
  },
})

const tickCommand = defineOrchCommand({
  meta: { name: 'tick', description: 'Run the runner once: process the newest pending batch, if any' },
  args: { ...globalArgs, ...rationaleArgs },
  examples: ['orch batch tick', 'orch batch tick --json', 'orch batch tick --llm'],
  run({ args }) {
    return withInputsRoot(args, async (ctx) => report(await tick(ctx.settings, { store: ctx.store, engine: ctx.engine }), args.json))
  },
})

const schedule = defineOrchCommand({
  meta: { name: 'schedule', description: 'Tick at once, then every interval, until Ctrl-C' },
  args: {
    ...globalArgs,
    ...rationaleArgs,
    interval: { type: 'string', valueHint: 'SECONDS', description: 'Seconds between ticks (default batch.interval_seconds, 600)' },
    all: { type: 'boolean', description: 'Drain every pending batch each tick instead of one' },
  },
  examples: ['orch batch schedule', 'orch batch schedule --interval 60 --all'],
  run({ args }) {
    const interval = args.interval === undefined ? undefined : Number(args.interval)
    if (interval !== undefined && !(Number.isFinite(interval) && interval > 0)) {
      throw new UsageError(`--interval: expected a positive number of seconds, got "${args.interval}"`, {
        hint: 'orch batch schedule --interval 600',
      })
    }
    return withInputsRoot(args, async (ctx) => {
      const stop = new AbortController()
      process.removeAllListeners('SIGINT')
      process.once('SIGINT', () => stop.abort())
      const all = args.all === true
      await runSchedule({
        intervalMs: (interval ?? ctx.intervalSeconds) * 1000,
        all,
        signal: stop.signal,
        tick: () => scheduledTick(ctx),
        pending: () => listBatchFolders(ctx.settings, ctx.store).filter((f) => f.state === 'pending').length,
        onBatch: (outcome, progress) => {
          if (args.json) printJsonLine({ event: 'batch', ...progressJson(progress), ...outcomeJson(outcome) })
          else if (all) printText(progressLine(outcome, progress))
          else report(outcome, false)
        },
        onTick: (summary) => {
          if (args.json) printJsonLine({ event: 'tick', ...tickJson(summary) })
          else printText(tickLine(summary))
        },
      })
      return 0
    })
  },
})

/**
 * One tick of a running schedule. inputs_root was there when it started; if it goes away (an unmounted
 * disk), the tick says so and the schedule keeps going, so it picks up again once the folder is back.
 */
async function scheduledTick(ctx: Context): Promise<RunOutcome> {
  try {
    return await tick(ctx.settings, { store: ctx.store, engine: ctx.engine })
  } catch (error) {
    if (error instanceof OrchError && error.code === E_BATCH_INPUTS_ROOT) {
      logger('batch').warn(error.message)
      return { exitCode: 2, error: error.message }
    }
    throw error
  }
}

/** An overall score as people read it: one decimal (4.0, not 4); whatever an external engine gave otherwise. */
const score = (value: unknown) => (typeof value === 'number' ? value.toFixed(1) : value === undefined ? '?' : String(value))

interface SummaryView {
  overall_score?: unknown
  scored_metrics?: unknown
  unscored?: unknown
}

/** `score 4.0, 15 metric(s); 1 not scored: lb.performance (lb_performance.json is not valid JSON: …)` */
function summaryLine(summary: SummaryView | null | undefined): string {
  const head = `score ${score(summary?.overall_score)}, ${summary?.scored_metrics ?? '?'} metric(s)`
  const unscored = Array.isArray(summary?.unscored) ? (summary.unscored as { metric_id?: unknown; reason?: unknown }[]) : []
  if (unscored.length === 0) return head
  return `${head}; ${unscored.length} not scored: ${unscored.map((u) => `${u.metric_id} (${u.reason})`).join(', ')}`
}

const scoreLine = (outcome: RunOutcome): string => summaryLine(outcome.result?.summary as SummaryView | undefined)

const printJsonLine = (value: unknown) => printText(JSON.stringify(value))

const outcomeJson = (outcome: RunOutcome) => ({
  exit_code: outcome.exitCode,
  batch: outcome.batch ?? null,
  result_path: outcome.resultPath ?? null,
  error: outcome.error ?? null,
  summary: outcome.result?.summary ?? null,
})

const progressJson = (p: Progress) => ({ tick: p.tick, done: p.done, total: p.total, ms: Math.round(p.ms) })

const tickJson = (t: TickSummary) => ({
  tick: t.tick,
  processed: t.processed,
  failed: t.failed,
  ms: Math.round(t.ms),
  next_at: new Date(t.nextAt).toISOString(),
  error: t.error ?? null,
})

/** `[2/5] Sample1  score 4.1, 16 metric(s) → Data/Outputs/Sample1/result.json  (12 ms)` */
function progressLine(outcome: RunOutcome, p: Progress): string {
  const width = String(p.total).length
  const head = `[${String(p.done).padStart(width)}/${p.total}] ${outcome.batch}`
  const took = `(${Math.round(p.ms)} ms)`
  if (outcome.error) return `${head}  exit ${outcome.exitCode}: ${outcome.error}  ${took}`
  return `${head}  ${scoreLine(outcome)} → ${outcome.resultPath}  ${took}`
}

/** `tick 3: 5 batch(es) processed, 1 failed, in 0.4 s; next tick at 12:10:00 UTC` */
function tickLine(t: TickSummary): string {
  const what =
    t.processed > 0
      ? `${t.processed} batch(es) processed, ${t.failed} failed, in ${(t.ms / 1000).toFixed(1)} s`
      : (t.error ?? 'nothing pending')
  return `tick ${t.tick}: ${what}; next tick at ${new Date(t.nextAt).toISOString().slice(11, 19)} UTC`
}

const status = defineOrchCommand({
  meta: { name: 'status', description: 'Pending, locked and processed batches, with their result summaries' },
  args: { ...globalArgs },
  examples: ['orch batch status', 'orch batch status --json'],
  run({ args }) {
    return withInputsRoot(args, ({ settings, store }) => {
      const view = batchStatus(settings, store, Date.now())
      const { locks, processed } = view
      if (args.json) return printJson(view)
      const lockNote = (lock: LockInfo) =>
        `${lock.name} (${lock.stale ? 'STALE, ' : ''}${formatAge(lock.age_seconds)}${lock.pid ? `, pid ${lock.pid}` : ''})`
      const lines = [
        `Batches in ${settings.inputsRoot}`,
        `  pending    ${view.pending.join(', ') || '-'}`,
        `  locked     ${locks.map(lockNote).join(', ') || '-'}`,
      ]
      for (const lock of locks) if (lock.stale) lines.push(`    ${staleLockMessage(lock, settings)}`)
      if (view.empty.length) lines.push(`  no inputs  ${view.empty.join(', ')}`)
      lines.push(`  processed  ${processed.length === 0 ? '-' : ''}`)
      for (const r of processed) {
        const summary = r.summary as SummaryView | null
        const detail = r.exit_status === 0 ? (summary ? summaryLine(summary) : 'imported') : `exit ${r.exit_status}: ${r.error ?? ''}`
        lines.push(`    ${r.name.padEnd(20)} ${r.processed_at}  ${detail}`)
      }
      printText(lines.join('\n'))
    })
  },
})

const reset = defineOrchCommand({
  meta: { name: 'reset', description: 'Forget that a batch was processed, so the next tick runs it again' },
  args: {
    ...globalArgs,
    name: { type: 'positional', required: true, valueHint: 'NAME', description: 'Batch folder name under inputs_root' },
  },
  examples: ['orch batch reset Sample1'],
  run({ args }) {
    const name = checkBatchName(args.name)
    return withContext(args, ({ settings, store }) => {
      importProcessedJson(store, processedJsonFile(settings), Date.now())
      const removed = forgetBatch(store, join(settings.inputsRoot, name)) + forgetBatch(store, name)
      if (removed === 0)
        throw new OrchError(`batch "${name}" is not processed; nothing to reset`, { code: 'E_BATCH_UNKNOWN', hint: 'orch batch status' })
      if (args.json) printJson({ reset: name })
      else printText(`${name} will be processed again on the next tick`)
    })
  },
})

export default defineOrchCommand({
  meta: { name: 'batch', description: 'Score folders of cloud metric JSON: run, tick, schedule, status, reset' },
  subCommands: { run, tick: tickCommand, schedule, status, reset },
  examples: [
    'orch batch run examples/Inputs/Sample1',
    'orch batch tick',
    'orch batch schedule --interval 600',
    'orch batch status --json',
    'orch batch reset Sample1',
  ],
})
