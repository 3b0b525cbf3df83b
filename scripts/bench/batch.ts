/**
 * How long a 16-metric batch takes without a model, two ways:
 * - in process: `readBatchInputs` + `scoreBatch` on examples/Inputs/Full, against a baseline measured in the
 *   same run on the same folder: reading the same 16 files and `JSON.parse` of each (the least any engine
 *   must do). Rounds interleave the two so that noise and GC hit each alike.
 * - as a user runs it: `orch batch run examples/Inputs/Full --out …` as a process, against `orch --version`
 *   started the same way (the process start every command pays).
 * Usage: bun scripts/bench/batch.ts [--iterations 300] [--runs 15] [--binary dist/orch]
 * Last line: one JSON object with the figures.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readBatchInputs, scoreBatch } from '../../src/batch/score.ts'

const ROOT = resolve(import.meta.dir, '../..')
const FULL = join(ROOT, 'examples', 'Inputs', 'Full')
const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '300' }, runs: { type: 'string', default: '15' }, binary: { type: 'string' } },
})
const iterations = Number(values.iterations)
const runs = Number(values.runs)
const ROUNDS = 10

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { p50_ms: quantile(sorted, 0.5), p99_ms: quantile(sorted, 0.99), max_ms: sorted.at(-1) as number }
}
const round3 = (n: number) => Math.round(n * 1000) / 1000

function baseline(): number {
  let keys = 0
  for (const file of readdirSync(FULL)) keys += Object.keys(JSON.parse(readFileSync(join(FULL, file), 'utf8'))).length
  return keys
}

function engine(): number {
  return scoreBatch(readBatchInputs(FULL)).summary.scored_metrics
}

// Warm both paths (module loading, JIT) before timing.
for (let i = 0; i < 20; i++) {
  baseline()
  if (engine() !== 16) throw new Error('examples/Inputs/Full did not score 16 metrics')
}
const inProcess = { engine: [] as number[], baseline: [] as number[] }
const perRound = Math.max(1, Math.floor(iterations / ROUNDS))
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of [
    ['engine', engine],
    ['baseline', baseline],
  ] as const) {
    for (let i = 0; i < perRound; i++) {
      const t0 = performance.now()
      fn()
      inProcess[name].push(performance.now() - t0)
    }
  }
}

const cli = values.binary ? [resolve(ROOT, values.binary)] : [process.execPath, '--no-env-file', join(ROOT, 'commands', 'index.ts')]
const out = mkdtempSync(join(tmpdir(), 'orch-bench-batch-'))
const env = { ...process.env, ORCH_HOME: join(out, 'home'), NO_COLOR: '1' }
function timeProcess(args: string[]): number {
  const t0 = performance.now()
  const r = Bun.spawnSync([...cli, ...args], { cwd: out, env, stdout: 'ignore', stderr: 'pipe' })
  const ms = performance.now() - t0
  if (r.exitCode !== 0) throw new Error(`${args.join(' ')} exited ${r.exitCode}: ${r.stderr.toString()}`)
  return ms
}
const process_ = { run: [] as number[], version: [] as number[] }
timeProcess(['--version'])
for (let i = 0; i < runs; i++) {
  process_.run.push(timeProcess(['batch', 'run', FULL, '--out', join(out, 'result.json'), '--log-level', 'none']))
  process_.version.push(timeProcess(['--version']))
}
rmSync(out, { recursive: true, force: true })

const e = stats(inProcess.engine)
const b = stats(inProcess.baseline)
const r = stats(process_.run)
const v = stats(process_.version)
console.log(`16-metric batch (examples/Inputs/Full), ${inProcess.engine.length} in-process runs, ${runs} CLI runs (${cli.join(' ')})`)
console.log(`  in process   score p50 ${e.p50_ms.toFixed(3)} ms  p99 ${e.p99_ms.toFixed(3)} ms`)
console.log(`  baseline     read + JSON.parse p50 ${b.p50_ms.toFixed(3)} ms  p99 ${b.p99_ms.toFixed(3)} ms`)
console.log(`  ratio        score / baseline (p50) ×${(e.p50_ms / b.p50_ms).toFixed(1)}`)
console.log(`  orch batch run      p50 ${r.p50_ms.toFixed(1)} ms  p99 ${r.p99_ms.toFixed(1)} ms`)
console.log(`  orch --version      p50 ${v.p50_ms.toFixed(1)} ms  (process start)`)
console.log(`  batch run beyond the process start: ${(r.p50_ms - v.p50_ms).toFixed(1)} ms (p50)`)
console.log(
  JSON.stringify({
    in_process_p50_ms: round3(e.p50_ms),
    in_process_p99_ms: round3(e.p99_ms),
    baseline_p50_ms: round3(b.p50_ms),
    ratio_p50: round3(e.p50_ms / b.p50_ms),
    cli_run_p50_ms: round3(r.p50_ms),
    cli_run_p99_ms: round3(r.p99_ms),
    cli_version_p50_ms: round3(v.p50_ms),
  }),
)
