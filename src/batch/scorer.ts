/**
 * How a tick scores a batch: the built-in engine (`score.ts`, loaded only when a batch is scored), or
 * `batch.engine_command`, an argv run with the batch path appended whose stdout JSON is the result.
 * Either way the result must have `metrics` and a `summary` with at least one scored metric; a metric
 * reported as an error is completed to the documented shape and listed in `summary.unscored`.
 */
import type { RationaleWriter } from './rationale.ts'
import { completeResult, unscoredOf } from './result.ts'

export interface BatchResult {
  metrics: Record<string, unknown>
  summary: { scored_metrics: number } & Record<string, unknown>
}

export interface BatchScorer {
  name: string
  score(dir: string): Promise<BatchResult>
}

/** Throws when the value is not a usable result; a batch where nothing could be scored fails. */
export function checkResult(value: unknown): BatchResult {
  const result = value as Partial<BatchResult> | null
  if (typeof result !== 'object' || result === null || typeof result.metrics !== 'object' || result.metrics === null) {
    throw new Error('the engine returned no `metrics` object')
  }
  const scored = result.summary?.scored_metrics
  if (typeof scored !== 'number') throw new Error('the engine returned no `summary.scored_metrics`')
  if (scored < 1) {
    const unscored = unscoredOf(result.metrics)
    const why = unscored.map((u) => `${u.metric_id}: ${u.reason}`).join('; ')
    throw new Error(`no metric could be scored (no mapped input file was usable)${why ? `: ${why}` : ''}`)
  }
  return result as BatchResult
}

export interface EngineOptions {
  /** The model's time for one rationale. */
  timeoutMs?: number
  /** `batch.max_input_bytes`: larger input files are refused. */
  maxInputBytes?: number
}

/** The built-in scorers; with a writer, a model rewrites each rationale (see `rationale.ts`). */
export function builtinEngineWith(writer?: RationaleWriter, options: EngineOptions = {}): BatchScorer {
  return {
    name: 'builtin',
    async score(dir) {
      const { readBatchInputs, scoreBatch } = await import('./score.ts')
      const { writeRationales } = await import('./rationale.ts')
      const scored = scoreBatch(readBatchInputs(dir, options.maxInputBytes))
      return checkResult({ ...scored, metrics: await writeRationales(scored.metrics, writer, options) })
    },
  }
}

export const builtinEngine: BatchScorer = builtinEngineWith()

export function commandEngine(argv: string[]): BatchScorer {
  return {
    name: argv.join(' '),
    async score(dir) {
      const proc = Bun.spawn([...argv, dir], { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      if (code !== 0) throw new Error(`\`${argv.join(' ')}\` exited with ${code}${stderr.trim() ? `: ${stderr.trim().slice(-500)}` : ''}`)
      let parsed: unknown
      try {
        parsed = JSON.parse(stdout)
      } catch {
        throw new Error(`\`${argv.join(' ')}\` did not print a JSON result on stdout`)
      }
      return completeResult(checkResult(parsed))
    },
  }
}

export const engineFor = (engineCommand: string[], writer?: RationaleWriter, options: EngineOptions = {}): BatchScorer =>
  engineCommand.length > 0 ? commandEngine(engineCommand) : builtinEngineWith(writer, options)
